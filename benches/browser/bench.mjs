// Wisp's CPU engine beside wllama (@wllama/wllama: llama.cpp compiled to wasm, SIMD,
// pthreads under cross-origin isolation) in the same headless Chromium, on the same GGUF,
// with the same thread count and prompt: prefill (pp) and decode (tg) tok/s and the ratio.
// Not a test: it only measures.
//
//   cargo xtask js                       # builds bindings/js/dist (both wasm builds)
//   cd benches/browser && npm ci         # wllama + playwright-core, pinned
//   node benches/browser/bench.mjs [--threads N] [--tg 16] [--reps 3] [--model PATH]
//
// Chromium runs without WebGPU (so wllama cannot offload to a GPU either), the page is
// served with COOP/COEP (both engines get their threads), and the engines run one after
// the other in fresh workers. Each engine's rate is the median over --reps runs after a
// warm-up; each run starts with different words, so no prompt comes from a cache.

import { chromium } from 'playwright-core';
import { createServer } from 'node:http';
import { createReadStream, existsSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const model = resolve(arg('model', join(process.env.WISP_MODELS ?? join(root, 'target/models'), 'SmolLM2-135M-Instruct.Q4_1.gguf')));
const tg = Number(arg('tg', 16));
const reps = Number(arg('reps', 3));
const dist = join(root, 'bindings/js/dist');
const wllamaDir = join(here, 'node_modules/@wllama/wllama/esm');
for (const [what, path, fix] of [
  ['the model', model, 'cargo xtask fetch-models'],
  ['the Wisp package', join(dist, 'wisp_wasm_bg.wasm'), 'cargo xtask js'],
  ['wllama', join(wllamaDir, 'wasm/wllama.wasm'), 'cd benches/browser && npm ci'],
]) {
  if (!existsSync(path)) {
    console.error(`missing ${what} (${path}): run \`${fix}\``);
    process.exit(2);
  }
}
// A prompt of about 64 tokens of plain prose.
const PROMPT = 'The history of the city begins with a small fishing village on the river. Over the centuries, ' +
  'merchants built warehouses along the docks, scholars founded a university near the old market, and the ' +
  'railway brought workers from the countryside. Today the city is known for its bridges, its museums and';

const types = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.gguf': 'application/octet-stream' };
const server = createServer((req, res) => {
  const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
  const routes = [['/dist/', dist], ['/wllama/', wllamaDir], ['/models/', dirname(model)]];
  let file = path === '/' ? join(here, 'page.html') : null;
  for (const [prefix, dir] of routes) {
    if (path.startsWith(prefix)) file = resolve(dir, path.slice(prefix.length));
    if (file && !file.startsWith(resolve(dir)) && path.startsWith(prefix)) file = null;
  }
  if (!file || !existsSync(file) || !statSync(file).isFile()) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, {
    'Content-Type': types[extname(file)] ?? 'application/octet-stream',
    'Content-Length': statSync(file).size,
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Cross-Origin-Embedder-Policy': 'require-corp',
    'Cross-Origin-Resource-Policy': 'same-origin',
    'Cache-Control': 'no-store',
  });
  createReadStream(file).pipe(res);
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${server.address().port}`;

const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'wisp-bench-')), {
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--headless=new', '--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const page = context.pages()[0] ?? (await context.newPage());
page.setDefaultTimeout(0);
page.on('pageerror', (e) => console.error(`[page] ${e.message}`));
await page.goto(base);
await page.waitForFunction(() => window.ready === true);
const cores = await page.evaluate(() => navigator.hardwareConcurrency);
const threads = Number(arg('threads', cores));
const isolated = await page.evaluate(() => crossOriginIsolated);
const params = { model: `/models/${model.split('/').pop()}`, threads, prompt: PROMPT, tg, reps };

console.error(`model ${model.split('/').pop()} (${(statSync(model).size / 1e6).toFixed(0)} MB), ${threads} threads, ` +
  `tg ${tg}, ${reps} reps after a warm-up, cross-origin isolated: ${isolated}, Chromium cores: ${cores}`);
const wisp = await page.evaluate((p) => window.runWisp(p), params);
console.error(`wisp: ${JSON.stringify(wisp)}`);
const wllama = await page.evaluate((p) => window.runWllama(p), params);
console.error(`wllama: ${JSON.stringify(wllama)}`);
await context.close();
server.close();

const f = (x) => x.toFixed(1).padStart(8);
console.log('\n| engine | threads | prompt tokens | pp tok/s | tg tok/s |');
console.log('|---|---|---|---|---|');
console.log(`| Wisp CPU (wasm ${wisp.isa}) | ${wisp.threads} | ${wisp.promptTokens} | ${f(wisp.pp)} | ${f(wisp.tg)} |`);
console.log(`| wllama 3.13.0 (llama.cpp wasm) | ${wllama.threads}${wllama.multithread ? '' : ' (single-thread build)'} | ${wllama.promptTokens} | ${f(wllama.pp)} | ${f(wllama.tg)} |`);
console.log(`| **Wisp ÷ wllama** | | | ${(wisp.pp / wllama.pp).toFixed(2).padStart(8)} | ${(wisp.tg / wllama.tg).toFixed(2).padStart(8)} |`);
if (wisp.threads !== wllama.threads) console.log(`\nwarning: thread counts differ (${wisp.threadsReason})`);
