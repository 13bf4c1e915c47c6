// Types of wisp-llm. The API follows OpenAI's chat.completions (as WebLLM does).

export type ModelSource = string | URL | Blob | File | ArrayBuffer | Uint8Array | ReadableStream<Uint8Array>;

export interface LoadProgress {
  /** 'header' → 'download' (network) or 'cache' (stored copy) → 'compile' → 'ready'. */
  phase: 'header' | 'download' | 'cache' | 'compile' | 'ready';
  /** Model bytes uploaded to the GPU so far. */
  loaded: number;
  /** Model bytes to upload. */
  total: number;
}

/** Where the model runs: 'gpu' (WebGPU), 'cpu' (the CPU engine in wasm), or 'auto'. */
export type Device = 'auto' | 'gpu' | 'cpu';

export interface LoadOptions {
  /**
   * 'auto' (default): WebGPU when a hardware adapter exists and the model's GPU memory
   * plan fits, else the CPU engine (engine.info.reason says which and why). 'gpu' fails
   * with webgpu_unavailable where there is no WebGPU; 'cpu' always takes the CPU engine,
   * which holds the whole file in wasm memory (at most 2 GiB for the file, 4 GiB in all).
   */
  device?: Device;
  /**
   * CPU engine threads: 0 (default) = one per core (navigator.hardwareConcurrency).
   * Several threads need a cross-origin isolated page (COOP/COEP headers); elsewhere
   * the engine runs on one thread and engine.info.threadsReason says why.
   */
  threads?: number;
  /** KV cache size in tokens (default: the model's, at most 4096). */
  contextLength?: number;
  /** Refuse models whose memory plan (GPU buffers, or wasm memory on the CPU engine) exceeds this many bytes. */
  memoryBudget?: number;
  onProgress?: (p: LoadProgress) => void;
  signal?: AbortSignal;
  /** Keep URL-loaded models in the origin's storage (default true). */
  cache?: boolean;
  /** Run the engine in a dedicated Worker (default true; false in Node or to debug). */
  worker?: boolean;
  /** Expected SHA-256 of the file (hex); a mismatch fails the load. */
  sha256?: string;
  /** Use the f32 kernels even where the device has shader-f16. */
  noF16?: boolean;
  /** Ask only for WebGPU's default limits (what the weakest devices grant). */
  webgpuDefaultLimits?: boolean;
  /**
   * Where this device cannot run the model (no usable WebGPU and the CPU engine refuses
   * it: model_too_large, webgpu_unavailable, gpu or unsupported), Wisp.connect to this
   * server instead: the load resolves to a RemoteEngine whose info.fallback is true and
   * info.reason says why. Other failures (a bad file, a network error) still reject.
   */
  fallback?: ConnectOptions;
}

export interface ConnectOptions {
  /** The server's OpenAI base URL, with its /v1 (as the openai clients take it), e.g. http://127.0.0.1:8080/v1. */
  baseURL: string | URL;
  /** Sent as Authorization: Bearer KEY (wisp serve --api-key). */
  apiKey?: string;
  /** The model id requests name (default: the first one GET /models lists). */
  model?: string;
  /** More headers for every request. */
  headers?: Record<string, string>;
  /** The fetch to use (default: globalThis.fetch). */
  fetch?: typeof fetch;
  /** Cancels connecting (the GET /models check). */
  signal?: AbortSignal;
}

export interface RemoteInfo {
  engine: 'remote';
  /** The model id requests name. */
  name: string;
  model: string;
  /** The base URL, normalised (no trailing slash). */
  baseURL: string;
  /** The ids GET /models listed (null where the server did not list them). */
  models: string[] | null;
  /** 'Wisp.connect: URL', or after a fallback 'fell back to URL: this device cannot run the model (…)'. */
  reason: string;
  /** True when Wisp.load fell back to the server. */
  fallback: boolean;
  /** Why the local load failed (after a fallback), else null. */
  localError: { code: string; message: string } | null;
}

