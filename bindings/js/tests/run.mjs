// Browser tests of the wisp-llm package and the demo page, in real headless Chromium
// (WebGPU on SwiftShader: no shader-f16, so the f32 kernels run; the GPU tests ask for
// device: 'gpu', since 'auto' rightly passes a software adapter over for the CPU engine;
// a second Chromium without WebGPU tests the CPU engine's fallback). Started by
// `cargo xtask js-test`, which builds the package, serves it and passes:
//   WISP_BASE_URL, WISP_SMOLLM2, WISP_QWEN2 (file names under /models/), WISP_MODELS_DIR,
//   WISP_ARTIFACTS (screenshots go here), WISP_CLI (the native `wisp` binary).
// Optional: WISP_JS_TESTS=name,name to run a subset.

import { chromium } from 'playwright-core';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';

const BASE = process.env.WISP_BASE_URL;
const SMOL = `/models/${process.env.WISP_SMOLLM2}`;
const QWEN = `/models/${process.env.WISP_QWEN2}`;
const ARTIFACTS = process.env.WISP_ARTIFACTS ?? tmpdir();
const CLI = process.env.WISP_CLI;
const ONLY = process.env.WISP_JS_TESTS?.split(',');
const NEAR_TIE = 0.3;
const QUESTION = 'What is the capital of France? Answer in one sentence.';
// SwiftShader runs the kernels on the CPU, slowly (seconds per token for SmolLM2): the
// tests generate few tokens and share loads where they can.
const GREEDY_TOKENS = 6;
// Where the test server cuts the first download (the resume test).
const CUT = 20 << 20;

// A fresh profile each run, so the model cache starts empty.
const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'wisp-chromium-')), {
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless=new', '--enable-unsafe-webgpu', '--no-sandbox', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
const page = context.pages()[0] ?? (await context.newPage());
const consoleLines = [];
page.on('console', (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
page.on('pageerror', (e) => consoleLines.push(`[pageerror] ${e.message}`));
page.setDefaultTimeout(240_000);

async function stats() {
  return (await fetch(`${BASE}/__stats`)).json();
}
async function resetStats() {
  await fetch(`${BASE}/__reset`);
}

/** Run `fn(args)` in a fresh blank page that has imported the package as `Wisp`. */
async function inPage(fn, args = {}) {
  await page.goto(`${BASE}${args.path ?? '/demo/blank.html'}`);
  await page.evaluate(async () => {
    const m = await import('/dist/index.js');
    globalThis.Wisp = m.Wisp;
  });
  return page.evaluate(fn, args);
}

/** The native engine's greedy continuation of `prompt` (the reference). */
function nativeRun(prompt, maxTokens) {
  return execFileSync(CLI, [
    'run', join(process.env.WISP_MODELS_DIR, process.env.WISP_SMOLLM2),
    '--no-f16', '--webgpu-default-limits', '--special', '--temperature', '0',
    '--max-tokens', String(maxTokens), '--prompt', prompt,
  ], { encoding: 'utf8', env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? tmpdir() } });
}

/** The native CPU engine's greedy continuation (`wisp run --device cpu`). */
function nativeCpuRun(prompt, maxTokens, { special = true } = {}) {
  return execFileSync(CLI, [
    'run', join(process.env.WISP_MODELS_DIR, process.env.WISP_SMOLLM2), '--device', 'cpu',
    ...(special ? ['--special'] : []), '--temperature', '0', '--max-tokens', String(maxTokens), '--prompt', prompt,
  ], { encoding: 'utf8' });
}

/** Top-2 gap of the native distribution after `text` (to judge a divergence). */
function nativeGap(text) {
  const out = execFileSync(CLI, [
    'score', join(process.env.WISP_MODELS_DIR, process.env.WISP_SMOLLM2),
    '--no-f16', '--webgpu-default-limits', '--special', '--top', '2', '--json', '--text', text,
  ], { encoding: 'utf8', env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? tmpdir() } });
  const last = JSON.parse(out).positions.at(-1).top;
  return last[0][1] - last[1][1];
}

/** Equal up to the first near-tie: where the texts part, the reference was undecided. */
function assertGreedyAgrees(prompt, ours, reference) {
  if (ours === reference) return 'identical';
  let i = 0;
  while (i < ours.length && ours[i] === reference[i]) i++;
  // Either text may simply be shorter (token limits cut at token boundaries).
  if (i === ours.length || i === reference.length) return `identical over ${i} chars`;
  const gap = nativeGap(prompt + reference.slice(0, i));
  assert.ok(gap < NEAR_TIE, `browser and native answers part at char ${i} where the reference top-2 gap is ${gap.toFixed(3)} ≥ ${NEAR_TIE}:\n  ours:   ${JSON.stringify(ours)}\n  native: ${JSON.stringify(reference)}`);
  return `part at char ${i} on a near-tie (gap ${gap.toFixed(3)})`;
}

// The CPU engine runs the dequantize-then-dot fallback until its wasm SIMD kernels land
// (about a token a second here): its tests generate few tokens.
const CPU_TOKENS = 4;

/** A Chromium without WebGPU (no --enable-unsafe-webgpu: navigator.gpu finds no adapter). */
let noGpuContext = null;
async function noGpuPage() {
  noGpuContext ??= await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'wisp-chromium-nogpu-')), {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless=new', '--no-sandbox', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  const p = noGpuContext.pages()[0] ?? (await noGpuContext.newPage());
  p.setDefaultTimeout(240_000);
  p.on('console', (m) => consoleLines.push(`[nogpu ${m.type()}] ${m.text()}`));
  p.on('pageerror', (e) => consoleLines.push(`[nogpu pageerror] ${e.message}`));
  return p;
}

