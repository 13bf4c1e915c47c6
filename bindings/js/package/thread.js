// One thread of the CPU engine's pool (the threaded build only): a Worker that
// instantiates the engine's wasm module over the engine's shared memory, says it is
// ready, then runs a rayon thread for good (src/threads.rs explains the order).

import init, { runPoolThread } from './wisp_wasm_mt.js';

self.onmessage = async ({ data }) => {
  try {
    await init({ module_or_path: data.module, memory: data.memory });
  } catch (e) {
    self.postMessage({ error: `cannot start a thread: ${e?.message ?? e}` });
    return;
  }
  self.postMessage('ready');
  runPoolThread();
};
