// The model cache: whole GGUF files in the Origin Private File System, keyed by URL.
// OPFS rather than the Cache API because a file can be written piece by piece as it
// downloads (no second copy in memory) and read back as a Blob with random access.
// A file is only listed once it is complete (its metadata is written last).

import { WispError } from './sources.js';

const DIR = 'wisp-models';

async function dir() {
  if (!globalThis.navigator?.storage?.getDirectory) return null;
  const root = await navigator.storage.getDirectory();
  return root.getDirectoryHandle(DIR, { create: true });
}

async function keyOf(url) {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(url));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

async function readMeta(d, key) {
  try {
    const f = await (await d.getFileHandle(`${key}.json`)).getFile();
    return JSON.parse(await f.text());
  } catch {
    return null;
  }
}

/** The cached file for `url`, or null. */
export async function lookup(url) {
  const d = await dir();
  if (!d) return null;
  const key = await keyOf(url);
  const meta = await readMeta(d, key);
  if (!meta) return null;
  try {
    const file = await (await d.getFileHandle(`${key}.gguf`)).getFile();
    if (file.size !== meta.size) return null;
    return file;
  } catch {
    return null;
  }
}

function quotaMessage(e) {
  if (e?.name === 'QuotaExceededError') {
    return 'the browser refused to store the model (storage quota exceeded): free space in site data, or load with cache: false';
  }
  return `the model could not be cached: ${e?.message ?? e}`;
}

/**
 * A writer for `url`'s file as it streams in. `write` never throws: a storage failure
 * (quota, private mode) stops caching and is kept in `error` for the caller to report.
 */
export async function openWriter(url) {
  const d = await dir();
  if (!d) return null;
  const key = await keyOf(url);
  let writable;
  try {
    await d.removeEntry(`${key}.json`).catch(() => {});
    const handle = await d.getFileHandle(`${key}.gguf`, { create: true });
    writable = await handle.createWritable({ keepExistingData: false });
  } catch (e) {
    return { error: quotaMessage(e), write: async () => {}, commit: async () => {}, abort: async () => {} };
  }
  const w = {
    error: null,
    size: 0,
    async write(piece) {
      if (w.error) return;
      try {
        await writable.write(piece);
        w.size += piece.length;
      } catch (e) {
        w.error = quotaMessage(e);
        await writable.abort().catch(() => {});
        await d.removeEntry(`${key}.gguf`).catch(() => {});
      }
    },
    async commit(extra = {}) {
      if (w.error) return;
      try {
        await writable.close();
        const meta = await (await d.getFileHandle(`${key}.json`, { create: true })).createWritable();
        await meta.write(JSON.stringify({ url, size: w.size, cachedAt: new Date().toISOString(), ...extra }));
        await meta.close();
      } catch (e) {
        w.error = quotaMessage(e);
      }
    },
    async abort() {
      if (w.error) return;
      await writable.abort().catch(() => {});
      await d.removeEntry(`${key}.gguf`).catch(() => {});
    },
  };
  return w;
}

/** Every complete cached model: [{url, size, cachedAt, sha256?}]. */
export async function list() {
  const d = await dir();
  if (!d) return [];
  const out = [];
  for await (const [name, handle] of d.entries()) {
    if (!name.endsWith('.json') || handle.kind !== 'file') continue;
    try {
      out.push(JSON.parse(await (await handle.getFile()).text()));
    } catch { /* a torn entry: ignore */ }
  }
  return out.sort((a, b) => a.url.localeCompare(b.url));
}

/** Forget `url`'s file; true if there was one. */
export async function remove(url) {
  if (typeof url !== 'string') throw new WispError('invalid_request', 'cache.delete takes the URL the model was loaded from');
  const d = await dir();
  if (!d) return false;
  const key = await keyOf(new URL(url, globalThis.location?.href).href);
  let found = false;
  for (const name of [`${key}.json`, `${key}.gguf`]) {
    try {
      await d.removeEntry(name);
      found = true;
    } catch { /* not there */ }
  }
  return found;
}

/** Forget every cached model. */
export async function clear() {
  if (!globalThis.navigator?.storage?.getDirectory) return;
  const root = await navigator.storage.getDirectory();
  await root.removeEntry(DIR, { recursive: true }).catch(() => {});
}
