#!/usr/bin/env python3
"""Render chat templates with Python jinja2 set up exactly as Hugging Face transformers
does (`transformers.utils.chat_template_utils._compile_jinja_template`), and write the
results to `tests/fixtures/chat/rendered.json` for `tests/tests/chat_templates.rs`.

Templates: (a) `tokenizer.chat_template` of the real test models (read from the GGUFs
with the `gguf` package), (b) every `.jinja` in `$WISP_MODELS/llama-cpp/templates/`.

Usage: WISP_MODELS=/path/to/models python3 tests/reference/render_templates.py
Needs: jinja2 (3.1.x, as transformers pins), gguf.
"""

import json
import os
import sys
from datetime import datetime
from pathlib import Path

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = Path(__file__).resolve().parents[2]
MODELS = Path(os.environ.get("WISP_MODELS", ROOT / "target" / "models"))
OUT = ROOT / "tests" / "fixtures" / "chat" / "rendered.json"

# The fixed clock `strftime_now` reads (the Rust side gets the same instant).
NOW = datetime(2025, 3, 14, 9, 26, 53)


class RaisedByTemplate(jinja2.exceptions.TemplateError):
    """What `raise_exception` throws: HF raises a plain TemplateError; the subclass only
    lets this script tell template-raised errors from other failures."""


def raise_exception(message):
    raise RaisedByTemplate(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    # HF's override of jinja's tojson: no HTML escaping, json.dumps options exposed.
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(format):
    return NOW.strftime(format)


class AssistantTracker(jinja2.ext.Extension):
    """HF's `{% generation %}…{% endgeneration %}` tag, reduced to what rendering sees:
    the body is output unchanged (HF only records its span for assistant masks)."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def compile_template(source):
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[AssistantTracker, loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(source)


SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name, e.g. Paris"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["city"],
            },
        },
    }
]

BASIC = [
    SYSTEM,
    {"role": "user", "content": "Hello! What can you do?"},
    {"role": "assistant", "content": "I can answer questions and help with tasks."},
    {"role": "user", "content": "Tell me a joke about cats."},
]

CONVERSATIONS = {
    "basic": {"messages": BASIC, "add_generation_prompt": True, "tools": None},
    "basic_tools": {"messages": BASIC, "add_generation_prompt": True, "tools": TOOLS},
    "no_system": {"messages": BASIC[1:], "add_generation_prompt": True, "tools": None},
    "no_generation_prompt": {"messages": BASIC, "add_generation_prompt": False, "tools": None},
    "multi_turn": {
        "messages": [
            SYSTEM,
            {"role": "user", "content": "What is 2 + 2?"},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": "And times 3?"},
            {"role": "assistant", "content": "12"},
            {"role": "user", "content": "Thanks. Now in words?"},
            {"role": "assistant", "content": "Twelve."},
            {"role": "user", "content": "Great!"},
        ],
        "add_generation_prompt": True,
        "tools": None,
    },
    # Variables some templates read besides the standard ones (passed by transformers
    # as `**kwargs` of apply_chat_template).
    "extra": {
        "messages": BASIC,
        "add_generation_prompt": True,
        "tools": TOOLS,
        "extra": {
            "enable_thinking": False,
            "reasoning_effort": "low",
            "builtin_tools": ["code_interpreter"],
            "date_string": "14 Mar 2025",
            "datetime": "2025-03-14",
            "functions": json.dumps([t["function"] for t in TOOLS], indent=2),
            "documents": [
                {"title": "Cats", "text": "Cats sleep up to 16 hours a day."},
                {"title": "Dogs", "text": "Dogs are pack animals."},
            ],
        },
    },
    "tricky": {
        "messages": [
            {"role": "system", "content": "  Be terse.\n"},
            {
                "role": "user",
                "content": "<|im_end|><|im_start|>system\n<start_of_turn>{{ bos_token }}{% if x %}"
                " héllo 世界 🦀 \"quoted\" \\ back\ttab\n\n",
            },
            {"role": "assistant", "content": "<|eot_id|> ok ✓"},
            {"role": "user", "content": "Ünïcödé — “smart quotes” 𝔘 end"},
        ],
        "add_generation_prompt": True,
        "tools": None,
    },
}

# Which conversations each template kind is rendered with.
MODEL_CONVERSATIONS = list(CONVERSATIONS)
LLAMA_CPP_CONVERSATIONS = ["basic", "no_system", "tricky", "extra"]


def render(source, conv, bos, eos):
    try:
        tmpl = compile_template(source)
        kwargs = {"documents": None, **conv.get("extra", {})}
        text = tmpl.render(
            messages=conv["messages"],
            tools=conv["tools"],
            add_generation_prompt=conv["add_generation_prompt"],
            bos_token=bos,
            eos_token=eos,
            **kwargs,
        )
        return {"text": text}
    except RaisedByTemplate as e:
        return {"error": str(e), "raised": True}
    except Exception as e:  # any other failure: only "it fails" is compared
        return {"error": f"{type(e).__name__}: {e}", "raised": False}


def gguf_model_templates():
    from gguf import GGUFReader

    out = []
    for file in ["SmolLM2-135M-Instruct.Q4_1.gguf", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"]:
        r = GGUFReader(str(MODELS / file))
        source = r.fields["tokenizer.chat_template"].contents()
        tokens = r.fields["tokenizer.ggml.tokens"]
        bos = tokens.contents(r.fields["tokenizer.ggml.bos_token_id"].contents())
        eos = tokens.contents(r.fields["tokenizer.ggml.eos_token_id"].contents())
        out.append((file, source, bos, eos))
    return out


def main():
    templates = {}
    for file, source, bos, eos in gguf_model_templates():
        cases = {c: render(source, CONVERSATIONS[c], bos, eos) for c in MODEL_CONVERSATIONS}
        templates[file] = {"kind": "gguf", "bos_token": bos, "eos_token": eos, "cases": cases}

    tdir = MODELS / "llama-cpp" / "templates"
    for path in sorted(tdir.glob("*.jinja")):
        source = path.read_text(encoding="utf-8")
        convs = list(LLAMA_CPP_CONVERSATIONS)
        if "tools" in source:
            convs.insert(1, "basic_tools")
        cases = {c: render(source, CONVERSATIONS[c], "<s>", "</s>") for c in convs}
        templates[path.name] = {"kind": "llama-cpp", "bos_token": "<s>", "eos_token": "</s>", "cases": cases}

    fixture = {
        "generator": "tests/reference/render_templates.py",
        "jinja2": jinja2.__version__,
        "now": NOW.isoformat(),
        "conversations": CONVERSATIONS,
        "templates": templates,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(fixture, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    n = sum(len(t["cases"]) for t in templates.values())
    errs = sum(1 for t in templates.values() for c in t["cases"].values() if "error" in c)
    print(f"{len(templates)} templates, {n} cases ({errs} errors) -> {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
