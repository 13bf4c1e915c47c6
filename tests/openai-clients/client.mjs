// The official npm `openai` client against `wisp serve`, unchanged but for baseURL.
// Run by crates/cli/tests/serve_clients.rs, which starts the server, passes the request in
// WISP_CASE (JSON) and checks what this prints (one JSON object) against `wisp run`.

import OpenAI from 'openai';
import { VERSION } from 'openai/version';

const c = JSON.parse(process.env.WISP_CASE);
const client = new OpenAI({ baseURL: c.base_url, apiKey: c.api_key, maxRetries: 0, timeout: 120_000 });
const model = c.model;
const out = { client: 'node', version: VERSION };
const usageOf = (u) => u && { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens, total_tokens: u.total_tokens };

out.models = [];
for await (const m of client.models.list()) out.models.push(m.id);

const chat = await client.chat.completions.create({ model, messages: c.messages, temperature: 0, max_tokens: c.max_tokens });
out.chat = chat.choices[0].message.content;
out.chat_finish = chat.choices[0].finish_reason;
out.chat_usage = usageOf(chat.usage);
out.chat_id = chat.id;

let text = '';
let usage = null;
const stream = await client.chat.completions.create({
  model, messages: c.messages, temperature: 0, max_tokens: c.max_tokens, stream: true, stream_options: { include_usage: true },
});
for await (const chunk of stream) {
  if (chunk.choices.length) text += chunk.choices[0].delta.content ?? '';
  if (chunk.usage) usage = usageOf(chunk.usage);
}
out.chat_stream = text;
out.stream_usage = usage;

const stopped = await client.chat.completions.create({
  model, messages: c.messages, temperature: 0, max_tokens: c.max_tokens, stop: [c.stop],
});
out.chat_stop = stopped.choices[0].message.content;
out.chat_stop_finish = stopped.choices[0].finish_reason;

const done = await client.completions.create({ model, prompt: c.prompt, temperature: 0, max_tokens: c.completion_tokens });
out.completion = done.choices[0].text;
out.completion_usage = usageOf(done.usage);

async function errorOf(call) {
  try {
    await call();
  } catch (e) {
    if (e instanceof OpenAI.APIError) return { class: e.constructor.name, status: e.status };
    throw e;
  }
  return null;
}

out.errors = {
  n2: await errorOf(() => client.chat.completions.create({ model, messages: c.messages, n: 2 })),
  unknown_model: await errorOf(() => client.chat.completions.create({ model: 'no-such-model', messages: c.messages })),
  bad_key: await errorOf(() => new OpenAI({ baseURL: c.base_url, apiKey: 'wrong', maxRetries: 0 }).models.list()),
  embeddings: await errorOf(() => client.embeddings.create({ model, input: 'hi' })),
};
console.log(JSON.stringify(out));
