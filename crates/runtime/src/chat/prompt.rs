//! From a conversation to prompt token ids, the same way in every front end.

use super::{ChatMessage, ChatTemplate, RenderOptions};
use crate::tokenizer::Tokenizer;
use crate::Error;

/// Render options with the vocab's BOS/EOS text, ending with the assistant's turn header.
pub fn render_options(tokenizer: &Tokenizer) -> RenderOptions {
    let text = |id: Option<u32>| {
        id.map(|id| String::from_utf8_lossy(&tokenizer.token_bytes(id, true)).into_owned())
            .unwrap_or_default()
    };
    RenderOptions {
        add_generation_prompt: true,
        bos_token: text(tokenizer.bos()),
        eos_token: text(tokenizer.eos()),
        ..RenderOptions::default()
    }
}

/// Render `messages` with `template` and tokenize the result. The template's output
/// carries the control tokens; BOS is added only when the vocab wants it and the
/// template did not write it.
pub fn chat_prompt_tokens(
    template: &ChatTemplate,
    tokenizer: &Tokenizer,
    messages: &[ChatMessage],
    opts: &RenderOptions,
) -> Result<Vec<u32>, Error> {
    let prompt = template.render(messages, opts)?;
    let mut ids = tokenizer.encode(&prompt, true);
    if tokenizer.add_bos() {
        if let Some(bos) = tokenizer.bos() {
            if ids.first() != Some(&bos) {
                ids.insert(0, bos);
            }
        }
    }
    Ok(ids)
}