/** `inPage` on a given page and URL. */
async function inPageAt(p, url, fn, args = {}) {
  await p.goto(url);
  await p.evaluate(async () => {
    const m = await import('/dist/index.js');
    globalThis.Wisp = m.Wisp;
  });
  return p.evaluate(fn, args);
}

const tests = [];
const test = (name, fn) => tests.push({ name, fn });
const shared = {};

test('load from a URL in a Worker: chat (non-stream equals native greedy, stream, continuation, abort)', async () => {
  await resetStats();
  const r = await inPage(async ({ url, question, n }) => {
    await Wisp.cache.clear();
    const phases = new Set();
    const engine = await Wisp.load(url, { device: 'gpu', onProgress: (p) => phases.add(p.phase) });
    const messages = [{ role: 'user', content: question }];
    const prompt = await engine.renderChat(messages);
    const res = await engine.chat.completions.create({ messages, temperature: 0, max_tokens: n });
    // The same request streamed: served from the cached prompt, same greedy answer.
    const chunks = [];
    for await (const c of await engine.chat.completions.create({ messages, temperature: 0, max_tokens: n, stream: true })) chunks.push(c);
    const text = chunks.map((c) => c.choices[0].delta.content ?? '').join('');
    // Continuing the conversation reuses the cached prefix.
    const next = await engine.chat.completions.create({
      messages: [...messages, { role: 'assistant', content: text }, { role: 'user', content: 'And Italy?' }],
      temperature: 0, max_tokens: 1,
    });
    // Abort mid-stream keeps the text so far; the engine stays usable.
    const controller = new AbortController();
    let aborted = '';
    let last;
    for await (const c of await engine.chat.completions.create({
      messages, temperature: 0.7, seed: 1, max_tokens: 300, stream: true, signal: controller.signal,
    })) {
      aborted += c.choices[0].delta.content ?? '';
      if (aborted.length > 0) controller.abort();
      last = c;
    }
    const pre = new AbortController();
    pre.abort();
    const refused = await engine.chat.completions.create({ messages, signal: pre.signal }).then(() => null, (e) => e.code);
    const info = engine.info;
    await engine.unload();
    return { res, prompt, info, phases: [...phases], chunks, text, next, aborted, abortFinish: last.choices[0].finish_reason, abortTokens: last.usage.completion_tokens, refused };
  }, { url: SMOL, question: QUESTION, n: GREEDY_TOKENS });
  // The native reference, also used by the demo test.
  shared.prompt = r.prompt;
  shared.native = nativeRun(r.prompt, GREEDY_TOKENS);
  assert.equal(r.res.object, 'chat.completion');
  const text = r.res.choices[0].message.content;
  assert.ok(text.length > 0, 'an answer');
  const u = r.res.usage;
  const finish = r.res.choices[0].finish_reason;
  assert.ok(finish === 'length' ? u.completion_tokens === GREEDY_TOKENS : finish === 'stop' && u.completion_tokens < GREEDY_TOKENS,
    `max_tokens honoured: ${u.completion_tokens} tokens, finish ${finish}`);
  assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
  for (const k of ['prefill_tokens_per_s', 'decode_tokens_per_s', 'time_to_first_token_s']) {
    assert.ok(u.extra[k] > 0, `usage.extra.${k} = ${u.extra[k]}`);
  }
  assert.ok(r.phases.includes('download') && r.phases.includes('ready'), `phases ${r.phases}`);
  assert.equal(r.info.fromCache, false);
  assert.equal(r.info.shaderF16, false, 'SwiftShader has no shader-f16: the f32 path runs');

  assert.equal(r.chunks[0].object, 'chat.completion.chunk');
  assert.equal(r.chunks[0].choices[0].delta.role, 'assistant');
  const lastChunk = r.chunks.at(-1);
  assert.equal(lastChunk.choices[0].finish_reason, finish);
  assert.equal(lastChunk.usage.completion_tokens, u.completion_tokens);
  assert.ok(r.chunks.slice(0, -1).every((c) => !c.usage && c.choices[0].finish_reason === null));
  assert.equal(r.text, text, 'stream and non-stream greedy answers agree');
  assert.equal(lastChunk.usage.extra.prefill_tokens, 1, 'the repeated prompt came from the KV cache');
  const nu = r.next.usage;
  assert.ok(nu.extra.prefill_tokens < nu.prompt_tokens / 2, `prefix reused: evaluated ${nu.extra.prefill_tokens} of ${nu.prompt_tokens}`);

  assert.equal(r.abortFinish, 'abort');
  assert.ok(r.aborted.length > 0);
  assert.ok(r.abortTokens < 300, `stopped after ${r.abortTokens} tokens`);
  assert.equal(r.refused, 'aborted');

  return `${assertGreedyAgrees(r.prompt, text, shared.native)}; decode ${u.extra.decode_tokens_per_s.toFixed(2)} tok/s, prefill ${u.extra.prefill_tokens_per_s.toFixed(2)} tok/s: ${JSON.stringify(text)}`;
});

