//! Unit tests: built-in formats, the HF globals, resource limits.

use super::*;
use crate::gguf::GgufHeader;
use std::time::{Duration, Instant};

fn msgs(pairs: &[(&str, &str)]) -> Vec<ChatMessage> {
    pairs
        .iter()
        .map(|(r, c)| ChatMessage::new(*r, *c))
        .collect()
}

fn conversation() -> Vec<ChatMessage> {
    msgs(&[
        ("system", "Be brief. "),
        ("user", "Hi"),
        ("assistant", "Hello!"),
        ("user", "Bye"),
    ])
}

#[test]
fn gemma_folds_system_into_first_user_turn() {
    let t = ChatTemplate::builtin(Builtin::Gemma);
    assert!(t.is_builtin());
    let opts = RenderOptions {
        bos_token: "<bos>".into(),
        ..Default::default()
    };
    let out = t.render(&conversation(), &opts).unwrap();
    assert_eq!(
        out,
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n\
         <start_of_turn>model\nHello!<end_of_turn>\n\
         <start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n"
    );
    let opts = RenderOptions {
        add_generation_prompt: false,
        ..Default::default()
    };
    let out = t.render(&msgs(&[("user", " x ")]), &opts).unwrap();
    assert_eq!(out, "<start_of_turn>user\nx<end_of_turn>\n");
}

#[test]
fn chatml_and_llama3() {
    let out = ChatTemplate::builtin(Builtin::ChatMl)
        .render(&conversation(), &RenderOptions::default())
        .unwrap();
    assert_eq!(
        out,
        "<|im_start|>system\nBe brief. <|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
         <|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n\
         <|im_start|>assistant\n"
    );
    let opts = RenderOptions {
        bos_token: "<|begin_of_text|>".into(),
        ..Default::default()
    };
    let out = ChatTemplate::builtin(Builtin::Llama3)
        .render(&conversation()[..2], &opts)
        .unwrap();
    assert_eq!(
        out,
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>\
         <|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>\
         <|start_header_id|>assistant<|end_header_id|>\n\n"
    );
    assert_eq!(strip_bos(&out, "<|begin_of_text|>").len(), out.len() - 17);
}

#[test]
fn raise_exception_carries_the_message() {
    let t = ChatTemplate::new(
        "{% macro check(m) %}{% if m.role == 'tool' %}{{ raise_exception('No tools: ' ~ m.role) }}{% endif %}{% endmacro %}\
         {% for m in messages %}{{ check(m) }}{{ m.content }}{% endfor %}",
    )
    .unwrap();
    let err = t
        .render(
            &msgs(&[("user", "a"), ("tool", "b")]),
            &RenderOptions::default(),
        )
        .unwrap_err();
    assert_eq!(err, Error::Template("No tools: tool".into()));
    assert_eq!(
        t.render(&msgs(&[("user", "a")]), &RenderOptions::default())
            .unwrap(),
        "a"
    );
}

#[test]
fn syntax_errors_are_template_errors() {
    assert!(matches!(
        ChatTemplate::new("{% for x in %}"),
        Err(Error::Template(_))
    ));
    assert!(matches!(
        ChatTemplate::new("{{ messages[0].content.nope() }}")
            .unwrap()
            .render(&msgs(&[("user", "a")]), &RenderOptions::default()),
        Err(Error::Template(_))
    ));
}

#[test]
fn python_flavoured_rendering() {
    let t = ChatTemplate::new(
        "{{ none }} {{ true }} {{ [1, 'a'] }} {{ {'k': none} }} {{ 1e16 }}|\
         {{ tools | tojson }}|{{ tools[0] | tojson(indent=2) }}|{{ ' x '.strip() }}|\
         {{ 'a,b'.split(',') }}|{{ strftime_now('%d %b %Y') }}|{{ enable_thinking }}\
         {% generation %}|g{% endgeneration %}",
    )
    .unwrap();
    let opts = RenderOptions {
        tools: Some(serde_json::json!([{"z": 1, "a": "é"}])),
        now: Some(DateTime::from_unix(1_741_944_413)),
        extra_context: Some(serde_json::json!({"enable_thinking": false})),
        ..Default::default()
    };
    assert_eq!(
        t.render(&[], &opts).unwrap(),
        "None True [1, 'a'] {'k': None} 1e+16|[{\"z\": 1, \"a\": \"é\"}]|\
         {\n  \"z\": 1,\n  \"a\": \"é\"\n}|x|['a', 'b']|14 Mar 2025|False|g"
    );
}

