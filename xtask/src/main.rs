//! Every build, fetch and test step of the project as `cargo xtask <verb>`.

mod bench;
mod fuzz;
mod mobile;
mod models;
mod openai_clients;
mod serve;
mod synth;
mod synth_cmd;
mod web;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  chat [MODEL_KEY]   fetch the default model (SmolLM2) and chat with it (`wisp chat`)
  fetch-models       download the test models and llama.cpp's test vectors (cached)
  openai-clients     install the pinned PyPI and npm `openai` clients the `wisp serve` tests use
  demo [--no-build]  build the npm package, fetch SmolLM2 and serve the chat demo page
  js                 build the npm package (wasm + JS) into bindings/js/dist
  js-test [--no-build]  the browser tests (package and demo) in headless Chromium
  ci [--full]        fmt check, clippy -D warnings, every test; --full adds the slow checks
  fuzz [--runs N] [--seconds S] [TARGET]...
                     run the fuzz targets (default: all, 20 s each; needs nightly + cargo-fuzz)
  bindings [--check] regenerate the Swift/Kotlin bindings (--check: fail on drift)
  kotlin             the Kotlin bindings' tests on the JVM (kotlinc 2.4.20, JNA)
  swift              the Swift bindings' XCTests (Swift 6.0.3 in a trixie chroot)
  mobile-targets     check iOS and build the Android static library
  wasm-kernels       the CPU kernels' tests on wasm32 + simd128 under Node's WASI
  bench [OPTIONS]    speed: wisp bench on every model + the roofline; --vs llama.cpp compares;
                     --smoke is CI's check (see xtask/src/bench.rs)
  synth [OPTIONS]    write random-weight GGUFs of the 2B-4B families (see xtask/src/synth_cmd.rs)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("fetch-models") => models::fetch_all().map(|_| ()),
        Some("openai-clients") => openai_clients::install(),
        Some("ci") => ci(args.iter().any(|a| a == "--full")),
        Some("fuzz") => fuzz::main(&args[1..]),
        Some("js") => web::js(),
        Some("demo") => web::demo(!args.iter().any(|a| a == "--no-build")),
        Some("js-test") => web::js_test(!args.iter().any(|a| a == "--no-build")),
        Some("bindings") => mobile::bindings(!args.iter().any(|a| a == "--check")).map(|_| ()),
        Some("kotlin") => mobile::kotlin(),
        Some("swift") => mobile::swift(),
        Some("mobile-targets") => mobile::mobile_targets(),
        Some("wasm-kernels") => web::wasm_kernel_tests(),
        Some("synth") => synth_cmd::main(&args[1..]),
        Some("bench") => bench::main(&args[1..]),
        Some("chat") => chat(args.get(1).map(String::as_str).unwrap_or("smollm2")),
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

/// Run a command in the workspace root, failing with its name if it fails.
pub fn run(cmd: &mut Command) -> Result<(), String> {
    cmd.current_dir(workspace_root());
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed ({status})"))
    }
}

pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn chat(key: &str) -> Result<(), String> {
    let paths = models::fetch_all()?;
    let model = paths
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, p)| p.clone())
        .ok_or_else(|| format!("no model named {key} (smollm2, gemma3, qwen2)"))?;
    run(cargo()
        .args([
            "run",
            "--release",
            "--quiet",
            "-p",
            "wisp-cli",
            "--",
            "chat",
        ])
        .arg(model))
}

/// The whole test suite, each step timed.
fn ci(full: bool) -> Result<(), String> {
    let started = Instant::now();
    let mut timings: Vec<(String, f64)> = Vec::new();
    let mut step = |name: &str, f: &mut dyn FnMut() -> Result<(), String>| {
        eprintln!("\n=== {name}");
        let t = Instant::now();
        let r = f();
        let secs = t.elapsed().as_secs_f64();
        eprintln!(
            "=== {name}: {} in {secs:.1} s",
            if r.is_ok() { "ok" } else { "FAILED" }
        );
        timings.push((name.to_string(), secs));
        r
    };
    step("fmt", &mut || {
        run(cargo().args(["fmt", "--all", "--", "--check"]))
    })?;
    step("clippy", &mut || {
        run(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    step("clippy cpu-only", &mut || {
        // The runtime without its GPU half (what the fuzz targets build).
        run(cargo().args([
            "clippy",
            "-p",
            "wisp",
            "--no-default-features",
            "--lib",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    step("clippy wasm", &mut || {
        run(cargo().args([
            "clippy",
            "-p",
            "wisp-js",
            "--target",
            "wasm32-unknown-unknown",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    step("fetch-models", &mut || models::fetch_all().map(|_| ()))?;
    step("openai-clients", &mut openai_clients::install)?;
    step("tests", &mut || {
        let mut cmd = cargo();
        cmd.args(["test", "--workspace", "--no-fail-fast"]);
        if full {
            cmd.env("WISP_FULL", "1");
        }
        run(&mut cmd)
    })?;
    // A short smoke of every fuzz target (the long campaigns are run by hand).
    step("fuzz", &mut || {
        let targets: Vec<String> = fuzz::TARGETS.iter().map(|t| t.to_string()).collect();
        fuzz::fuzz(&targets, None, Some(fuzz::SMOKE_SECONDS as u64))
    })?;
    // Benchmarks are not timed tests: this only checks the tools run and report sane JSON.
    step("bench smoke", &mut || bench::main(&["--smoke".to_string()]))?;
    step("wasm kernels", &mut web::wasm_kernel_tests)?;
    step("browser", &mut || web::js_test(true))?;
    step("kotlin", &mut mobile::kotlin)?;
    step("swift", &mut mobile::swift)?;
    step("mobile-targets", &mut mobile::mobile_targets)?;
    eprintln!("\nsuite times:");
    for (name, secs) in &timings {
        eprintln!("  {name:<14} {secs:>7.1} s");
    }
    eprintln!(
        "  {:<14} {:>7.1} s",
        "total",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
