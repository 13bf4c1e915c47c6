// The engine where it runs (a Worker by default, or the page itself): loads the wasm
// module, streams a model into it and runs requests. It only moves bytes and messages;
// the model itself lives in the wasm engine.

import init, * as wasm from './wisp_wasm.js';
import { BlobSource, BytesSource, streamSource, urlSource, WispError } from './sources.js';
import * as cache from './cache.js';

let ready = null;

/** Load the wasm module once. */
export function initWasm() {
  ready ??= init({ module_or_path: new URL('./wisp_wasm_bg.wasm', import.meta.url) });
  return ready;
}

export function checkWebGpu() {
  if (!globalThis.navigator?.gpu) {
    throw new WispError(
      'webgpu_unavailable',
      'WebGPU is not available here. Use a recent Chrome or Edge (113+), Safari 26+, or Firefox 141+ on Windows; ' +
        'on Linux Chrome enable chrome://flags/#enable-unsafe-webgpu; WebGPU also needs a secure context (https or localhost).',
    );
  }
}

function toWispError(e) {
  if (e instanceof WispError) return e;
  if (e && e.name === 'WispError') return new WispError(e.code ?? 'internal', e.message);
  return new WispError('internal', e?.message ?? String(e));
}

const PREFIX = 1 << 20;

/**
 * Open `source` for reading. URLs (strings or URL objects) come from the cache when it
 * holds them, else from the network while being written to the cache.
 */
async function open(source, opts, state) {
  if (typeof source === 'string' || source instanceof URL) {
    const url = String(source);
    if (opts.cache !== false) {
      const hit = await cache.lookup(url);
      if (hit) {
        state.fromCache = true;
        return new BlobSource(hit);
      }
      state.writer = await cache.openWriter(url);
    }
    const src = urlSource(url, { signal: opts.signal, onBytes: (p) => state.onBytes(p) });
    return src;
  }
  if (typeof Blob !== 'undefined' && source instanceof Blob) return new BlobSource(source);
  if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) {
    const bytes = ArrayBuffer.isView(source)
      ? new Uint8Array(source.buffer, source.byteOffset, source.byteLength)
      : new Uint8Array(source);
    return new BytesSource(bytes);
  }
  if (typeof ReadableStream !== 'undefined' && source instanceof ReadableStream) {
    return streamSource(source, { signal: opts.signal, onBytes: (p) => state.onBytes(p) });
  }
  throw new WispError('invalid_request', 'source must be a URL, a Blob/File, an ArrayBuffer/Uint8Array or a ReadableStream');
}

/** Bytes of this worker's wasm memory. */
export function wasmMemoryBytes() {
  return wasm.wasmMemoryBytes();
}

/**
 * Load a model. `opts`: contextLength, memoryBudget, noF16, webgpuDefaultLimits, cache,
 * sha256, signal, onProgress({phase, loaded, total}).
 */
