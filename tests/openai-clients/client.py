"""The official PyPI `openai` client against `wisp serve`, unchanged but for base_url.

Run by crates/cli/tests/serve_clients.rs, which starts the server, passes the request in
WISP_CASE (JSON) and checks what this prints (one JSON object) against `wisp run`.
"""

import json
import os

import openai
from openai import OpenAI

case = json.loads(os.environ["WISP_CASE"])
client = OpenAI(base_url=case["base_url"], api_key=case["api_key"], max_retries=0, timeout=120)
model = case["model"]
out = {"client": "python", "version": openai.__version__}

out["models"] = [m.id for m in client.models.list().data]

chat = client.chat.completions.create(
    model=model, messages=case["messages"], temperature=0, max_tokens=case["max_tokens"]
)
out["chat"] = chat.choices[0].message.content
out["chat_finish"] = chat.choices[0].finish_reason
out["chat_usage"] = chat.usage.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"})
out["chat_id"] = chat.id

text, usage = "", None
for chunk in client.chat.completions.create(
    model=model,
    messages=case["messages"],
    temperature=0,
    max_tokens=case["max_tokens"],
    stream=True,
    stream_options={"include_usage": True},
):
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
    if chunk.usage:
        usage = chunk.usage.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"})
out["chat_stream"] = text
out["stream_usage"] = usage

stopped = client.chat.completions.create(
    model=model, messages=case["messages"], temperature=0, max_tokens=case["max_tokens"], stop=[case["stop"]]
)
out["chat_stop"] = stopped.choices[0].message.content
out["chat_stop_finish"] = stopped.choices[0].finish_reason

done = client.completions.create(
    model=model, prompt=case["prompt"], temperature=0, max_tokens=case["completion_tokens"]
)
out["completion"] = done.choices[0].text
out["completion_usage"] = done.usage.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"})


def error_of(call):
    try:
        call()
    except openai.APIStatusError as e:
        return {"class": type(e).__name__, "status": e.status_code}
    return None


out["errors"] = {
    "n2": error_of(lambda: client.chat.completions.create(model=model, messages=case["messages"], n=2)),
    "unknown_model": error_of(lambda: client.chat.completions.create(model="no-such-model", messages=case["messages"])),
    "bad_key": error_of(
        lambda: OpenAI(base_url=case["base_url"], api_key="wrong", max_retries=0).models.list()
    ),
    "embeddings": error_of(lambda: client.embeddings.create(model=model, input="hi")),
}
print(json.dumps(out))
