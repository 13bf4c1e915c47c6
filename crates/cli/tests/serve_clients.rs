//! The official OpenAI clients, PyPI `openai` and npm `openai`, unchanged but for their
//! base URL, against a real `wisp serve` (tests/openai-clients/client.{py,mjs}): list
//! models, a greedy chat completion whole and streamed (equal to each other and to `wisp
//! run --special` on the rendered prompt), a stop string, a raw completion, usage, and
//! errors surfacing as the client's own exception classes.
//!
//! The clients are installed by `cargo xtask openai-clients` (pinned versions: Python's
//! into `target/openai-clients/py`, npm's from the committed lockfile into
//! `tests/openai-clients/node_modules`); like a missing model, missing clients fail the
//! test with that instruction rather than skipping it.

mod common;

use common::{rendered_chat, wisp_run, Server};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;

const SYSTEM: &str = "You are a concise assistant.";
const USER: &str = "Why is the sky blue? Explain it to a child.";
const MODEL_ID: &str = "SmolLM2-135M-Instruct.Q4_1";

fn clients_dir() -> PathBuf {
    wisp_e2e::workspace_root().join("tests/openai-clients")
}

fn python_path() -> PathBuf {
    let dir = std::env::var_os("WISP_OPENAI_PY")
        .map(PathBuf::from)
        .unwrap_or_else(|| wisp_e2e::workspace_root().join("target/openai-clients/py"));
    assert!(
        dir.join("openai").exists(),
        "{} has no `openai` package: run `cargo xtask openai-clients` first",
        dir.display()
    );
    dir
}

fn run_client(cmd: &mut Command, case: &Value) -> Value {
    let o = cmd
        .env("WISP_CASE", case.to_string())
        .output()
        .expect("run client");
    assert!(
        o.status.success(),
        "client failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    let stdout = String::from_utf8(o.stdout).unwrap();
    serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("client output is not JSON ({e}): {stdout}"))
}

fn check(out: &Value, expected_chat: &str, expected_stop: &str, expected_completion: &str) {
    let who = format!("{} {}", out["client"], out["version"]);
    assert_eq!(out["models"], json!([MODEL_ID]), "{who}");
    assert_eq!(out["chat"], expected_chat, "{who}");
    assert_eq!(out["chat_stream"], expected_chat, "{who}: streamed text");
    assert!(
        out["chat_id"].as_str().unwrap().starts_with("chatcmpl-"),
        "{who}"
    );
    let usage = &out["chat_usage"];
    assert_eq!(&out["stream_usage"], usage, "{who}: usage chunk");
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );
    assert!(["stop", "length"].contains(&out["chat_finish"].as_str().unwrap()));
    assert_eq!(out["chat_stop"], expected_stop, "{who}: stop string");
    assert_eq!(out["chat_stop_finish"], "stop", "{who}");
    assert_eq!(out["completion"], expected_completion, "{who}: completion");
    let n = out["completion_usage"]["completion_tokens"]
        .as_u64()
        .unwrap();
    assert!((1..=10).contains(&n), "{who}: {n} completion tokens");
    let errors = &out["errors"];
    let class = |k: &str| (errors[k]["class"].clone(), errors[k]["status"].clone());
    assert_eq!(class("n2"), (json!("BadRequestError"), json!(400)), "{who}");
    assert_eq!(
        class("unknown_model"),
        (json!("NotFoundError"), json!(404)),
        "{who}"
    );
    assert_eq!(
        class("bad_key"),
        (json!("AuthenticationError"), json!(401)),
        "{who}"
    );
    assert_eq!(
        class("embeddings"),
        (json!("BadRequestError"), json!(400)),
        "{who}"
    );
}

#[test]
fn official_openai_clients_drive_wisp_serve() {
    let py = python_path();
    let node_modules = clients_dir().join("node_modules/openai");
    assert!(
        node_modules.exists(),
        "{} is missing: run `cargo xtask openai-clients` first",
        node_modules.display()
    );

    let rendered = rendered_chat("smollm2", &[("system", SYSTEM), ("user", USER)]);
    let expected_chat = wisp_run("smollm2", &rendered, 48, &[]);
    let stop = expected_chat
        .split_whitespace()
        .nth(3)
        .expect("a real answer")
        .to_string();
    let expected_stop = &expected_chat[..expected_chat.find(&stop).unwrap()];
    let prompt = "Once upon a time, in a small village,";
    let expected_completion = wisp_run("smollm2", prompt, 10, &[]);

    let server = Server::start("smollm2", &["--device", "cpu", "--api-key", "test-key"]);
    let case = json!({
        "base_url": format!("http://127.0.0.1:{}/v1", server.port),
        "api_key": "test-key",
        "model": MODEL_ID,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}],
        "max_tokens": 48,
        "stop": stop,
        "prompt": prompt,
        "completion_tokens": 10,
    });
    let dir = clients_dir();
    let python = run_client(
        Command::new("python3")
            .arg(dir.join("client.py"))
            .env("PYTHONPATH", &py)
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        &case,
    );
    check(&python, &expected_chat, expected_stop, &expected_completion);
    let node = run_client(
        Command::new("node")
            .arg(dir.join("client.mjs"))
            .current_dir(&dir),
        &case,
    );
    check(&node, &expected_chat, expected_stop, &expected_completion);
}
