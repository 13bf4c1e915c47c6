//! Chat template compilation and rendering: arbitrary template source and messages.
//! Input: a control byte, then NUL-separated fields: the template source, then
//! (role, content) pairs. The control byte sets add_generation_prompt, tools,
//! extra context, BOS/EOS texts and the clock.
//!
//! Rendering runs under smaller limits than the default (the same code paths, the same
//! checks), so one execution stays in the milliseconds; the default fuel is a
//! proportional budget of the same interpreter.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wisp::chat::{ChatMessage, ChatTemplate, DateTime, Limits, RenderOptions};

const LIMITS: Limits = Limits {
    fuel: 20_000,
    max_output_bytes: 64 << 10,
};

fuzz_target!(|input: &[u8]| {
    let Some((&ctl, rest)) = input.split_first() else {
        return;
    };
    let mut fields = rest.split(|&b| b == 0).map(String::from_utf8_lossy);
    let Some(source) = fields.next() else {
        return;
    };
    let mut messages = Vec::new();
    while let (Some(role), Some(content)) = (fields.next(), fields.next()) {
        messages.push(ChatMessage::new(role, content));
    }
    let Ok(template) = ChatTemplate::new(&source) else {
        return;
    };
    let template = template.with_limits(LIMITS);
    let opts = RenderOptions {
        add_generation_prompt: ctl & 1 != 0,
        bos_token: if ctl & 2 != 0 {
            "<s>".into()
        } else {
            String::new()
        },
        eos_token: if ctl & 2 != 0 {
            "</s>".into()
        } else {
            String::new()
        },
        tools: (ctl & 4 != 0).then(|| {
            serde_json::json!([{"type": "function", "function": {"name": "get_weather",
                "description": "Weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                "required": ["city"]}}}])
        }),
        now: (ctl & 8 == 0).then(|| DateTime::from_unix(1_700_000_000)),
        extra_context: (ctl & 16 != 0)
            .then(|| serde_json::json!({"enable_thinking": ctl & 32 != 0, "documents": []})),
    };
    if let Ok(out) = template.render(&messages, &opts) {
        assert!(
            out.len() <= LIMITS.max_output_bytes,
            "output over the limit"
        );
    }
});
