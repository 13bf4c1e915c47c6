// Where model bytes come from. Every source answers `prefix(n)` (the first n bytes, for
// the GGUF header) and `read(start, end)` (an async iterator of Uint8Array pieces), with
// calls in increasing order. Bytes are handed on as they arrive; nothing keeps the file.

const PIECE = 8 << 20;

export class WispError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'WispError';
    this.code = code;
  }
}

function abortError(signal) {
  const reason = signal?.reason;
  if (reason instanceof Error && reason.name !== 'AbortError') return reason;
  return new WispError('aborted', 'the load was aborted');
}

/** Random access over a Blob/File (and the cache's files). */
export class BlobSource {
  constructor(blob) {
    this.blob = blob;
    this.size = blob.size;
  }
  async prefix(n) {
    return new Uint8Array(await this.blob.slice(0, Math.min(n, this.size)).arrayBuffer());
  }
  async *read(start, end) {
    for (let at = start; at < end; at += PIECE) {
      const stop = Math.min(end, at + PIECE);
      yield new Uint8Array(await this.blob.slice(at, stop).arrayBuffer());
    }
  }
}

/** Random access over bytes already in memory. */
export class BytesSource {
  constructor(bytes) {
    this.bytes = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
    this.size = this.bytes.length;
  }
  async prefix(n) {
    return this.bytes.subarray(0, Math.min(n, this.size));
  }
  async *read(start, end) {
    for (let at = start; at < end; at += PIECE) {
      yield this.bytes.subarray(at, Math.min(end, at + PIECE));
    }
  }
}

/**
 * Forward-only reading over a stream of pieces (a ReadableStream, or an HTTP body that
 * can be reopened at an offset). The bytes before the first read are kept for the
 * header; later bytes are passed on once. `onBytes(piece)` sees every byte in order
 * (for the cache and the integrity hash), skipped ones included.
 */
export class ForwardSource {
  /** `open(offset)` resolves to {reader, size}; it is called again to resume after an error. */
  constructor(open, { size = null, onBytes = null, signal = null, retries = 0 } = {}) {
    this.open = open;
    this.size = size;
    this.onBytes = onBytes;
    this.signal = signal;
    this.retries = retries;
    this.reader = null;
    this.pos = 0; // bytes consumed from the stream
    this.head = new Uint8Array(0); // bytes kept from offset 0 (header phase only)
    this.keepHead = true;
  }

  async next() {
    for (let attempt = 0; ; attempt++) {
      if (this.signal?.aborted) throw abortError(this.signal);
      try {
        if (!this.reader) {
          const opened = await this.open(this.pos);
          this.reader = opened.reader;
          if (this.size == null && opened.size != null) this.size = opened.size;
        }
        const { done, value } = await this.reader.read();
        if (done) return null;
        this.pos += value.length;
        if (this.onBytes) await this.onBytes(value);
        return value;
      } catch (e) {
        if (this.signal?.aborted) throw abortError(this.signal);
        if (e instanceof WispError || attempt >= this.retries) throw e;
        // A dropped connection: reopen at the current offset.
        try { this.reader?.cancel(); } catch { /* already closed */ }
        this.reader = null;
        await new Promise((r) => setTimeout(r, 250 * (attempt + 1)));
      }
    }
  }

  async prefix(n) {
    while (this.head.length < n) {
      const piece = await this.next();
      if (!piece) break;
      const joined = new Uint8Array(this.head.length + piece.length);
      joined.set(this.head);
      joined.set(piece, this.head.length);
      this.head = joined;
    }
    return this.head.subarray(0, Math.min(n, this.head.length));
  }

  async *read(start, end) {
    let at = start;
    if (this.keepHead) {
      // Serve what the header phase already read, then forget it.
      const head = this.head;
      this.keepHead = false;
      this.head = new Uint8Array(0);
      if (at < head.length) {
        const stop = Math.min(end, head.length);
        yield head.slice(at, stop);
        at = stop;
      }
      this.pos = Math.max(this.pos, head.length);
      this.streamPos = head.length;
    }
    this.streamPos ??= this.pos;
    while (at < end) {
      const piece = this.pending ?? (await this.next());
      this.pending = null;
      if (!piece) {
        throw new WispError('io', `the model data ended early at byte ${this.streamPos} (expected ${end})`);
      }
      const pieceStart = this.streamPos;
      const pieceEnd = pieceStart + piece.length;
      if (pieceEnd <= at) {
        this.streamPos = pieceEnd;
        continue; // before the range: skip
      }
      const from = at - pieceStart;
      const to = Math.min(piece.length, end - pieceStart);
      yield piece.subarray(from, to);
      at = pieceStart + to;
      if (to < piece.length) {
        // Keep the rest for the next range.
        this.pending = piece.subarray(to);
        this.streamPos = at;
      } else {
        this.streamPos = pieceEnd;
      }
    }
  }

  /** Read to the end of the stream (so the cache and the hash see every byte). */
  async drain() {
    if (this.pending) this.pending = null;
    while (await this.next()) { /* onBytes sees it */ }
  }
}

/** A ReadableStream of bytes, read once. */
export function streamSource(stream, opts = {}) {
  let used = false;
  return new ForwardSource(async () => {
    if (used) throw new WispError('io', 'the stream broke and cannot be reopened');
    used = true;
    return { reader: stream.getReader(), size: opts.size ?? null };
  }, opts);
}

/**
 * An HTTP(S) URL: one streaming GET; after a dropped connection the rest is asked for
 * with a Range request (a server that ignores ranges resends from the start, which is
 * skipped).
 */
export function urlSource(url, opts = {}) {
  const fetchOpts = { signal: opts.signal ?? undefined };
  let skip = 0;
  const open = async (offset) => {
    const headers = offset > 0 ? { Range: `bytes=${offset}-` } : {};
    let resp;
    try {
      resp = await fetch(url, { ...fetchOpts, headers });
    } catch (e) {
      if (opts.signal?.aborted) throw abortError(opts.signal);
      throw new Error(`cannot fetch ${url}: ${e.message}`);
    }
    if (!resp.ok) {
      throw new WispError('io', `cannot fetch ${url}: HTTP ${resp.status} ${resp.statusText}`);
    }
    let size = null;
    if (resp.status === 206) {
      const total = /\/(\d+)$/.exec(resp.headers.get('Content-Range') ?? '');
      if (total) size = Number(total[1]);
    } else {
      const len = resp.headers.get('Content-Length');
      if (len != null && !resp.headers.get('Content-Encoding')) size = Number(len);
      skip = offset; // the server resent everything: drop what we already have
    }
    const body = resp.body.getReader();
    const reader = {
      async read() {
        for (;;) {
          const r = await body.read();
          if (r.done || skip === 0) return r;
          if (r.value.length <= skip) {
            skip -= r.value.length;
            continue;
          }
          const value = r.value.subarray(skip);
          skip = 0;
          return { done: false, value };
        }
      },
      cancel: () => body.cancel(),
    };
    return { reader, size };
  };
  return new ForwardSource(open, { ...opts, retries: opts.retries ?? 4 });
}