#[test]
fn runaway_loops_run_out_of_fuel_quickly() {
    let t = ChatTemplate::new(
        "{% for i in range(100000) %}{% for j in range(100000) %}{% set x = i * j %}{% endfor %}{% endfor %}",
    )
    .unwrap();
    let start = Instant::now();
    let err = t.render(&[], &RenderOptions::default()).unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert!(err.to_string().contains("budget"), "{err}");
}

#[test]
fn recursion_is_bounded() {
    let t = ChatTemplate::new("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}").unwrap();
    assert!(matches!(
        t.render(&[], &RenderOptions::default()),
        Err(Error::Template(_))
    ));
}

#[test]
fn huge_output_is_cut_off() {
    // 10^5 * 10^5 bytes = 10 GB if nothing stopped it.
    let t =
        ChatTemplate::new("{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}").unwrap();
    let start = Instant::now();
    let err = t.render(&[], &RenderOptions::default()).unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert!(err.to_string().contains("output exceeds"), "{err}");

    let small = ChatTemplate::new("{{ 'x' * 100 }}")
        .unwrap()
        .with_limits(Limits {
            fuel: 1000,
            max_output_bytes: 99,
        });
    assert!(small.render(&[], &RenderOptions::default()).is_err());
}

#[test]
fn extra_context_must_be_an_object() {
    let t = ChatTemplate::builtin(Builtin::ChatMl);
    let opts = RenderOptions {
        extra_context: Some(serde_json::json!([1])),
        ..Default::default()
    };
    assert!(matches!(
        t.render(&[], &opts),
        Err(Error::InvalidRequest(_))
    ));
}

#[test]
fn iterating_none_fails_like_python() {
    let t = ChatTemplate::new("{% for t in tools %}{{ t }}{% endfor %}ok").unwrap();
    let err = t.render(&[], &RenderOptions::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("'NoneType' object is not iterable"),
        "{err}"
    );
    let opts = RenderOptions {
        tools: Some(serde_json::json!(["a"])),
        ..Default::default()
    };
    assert_eq!(t.render(&[], &opts).unwrap(), "aok");
}

#[test]
fn concatenation_and_join_print_python_values() {
    let t =
        ChatTemplate::new("{{ none ~ 'a' }}|{{ [none, true]|join(',') }}|{{ 'a' ~ 1.0 }}").unwrap();
    assert_eq!(
        t.render(&[], &RenderOptions::default()).unwrap(),
        "Nonea|None,True|a1.0"
    );
}

/// A header-only GGUF with string metadata (`tokens` as `tokenizer.ggml.tokens`).
fn gguf_header(kv: &[(&str, &str)], tokens: &[&str]) -> GgufHeader {
    fn put_str(b: &mut Vec<u8>, s: &str) {
        b.extend_from_slice(&(s.len() as u64).to_le_bytes());
        b.extend_from_slice(s.as_bytes());
    }
    let mut b = b"GGUF".to_vec();
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(&(kv.len() as u64 + 1).to_le_bytes());
    for (k, v) in kv {
        put_str(&mut b, k);
        b.extend_from_slice(&8u32.to_le_bytes());
        put_str(&mut b, v);
    }
    put_str(&mut b, "tokenizer.ggml.tokens");
    b.extend_from_slice(&9u32.to_le_bytes());
    b.extend_from_slice(&8u32.to_le_bytes());
    b.extend_from_slice(&(tokens.len() as u64).to_le_bytes());
    for t in tokens {
        put_str(&mut b, t);
    }
    b.resize(b.len().next_multiple_of(32), 0);
    GgufHeader::parse(&b, Some(b.len() as u64)).expect("valid GGUF")
}

#[test]
fn fallback_follows_the_architecture() {
    let pick = |arch: &str, tokens: &[&str]| {
        let t = ChatTemplate::from_gguf(&gguf_header(&[("general.architecture", arch)], tokens))
            .unwrap();
        assert!(t.is_builtin());
        t.source().to_string()
    };
    let toks = ["<s>", "<|start_header_id|>", "<|end_header_id|>"];
    assert_eq!(pick("gemma3", &[]), Builtin::Gemma.source());
    assert_eq!(pick("gemma2", &[]), Builtin::Gemma.source());
    assert_eq!(pick("qwen2", &toks), Builtin::ChatMl.source());
    assert_eq!(pick("llama", &toks), Builtin::Llama3.source());
    assert_eq!(pick("llama", &["<s>"]), Builtin::ChatMl.source());
    assert_eq!(pick("phi3", &[]), Builtin::ChatMl.source());

    let own = gguf_header(
        &[
            ("general.architecture", "gemma3"),
            ("tokenizer.chat_template", "{{ messages[0].content }}"),
        ],
        &[],
    );
    let t = ChatTemplate::from_gguf(&own).unwrap();
    assert!(!t.is_builtin());
    assert_eq!(
        t.render(&msgs(&[("user", "hi")]), &RenderOptions::default())
            .unwrap(),
        "hi"
    );
}