test('a second load comes from the cache with zero model bytes fetched; cache list/delete', async () => {
  await resetStats();
  const r = await inPage(async ({ url }) => {
    const listed = await Wisp.cache.list();
    const engine = await Wisp.load(url, { device: 'gpu' });
    const info = engine.info;
    await engine.unload();
    const deleted = await Wisp.cache.delete(url);
    const after = await Wisp.cache.list();
    return { listed, info, deleted, after };
  }, { url: SMOL });
  assert.equal(r.listed.length, 1, 'one cached model');
  assert.ok(r.listed[0].url.endsWith(SMOL));
  assert.equal(r.listed[0].size, statSync(join(process.env.WISP_MODELS_DIR, process.env.WISP_SMOLLM2)).size);
  assert.equal(r.info.fromCache, true);
  assert.equal(r.info.bytesFetched, 0);
  assert.equal((await stats()).model_bytes, 0, 'no model bytes served');
  assert.equal(r.deleted, true);
  assert.equal(r.after.length, 0);
});

test('load from bytes in the page (worker: false); raw completion; tokenize round trip', async () => {
  const r = await inPage(async ({ url }) => {
    const bytes = await (await fetch(url)).arrayBuffer();
    const engine = await Wisp.load(bytes, { device: 'gpu', worker: false });
    const ids = await engine.tokenize('Hello, world!');
    const back = await engine.detokenize(ids);
    const special = await engine.tokenize('<|im_start|>', { special: true });
    const res = await engine.completions.create({ prompt: 'The capital of France is', temperature: 0, max_tokens: 3 });
    const streamed = [];
    for await (const c of await engine.completions.create({ prompt: 'The capital of France is', temperature: 0, max_tokens: 3, stream: true })) streamed.push(c.choices[0].text);
    await engine.unload();
    return { ids, back, special, res, streamed: streamed.join('') };
  }, { url: SMOL });
  assert.ok(r.ids.length > 1);
  assert.equal(r.back, 'Hello, world!');
  assert.equal(r.special.length, 1, 'control token text parsed when asked');
  assert.equal(r.res.object, 'text_completion');
  assert.ok(r.res.choices[0].text.length > 0);
  assert.equal(r.streamed, r.res.choices[0].text);
  const native = execFileSync(CLI, ['run', join(process.env.WISP_MODELS_DIR, process.env.WISP_SMOLLM2), '--no-f16', '--webgpu-default-limits',
    '--temperature', '0', '--max-tokens', '3', '--prompt', 'The capital of France is'], { encoding: 'utf8' });
  return assertGreedyAgrees('The capital of France is', r.res.choices[0].text, native);
});

test('load from a ReadableStream (transferred to the Worker)', async () => {
  const r = await inPage(async ({ url }) => {
    const resp = await fetch(url);
    const engine = await Wisp.load(resp.body, { device: 'gpu', contextLength: 256 });
    const res = await engine.completions.create({ prompt: 'Hello', temperature: 0, max_tokens: 1 });
    const info = engine.info;
    await engine.unload();
    return { res, info };
  }, { url: SMOL });
  assert.equal(r.info.contextLength, 256);
  assert.equal(r.res.usage.completion_tokens, 1);
});

test('a dropped connection resumes with a Range request', async () => {
  await resetStats();
  const r = await inPage(async ({ url, CUT }) => {
    const engine = await Wisp.load(`${url}?drop=${CUT}`, { device: 'gpu', cache: false, worker: false });
    const res = await engine.completions.create({ prompt: 'Hello', temperature: 0, max_tokens: 1 });
    await engine.unload();
    return res.usage.completion_tokens;
  }, { url: SMOL, CUT });
  assert.equal(r, 1);
  const s = await stats();
  assert.equal(s.model_requests, 2, 'one cut response and one resumed range');
  // The server counts bytes written to the socket; some of those may die in flight with
  // the connection, so the resume point is what shows that nothing restarted from 0.
  assert.ok(s.model_range_start > 0 && s.model_range_start <= CUT, `resumed at byte ${s.model_range_start} (cut at ${CUT})`);
  const size = statSync(join(process.env.WISP_MODELS_DIR, process.env.WISP_SMOLLM2)).size;
  assert.equal(s.model_bytes, CUT + size - s.model_range_start, 'the cut response, then the rest from the resume point');
  return `resumed at byte ${s.model_range_start} of ${size}`;
});

test('errors (device: gpu): truncated file, too large for a forced limit, bad hash, not GGUF, no WebGPU', async () => {
  const r = await inPage(async ({ url }) => {
    const code = (p) => p.then(() => 'loaded', (e) => `${e.name}:${e.code}: ${e.message}`);
    const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
    const out = {};
    out.truncatedHeader = await code(Wisp.load(bytes.slice(0, 1000), { device: 'gpu', worker: false }));
    out.truncatedData = await code(Wisp.load(bytes.slice(0, bytes.length - 1000), { device: 'gpu' }));
    out.tooLarge = await code(Wisp.load(url, { device: 'gpu', cache: false, memoryBudget: 16 << 20 }));
    out.badHash = await code(Wisp.load(url, { device: 'gpu', cache: false, sha256: '00'.repeat(32) }));
    out.notGguf = await code(Wisp.load(new TextEncoder().encode('<html>not a model</html>'.repeat(10))));
    out.badSource = await code(Wisp.load(42));
    const ac = new AbortController();
    out.abortedLoad = await code(Wisp.load(url, {
      device: 'gpu',
      cache: false,
      signal: ac.signal,
      onProgress: (p) => p.phase === 'download' && p.loaded > 0 && ac.abort(),
    }));
    out.cachedAfterBadHash = (await Wisp.cache.list()).length;
    const gpu = Object.getOwnPropertyDescriptor(Navigator.prototype, 'gpu');
    Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined, configurable: true });
    out.noWebGpu = await code(Wisp.load(bytes, { device: 'gpu', worker: false }));
    Object.defineProperty(Navigator.prototype, 'gpu', gpu);
    return out;
  }, { url: SMOL });
  assert.match(r.truncatedHeader, /^WispError:invalid_model:/);
  assert.match(r.truncatedData, /^WispError:(io|invalid_model):.*(ended early|bytes)/);
  assert.match(r.tooLarge, /^WispError:model_too_large:.*budget.*contextLength/);
  assert.match(r.badHash, /^WispError:integrity:.*sha256 mismatch/);
  assert.match(r.notGguf, /^WispError:invalid_model:/);
  assert.match(r.badSource, /^WispError:invalid_request:/);
  assert.match(r.abortedLoad, /^WispError:aborted:/);
  assert.equal(r.cachedAfterBadHash, 0, 'a file failing its hash is not cached');
  assert.match(r.noWebGpu, /^WispError:webgpu_unavailable:.*(Chrome|flags)/);
  return Object.values(r).filter((v) => typeof v === 'string').map((v) => v.slice(0, 90)).join('\n      ');
});

