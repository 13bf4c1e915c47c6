//! Built-in templates for GGUFs without `tokenizer.chat_template`.
//!
//! llama.cpp's own fallback is ChatML for every model (`common_chat_templates_init`);
//! its older C++ formats (`llm_chat_apply_template`) know each family's turn markers.
//! A Gemma or Llama 3 model prompted in ChatML sees markers it was never trained on and
//! rambles, so Wisp picks the family format from `general.architecture` and writes it
//! as Jinja reproducing llama.cpp's C++ format, rendered by the same engine as any other
//! template. Like the Hugging Face templates of those families, Gemma and Llama 3 start
//! with `bos_token` (see [`super::strip_bos`]).

use crate::gguf::GgufHeader;

/// Which built-in format a model without a template gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    /// `<|im_start|>role\n…<|im_end|>\n`: llama.cpp's default (`CHATML_TEMPLATE_SRC`).
    ChatMl,
    /// `<start_of_turn>user\n…<end_of_turn>\n`, `assistant` → `model`, system messages
    /// folded into the next user turn (llama.cpp `LLM_CHAT_TEMPLATE_GEMMA`).
    Gemma,
    /// `<|start_header_id|>role<|end_header_id|>\n\n…<|eot_id|>` (llama.cpp
    /// `LLM_CHAT_TEMPLATE_LLAMA_3`).
    Llama3,
}

const CHATML: &str = "\
{%- for message in messages -%}
  {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
  {{- '<|im_start|>assistant\\n' -}}
{%- endif -%}";

// As llama.cpp: contents trimmed; system texts (trimmed, concatenated) open the next
// non-model turn followed by a blank line.
const GEMMA: &str = "\
{{- bos_token -}}
{%- set ns = namespace(system='') -%}
{%- for message in messages -%}
  {%- if message.role == 'system' -%}
    {%- set ns.system = ns.system + (message.content | trim) -%}
  {%- else -%}
    {%- set role = 'model' if message.role == 'assistant' else message.role -%}
    {{- '<start_of_turn>' + role + '\\n' -}}
    {%- if ns.system and role != 'model' -%}
      {{- ns.system + '\\n\\n' -}}
      {%- set ns.system = '' -%}
    {%- endif -%}
    {{- (message.content | trim) + '<end_of_turn>\\n' -}}
  {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
  {{- '<start_of_turn>model\\n' -}}
{%- endif -%}";

const LLAMA3: &str = "\
{{- bos_token -}}
{%- for message in messages -%}
  {{- '<|start_header_id|>' + message.role + '<|end_header_id|>\\n\\n' + (message.content | trim) + '<|eot_id|>' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
  {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
{%- endif -%}";

impl Builtin {
    pub fn source(self) -> &'static str {
        match self {
            Builtin::ChatMl => CHATML,
            Builtin::Gemma => GEMMA,
            Builtin::Llama3 => LLAMA3,
        }
    }

    /// The format for a model without a template: Gemma for the Gemma family, Llama 3
    /// for `llama` models whose vocab has `<|start_header_id|>` (Llama 3.x), ChatML for
    /// everything else (Qwen, SmolLM, older Llamas, unknown), as llama.cpp defaults.
    pub fn for_header(header: &GgufHeader) -> Builtin {
        let arch = header.architecture().unwrap_or("");
        if arch.starts_with("gemma") {
            return Builtin::Gemma;
        }
        if arch == "llama" && vocab_has(header, "<|start_header_id|>") {
            return Builtin::Llama3;
        }
        Builtin::ChatMl
    }
}

fn vocab_has(header: &GgufHeader, token: &str) -> bool {
    match header.get_array("tokenizer.ggml.tokens") {
        Some(crate::gguf::Array::String(tokens)) => tokens.iter().any(|t| t == token),
        _ => false,
    }
}
