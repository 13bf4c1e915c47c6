// The remote engine: the same chat.completions / completions surface as a loaded model,
// served by an OpenAI-compatible server (`wisp serve`, llama-server, vLLM, …) over
// fetch, with streams read as server-sent events. It holds no model and no wasm.

import { WispError } from './sources.js';

/** Server-sent events of a response body: yields {event, data} per dispatched event. */
export async function* sseEvents(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  let data = [];
  let event = '';
  // Returns an event to dispatch (a blank line ends one), or null.
  const line = (l) => {
    if (l === '') {
      const out = data.length ? { event: event || 'message', data: data.join('\n') } : null;
      data = [];
      event = '';
      return out;
    }
    if (l[0] === ':') return null; // a comment (keep-alives)
    const colon = l.indexOf(':');
    const field = colon < 0 ? l : l.slice(0, colon);
    let value = colon < 0 ? '' : l.slice(colon + 1);
    if (value[0] === ' ') value = value.slice(1);
    if (field === 'data') data.push(value);
    else if (field === 'event') event = value;
    return null;
  };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      buf += done ? decoder.decode() : decoder.decode(value, { stream: true });
      let start = 0;
      for (let i = 0; i < buf.length; i++) {
        const ch = buf[i];
        if (ch !== '\n' && ch !== '\r') continue;
        // A read may end between the '\r' and the '\n' of one line break.
        if (ch === '\r' && i + 1 === buf.length && !done) break;
        const ev = line(buf.slice(start, i));
        if (ch === '\r' && buf[i + 1] === '\n') i++;
        start = i + 1;
        if (ev) yield ev;
      }
      buf = buf.slice(start);
      if (done) {
        // Lenient at the end: a last event without its blank line still counts.
        if (buf) line(buf);
        const ev = line('');
        if (ev) yield ev;
        return;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

/** The package's error code for an HTTP status (and the server's own error code). */
function codeFor(status, serverCode) {
  if (serverCode === 'context_length_exceeded') return 'context_full';
  if (status === 401 || status === 403) return 'unauthorized';
  if (status === 429) return 'busy';
  if (status >= 500) return 'server';
  return 'invalid_request';
}

/** A WispError from a server's OpenAI-shaped error (`{error: {message, type, param, code}}`). */
function serverError(where, status, body) {
  const e = body && typeof body === 'object' ? body.error ?? body : null;
  const message = typeof e === 'string' ? e : e?.message ?? (typeof body === 'string' && body ? body : 'no error message');
  const err = new WispError(codeFor(status, e?.code), `${where} answered ${status ?? 'an error'}: ${message}`);
  err.status = status ?? null;
  err.error = e && typeof e === 'object' ? e : { message };
  return err;
}

const isAbort = (e) => e?.name === 'AbortError';

/** fetch's TypeError says little ("Failed to fetch"): say what usually causes it. */
/** The error of a non-2xx response: its body as JSON where it parses (OpenAI's error shape), else as text. */
async function responseError(url, res) {
  const text = await res.text().catch(() => '');
  let parsed = text;
  try {
    parsed = JSON.parse(text);
  } catch {}
  return serverError(url, res.status, parsed);
}

function networkError(url, e) {
  const cors = globalThis.location && new URL(url).origin !== globalThis.location.origin
    ? ` A page on another origin needs the server to allow it with CORS (wisp serve --cors-origin ${globalThis.location.origin}).`
    : '';
  return new WispError('io', `cannot reach ${url}: ${e?.message ?? e}.${cors}`);
}

/**
 * An AbortSignal that fires when any of `signals` does (AbortSignal.any is recent), and
 * `release()`, which detaches it (the engine's own signal outlives every request).
 */
function anySignal(signals) {
  const controller = new AbortController();
  const abort = () => controller.abort();
  const live = signals.filter(Boolean);
  for (const s of live) {
    if (s.aborted) abort();
    else s.addEventListener('abort', abort, { once: true });
  }
  const release = () => live.forEach((s) => s.removeEventListener('abort', abort));
  return { signal: controller.signal, release };
}

export class RemoteEngine {
  constructor(opts, info) {
    this.baseURL = opts.baseURL;
    this.apiKey = opts.apiKey;
    this.headers = opts.headers ?? {};
    this.fetch = opts.fetch ?? globalThis.fetch.bind(globalThis);
    this.model = info.model;
    /** engine: 'remote', baseURL, model, reason; fallback and localError after Wisp.load fell back. */
    this.info = info;
    // unload() aborts what is in flight and refuses what comes after.
    this.closed = new AbortController();
    this.chat = { completions: { create: (req) => this.#create('chat', req) } };
    this.completions = { create: (req) => this.#create('completion', req) };
    this.embeddings = { create: (req) => this.#embeddings(req) };
  }

  #headers(json) {
    const h = { Accept: json ? 'application/json' : 'text/event-stream', ...this.headers };
    if (this.apiKey) h.Authorization = `Bearer ${this.apiKey}`;
    return h;
  }

  /** POST `body` to `path`; resolves to the Response (rejects with a WispError). */
  async #post(path, body, signal, json = true) {
    if (this.closed.signal.aborted) throw new WispError('unloaded', 'the engine was unloaded');
    const url = `${this.baseURL}${path}`;
    let res;
    try {
      res = await this.fetch(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', ...this.#headers(json) },
        body: JSON.stringify(body),
        signal,
      });
    } catch (e) {
      if (isAbort(e)) throw e;
      throw networkError(url, e);
    }
    if (!res.ok) {
      throw await responseError(url, res);
    }
    return res;
  }

  #create(kind, req = {}) {
    const { signal, stream, special: _special, ...rest } = req;
    if (kind === 'chat' && !Array.isArray(rest.messages)) {
      return Promise.reject(new WispError('invalid_request', 'messages must be an array'));
    }
    if (kind === 'completion' && typeof rest.prompt !== 'string' && !Array.isArray(rest.prompt)) {
      return Promise.reject(new WispError('invalid_request', 'prompt must be a string'));
    }
    if (signal?.aborted) {
      return Promise.reject(new WispError('aborted', 'the request was aborted before it started'));
    }
    const body = { model: this.model, ...rest };
    // The local engine's name for it is vLLM's; llama.cpp and wisp serve call it repeat_penalty.
    if (rest.repetition_penalty !== undefined) body.repeat_penalty ??= rest.repetition_penalty;
    const path = kind === 'chat' ? '/chat/completions' : '/completions';
    const both = anySignal([signal, this.closed.signal]);
    if (!stream) {
      return this.#post(path, body, both.signal)
        .then((res) => res.json())
        .catch((e) => {
          throw isAbort(e) ? new WispError(this.closed.signal.aborted ? 'unloaded' : 'aborted', 'the request was aborted') : e;
        })
        .finally(both.release);
    }
    body.stream = true;
    // The usage arrives in a chunk of its own, merged into the finish chunk below.
    body.stream_options ??= { include_usage: true };
    return this.#post(path, body, both.signal, false).then(
      (res) => this.#chunks(kind, res.body, both),
      (e) => {
        if (!isAbort(e)) {
          both.release();
          throw e;
        }
        return this.#chunks(kind, null, both);
      },
    );
  }

  /**
   * The chunks of a stream, shaped as the local engine's: the last one carries the
   * finish reason and the usage; an abort ends the stream with finish_reason 'abort'.
   */
  #chunks(kind, body, { signal, release }) {
    const where = this.baseURL;
    const model = this.model;
    return {
      async *[Symbol.asyncIterator]() {
        let last = null;
        let finish = null;
        const aborted = () => {
          const base = last ?? { id: 'aborted', created: Math.floor(Date.now() / 1000), model };
          const choice = kind === 'chat'
            ? { index: 0, delta: {}, finish_reason: 'abort', logprobs: null }
            : { index: 0, text: '', finish_reason: 'abort', logprobs: null };
          return { id: base.id, object: kind === 'chat' ? 'chat.completion.chunk' : 'text_completion', created: base.created, model: base.model, choices: [choice] };
        };
        if (!body) {
          release();
          yield aborted();
          return;
        }
        try {
          for await (const ev of sseEvents(body)) {
            if (ev.data === '[DONE]') break;
            let chunk;
            try {
              chunk = JSON.parse(ev.data);
            } catch {
              throw new WispError('server', `${where} sent an event that is not JSON: ${ev.data.slice(0, 200)}`);
            }
            if (chunk?.error || ev.event === 'error') throw serverError(where, null, chunk);
            if (chunk.usage === null) delete chunk.usage;
            const choice = chunk.choices?.[0];
            if (!choice) {
              // include_usage's chunk has no choices: its usage belongs to the finish chunk.
              if (chunk.usage && finish) finish.usage = chunk.usage;
              continue;
            }
            // Hold the finish chunk back until the usage has come.
            if (finish) yield finish;
            finish = null;
            last = chunk;
            if (choice.finish_reason != null) finish = chunk;
            else yield chunk;
          }
        } catch (e) {
          if (!isAbort(e) && !signal.aborted) throw e;
          if (finish) yield finish;
          else yield aborted();
          return;
        } finally {
          release();
        }
        if (finish) yield finish;
        else if (signal.aborted) yield aborted();
        else throw new WispError('io', `${where} ended the stream before its last chunk (the connection dropped?)`);
      },
    };
  }

  async #embeddings(req = {}) {
    const { signal, ...rest } = req;
    if (signal?.aborted) throw new WispError('aborted', 'the request was aborted before it started');
    const both = anySignal([signal, this.closed.signal]);
    try {
      const res = await this.#post('/embeddings', { model: this.model, ...rest }, both.signal);
      return await res.json();
    } catch (e) {
      throw isAbort(e) ? new WispError('aborted', 'the request was aborted') : e;
    } finally {
      both.release();
    }
  }

  #noTokenizer(what) {
    return Promise.reject(new WispError('unsupported', `${what} needs the model in the page; a remote engine (${this.baseURL}) has none`));
  }

  tokenize() {
    return this.#noTokenizer('tokenize');
  }

  detokenize() {
    return this.#noTokenizer('detokenize');
  }

  renderChat() {
    return this.#noTokenizer('renderChat');
  }

  /** No model in this page's wasm memory. */
  async wasmMemoryBytes() {
    return 0;
  }

  /** Abort the requests in flight; later ones are refused with `unloaded`. */
  async unload() {
    this.closed.abort();
  }
}

