// wisp-llm: private LLM chat in the browser on the user's own GPU (WebGPU), or on its
// CPU (wasm) where there is no usable WebGPU.
//
//   const engine = await Wisp.load(url, { onProgress });
//   const r = await engine.chat.completions.create({ messages });
//
// The engine runs in a dedicated Worker by default, so the page never freezes.

import * as cache from './cache.js';
import { connect, RemoteEngine } from './remote.js';
import { WispError } from './sources.js';

export { WispError, RemoteEngine };

// Load failures that say this device cannot run the model (no usable WebGPU and a CPU
// engine that refuses it: too large for wasm memory or the budget, an unsupported type
// or architecture, a browser without what the wasm needs). Anything else (a bad
// request, a broken or mismatched file, a network error, an abort) is not the device's
// fault, and a fallback server would only hide it.
const FALLBACK_CODES = ['model_too_large', 'webgpu_unavailable', 'gpu', 'unsupported'];

/** Runs the engine in this thread (worker: false, or where Workers do not exist). */
class InlineBackend {
  async load(source, opts) {
    this.core = await import('./core.js');
    this.engine = await this.core.load(source, opts);
    return this.engine.info;
  }
  generate(kind, request, onText, isCancelled) {
    return this.engine.generate(kind, request, onText, isCancelled);
  }
  cancel() {}
  tokenize(text, special) {
    return this.engine.tokenize(text, special);
  }
  detokenize(ids) {
    return this.engine.detokenize(ids);
  }
  renderChat(messages) {
    return this.engine.renderChat(messages);
  }
  wasmMemoryBytes() {
    return this.core.wasmMemoryBytes();
  }
  unload() {
    return this.engine?.unload();
  }
}

/** Runs the engine in a dedicated module Worker; calls become messages. */
class WorkerBackend {
  constructor() {
    this.worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'wisp' });
    this.nextId = 1;
    this.calls = new Map();
    this.worker.onmessage = (ev) => {
      const { id, type } = ev.data;
      const call = this.calls.get(id);
      if (!call) return;
      if (type === 'progress') call.onProgress?.(ev.data.progress);
      else if (type === 'text') call.onText?.(ev.data.text);
      else {
        this.calls.delete(id);
        if (type === 'result') call.resolve(ev.data.value);
        else call.reject(new WispError(ev.data.error.code, ev.data.error.message));
      }
    };
    this.worker.onerror = (ev) => {
      const err = new WispError('internal', `the Wisp worker failed: ${ev.message ?? 'unknown error'}`);
      for (const call of this.calls.values()) call.reject(err);
      this.calls.clear();
    };
  }
  call(op, args, hooks = {}, transfer = []) {
    const id = this.nextId++;
    const done = new Promise((resolve, reject) => this.calls.set(id, { resolve, reject, ...hooks }));
    this.worker.postMessage({ id, op, args }, transfer);
    return { id, done };
  }
  async load(source, opts) {
    const { signal, onProgress, ...rest } = opts;
    const transfer = typeof ReadableStream !== 'undefined' && source instanceof ReadableStream ? [source] : [];
    const { id, done } = this.call('load', { source, opts: rest }, { onProgress }, transfer);
    const onAbort = () => this.call('cancel', { target: id });
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      return await done;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }
  generate(kind, request, onText, isCancelled) {
    const { id, done } = this.call('generate', { kind, request }, { onText });
    // The worker asks nothing of us mid-generation: forward a cancellation once seen.
    const poll = setInterval(() => {
      if (isCancelled()) {
        clearInterval(poll);
        this.call('cancel', { target: id });
      }
    }, 20);
    return done.finally(() => clearInterval(poll));
  }
  tokenize(text, special) {
    return this.call('tokenize', { text, special }).done;
  }
  detokenize(ids) {
    return this.call('detokenize', { ids: Array.from(ids) }).done;
  }
  renderChat(messages) {
    return this.call('renderChat', { messages }).done;
  }
  wasmMemoryBytes() {
    return this.call('memory', {}).done;
  }
  async unload() {
    await this.call('unload', {}).done;
    this.worker.terminate();
  }
}

function resolveSource(source) {
  // Resolve relative URLs against the page, not the worker script.
  if (source instanceof URL) return source.href;
  if (typeof source === 'string') return new URL(source, globalThis.location?.href).href;
  return source;
}

let completionId = 0;
const newId = (prefix) => `${prefix}-${Date.now().toString(36)}${(completionId++).toString(36)}`;

function usage(out) {
  return {
    prompt_tokens: out.promptTokens,
    completion_tokens: out.completionTokens,
    total_tokens: out.promptTokens + out.completionTokens,
    extra: {
      prefill_tokens: out.prefillTokens,
      prefill_tokens_per_s: out.prefillTokensPerS,
      decode_tokens_per_s: out.decodeTokensPerS,
      time_to_first_token_s: out.timeToFirstTokenS,
    },
  };
}

/** Async-iterable queue of streamed chunks fed by callbacks. */
function chunkStream(start) {
  const items = [];
  let wake = null;
  let finished = false;
  let failure = null;
  const push = (item) => {
    items.push(item);
    wake?.();
  };
  start(push).then(
    () => { finished = true; wake?.(); },
    (e) => { failure = e; finished = true; wake?.(); },
  );
  return {
    async *[Symbol.asyncIterator]() {
      for (;;) {
        if (items.length) {
          yield items.shift();
          continue;
        }
        if (failure) throw failure;
        if (finished) return;
        await new Promise((r) => { wake = r; });
        wake = null;
      }
    },
  };
}