test('no WebGPU (Chromium without it): device auto loads SmolLM2 on the CPU engine; chat equals native greedy; stream, stop, abort; engine.info', async () => {
  const p = await noGpuPage();
  const r = await inPageAt(p, `${BASE}/demo/blank.html`, async ({ url, question, n }) => {
    const gpu = navigator.gpu ? (await navigator.gpu.requestAdapter()) !== null : false;
    const engine = await Wisp.load(url, { cache: false });
    const messages = [{ role: 'user', content: question }];
    const prompt = await engine.renderChat(messages);
    const res = await engine.chat.completions.create({ messages, temperature: 0, max_tokens: n });
    // Streamed: the cached prompt, the same greedy tokens.
    const chunks = [];
    for await (const c of await engine.chat.completions.create({ messages, temperature: 0, max_tokens: n, stream: true })) chunks.push(c);
    const streamed = chunks.map((c) => c.choices[0].delta.content ?? '').join('');
    // A stop string taken from the greedy answer ends it there.
    const answer = res.choices[0].message.content;
    const stopAt = answer.trim().split(/\s+/)[1] ?? null;
    const stopped = stopAt
      ? await engine.chat.completions.create({ messages, temperature: 0, max_tokens: n, stop: [stopAt] })
      : null;
    // Sampling with a seed, aborted after the first piece: the text so far is kept.
    const controller = new AbortController();
    let aborted = '';
    let last;
    for await (const c of await engine.chat.completions.create({
      messages, temperature: 0.8, seed: 7, max_tokens: 50, stream: true, signal: controller.signal,
    })) {
      aborted += c.choices[0].delta.content ?? '';
      if (aborted.length > 0) controller.abort();
      last = c;
    }
    const info = engine.info;
    await engine.unload();
    return { gpu, cores: navigator.hardwareConcurrency, isolated: crossOriginIsolated, res, prompt, chunks, streamed, stopAt, stopped, aborted, abortFinish: last.choices[0].finish_reason, abortTokens: last.usage.completion_tokens, info };
  }, { url: SMOL, question: QUESTION, n: CPU_TOKENS });
  assert.equal(r.gpu, false, 'this Chromium has no WebGPU adapter');
  const i = r.info;
  assert.equal(i.engine, 'cpu');
  assert.match(i.reason, /no WebGPU/);
  assert.equal(i.adapter, null);
  assert.equal(i.gpuBytes, 0);
  assert.equal(i.isa, 'simd128', 'the wasm build has SIMD');
  // The test server sends COOP/COEP: the page is isolated, so threads: 0 = one per core.
  assert.equal(r.isolated, true);
  assert.equal(i.crossOriginIsolated, true);
  assert.equal(i.threads, Math.min(r.cores, 16), `threads ${i.threads}: ${i.threadsReason}`);
  if (r.cores > 1) assert.match(i.threadsReason, /Web Workers over a shared wasm memory/);
  assert.equal(i.wasmModelBytes, statSync(join(process.env.WISP_MODELS_DIR, process.env.WISP_SMOLLM2)).size, 'the whole file in wasm memory');
  assert.ok(i.kvBytes > 0);
  assert.equal(i.name.length > 0, true);
  const text = r.res.choices[0].message.content;
  const u = r.res.usage;
  assert.ok(text.length > 0);
  assert.ok(u.completion_tokens <= CPU_TOKENS && u.extra.decode_tokens_per_s > 0 && u.extra.prefill_tokens_per_s > 0);
  assert.equal(r.streamed, text, 'stream and non-stream greedy answers agree');
  assert.equal(r.chunks.at(-1).usage.extra.prefill_tokens, 1, 'the repeated prompt came from the KV cache');
  if (r.stopAt) {
    const s = r.stopped.choices[0];
    assert.equal(s.finish_reason, 'stop');
    assert.ok(!s.message.content.includes(r.stopAt) && text.startsWith(s.message.content), `stopped before ${JSON.stringify(r.stopAt)}: ${JSON.stringify(s.message.content)}`);
  }
  assert.equal(r.abortFinish, 'abort');
  assert.ok(r.aborted.length > 0 && r.abortTokens < 50, `aborted after ${r.abortTokens} tokens`);
  // The reference: the native CPU engine (and the GPU path's answer of the first test).
  const native = nativeCpuRun(r.prompt, CPU_TOKENS);
  const vsCpu = assertGreedyAgrees(r.prompt, text, native);
  const vsGpu = shared.native ? assertGreedyAgrees(r.prompt, text, shared.native) : 'no GPU reference (first test not run)';
  shared.cpuPrompt = r.prompt;
  shared.cpuNative = native;
  return `vs wisp run --device cpu: ${vsCpu}; vs the GPU path: ${vsGpu}; ${i.threads} thread(s) (${i.threadsReason}); ` +
    `decode ${u.extra.decode_tokens_per_s.toFixed(2)} tok/s, prefill ${u.extra.prefill_tokens_per_s.toFixed(2)} tok/s: ${JSON.stringify(text)}`;
});

