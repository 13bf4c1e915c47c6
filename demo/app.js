// The Wisp chat demo, built only on the npm package (served from /dist/).
import { Wisp } from '/dist/index.js';

const $ = (id) => document.getElementById(id);
const ui = {
  url: $('model-url'), file: $('model-file'), load: $('load'), progress: $('progress'),
  status: $('status'), messages: $('messages'), prompt: $('prompt'), send: $('send'),
  stop: $('stop'), clear: $('clear'), temperature: $('temperature'), maxTokens: $('max-tokens'),
  speed: $('speed'), error: $('error'), engine: $('engine'),
};

let engine = null;
let history = [];
let running = null; // AbortController of the answer being written

const params = new URLSearchParams(location.search);
ui.url.value = params.get('model') ?? '';

function showError(e) {
  // Say what happened and what to do, in words, not a stack trace.
  const hints = {
    webgpu_unavailable: 'This browser cannot run models on the GPU (try the CPU engine: ?device=cpu).',
    model_too_large: 'This model does not fit on this device.',
    invalid_model: 'This file is not a model Wisp can read.',
    unsupported: 'Wisp does not support this model yet.',
    io: 'The model could not be downloaded.',
    integrity: 'The downloaded file is not the expected one.',
  };
  ui.error.hidden = false;
  ui.error.textContent = `${hints[e.code] ?? 'Something went wrong.'} ${e.message}`;
}

function clearError() {
  ui.error.hidden = true;
  ui.error.textContent = '';
}

function mib(n) {
  return `${(n / 1048576).toFixed(0)} MiB`;
}

function setChatEnabled(on) {
  ui.prompt.disabled = !on;
  ui.send.disabled = !on;
}

async function load(source, label) {
  clearError();
  setChatEnabled(false);
  ui.load.disabled = true;
  if (engine) {
    await engine.unload();
    engine = null;
  }
  ui.progress.hidden = false;
  ui.progress.value = 0;
  ui.status.textContent = `Loading ${label}…`;
  const started = performance.now();
  try {
    engine = await Wisp.load(source, {
      device: params.get('device') ?? 'auto',
      onProgress: ({ phase, loaded, total }) => {
        ui.progress.value = total ? loaded / total : 0;
        const verb = { header: 'Reading', download: 'Downloading', cache: 'Loading from cache', compile: 'Preparing', ready: 'Ready' }[phase];
        ui.status.textContent = `${verb} ${label}: ${mib(loaded)} of ${mib(total)}`;
      },
    });
    const secs = ((performance.now() - started) / 1000).toFixed(1);
    const i = engine.info;
    ui.status.dataset.state = 'ready';
    const cpu = i.engine === 'cpu';
    const where = cpu ? `the CPU (${i.threads} thread${i.threads === 1 ? '' : 's'})` : (i.adapter || 'the GPU');
    ui.status.textContent = `${i.name || i.architecture} ready in ${secs} s on ${where} ` +
      `(${mib(cpu ? i.wasmModelBytes : i.gpuBytes)}, ${i.fromCache ? 'from cache' : `${mib(i.bytesFetched)} fetched`}, context ${i.contextLength} tokens)` +
      (i.cacheError ? ` — not cached: ${i.cacheError}` : '');
    ui.engine.hidden = false;
    ui.engine.dataset.engine = i.engine;
    ui.engine.textContent = cpu
      ? `CPU engine (wasm ${i.isa}, ${i.threads} thread${i.threads === 1 ? '' : 's'}): ${i.reason}. ${i.threadsReason}.`
      : `GPU engine (WebGPU on ${i.adapter}): ${i.reason}.`;
    setChatEnabled(true);
    ui.prompt.focus();
  } catch (e) {
    ui.status.dataset.state = 'error';
    ui.status.textContent = 'No model loaded.';
    showError(e);
  } finally {
    ui.load.disabled = false;
    ui.progress.hidden = true;
  }
}

$('load-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const file = ui.file.files[0];
  if (file) load(file, file.name);
  else if (ui.url.value) load(ui.url.value, ui.url.value.split('/').pop());
  else showError({ code: 'io', message: 'Give a model URL or pick a .gguf file.' });
});

function addMessage(role, text) {
  const li = document.createElement('li');
  li.className = role;
  li.textContent = text;
  ui.messages.append(li);
  li.scrollIntoView({ block: 'end' });
  return li;
}

async function send() {
  const text = ui.prompt.value.trim();
  if (!text || !engine || running) return;
  clearError();
  ui.prompt.value = '';
  history.push({ role: 'user', content: text });
  addMessage('user', text);
  const li = addMessage('assistant', '');
  li.classList.add('streaming');
  running = new AbortController();
  ui.send.disabled = true;
  ui.stop.disabled = false;
  let answer = '';
  try {
    const stream = await engine.chat.completions.create({
      messages: history,
      stream: true,
      temperature: Number(ui.temperature.value),
      max_tokens: Number(ui.maxTokens.value),
      signal: running.signal,
    });
    for await (const chunk of stream) {
      const piece = chunk.choices[0].delta.content ?? '';
      answer += piece;
      li.textContent = answer;
      if (chunk.usage) {
        const u = chunk.usage;
        ui.speed.textContent = `${u.completion_tokens} tokens · ${u.extra.decode_tokens_per_s.toFixed(1)} tok/s · ` +
          `prompt ${u.extra.prefill_tokens} tokens at ${u.extra.prefill_tokens_per_s.toFixed(1)} tok/s · ` +
          `first token after ${u.extra.time_to_first_token_s.toFixed(2)} s`;
        const reason = chunk.choices[0].finish_reason;
        li.dataset.finish = reason;
        if (reason === 'abort') {
          const note = document.createElement('span');
          note.className = 'note';
          note.textContent = '(stopped)';
          li.append(note);
        }
      }
    }
    history.push({ role: 'assistant', content: answer });
  } catch (e) {
    history.pop();
    li.remove();
    showError(e);
  } finally {
    li.classList.remove('streaming');
    running = null;
    ui.stop.disabled = true;
    ui.send.disabled = !engine;
    ui.messages.dataset.done = String(ui.messages.children.length);
  }
}

$('send-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  send();
});
ui.prompt.addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && !ev.shiftKey) {
    ev.preventDefault();
    send();
  }
});
ui.stop.addEventListener('click', () => running?.abort());
ui.clear.addEventListener('click', () => {
  if (running) return;
  history = [];
  ui.messages.replaceChildren();
  ui.speed.textContent = '';
});

if (ui.url.value && params.get('autoload') !== '0') load(ui.url.value, ui.url.value.split('/').pop());
