//! `cargo xtask fuzz [--runs N] [--seconds S] [TARGET]…`: the libFuzzer targets of
//! `fuzz/` (GGUF reader whole-file and prefix, tokenizer, chat template, sampler).
//!
//! cargo-fuzz needs a nightly toolchain (sanitizer flags); `.ci/run` installs it and
//! cargo-fuzz. The fuzz crate is outside the workspace, so its build never touches the
//! stable one. Each target reads the committed seeds (`fuzz/seeds/TARGET`, read-only)
//! and grows a corpus under `target/fuzz/corpus/TARGET`, kept between runs so a warm CI
//! machine starts where the last run ended. A crash leaves its input in
//! `target/fuzz/artifacts/TARGET/` and fails the step: turn it into a regression test
//! (see the README's fuzzing section).

use crate::{models, workspace_root};
use std::path::PathBuf;
use std::process::Command;

pub const TARGETS: [&str; 5] = [
    "gguf_file",
    "gguf_prefix",
    "tokenizer",
    "chat_template",
    "sampler",
];

/// Seconds per target when neither `--runs` nor `--seconds` is given (the CI smoke).
pub const SMOKE_SECONDS: u32 = 20;

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("fuzz")
}

/// cargo through rustup's nightly, without the variables the outer (stable) cargo set
/// for this process. `crate::run` runs it in the workspace root, where cargo-fuzz finds
/// `fuzz/`.
fn nightly_cargo() -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", "cargo"])
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env("CARGO_TARGET_DIR", target_dir());
    cmd
}

fn check_tools() -> Result<(), String> {
    let ok = |cmd: &mut Command| cmd.output().map(|o| o.status.success()).unwrap_or(false);
    if !ok(Command::new("rustup").args(["run", "nightly", "rustc", "--version"])) {
        return Err(
            "fuzzing needs a nightly toolchain: rustup toolchain install nightly --profile minimal"
                .into(),
        );
    }
    if !ok(nightly_cargo().args(["fuzz", "--version"])) {
        return Err("fuzzing needs cargo-fuzz: cargo install cargo-fuzz --locked".into());
    }
    Ok(())
}

/// Parse the verb's arguments and run.
pub fn main(args: &[String]) -> Result<(), String> {
    let mut runs = None;
    let mut seconds = None;
    let mut targets = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut number = |what: &str| -> Result<u64, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{what} needs a number"))
        };
        match a.as_str() {
            "--runs" => runs = Some(number("--runs")?),
            "--seconds" => seconds = Some(number("--seconds")?),
            t if TARGETS.contains(&t) => targets.push(t.to_string()),
            other => {
                return Err(format!(
                    "unknown fuzz argument {other:?} (targets: {})",
                    TARGETS.join(", ")
                ))
            }
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|t| t.to_string()).collect();
    }
    if runs.is_none() && seconds.is_none() {
        seconds = Some(SMOKE_SECONDS as u64);
    }
    fuzz(&targets, runs, seconds)
}

/// Build every target once, then run each in turn; fails on the first crash.
pub fn fuzz(targets: &[String], runs: Option<u64>, seconds: Option<u64>) -> Result<(), String> {
    check_tools()?;
    let root = workspace_root();
    // The tokenizer target reads the test models' vocabularies.
    models::fetch_all()?;
    // The workspace's `cargo fmt --all` does not reach the excluded crate.
    crate::run(crate::cargo().args([
        "fmt",
        "--manifest-path",
        "fuzz/Cargo.toml",
        "--",
        "--check",
    ]))?;
    crate::run(nightly_cargo().args(["fuzz", "build"]))?;
    for t in targets {
        let corpus = target_dir().join("corpus").join(t);
        let artifacts = target_dir().join("artifacts").join(t);
        for d in [&corpus, &artifacts] {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let mut cmd = nightly_cargo();
        cmd.args(["fuzz", "run", t])
            .arg(&corpus)
            .arg(root.join("fuzz/seeds").join(t))
            .env("WISP_MODELS", models::models_dir())
            .arg("--")
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            // A hang is a bug too: no input may take seconds.
            .arg("-timeout=10")
            .arg("-print_final_stats=1");
        if let Some(n) = runs {
            cmd.arg(format!("-runs={n}"));
        }
        if let Some(s) = seconds {
            cmd.arg(format!("-max_total_time={s}"));
        }
        eprintln!("--- fuzz {t}");
        crate::run(&mut cmd).map_err(|e| {
            format!(
                "fuzz target {t} failed: {e}\n  inputs that crashed: {}\n  reproduce: cd fuzz && cargo +nightly fuzz run {t} <file>",
                artifacts.display()
            )
        })?;
    }
    Ok(())
}