test("device: 'cpu' where WebGPU exists, page not cross-origin isolated: one thread and why; raw completion equals native; tokenize", async () => {
  const r = await inPage(async ({ url }) => {
    const engine = await Wisp.load(url, { device: 'cpu', threads: 2, cache: false });
    const res = await engine.completions.create({ prompt: 'The capital of France is', temperature: 0, max_tokens: 3 });
    const ids = await engine.tokenize('Hello, world!');
    const back = await engine.detokenize(ids);
    const info = engine.info;
    await engine.unload();
    return { res, back, info, isolated: crossOriginIsolated };
  }, { url: SMOL, path: '/demo/blank.html?coi=0' });
  assert.equal(r.isolated, false, 'the page was served without COOP/COEP');
  assert.equal(r.info.engine, 'cpu');
  assert.match(r.info.reason, /device: 'cpu'/);
  assert.equal(r.info.threads, 1);
  assert.match(r.info.threadsReason, /not cross-origin isolated/);
  assert.equal(r.info.crossOriginIsolated, false);
  assert.equal(r.back, 'Hello, world!');
  const native = nativeCpuRun('The capital of France is', 3, { special: false });
  return `${assertGreedyAgrees('The capital of France is', r.res.choices[0].text, native)}: ${JSON.stringify(r.res.choices[0].text)}`;
});

test("device: 'cpu', threads: 2 in a cross-origin isolated page: a pool of Worker threads, the same greedy text as one thread", async () => {
  const r = await inPage(async ({ url }) => {
    const run = async (threads) => {
      const engine = await Wisp.load(url, { device: 'cpu', threads, cache: false });
      const res = await engine.completions.create({ prompt: 'The capital of France is', temperature: 0, max_tokens: 3 });
      const info = engine.info;
      await engine.unload();
      return { text: res.choices[0].text, usage: res.usage, info };
    };
    return { two: await run(2), one: await run(1), isolated: crossOriginIsolated };
  }, { url: SMOL });
  assert.equal(r.isolated, true);
  assert.equal(r.two.info.threads, 2, r.two.info.threadsReason);
  assert.match(r.two.info.threadsReason, /^2 threads \(as asked\): Web Workers/);
  assert.equal(r.one.info.threads, 1);
  assert.match(r.one.info.threadsReason, /threads: 1 was asked for/);
  assert.equal(r.two.text, r.one.text, 'threads change the speed, not the tokens');
  const rate = (x) => `pp ${x.usage.extra.prefill_tokens_per_s.toFixed(1)} / tg ${x.usage.extra.decode_tokens_per_s.toFixed(1)} tok/s`;
  return `2 threads ${rate(r.two)}, 1 thread ${rate(r.one)}: ${JSON.stringify(r.two.text)}`;
});

test('CPU engine errors: a KV cache past the 4 GiB of wasm32 memory, a memory budget, a bad device, before any download', async () => {
  await resetStats();
  const r = await inPage(async ({ url }) => {
    const code = (p) => p.then(() => 'loaded', (e) => `${e.name}:${e.code}: ${e.message}`);
    return {
      hugeContext: await code(Wisp.load(url, { device: 'cpu', cache: false, contextLength: 200000 })),
      budget: await code(Wisp.load(url, { device: 'cpu', cache: false, memoryBudget: 16 << 20 })),
      badDevice: await code(Wisp.load(url, { device: 'tpu', cache: false })),
      badThreads: await code(Wisp.load(url, { device: 'cpu', threads: -1, cache: false })),
    };
  }, { url: SMOL });
  assert.match(r.hugeContext, /^WispError:model_too_large:.*4 GiB.*wasm32/);
  assert.match(r.budget, /^WispError:model_too_large:.*budget/);
  assert.match(r.badDevice, /^WispError:invalid_request:.*device/);
  assert.match(r.badThreads, /^WispError:invalid_request:.*threads/);
  const served = (await stats()).model_bytes;
  const size = statSync(join(process.env.WISP_MODELS_DIR, process.env.WISP_SMOLLM2)).size;
  assert.ok(served < size / 2, `refused before the download: ${served} of ${size} bytes served`);
  return Object.values(r).map((v) => v.slice(0, 140)).join('\n      ');
});

// ---- the remote engine: Wisp.connect and Wisp.load's fallback against a real `wisp serve`