/// Render `src` over a small conversation: it must fail with `Error::Template` within a
/// second (on a loaded 2-core machine, in a debug-ish build).
fn stops_quickly(src: &str) -> String {
    let t = ChatTemplate::new(src).unwrap_or_else(|e| panic!("{src}: {e}"));
    let start = Instant::now();
    let got = t.render(&conversation(), &RenderOptions::default());
    let took = start.elapsed();
    assert!(took < Duration::from_secs(1), "{src}: took {took:?}");
    match got {
        Err(Error::Template(m)) => m,
        other => panic!("{src}: {other:?}"),
    }
}

#[test]
fn endless_templates_stop_within_a_second() {
    for src in [
        "{% for i in range(10**9) %}x{% endfor %}",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% for k in range(100000) %}{% endfor %}{% endfor %}{% endfor %}",
        // Recursion through macros, plain and fanning out.
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
        "{% macro f(n) %}{% for i in range(10) %}{{ f(n + 1) }}{% endfor %}{% endmacro %}{{ f(0) }}",
        // A recursive loop that never bottoms out.
        "{% for m in [[1]] recursive %}{{ loop([[1]]) }}{% endfor %}",
        // A fresh megabyte per step, never kept: time, not memory.
        "{% for i in range(100000) %}{% set x = 'y' * 1000000 %}{% endfor %}",
        "{% for i in range(100000) %}{% set x %}{{ 'y' * 1000000 }}{% endset %}{% endfor %}",
    ] {
        stops_quickly(src);
    }
}

#[test]
fn gigabyte_values_are_refused_before_they_are_built() {
    for src in [
        "{{ 'x' * 10**10 }}",
        "{{ 'x' * 99999999 }}",
        // Doubling: 2^40 bytes for 40 steps of fuel.
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}",
        "{% set s = 'x' * 10000000 %}{% set s = s ~ s ~ s ~ s %}{% set s = s ~ s ~ s ~ s %}{{ s|length }}",
        // Growth from the conversation itself.
        "{{ messages * 1000000 }}",
        "{{ (messages * 1000000)|length }}",
        "{% set l = [0] * 99999999 %}{{ l|list|length }}",
        "{{ (['x' * 1000000] * 100000)|join }}",
        "{{ ','.join(['x' * 1000000] * 100000) }}",
        "{{ 'ab'|replace('', 'x' * 10000000) }}",
        "{{ 'a\nb'|indent(10**10) }}",
        "{{ '%10000000000s'|format('x') }}",
        "{{ [1]|batch(10**9, 'x')|list|length }}",
        // Nested loops printing big strings into a capture.
        "{% set x %}{% for i in range(1000) %}{% for j in range(1000) %}{{ 'y' * 100000 }}{% endfor %}{% endfor %}{% endset %}",
    ] {
        let msg = stops_quickly(src);
        assert!(
            msg.contains("budget") || msg.contains("exceeds") || msg.contains("too large"),
            "{src}: {msg}"
        );
    }
}

#[test]
fn budgeted_operators_keep_their_meaning() {
    let t = ChatTemplate::new(
        "{{ 1 + 2 }}|{{ 2 * 3 }}|{{ 1.5 * 2 }}|{{ 'a' + 'b' }}|{{ 'ab' * 2 }}|{{ 2 * 'c' }}|\
         {{ [1] + [2] }}|{{ [0] * 2 }}|{{ 'x' ~ 1 ~ none }}|{{ (1 + 2) * 3 }}|\
         {{ ('a' ~ 'b')|upper }}|{{ -(2 * 3) }}|{{ [1, 2] | join(', ') }}|{{ 'a-b'.replace('-', '+') }}",
    )
    .unwrap();
    assert_eq!(
        t.render(&[], &RenderOptions::default()).unwrap(),
        "3|6|3.0|ab|abab|cc|[1, 2]|[0, 0]|x1None|9|AB|-6|1, 2|a+b"
    );
    // The budget is per render: many renders of a template near it all succeed.
    let t = ChatTemplate::new("{{ 'x' * 10000000 }}").unwrap();
    for _ in 0..30 {
        assert_eq!(
            t.render(&[], &RenderOptions::default()).unwrap().len(),
            10_000_000
        );
    }
}
