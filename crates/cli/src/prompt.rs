//! What `run`, `chat` and `serve` share: how a prompt becomes token ids (raw text, or a
//! conversation through the GGUF's chat template) and how sampling settings become a
//! [`Sampler`], so the server answers exactly what the commands print.

use crate::load::Loaded;
use wisp::chat::{chat_prompt_tokens, render_options, ChatMessage, ChatTemplate, RenderOptions};
use wisp::sampling::{Sampler, SamplingParams};
use wisp::tokenizer::Tokenizer;

/// A seed from the clock, for requests that name none (runs differ, as users expect).
pub fn random_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

pub fn sampler(params: SamplingParams) -> Result<Sampler, String> {
    Sampler::new(params).map_err(|e| e.to_string())
}

/// The ids of a raw prompt (`run`, `/v1/completions`): BOS as the vocab asks;
/// control-token text is a control token only with `special`.
pub fn raw_tokens(tokenizer: &Tokenizer, text: &str, special: bool) -> Vec<u32> {
    tokenizer.encode_prompt(text, special)
}

/// The model's chat format: its template (or the built-in fallback) and render options.
pub struct ChatFormat {
    template: ChatTemplate,
    opts: RenderOptions,
}

impl ChatFormat {
    pub fn new(loaded: &Loaded) -> Result<ChatFormat, String> {
        let template = ChatTemplate::from_gguf(&loaded.file.header).map_err(|e| e.to_string())?;
        Ok(ChatFormat {
            template,
            opts: render_options(&loaded.tokenizer),
        })
    }

    /// Prompt ids for `messages`, ending with the assistant's turn header: control
    /// tokens come only from the template, message content is plain text.
    pub fn tokens(
        &self,
        tokenizer: &Tokenizer,
        messages: &[ChatMessage],
    ) -> Result<Vec<u32>, wisp::Error> {
        chat_prompt_tokens(&self.template, tokenizer, messages, &self.opts)
    }
}
