//! `--sha256` refuses a model whose hash differs, on every command that takes a model
//! (shared/CLI.md), with the one-line error of the contract.

use std::process::{Command, Output};

/// SmolLM2-135M-Instruct Q4_1, as pinned by `cargo xtask fetch-models`.
const SMOLLM2_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

fn wisp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wisp"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run wisp")
}

fn one_line_error(o: &Output) -> String {
    assert!(!o.status.success(), "must fail");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("wisp: ") && !err.contains("panicked"),
        "{err}"
    );
    err
}

#[test]
fn every_model_command_refuses_a_wrong_hash() {
    let m = wisp_e2e::model_path("smollm2").display().to_string();
    let wrong = "0".repeat(64);
    let commands: [&[&str]; 6] = [
        &["inspect", &m],
        &["tokenize", &m, "--text", "hi"],
        &["run", &m, "--prompt", "hi", "--max-tokens", "1"],
        &["chat", &m],
        &["bench", &m, "--pp", "1", "--tg", "1", "--reps", "1"],
        &["score", &m, "--text", "hi", "--json"],
    ];
    for cmd in commands {
        let mut args = cmd.to_vec();
        args.extend(["--device", "cpu", "--sha256", &wrong]);
        let err = one_line_error(&wisp(&args));
        assert!(
            err.contains(&format!("sha256 is {SMOLLM2_SHA256}, expected {wrong}")),
            "{}: {err}",
            cmd[0]
        );
    }
}

#[test]
fn the_right_hash_is_accepted_in_any_case() {
    let m = wisp_e2e::model_path("smollm2").display().to_string();
    let upper = SMOLLM2_SHA256.to_ascii_uppercase();
    let o = wisp(&["tokenize", &m, "--text", "hi", "--json", "--sha256", &upper]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = one_line_error(&wisp(&["inspect", &m, "--sha256", "abc"]));
    assert!(err.contains("64 hex digits"), "{err}");
}

#[test]
fn a_file_that_is_not_gguf_is_refused_for_its_hash() {
    let dir = std::env::temp_dir().join(format!("wisp-sha-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("page.gguf");
    std::fs::write(&path, b"<html>not a model</html>").unwrap();
    let p = path.display().to_string();
    let err = one_line_error(&wisp(&["inspect", &p, "--sha256", SMOLLM2_SHA256]));
    assert!(
        err.contains("sha256 is") && err.contains("refusing"),
        "{err}"
    );
    // Without a hash it is the format error.
    let err = one_line_error(&wisp(&["inspect", &p]));
    assert!(err.contains("not a GGUF"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