export class Engine {
  constructor(backend, info) {
    this.backend = backend;
    /** Facts about the model and device (name, architecture, contextLength, adapter, …). */
    this.info = info;
    this.chat = { completions: { create: (req) => this.#create('chat', req) } };
    this.completions = { create: (req) => this.#create('completion', req) };
  }

  #create(kind, req = {}) {
    const { signal, stream, ...request } = req;
    if (kind === 'chat' && !Array.isArray(request.messages)) {
      return Promise.reject(new WispError('invalid_request', 'messages must be an array'));
    }
    if (kind === 'completion' && typeof request.prompt !== 'string') {
      return Promise.reject(new WispError('invalid_request', 'prompt must be a string'));
    }
    if (signal?.aborted) {
      return Promise.reject(new WispError('aborted', 'the request was aborted before it started'));
    }
    const id = newId(kind === 'chat' ? 'chatcmpl' : 'cmpl');
    const created = Math.floor(Date.now() / 1000);
    const model = this.info.name || this.info.architecture;
    const isCancelled = () => Boolean(signal?.aborted);
    if (!stream) {
      return this.backend.generate(kind, request, () => {}, isCancelled).then((out) =>
        kind === 'chat'
          ? {
              id, object: 'chat.completion', created, model,
              choices: [{ index: 0, message: { role: 'assistant', content: out.text }, finish_reason: out.finishReason, logprobs: null }],
              usage: usage(out),
            }
          : {
              id, object: 'text_completion', created, model,
              choices: [{ index: 0, text: out.text, finish_reason: out.finishReason, logprobs: null }],
              usage: usage(out),
            },
      );
    }
    const chunk = (delta, finish, extra = {}) =>
      kind === 'chat'
        ? { id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }], ...extra }
        : { id, object: 'text_completion', created, model, choices: [{ index: 0, text: delta.content ?? '', finish_reason: finish, logprobs: null }], ...extra };
    return Promise.resolve(
      chunkStream(async (push) => {
        let first = true;
        const out = await this.backend.generate(
          kind,
          request,
          (text) => {
            push(chunk(first ? { role: 'assistant', content: text } : { content: text }, null));
            first = false;
          },
          isCancelled,
        );
        // The last chunk carries the finish reason and the usage.
        push(chunk({}, out.finishReason, { usage: usage(out) }));
      }),
    );
  }

  /** Token ids of `text` (control-token text parsed when `special`). */
  async tokenize(text, { special = false } = {}) {
    return this.backend.tokenize(text, special);
  }

  /** The text of token ids. */
  async detokenize(ids) {
    return this.backend.detokenize(ids);
  }

  /** The prompt text the chat template makes of `messages`. */
  async renderChat(messages) {
    return this.backend.renderChat(messages);
  }

  /** Bytes of wasm memory the engine's module holds (for diagnostics and tests). */
  async wasmMemoryBytes() {
    return this.backend.wasmMemoryBytes();
  }

  /** Free the GPU memory (and end the worker). */
  async unload() {
    await this.backend.unload();
  }
}

export const Wisp = {
  /**
   * Load a GGUF model from a URL, Blob/File, ArrayBuffer/Uint8Array or ReadableStream.
   * Options: device ('auto' | 'gpu' | 'cpu'), threads (CPU engine), contextLength,
   * memoryBudget (bytes), onProgress({phase, loaded, total}),
   * signal, cache (default true, URLs only), worker (default true), sha256,
   * noF16, webgpuDefaultLimits, fallback ({baseURL, apiKey, model}: where this device
   * cannot run the model, Wisp.connect to that server instead; engine.info says why).
   */
  async load(source, opts = {}) {
    const { worker: _ignored, fallback, ...rest } = opts;
    if (fallback !== undefined && (typeof fallback !== 'object' || fallback === null || !fallback.baseURL)) {
      throw new WispError('invalid_request', 'fallback must be {baseURL, apiKey?, model?}, as Wisp.connect takes');
    }
    const useWorker = opts.worker !== false && typeof Worker !== 'undefined';
    const backend = useWorker ? new WorkerBackend() : new InlineBackend();
    try {
      const info = await backend.load(resolveSource(source), rest);
      return new Engine(backend, info);
    } catch (e) {
      if (useWorker) backend.worker.terminate();
      if (!fallback || !FALLBACK_CODES.includes(e?.code)) throw e;
      const why = `this device cannot run the model (${e.code}: ${e.message})`;
      try {
        return await connect({ signal: opts.signal, ...fallback }, {
          fallback: true,
          reason: `fell back to ${fallback.baseURL}: ${why}`,
          localError: { code: e.code, message: e.message },
        });
      } catch (remote) {
        const err = new WispError(remote.code ?? 'internal', `${why}, and the fallback server failed too: ${remote.message}`);
        if (remote.status !== undefined) err.status = remote.status;
        if (remote.error !== undefined) err.error = remote.error;
        err.localError = { code: e.code, message: e.message };
        throw err;
      }
    }
  },

  /**
   * An engine on an OpenAI-compatible server (wisp serve, llama-server, vLLM, …) with
   * the same chat.completions / completions surface, plus embeddings. `opts`: baseURL
   * (with the /v1, as the openai clients take it), apiKey, model (default: the first
   * the server lists), headers, fetch, signal.
   */
  connect(opts) {
    return connect(opts);
  },

  /** The persistent model cache (shared by every page of this origin). */
  cache: {
    list: () => cache.list(),
    delete: (source) => cache.remove(resolveSource(source)),
    clear: () => cache.clear(),
  },
};

export default Wisp;
