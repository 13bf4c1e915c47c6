// The dedicated Worker that runs the engine off the page's main thread. It answers
// messages {id, op, args} with {id, type: 'progress' | 'text' | 'result' | 'error', …}.

import * as core from './core.js';

let engine = null;
const cancelled = new Set();

function reply(id, type, body = {}) {
  self.postMessage({ id, type, ...body });
}

function errorBody(e) {
  const err = core.toWispError(e);
  return { error: { code: err.code, message: err.message } };
}

self.onmessage = async (ev) => {
  const { id, op, args } = ev.data;
  try {
    switch (op) {
      case 'load': {
        const controller = new AbortController();
        cancelled.delete(id);
        const watcher = setInterval(() => cancelled.has(id) && controller.abort(), 50);
        try {
          engine = await core.load(args.source, {
            ...args.opts,
            signal: controller.signal,
            onProgress: (p) => reply(id, 'progress', { progress: p }),
          });
        } finally {
          clearInterval(watcher);
        }
        reply(id, 'result', { value: engine.info });
        break;
      }
      case 'cancel':
        cancelled.add(args.target);
        reply(id, 'result', { value: true });
        break;
      case 'generate': {
        const out = await engine.generate(
          args.kind,
          args.request,
          (text) => reply(id, 'text', { text }),
          () => cancelled.has(id),
        );
        cancelled.delete(id);
        reply(id, 'result', { value: out });
        break;
      }
      case 'tokenize':
        reply(id, 'result', { value: engine.tokenize(args.text, args.special) });
        break;
      case 'detokenize':
        reply(id, 'result', { value: engine.detokenize(args.ids) });
        break;
      case 'renderChat':
        reply(id, 'result', { value: engine.renderChat(args.messages) });
        break;
      case 'memory':
        reply(id, 'result', { value: core.wasmMemoryBytes() });
        break;
      case 'unload':
        await engine?.unload();
        engine = null;
        reply(id, 'result', { value: true });
        break;
      default:
        throw new Error(`unknown operation ${op}`);
    }
  } catch (e) {
    reply(id, 'error', errorBody(e));
  }
};
