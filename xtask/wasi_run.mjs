// Runs a wasm32-wasip1 test binary under Node's WASI (used by `cargo xtask wasm-kernels`):
//   node xtask/wasi_run.mjs FILE.wasm [libtest arguments]
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';

const [file, ...args] = process.argv.slice(2);
const wasi = new WASI({ version: 'preview1', args: [file, ...args], env: {}, preopens: {} });
const module = await WebAssembly.compile(await readFile(file));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);
