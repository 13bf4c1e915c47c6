//! Chat templates render exactly as Hugging Face transformers (Python jinja2) renders
//! them: the two real models' own templates and llama.cpp's collection of ~70 templates,
//! against `tests/fixtures/chat/rendered.json` (made by
//! `tests/reference/render_templates.py`).
//!
//! A case matches when both give the same text, or both fail. When the template itself
//! failed through `raise_exception`, the message must be the same too; other Python
//! failures (a `TypeError` from iterating `None`, an undefined variable) only have to
//! fail here as well, since the two engines word their errors differently.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value as Json;
use wisp::chat::{ChatMessage, ChatTemplate, DateTime, RenderOptions};
use wisp::gguf::GgufFile;

/// Cases where minijinja cannot render what jinja2 renders, each with the reason.
/// Keyed by "template file/conversation id". Empty is the goal.
const KNOWN_MISMATCHES: &[(&str, &str)] = &[
    // jinja2's Markup escapes the other operand of `+`: `"…"|safe + t | tojson` HTML-
    // escapes the JSON (`&#34;name&#34;`), almost certainly not what the template's
    // authors meant. minijinja has no hook on `+`, so Wisp prints the JSON unescaped.
    (
        "meetkai-functionary-medium-v3.1.jinja/basic_tools",
        "Markup + str escaping",
    ),
    (
        "meetkai-functionary-medium-v3.1.jinja/extra",
        "Markup + str escaping",
    ),
];

fn fixture() -> Json {
    let path = wisp_e2e::fixtures_dir().join("chat/rendered.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("valid fixture JSON")
}

/// The fixture's fixed clock (`2025-03-14T09:26:53`).
fn fixture_now(fx: &Json) -> DateTime {
    let s = fx["now"].as_str().expect("now");
    let n = |r: std::ops::Range<usize>| s[r].parse::<u16>().expect("digits");
    DateTime {
        year: n(0..4) as i32,
        month: n(5..7) as u8,
        day: n(8..10) as u8,
        hour: n(11..13) as u8,
        minute: n(14..16) as u8,
        second: n(17..19) as u8,
    }
}

fn model_key(file: &str) -> &'static str {
    wisp_e2e::MODELS
        .iter()
        .find(|m| m.file == file)
        .map(|m| m.key)
        .unwrap_or_else(|| panic!("fixture names unknown model {file}"))
}

fn load_template(name: &str, kind: &str) -> ChatTemplate {
    if kind == "gguf" {
        let file = GgufFile::open(&wisp_e2e::model_path(model_key(name))).expect("open model");
        let t = ChatTemplate::from_gguf(&file.header).expect("model template compiles");
        assert!(!t.is_builtin(), "{name} ships a template");
        t
    } else {
        let path: PathBuf = wisp_e2e::llama_cpp_dir().join("templates").join(name);
        let src = std::fs::read_to_string(&path).expect("read template");
        ChatTemplate::new(&src).unwrap_or_else(|e| panic!("{name} does not compile: {e}"))
    }
}