export interface ModelInfo {
  name: string;
  architecture: string;
  contextLength: number;
  trainedContextLength: number;
  vocabSize: number;
  layers: number;
  embeddingSize: number;
  /** The engine that runs the model. */
  engine: 'gpu' | 'cpu';
  /** Why this engine: e.g. 'no WebGPU adapter', "device: 'cpu' was asked for", 'hardware WebGPU adapter (…)'. */
  reason: string;
  /** Bytes of the weights on the GPU (0 on the CPU engine). */
  gpuBytes: number;
  /** The WebGPU adapter (null on the CPU engine). */
  adapter: string | null;
  shaderF16: boolean;
  /** CPU engine: threads the forward pass runs on. */
  threads?: number;
  /** CPU engine: why that many threads (isolation, the build, the request). */
  threadsReason?: string;
  /** CPU engine: the kernels' instruction set ('simd128' or 'scalar'). */
  isa?: string;
  /** CPU engine: model bytes held in wasm memory. */
  wasmModelBytes?: number;
  /** CPU engine: bytes of the KV cache. */
  kvBytes?: number;
  /** CPU engine: whether the page was cross-origin isolated (what threads need). */
  crossOriginIsolated?: boolean;
  hasChatTemplate: boolean;
  /** Loaded from the persistent cache (no model bytes fetched). */
  fromCache: boolean;
  /** Model bytes that came over the network or a stream. */
  bytesFetched: number;
  /** Why the model could not be cached (quota, private mode), if it could not. */
  cacheError: string | null;
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool' | string;
  content: string | Array<{ type: 'text'; text: string }>;
}

export interface SamplingOptions {
  max_tokens?: number | null;
  /** 0: greedy. Default 0.8 (with top_k 40, top_p 0.95, min_p 0.05). */
  temperature?: number;
  top_p?: number;
  top_k?: number;
  min_p?: number;
  repetition_penalty?: number;
  presence_penalty?: number;
  frequency_penalty?: number;
  seed?: number;
  stop?: string | string[];
  signal?: AbortSignal;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  extra: {
    /** Prompt tokens actually evaluated (the rest reused the cached conversation). */
    prefill_tokens: number;
    prefill_tokens_per_s: number;
    decode_tokens_per_s: number;
    time_to_first_token_s: number;
  };
}

/** 'abort' when the request's signal stopped it (the partial text is kept). */
export type FinishReason = 'stop' | 'length' | 'abort';

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: Array<{ index: number; message: { role: 'assistant'; content: string }; finish_reason: FinishReason; logprobs: null }>;
  usage: Usage;
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: Array<{ index: number; delta: { role?: 'assistant'; content?: string }; finish_reason: FinishReason | null; logprobs: null }>;
  /** On the last chunk only. */
  usage?: Usage;
}

export interface Completion {
  id: string;
  object: 'text_completion';
  created: number;
  model: string;
  choices: Array<{ index: number; text: string; finish_reason: FinishReason | null; logprobs: null }>;
  usage?: Usage;
}

export interface ChatRequest extends SamplingOptions {
  messages: ChatMessage[];
}

export interface CompletionRequest extends SamplingOptions {
  prompt: string;
  /** Parse control-token text (like `<|im_start|>`) in the prompt as control tokens. */
  special?: boolean;
}

export declare class WispError extends Error {
  name: 'WispError';
  /**
   * io, invalid_model, unsupported, model_too_large, webgpu_unavailable, gpu, invalid_request, aborted, integrity, tokenizer, template, busy, unloaded, internal;
   * from a server (RemoteEngine): invalid_request (4xx), context_full, unauthorized (401/403), busy (429), server (5xx), io (unreachable, CORS).
   */
  code: string;
  /** RemoteEngine: the HTTP status the server answered (null for an error event inside a stream). */
  status?: number | null;
  /** RemoteEngine: the server's OpenAI error object ({message, type, param, code}). */
  error?: { message: string; type?: string; param?: string | null; code?: string | null };
  /** Wisp.load with fallback, when the server failed too: why the local load failed. */
  localError?: { code: string; message: string };
}