/** A `wisp serve` of SmolLM2 on the CPU engine, on a free loopback port, allowing the test page's origin; one per set of extra flags. */
const serveProcesses = new Map();
const serveLog = [];
async function wispServe(extra = []) {
  const key = extra.join(' ');
  if (serveProcesses.has(key)) return serveProcesses.get(key).url;
  const child = spawn(CLI, [
    'serve', join(process.env.WISP_MODELS_DIR, process.env.WISP_SMOLLM2), '--device', 'cpu',
    '--port', '0', '--ctx-size', '1024', '--cors-origin', new URL(BASE).origin, ...extra,
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  const entry = { child, url: null };
  serveProcesses.set(key, entry);
  entry.url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`wisp serve did not listen within 120 s:\n${serveLog.join('\n')}`)), 120_000);
    let partial = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d) => {
      const lines = (partial + d).split('\n');
      partial = lines.pop();
      for (const l of lines) {
        serveLog.push(l);
        const m = /listening on (http:\/\/\S+)/.exec(l);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`wisp serve exited (${code}):\n${serveLog.join('\n')}`));
    });
  });
  return entry.url;
}

/** The request log lines `wisp serve` printed since `from`, once `pattern` shows up (or after 5 s). */
async function serveLines(from, pattern) {
  for (let i = 0; i < 50 && !serveLog.slice(from).some((l) => pattern.test(l)); i++) await new Promise((r) => setTimeout(r, 100));
  return serveLog.slice(from);
}

const REMOTE_TOKENS = 8;

test('the remote engine\'s SSE reader (Node): events split at every byte, CRLF, CR, comments, multi-line data', async () => {
  const { sseEvents } = await import('../package/remote.js');
  // A read that ends between the CR and LF of a CRLF must not end the event there.
  const text = ': keep-alive\r\ndata: {"a":1}\r\n\r\nevent: error\r\ndata: line1\r\ndata: line2\r\n\r\ndata: lf\n\ndata:{"b":"é€"}\r\rdata: [DONE]\r\n\r\n';
  const bytes = new TextEncoder().encode(text);
  const expected = [
    { event: 'message', data: '{"a":1}' },
    { event: 'error', data: 'line1\nline2' },
    { event: 'message', data: 'lf' },
    { event: 'message', data: '{"b":"é€"}' },
    { event: 'message', data: '[DONE]' },
  ];
  for (let size = 1; size <= bytes.length; size++) {
    const body = new ReadableStream({
      start(c) {
        for (let i = 0; i < bytes.length; i += size) c.enqueue(bytes.slice(i, i + size));
        c.close();
      },
    });
    const events = [];
    for await (const e of sseEvents(body)) events.push(e);
    assert.deepEqual(events, expected, `reads of ${size} bytes`);
  }
  return `${bytes.length} split sizes`;
});

