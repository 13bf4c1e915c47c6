// The engine where it runs (a Worker by default, or the page itself): loads the wasm
// module, streams a model into it and runs requests. It only moves bytes and messages;
// the model itself lives in the wasm engine.

import { BlobSource, BytesSource, streamSource, urlSource, WispError } from './sources.js';
import * as cache from './cache.js';

// Two builds of the engine: `wisp_wasm` (both engines, one thread) and `wisp_wasm_mt`
// (the CPU engine alone, built with wasm threads over a shared memory), which is loaded
// only for the CPU engine on several threads.
const builds = {};
/** The build the engine in this worker runs on. */
let wasm = null;

/** Load a build once ('st' or 'mt'); resolves to its module. */
export function initWasm(kind = 'st') {
  builds[kind] ??= (async () => {
    const m = kind === 'mt' ? await import('./wisp_wasm_mt.js') : await import('./wisp_wasm.js');
    const file = kind === 'mt' ? './wisp_wasm_mt_bg.wasm' : './wisp_wasm_bg.wasm';
    try {
      await m.default({ module_or_path: new URL(file, import.meta.url) });
    } catch (e) {
      // A browser without wasm SIMD cannot compile either build: no engine runs here.
      if (e instanceof WebAssembly.CompileError) {
        throw new WispError('unsupported', `this browser cannot compile Wisp's WebAssembly (${e.message}); it needs wasm SIMD (Chrome 91, Firefox 89, Safari 16.4)`);
      }
      throw e;
    }
    return m;
  })();
  builds[kind].catch(() => { delete builds[kind]; });
  return builds[kind];
}

const MAX_THREADS = 16;
let pool = null; // {threads, workers} once the threaded build's pool runs

/**
 * Start `n` pool workers over the threaded build's memory, then rayon's pool on them
 * (the order src/threads.rs explains). Once per worker: later loads reuse the pool.
 */
async function startPool(m, n) {
  if (pool) return pool.threads;
  const [module, memory] = m.threadShare();
  const started = [];
  try {
    await Promise.all(Array.from({ length: n }, (_, i) => new Promise((resolve, reject) => {
      const w = new Worker(new URL('./thread.js', import.meta.url), { type: 'module', name: `wisp-thread-${i}` });
      started.push(w);
      w.onmessage = (ev) => (ev.data === 'ready' ? resolve() : reject(new Error(ev.data?.error ?? 'no ready message')));
      w.onerror = (ev) => reject(new Error(ev.message ?? 'the thread worker failed to start'));
      w.postMessage({ module, memory });
    })));
  } catch (e) {
    started.forEach((w) => w.terminate());
    throw e;
  }
  m.buildPool(n);
  pool = { threads: m.poolThreads(), workers: started };
  return pool.threads;
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
  return wasm?.wasmMemoryBytes() ?? 0;
}

const DEVICES = ['auto', 'gpu', 'cpu'];
// Adapter names of WebGPU implementations that run on the CPU: a CPU engine beats them.
const SOFTWARE_ADAPTER = /swiftshader|llvmpipe|lavapipe|softpipe|\bwarp\b|basic render/i;