export declare class Engine {
  readonly info: ModelInfo;
  readonly chat: {
    completions: {
      create(req: ChatRequest & { stream?: false }): Promise<ChatCompletion>;
      create(req: ChatRequest & { stream: true }): Promise<AsyncIterable<ChatCompletionChunk>>;
    };
  };
  readonly completions: {
    create(req: CompletionRequest & { stream?: false }): Promise<Completion>;
    create(req: CompletionRequest & { stream: true }): Promise<AsyncIterable<Completion>>;
  };
  tokenize(text: string, opts?: { special?: boolean }): Promise<number[]>;
  detokenize(ids: number[]): Promise<string>;
  /** The prompt text the chat template makes of `messages`. */
  renderChat(messages: ChatMessage[]): Promise<string>;
  wasmMemoryBytes(): Promise<number>;
  unload(): Promise<void>;
}

export interface CachedModel {
  url: string;
  size: number;
  cachedAt: string;
  sha256?: string;
}

/** A server's usage: OpenAI's three counts; `extra` only where the server sends it. */
export type RemoteUsage = Omit<Usage, 'extra'> & { extra?: Usage['extra'] };
type Remote<T> = Omit<T, 'usage' | 'choices'> & {
  choices: Array<Omit<T extends { choices: Array<infer C> } ? C : never, 'finish_reason'> & { finish_reason: FinishReason | 'tool_calls' | 'content_filter' | string | null }>;
  usage?: RemoteUsage;
};

export interface EmbeddingRequest {
  input: string | string[] | number[] | number[][];
  model?: string;
  encoding_format?: 'float' | 'base64';
  dimensions?: number;
  signal?: AbortSignal;
}

export interface EmbeddingResponse {
  object: 'list';
  data: Array<{ object: 'embedding'; index: number; embedding: number[] | string }>;
  model: string;
  usage?: { prompt_tokens: number; total_tokens: number };
}

/**
 * The same surface as a loaded Engine, served by an OpenAI-compatible server. Requests
 * run concurrently (the server queues them). Streams end as the local engine's do: the
 * last chunk carries finish_reason and usage; an abort ends the stream with
 * finish_reason 'abort' (the fetch is cancelled, so the server stops generating). A
 * non-streamed request that is aborted rejects with code 'aborted'.
 */
export declare class RemoteEngine {
  readonly info: RemoteInfo;
  readonly chat: {
    completions: {
      create(req: ChatRequest & { model?: string; stream?: false; [field: string]: unknown }): Promise<Remote<ChatCompletion>>;
      create(req: ChatRequest & { model?: string; stream: true; [field: string]: unknown }): Promise<AsyncIterable<Remote<ChatCompletionChunk>>>;
    };
  };
  readonly completions: {
    create(req: CompletionRequest & { model?: string; stream?: false; [field: string]: unknown }): Promise<Remote<Completion>>;
    create(req: CompletionRequest & { model?: string; stream: true; [field: string]: unknown }): Promise<AsyncIterable<Remote<Completion>>>;
  };
  readonly embeddings: {
    create(req: EmbeddingRequest): Promise<EmbeddingResponse>;
  };
  /** Reject with 'unsupported': the tokenizer lives on the server. */
  tokenize(text: string, opts?: { special?: boolean }): Promise<number[]>;
  detokenize(ids: number[]): Promise<string>;
  renderChat(messages: ChatMessage[]): Promise<string>;
  /** 0: no model in this page. */
  wasmMemoryBytes(): Promise<number>;
  /** Abort the requests in flight; later ones reject with 'unloaded'. */
  unload(): Promise<void>;
}

export declare const Wisp: {
  load(source: ModelSource, opts: LoadOptions & { fallback: ConnectOptions }): Promise<Engine | RemoteEngine>;
  load(source: ModelSource, opts?: LoadOptions): Promise<Engine>;
  /** An engine on an OpenAI-compatible server (wisp serve, llama-server, vLLM, …); checks it with GET /models first. */
  connect(opts: ConnectOptions): Promise<RemoteEngine>;
  cache: {
    list(): Promise<CachedModel[]>;
    delete(source: string | URL): Promise<boolean>;
    clear(): Promise<void>;
  };
};

export default Wisp;