/**
 * Connect to an OpenAI-compatible server. `opts`: baseURL (with the /v1, as the
 * openai clients take it), apiKey, model (default: the first the server lists),
 * headers, fetch. `extra` is merged into engine.info (Wisp.load's fallback).
 */
export async function connect(opts = {}, extra = {}) {
  if (typeof opts.baseURL !== 'string' && !(opts.baseURL instanceof URL)) {
    throw new WispError('invalid_request', 'baseURL must be the server\'s URL, e.g. http://127.0.0.1:8080/v1');
  }
  const baseURL = new URL(String(opts.baseURL), globalThis.location?.href).href.replace(/\/+$/, '');
  const fetchFn = opts.fetch ?? globalThis.fetch?.bind(globalThis);
  if (!fetchFn) throw new WispError('unsupported', 'there is no fetch here to reach a server with');
  // One GET now: an unreachable server, a CORS refusal or a wrong key fails here, not
  // at the first question; the listing names the model when none was given.
  const url = `${baseURL}/models`;
  const headers = { Accept: 'application/json', ...(opts.headers ?? {}) };
  if (opts.apiKey) headers.Authorization = `Bearer ${opts.apiKey}`;
  let models = null;
  let res;
  try {
    res = await fetchFn(url, { headers, signal: opts.signal });
  } catch (e) {
    if (isAbort(e)) throw new WispError('aborted', 'connecting was aborted');
    throw networkError(url, e);
  }
  if (res.ok) {
    const list = await res.json().catch(() => null);
    models = Array.isArray(list?.data) ? list.data.map((m) => m.id) : null;
  } else if (res.status === 401 || res.status === 403 || !opts.model) {
    throw await responseError(url, res);
  }
  const model = opts.model ?? models?.[0];
  if (!model) throw new WispError('invalid_request', `${url} lists no model; pass model to Wisp.connect`);
  const info = {
    engine: 'remote',
    name: model,
    model,
    baseURL,
    models,
    reason: `Wisp.connect: ${baseURL}`,
    fallback: false,
    localError: null,
    ...extra,
  };
  return new RemoteEngine({ ...opts, baseURL, fetch: fetchFn }, info);
}