test('Wisp.connect to wisp serve: greedy chat whole = streamed = the server asked from Node; completions; abort cancels on the server; errors', async () => {
  const server = await wispServe();
  const logFrom = serveLog.length;
  const messages = [{ role: 'user', content: QUESTION }];
  const r = await inPage(async ({ baseURL, messages, n }) => {
    const code = (p) => p.then(() => 'resolved', (e) => ({ name: e.name, code: e.code, status: e.status, error: e.error, message: e.message }));
    const engine = await Wisp.connect({ baseURL });
    const res = await engine.chat.completions.create({ messages, temperature: 0, max_tokens: n });
    const chunks = [];
    for await (const c of await engine.chat.completions.create({ messages, temperature: 0, max_tokens: n, stream: true })) chunks.push(c);
    const raw = await engine.completions.create({ prompt: 'The capital of France is', temperature: 0, max_tokens: 4 });
    let rawStreamed = '';
    for await (const c of await engine.completions.create({ prompt: 'The capital of France is', temperature: 0, max_tokens: 4, stream: true })) rawStreamed += c.choices[0].text;
    // Abort after the first piece of a long answer: the stream ends with 'abort'.
    const controller = new AbortController();
    let aborted = '';
    let last;
    for await (const c of await engine.chat.completions.create({
      messages: [{ role: 'user', content: 'Tell me a long story about the sea.' }],
      temperature: 0.8, seed: 3, max_tokens: 400, stream: true, signal: controller.signal,
    })) {
      aborted += c.choices[0].delta.content ?? '';
      if (aborted.length > 0) controller.abort();
      last = c;
    }
    // The server serves the next request (its one session was freed).
    const after = await engine.chat.completions.create({ messages, temperature: 0, max_tokens: 1 });
    const pre = new AbortController();
    pre.abort();
    const errors = {
      preAborted: await code(engine.chat.completions.create({ messages, signal: pre.signal })),
      badModel: await code(engine.chat.completions.create({ messages, model: 'no-such-model' })),
      badType: await code(engine.chat.completions.create({ messages, temperature: 'hot' })),
      embeddings: await code(engine.embeddings.create({ input: 'hello' })),
      tokenize: await code(engine.tokenize('hello')),
      // The test page's own server on another origin (localhost): it sends no CORS headers.
      noCors: await code(Wisp.connect({ baseURL: `${location.origin.replace('127.0.0.1', 'localhost')}/v1` })),
    };
    await engine.unload();
    errors.afterUnload = await code(engine.chat.completions.create({ messages }));
    return { info: engine.info, res, chunks, raw, rawStreamed, aborted, abortFinish: last.choices[0].finish_reason, after, errors };
  }, { baseURL: `${server}/v1`, messages, n: REMOTE_TOKENS });
  const direct = await (await fetch(`${server}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ messages, temperature: 0, max_tokens: REMOTE_TOKENS }),
  })).json();
  assert.equal(r.info.engine, 'remote');
  assert.equal(r.info.baseURL, `${server}/v1`);
  assert.equal(r.info.model, 'SmolLM2-135M-Instruct.Q4_1', 'the model the server lists');
  assert.equal(r.info.fallback, false);
  assert.equal(r.res.object, 'chat.completion');
  const text = r.res.choices[0].message.content;
  assert.ok(text.length > 0);
  assert.equal(text, direct.choices[0].message.content, 'the page and Node get the same greedy answer');
  assert.equal(r.res.usage.completion_tokens, direct.usage.completion_tokens);
  // Streamed: chunks shaped as the local engine's (role first, usage on the last only).
  assert.equal(r.chunks[0].object, 'chat.completion.chunk');
  assert.equal(r.chunks[0].choices[0].delta.role, 'assistant');
  assert.ok(r.chunks.every((c) => c.choices.length === 1), 'no choice-less usage chunk');
  assert.ok(r.chunks.slice(0, -1).every((c) => !c.usage && c.choices[0].finish_reason === null));
  const lastChunk = r.chunks.at(-1);
  assert.equal(lastChunk.choices[0].finish_reason, r.res.choices[0].finish_reason);
  assert.deepEqual(lastChunk.usage, r.res.usage);
  assert.equal(r.chunks.map((c) => c.choices[0].delta.content ?? '').join(''), text, 'stream and non-stream greedy answers agree');
  assert.equal(r.raw.object, 'text_completion');
  assert.ok(r.raw.choices[0].text.length > 0);
  assert.equal(r.rawStreamed, r.raw.choices[0].text);
  assert.equal(r.abortFinish, 'abort');
  assert.ok(r.aborted.length > 0);
  assert.equal(r.after.usage.completion_tokens, 1);
  const e = r.errors;
  assert.deepEqual([e.preAborted.name, e.preAborted.code], ['WispError', 'aborted']);
  assert.deepEqual([e.badModel.code, e.badModel.status, e.badModel.error.code], ['invalid_request', 404, 'model_not_found']);
  assert.match(e.badModel.message, /no-such-model.*does not exist/);
  assert.deepEqual([e.badType.code, e.badType.status, e.badType.error.param], ['invalid_request', 400, 'temperature']);
  assert.deepEqual([e.embeddings.code, e.embeddings.status], ['invalid_request', 400]);
  assert.match(e.embeddings.message, /not an embedding model/);
  assert.equal(e.tokenize.code, 'unsupported');
  assert.equal(e.noCors.code, 'io', `another origin without CORS: ${e.noCors.message}`);
  assert.match(e.noCors.message, /--cors-origin/);
  assert.equal(e.afterUnload.code, 'unloaded');
  // The aborted stream ended its fetch, so the server cancelled that generation.
  const lines = await serveLines(logFrom, /cancelled: client gone/);
  const cancelled = lines.filter((l) => /^POST \/v1\/chat\/completions 200 .*cancelled: client gone/.test(l));
  assert.equal(cancelled.length, 1, `one cancelled generation in the server's log:\n${lines.join('\n')}`);
  return `${JSON.stringify(text)}; server log: ${cancelled[0]}`;
});

test('Wisp.connect with apiKey: a wisp serve --api-key answers the key and refuses no key or a wrong one with 401', async () => {
  const server = await wispServe(['--api-key', 'page-secret']);
  const r = await inPage(async ({ baseURL }) => {
    const code = (p) => p.then(() => 'resolved', (e) => ({ code: e.code, status: e.status, message: e.message }));
    const engine = await Wisp.connect({ baseURL, apiKey: 'page-secret' });
    const res = await engine.completions.create({ prompt: 'The capital of France is', temperature: 0, max_tokens: 2 });
    return {
      model: engine.info.model,
      text: res.choices[0].text,
      noKey: await code(Wisp.connect({ baseURL })),
      wrongKey: await code(Wisp.connect({ baseURL, apiKey: 'guess' })),
    };
  }, { baseURL: `${server}/v1` });
  assert.equal(r.model, 'SmolLM2-135M-Instruct.Q4_1');
  assert.ok(r.text.length > 0);
  for (const e of [r.noKey, r.wrongKey]) assert.equal(e.status, 401, JSON.stringify(e));
  return `answered with the key: ${JSON.stringify(r.text)}; without or with a wrong one: 401`;
});

test('fallback: no WebGPU and a CPU engine that refuses the model (memory budget): Wisp.load reaches wisp serve, engine.info says why', async () => {
  const server = await wispServe();
  await resetStats();
  const p = await noGpuPage();
  const messages = [{ role: 'user', content: QUESTION }];
  const r = await inPageAt(p, `${BASE}/demo/blank.html`, async ({ url, baseURL, messages, n }) => {
    const code = (x) => x.then(() => 'resolved', (e) => `${e.code}: ${e.message}`);
    const engine = await Wisp.load(url, { cache: false, memoryBudget: 16 << 20, fallback: { baseURL } });
    const res = await engine.chat.completions.create({ messages, temperature: 0, max_tokens: n });
    return {
      gpu: Boolean(navigator.gpu && (await navigator.gpu.requestAdapter())),
      info: engine.info,
      res,
      // Without fallback the same load fails as before; a fault of the request is not a reason to fall back.
      noFallback: await code(Wisp.load(url, { cache: false, memoryBudget: 16 << 20 })),
      badDevice: await code(Wisp.load(url, { device: 'tpu', fallback: { baseURL } })),
      badFallback: await code(Wisp.load(url, { cache: false, fallback: 'nowhere' })),
      deadServer: await code(Wisp.load(url, { cache: false, memoryBudget: 16 << 20, fallback: { baseURL: 'http://127.0.0.1:9/v1' } })),
    };
  }, { url: SMOL, baseURL: `${server}/v1`, messages, n: REMOTE_TOKENS });
  assert.equal(r.gpu, false, 'this Chromium has no WebGPU adapter');
  assert.equal(r.info.engine, 'remote');
  assert.equal(r.info.fallback, true);
  assert.equal(r.info.localError.code, 'model_too_large');
  assert.match(r.info.reason, /^fell back to .*: this device cannot run the model \(model_too_large: .*budget/);
  const direct = await (await fetch(`${server}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ messages, temperature: 0, max_tokens: REMOTE_TOKENS }),
  })).json();
  assert.equal(r.res.choices[0].message.content, direct.choices[0].message.content);
  assert.match(r.noFallback, /^model_too_large:/);
  assert.match(r.badDevice, /^invalid_request:.*device/);
  assert.match(r.badFallback, /^invalid_request:.*fallback/);
  assert.match(r.deadServer, /^io: this device cannot run the model .*and the fallback server failed too: cannot reach/);
  const served = (await stats()).model_bytes;
  const size = statSync(join(process.env.WISP_MODELS_DIR, process.env.WISP_SMOLLM2)).size;
  assert.ok(served < size / 2, `refused from the header, before the download: ${served} of ${size} bytes`);
  return r.info.reason.slice(0, 160);
});

test('a 491 MB model (Qwen2.5-0.5B) loads with wasm memory under 96 MiB', async () => {
  const r = await inPage(async ({ url }) => {
    const engine = await Wisp.load(url, { device: 'gpu', cache: false, worker: false, contextLength: 512 });
    const memory = await engine.wasmMemoryBytes();
    const ids = await engine.tokenize('Hello');
    await engine.unload();
    return { memory, ids };
  }, { url: QWEN });
  assert.ok(r.ids.length > 0);
  assert.ok(r.memory < 96 * 1048576, `wasm memory ${(r.memory / 1048576).toFixed(1)} MiB`);
  return `wasm memory ${(r.memory / 1048576).toFixed(1)} MiB after loading ${(statSync(join(process.env.WISP_MODELS_DIR, process.env.WISP_QWEN2)).size / 1e6).toFixed(0)} MB`;
});

test('the demo page: load, streamed greedy answer, stop, reload from cache, screenshot', async () => {
  await page.goto(`${BASE}/?model=${encodeURIComponent(SMOL)}`);
  await page.waitForSelector('#status[data-state="ready"]');
  // SwiftShader is a software adapter: 'auto' takes the CPU engine, and the page says so.
  assert.equal(await page.getAttribute('#engine', 'data-engine'), 'cpu');
  const engineLine = await page.textContent('#engine');
  assert.match(engineLine, /CPU engine.*software/);
  assert.match(await page.textContent('#status'), /on the CPU/);
  await page.fill('#temperature', '0');
  await page.fill('#max-tokens', String(CPU_TOKENS));
  await page.fill('#prompt', QUESTION);
  await page.click('#send');
  await page.waitForSelector('#messages[data-done="2"]');
  const answer = await page.textContent('#messages li.assistant');
  assert.ok(shared.native, 'needs the first test');
  const agree = assertGreedyAgrees(shared.prompt, answer, shared.native);
  if (shared.cpuNative) assertGreedyAgrees(shared.prompt, answer, shared.cpuNative);
  assert.match(await page.textContent('#speed'), /tok\/s/);

  // Stop mid-answer.
  await page.fill('#temperature', '0.8');
  await page.fill('#max-tokens', '300');
  await page.fill('#prompt', 'Tell me a long story about the sea.');
  await page.click('#send');
  await page.waitForFunction(() => (document.querySelectorAll('#messages li.assistant')[1]?.textContent ?? '').length > 0);
  await page.click('#stop');
  await page.waitForSelector('#messages[data-done="4"]');
  const finish = await page.getAttribute('#messages li.assistant:nth-of-type(4)', 'data-finish')
    ?? await page.evaluate(() => document.querySelectorAll('#messages li.assistant')[1].dataset.finish);
  assert.equal(finish, 'abort');
  await page.screenshot({ path: join(ARTIFACTS, 'demo.png'), fullPage: true });

  // Reload: the model comes from the cache, no model bytes over the network.
  await resetStats();
  await page.reload();
  await page.waitForSelector('#status[data-state="ready"]');
  assert.match(await page.textContent('#status'), /from cache/);
  assert.equal((await stats()).model_bytes, 0);
  return `${agree}; ${engineLine}; screenshot ${join(ARTIFACTS, 'demo.png')}`;
});

let passed = 0;
let failed = 0;
for (const t of tests) {
  if (ONLY && !ONLY.some((o) => t.name.includes(o))) continue;
  const started = Date.now();
  try {
    const note = await t.fn();
    passed++;
    console.log(`ok   ${t.name} (${((Date.now() - started) / 1000).toFixed(1)} s)${note ? `\n      ${note}` : ''}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${t.name} (${((Date.now() - started) / 1000).toFixed(1)} s)\n      ${e.stack ?? e}`);
    console.log(consoleLines.slice(-15).map((l) => `      | ${l}`).join('\n'));
    await page.screenshot({ path: join(ARTIFACTS, `failed-${tests.indexOf(t)}.png`) }).catch(() => {});
  }
  consoleLines.length = 0;
}
for (const { child } of serveProcesses.values()) child.kill();
await context.close();
await noGpuContext?.close();
console.log(`\nbrowser tests: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