/** Describe a WebGPU adapter in one line (for engine.info). */
function adapterName(adapter) {
  const i = adapter.info ?? {};
  return [i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(' ') || 'unknown adapter';
}

/**
 * Which engine `device: 'auto'` takes: WebGPU when there is a hardware adapter, else
 * the CPU engine. Resolves to {engine, reason, adapter}. (The GPU memory plan is checked
 * later, against the real header: a model that does not fit falls back then.)
 */
export async function chooseEngine() {
  if (!globalThis.navigator?.gpu) {
    return { engine: 'cpu', reason: 'no WebGPU (navigator.gpu is missing)', adapter: null };
  }
  let adapter = null;
  try {
    adapter = await navigator.gpu.requestAdapter();
  } catch (e) {
    return { engine: 'cpu', reason: `no WebGPU adapter (${e?.message ?? e})`, adapter: null };
  }
  if (!adapter) return { engine: 'cpu', reason: 'no WebGPU adapter', adapter: null };
  const name = adapterName(adapter);
  if (adapter.info?.isFallbackAdapter || adapter.isFallbackAdapter || SOFTWARE_ADAPTER.test(name)) {
    return { engine: 'cpu', reason: `the only WebGPU adapter is a software one (${name})`, adapter: name };
  }
  return { engine: 'gpu', reason: `hardware WebGPU adapter (${name})`, adapter: name };
}

/**
 * Threads the CPU engine asks for, and why (engine.info.threadsReason): {threads,
 * threadsReason, mt} where `mt` says the threaded build is needed.
 */
function cpuThreads(opts) {
  const asked = opts.threads ?? 0;
  if (!(Number.isInteger(asked) && asked >= 0)) {
    throw new WispError('invalid_request', `threads must be a positive whole number (or 0: one per core), not ${asked}`);
  }
  const cores = globalThis.navigator?.hardwareConcurrency || 1;
  const want = Math.min(asked === 0 ? cores : asked, MAX_THREADS);
  const one = (why) => ({ threads: 1, threadsReason: `one thread: ${why}`, mt: false });
  if (want === 1) return one(asked === 1 ? 'threads: 1 was asked for' : 'this device reports one core');
  if (!globalThis.crossOriginIsolated) {
    return one('the page is not cross-origin isolated (serve it with Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp to use several)');
  }
  if (typeof WorkerGlobalScope === 'undefined' || !(globalThis instanceof WorkerGlobalScope)) {
    return one("the engine runs on the page's main thread (worker: false), which may not wait for other threads");
  }
  return {
    threads: want,
    threadsReason: `${want} threads (${asked === 0 ? 'one per core' : 'as asked'}): Web Workers over a shared wasm memory`,
    mt: true,
  };
}

/** The build for the CPU engine with `plan`'s threads (falls back to one thread). */
async function cpuBuild(plan) {
  if (!plan.mt) return initWasm('st');
  try {
    const m = await initWasm('mt');
    const n = await startPool(m, plan.threads);
    if (n !== plan.threads) plan.threadsReason = `${n} threads (the pool already ran with ${n})`;
    plan.threads = n;
    return m;
  } catch (e) {
    plan.threads = 1;
    plan.mt = false;
    plan.threadsReason = `one thread: the threaded build did not start (${e?.message ?? e})`;
    return initWasm('st');
  }
}

/** A model load has this much of the header; read more until it parses. */
async function readHeader(src) {
  let prefix = await src.prefix(PREFIX);
  for (;;) {
    const needed = wasm.headerBytesNeeded(prefix, src.size ?? undefined);
    if (needed === 0) return prefix;
    // The parser names the next boundary it needs; ask for at least twice as much
    // so a large vocabulary takes a few rounds, not thousands.
    const more = await src.prefix(Math.max(needed, prefix.length * 2));
    if (more.length < needed) {
      throw new WispError('invalid_model', `the file ends inside its GGUF header (${more.length} of ${needed} bytes)`);
    }
    prefix = more;
  }
}

/**
 * Load a model. `opts`: device ('auto' | 'gpu' | 'cpu'), threads, contextLength,
 * memoryBudget, noF16, webgpuDefaultLimits, cache, sha256, signal,
 * onProgress({phase, loaded, total}).
 */
export async function load(source, opts = {}) {
  const device = opts.device ?? 'auto';
  if (!DEVICES.includes(device)) {
    throw new WispError('invalid_request', `device must be 'auto', 'gpu' or 'cpu', not ${JSON.stringify(device)}`);
  }
  let choice;
  if (device === 'gpu') {
    checkWebGpu();
    choice = { engine: 'gpu', reason: "device: 'gpu' was asked for", adapter: null };
  } else if (device === 'cpu') {
    choice = { engine: 'cpu', reason: "device: 'cpu' was asked for", adapter: null };
  } else {
    choice = await chooseEngine();
  }
  const cpu = cpuThreads(opts);
  wasm = choice.engine === 'cpu' ? await cpuBuild(cpu) : await initWasm('st');
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
    const prefix = await readHeader(src);
    const options = () => JSON.stringify({
      contextLength: opts.contextLength,
      memoryBudget: opts.memoryBudget,
      noF16: opts.noF16,
      webgpuDefaultLimits: opts.webgpuDefaultLimits,
      threads: cpu.threads,
    });
    if (choice.engine === 'gpu') {
      try {
        loader = await wasm.beginLoad(prefix, src.size ?? undefined, options());
      } catch (e) {
        const err = toWispError(e);
        // 'auto' falls back to the CPU engine where the GPU cannot take the model.
        if (device !== 'auto' || !['model_too_large', 'webgpu_unavailable', 'gpu'].includes(err.code)) throw err;
        choice = { ...choice, engine: 'cpu', reason: `the GPU cannot run it (${err.message})` };
        wasm = await cpuBuild(cpu);
      }
    }
    if (choice.engine === 'cpu') loader = wasm.beginCpuLoad(prefix, src.size ?? undefined, options());
    const total = loader.total();
    const ranges = choice.engine === 'gpu' ? loader.ranges() : [0, total];
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
    const engine = choice.engine === 'gpu' ? await wasm.finishLoad(loader) : wasm.finishCpuLoad(loader);
    loader = null;
    if (state.writer) await state.writer.commit(opts.sha256 ? { sha256: digest } : {});
    const info = JSON.parse(engine.info());
    info.reason = choice.reason;
    if (choice.engine === 'cpu') {
      info.threadsReason = cpu.threadsReason;
      info.crossOriginIsolated = Boolean(globalThis.crossOriginIsolated);
    }
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

/** A Promise that resolves on a later task (not a microtask), so queued messages run. */
const pause = (() => {
  if (typeof MessageChannel === 'undefined') return () => new Promise((r) => setTimeout(r, 0));
  const channel = new MessageChannel();
  const waiting = [];
  channel.port1.onmessage = () => waiting.shift()?.();
  return () => new Promise((r) => {
    waiting.push(r);
    channel.port2.postMessage(0);
  });
})();

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
          ? await this.engine.chat(body, onPiece, () => isCancelled(), pause)
          : await this.engine.complete(body, onPiece, () => isCancelled(), pause);
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