#[test]
fn templates_render_like_transformers() {
    let fx = fixture();
    let now = fixture_now(&fx);
    let convs = fx["conversations"].as_object().expect("conversations");
    let known: BTreeMap<&str, &str> = KNOWN_MISMATCHES.iter().copied().collect();

    let (mut texts, mut raised, mut failed) = (0, 0, 0);
    let mut mismatches = Vec::new();
    let mut known_seen = Vec::new();
    for (name, t) in fx["templates"].as_object().expect("templates") {
        let tmpl = load_template(name, t["kind"].as_str().expect("kind"));
        for (conv_id, expected) in t["cases"].as_object().expect("cases") {
            let conv = &convs[conv_id];
            let messages: Vec<ChatMessage> =
                serde_json::from_value(conv["messages"].clone()).expect("messages");
            let opts = RenderOptions {
                add_generation_prompt: conv["add_generation_prompt"].as_bool().expect("agp"),
                bos_token: t["bos_token"].as_str().expect("bos").into(),
                eos_token: t["eos_token"].as_str().expect("eos").into(),
                tools: Some(conv["tools"].clone()).filter(|v| !v.is_null()),
                now: Some(now),
                extra_context: conv.get("extra").cloned(),
            };
            let got = tmpl.render(&messages, &opts);
            let id = format!("{name}/{conv_id}");
            let problem = match (expected.get("text"), &got) {
                (Some(want), Ok(text)) if want.as_str() == Some(text.as_str()) => {
                    texts += 1;
                    None
                }
                (Some(want), Ok(text)) => Some(format!(
                    "text differs at byte {}:\n--- python\n{}\n--- wisp\n{}",
                    first_diff(want.as_str().unwrap_or(""), text),
                    want.as_str().unwrap_or(""),
                    text
                )),
                (Some(_), Err(e)) => Some(format!("python renders, wisp fails: {e}")),
                (None, Ok(text)) => Some(format!(
                    "python fails ({}), wisp renders:\n{text}",
                    expected["error"]
                )),
                (None, Err(e)) => {
                    let want = expected["error"].as_str().unwrap_or("");
                    if expected["raised"].as_bool() == Some(true) {
                        if *e == wisp::Error::Template(want.to_string()) {
                            raised += 1;
                            None
                        } else {
                            Some(format!("raise_exception({want:?}) but wisp: {e}"))
                        }
                    } else {
                        failed += 1;
                        None
                    }
                }
            };
            if let Some(p) = problem {
                if known.contains_key(id.as_str()) {
                    known_seen.push(id);
                } else {
                    mismatches.push(format!("{id}: {p}"));
                }
            }
        }
    }
    eprintln!(
        "{texts} same text, {raised} same raise_exception message, {failed} both fail, \
         {} known mismatches, {} unexpected mismatches",
        known_seen.len(),
        mismatches.len()
    );
    for k in known.keys() {
        assert!(
            known_seen.iter().any(|s| s == k),
            "{k} is in KNOWN_MISMATCHES but matches now: remove it"
        );
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n\n{}",
        mismatches.len(),
        mismatches.join("\n\n")
    );
}

fn first_diff(a: &str, b: &str) -> usize {
    a.bytes()
        .zip(b.bytes())
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}

#[test]
fn gemma3_without_template_gets_builtin_gemma_turns() {
    let file = GgufFile::open(&wisp_e2e::model_path("gemma3")).expect("open gemma3");
    assert!(file.header.get_str("tokenizer.chat_template").is_none());
    let t = ChatTemplate::from_gguf(&file.header).expect("builtin");
    assert!(t.is_builtin());
    let out = t
        .render(
            &[
                ChatMessage::new("system", "Be brief."),
                ChatMessage::new("user", "Hi"),
            ],
            &RenderOptions {
                bos_token: "<bos>".into(),
                ..Default::default()
            },
        )
        .expect("render");
    assert_eq!(
        out,
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
    );
}

/// Templates are untrusted input: every prefix-cut of every real template either fails
/// to compile or renders/fails with an error, never a panic.
#[test]
fn truncated_templates_fail_cleanly() {
    let dir = wisp_e2e::llama_cpp_dir().join("templates");
    let messages = [
        ChatMessage::new("system", "s"),
        ChatMessage::new("user", "u"),
    ];
    let opts = RenderOptions {
        tools: Some(serde_json::json!([{"type": "function", "function": {"name": "f"}}])),
        ..Default::default()
    };
    let mut cuts = 0;
    for entry in std::fs::read_dir(&dir).expect("templates dir") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("jinja") {
            continue;
        }
        let src = std::fs::read_to_string(&path).expect("read");
        for k in 1..16 {
            let mut cut = src.len() * k / 16;
            while !src.is_char_boundary(cut) {
                cut -= 1;
            }
            if let Ok(t) = ChatTemplate::new(&src[..cut]) {
                let _ = t.render(&messages, &opts);
            }
            cuts += 1;
        }
    }
    assert!(cuts > 500, "{cuts}");
}
