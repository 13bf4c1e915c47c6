//! From a conversation to prompt token ids, the same way in every front end.
//!
//! The template's markup is tokenized with special-token parsing (its `<|im_start|>` is
//! the control token), message content as plain text (a user's `<|im_start|>` is the
//! characters), which is what separates instructions from data for the model. Content
//! is located in the render by [`super::content`]. The whole render is still tokenized
//! in one pass and only the recognition of control tokens is restricted, so a prompt
//! whose content holds no control-token text gets exactly the ids it got from parsing
//! the whole render; merges across the markup/content boundary are untouched.
//!
//! When the content cannot be located (a template that branches on it or cuts it up),
//! a control token is recognized only if its text occurs in no message content: a
//! user's injected `<|im_end|>` then stays text, at the price of the template's own
//! `<|im_end|>` becoming text too for that prompt. User-defined tokens (`<tool_call>`
//! in Qwen2.5, HTML tags in Gemma 3) are tokens in plain text as well, as in llama.cpp,
//! and are not restricted.

use std::ops::Range;

use super::content::{render_located, Located};
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

/// A rendered conversation that knows which of its bytes are message content.
#[derive(Clone, Debug)]
pub struct ChatPrompt {
    located: Located,
    contents: Vec<String>,
}

impl ChatPrompt {
    /// Render `messages` with `template` and locate their content.
    pub fn render(
        template: &ChatTemplate,
        messages: &[ChatMessage],
        opts: &RenderOptions,
    ) -> Result<ChatPrompt, Error> {
        Ok(ChatPrompt {
            located: render_located(template, messages, opts)?,
            contents: messages.iter().map(|m| m.content.clone()).collect(),
        })
    }

    /// The rendered text.
    pub fn text(&self) -> &str {
        &self.located.text
    }

    /// Byte ranges of [`text`](Self::text) that are message content (sorted, disjoint),
    /// or `None` when they could not be located.
    pub fn content_ranges(&self) -> Option<&[Range<usize>]> {
        self.located.content.as_deref()
    }

    /// Token ids: control tokens only from the template's markup, content as text.
    /// BOS is added only when the vocab wants it and the template did not write it.
    pub fn tokens(&self, tokenizer: &Tokenizer) -> Vec<u32> {
        let text = self.text();
        let mut ids = match &self.located.content {
            Some(ranges) => {
                tokenizer.encode_special_where(text, &|_, at: Range<usize>| !overlaps(ranges, &at))
            }
            None => {
                let in_content = |id: u32| {
                    tokenizer
                        .token_text(id)
                        .is_some_and(|t| self.contents.iter().any(|c| c.contains(t)))
                };
                tokenizer.encode_special_where(text, &|id, _| !in_content(id))
            }
        };
        if tokenizer.add_bos() {
            if let Some(bos) = tokenizer.bos() {
                if ids.first() != Some(&bos) {
                    ids.insert(0, bos);
                }
            }
        }
        ids
    }
}

/// Whether `at` overlaps any of the sorted, disjoint `ranges`.
fn overlaps(ranges: &[Range<usize>], at: &Range<usize>) -> bool {
    // First range that ends after `at` starts; it overlaps iff it starts before `at` ends.
    let i = ranges.partition_point(|r| r.end <= at.start);
    ranges.get(i).is_some_and(|r| r.start < at.end)
}

/// Render `messages` with `template` and tokenize the result: the template's markup
/// carries the control tokens, message content is plain text ([`ChatPrompt::tokens`]).
pub fn chat_prompt_tokens(
    template: &ChatTemplate,
    tokenizer: &Tokenizer,
    messages: &[ChatMessage],
    opts: &RenderOptions,
) -> Result<Vec<u32>, Error> {
    Ok(ChatPrompt::render(template, messages, opts)?.tokens(tokenizer))
}

#[cfg(test)]
mod tests {
    use super::overlaps;

    #[test]
    fn overlap_is_exact_at_the_edges() {
        let r = [2..5, 8..9];
        assert!(!overlaps(&r, &(0..2)));
        assert!(overlaps(&r, &(0..3)));
        assert!(overlaps(&r, &(4..8)));
        assert!(!overlaps(&r, &(5..8)));
        assert!(overlaps(&r, &(8..20)));
        assert!(!overlaps(&r, &(9..20)));
        assert!(!overlaps(&[], &(0..1)));
    }
}
