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
  /** io, invalid_model, unsupported, model_too_large, webgpu_unavailable, gpu, invalid_request, aborted, integrity, tokenizer, template, busy, unloaded, internal. */
  code: string;
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

export declare const Wisp: {
  load(source: ModelSource, opts?: LoadOptions): Promise<Engine>;
  cache: {
    list(): Promise<CachedModel[]>;
    delete(source: string | URL): Promise<boolean>;
    clear(): Promise<void>;
  };
};

export default Wisp;