export async function load(source, opts = {}) {
  checkWebGpu();
  await initWasm();
  const progress = (phase, loaded, total) => opts.onProgress?.({ phase, loaded, total });
  const hasher = opts.sha256 ? new wasm.Sha256() : null;
  const state = {
    fromCache: false,
    writer: null,
    fetched: 0,
    async onBytes(piece) {
      state.fetched += piece.length;
      hasher?.update(piece);
      if (state.writer) await state.writer.write(piece);
    },
  };
  let src;
  let loader;
  try {
    src = await open(source, opts, state);
    progress('header', 0, src.size ?? 0);
    let prefix = await src.prefix(PREFIX);
    for (;;) {
      const needed = wasm.headerBytesNeeded(prefix, src.size ?? undefined);
      if (needed === 0) break;
      // The parser names the next boundary it needs; ask for at least twice as much
      // so a large vocabulary takes a few rounds, not thousands.
      const more = await src.prefix(Math.max(needed, prefix.length * 2));
      if (more.length < needed) {
        throw new WispError('invalid_model', `the file ends inside its GGUF header (${more.length} of ${needed} bytes)`);
      }
      prefix = more;
    }
    loader = await wasm.beginLoad(prefix, src.size ?? undefined, JSON.stringify({
      contextLength: opts.contextLength,
      memoryBudget: opts.memoryBudget,
      noF16: opts.noF16,
      webgpuDefaultLimits: opts.webgpuDefaultLimits,
    }));
    const total = loader.total();
    const ranges = loader.ranges();
    for (let i = 0; i < ranges.length; i += 2) {
      for await (const piece of src.read(ranges[i], ranges[i + 1])) {
        if (opts.signal?.aborted) throw new WispError('aborted', 'the load was aborted');
        loader.push(piece);
        progress(state.fromCache ? 'cache' : 'download', loader.loaded(), total);
      }
    }
    if (src.drain) await src.drain();
    let digest = null;
    if (hasher) {
      if (src instanceof BlobSource || src instanceof BytesSource) {
        // Random-access sources skipped the header and gaps: hash the whole file.
        const whole = new wasm.Sha256();
        for await (const piece of src.read(0, src.size)) whole.update(piece);
        digest = whole.hex();
      } else {
        digest = hasher.hex();
      }
      if (digest !== String(opts.sha256).toLowerCase()) {
        throw new WispError('integrity', `sha256 mismatch: expected ${opts.sha256}, got ${digest}`);
      }
    }
    progress('compile', total, total);
    const engine = await wasm.finishLoad(loader);
    loader = null;
    if (state.writer) await state.writer.commit(opts.sha256 ? { sha256: digest } : {});
    const info = JSON.parse(engine.info());
    info.fromCache = state.fromCache;
    info.bytesFetched = state.fetched;
    info.cacheError = state.writer?.error ?? null;
    if (info.cacheError) console.warn(`wisp: ${info.cacheError}`);
    progress('ready', total, total);
    return new LoadedEngine(engine, info);
  } catch (e) {
    loader?.free();
    if (state.writer) await state.writer.abort();
    throw toWispError(e);
  }
}

/** A loaded model: runs one request at a time, in order. */
export class LoadedEngine {
  constructor(engine, info) {
    this.engine = engine;
    this.info = info;
    this.queue = Promise.resolve();
  }

  /** Queue `fn` after the running request. */
  serial(fn) {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  /**
   * Generate for `request` (chat when it has messages, else raw completion). `onText`
   * gets each piece; `isCancelled()` is checked before every token. Resolves to the
   * engine's summary {text, finishReason, promptTokens, completionTokens, …}.
   */
  generate(kind, request, onText, isCancelled) {
    return this.serial(async () => {
      if (!this.engine) throw new WispError('unloaded', 'the model was unloaded');
      if (isCancelled()) {
        return { text: '', finishReason: 'abort', promptTokens: 0, prefillTokens: 0, completionTokens: 0, timeToFirstTokenS: 0, prefillTokensPerS: 0, decodeTokensPerS: 0, tokens: [] };
      }
      const body = JSON.stringify(request);
      const onPiece = (t) => { onText(t); return true; };
      try {
        const out = kind === 'chat'
          ? await this.engine.chat(body, onPiece, () => isCancelled())
          : await this.engine.complete(body, onPiece, () => isCancelled());
        return JSON.parse(out);
      } catch (e) {
        throw toWispError(e);
      }
    });
  }

  tokenize(text, special = false) {
    return Array.from(this.engine.tokenize(text, special));
  }

  detokenize(ids) {
    return this.engine.detokenize(Uint32Array.from(ids));
  }

  renderChat(messages) {
    return this.engine.renderChat(JSON.stringify({ messages }));
  }

  async unload() {
    await this.queue;
    this.engine?.free();
    this.engine = null;
  }
}

export { cache, toWispError };
