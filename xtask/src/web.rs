//! The browser build: the wasm engine plus the npm package (`cargo xtask js`), the demo
//! server (`cargo xtask demo`) and the browser tests in headless Chromium
//! (`cargo xtask js-test`).

use crate::{cargo, models, run, serve, workspace_root};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Must equal the `wasm-bindgen` crate version pinned in bindings/js/Cargo.toml.
const WASM_BINDGEN: &str = "0.2.130";
const TARGET: &str = "wasm32-unknown-unknown";

fn js_dir() -> PathBuf {
    workspace_root().join("bindings/js")
}

pub fn dist_dir() -> PathBuf {
    js_dir().join("dist")
}

fn tool_version(cmd: &str) -> Option<String> {
    let out = Command::new(cmd).arg("--version").output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// wasm-bindgen's CLI must match the crate exactly; install it when it does not.
fn ensure_wasm_bindgen() -> Result<(), String> {
    if tool_version("wasm-bindgen").is_some_and(|v| v.ends_with(WASM_BINDGEN)) {
        return Ok(());
    }
    eprintln!("installing wasm-bindgen-cli {WASM_BINDGEN} (once; several minutes)");
    // `--locked` fails for this crate version; see ENVIRONMENT notes in the README.
    run(cargo().args(["install", "wasm-bindgen-cli", "--version", WASM_BINDGEN]))
}

/// npm packages the build and the tests use (binaryen's wasm-opt, playwright-core).
fn ensure_node_tools() -> Result<PathBuf, String> {
    let dir = js_dir().join("tests");
    if !dir.join("node_modules/.package-lock.json").exists() {
        let mut npm = Command::new("npm");
        npm.args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir);
        let status = npm
            .status()
            .map_err(|e| format!("cannot run npm (install Node.js 18+): {e}"))?;
        if !status.success() {
            return Err(format!("npm install in {} failed", dir.display()));
        }
    }
    Ok(dir.join("node_modules"))
}

fn gzip_size(path: &Path) -> Result<u64, String> {
    let out = Command::new("gzip")
        .args(["-9", "-c"])
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run gzip: {e}"))?;
    Ok(out.stdout.len() as u64)
}

/// The flags of the threaded build: wasm threads (atomics, bulk memory) and SIMD; the
/// linker makes the memory shared and imported (each pool worker instantiates the module
/// over it) and exports the thread-local storage symbols wasm-bindgen's thread support
/// needs; the memory may grow to the whole 4 GiB of wasm32 (a shared memory declares its
/// maximum up front, and the CPU engine holds the model in it).
const MT_RUSTFLAGS: &str = "-C target-feature=+atomics,+bulk-memory,+simd128 \
    -C link-arg=--shared-memory -C link-arg=--import-memory \
    -C link-arg=--max-memory=4294967296 \
    -C link-arg=--export=__wasm_init_tls -C link-arg=--export=__tls_size \
    -C link-arg=--export=__tls_align -C link-arg=--export=__tls_base";

/// wasm-opt's flags for what rustc emits (`--all-features` output fails to load).
const WASM_OPT_FEATURES: &[&str] = &[
    "--enable-bulk-memory",
    "--enable-nontrapping-float-to-int",
    "--enable-sign-ext",
    "--enable-mutable-globals",
    "--enable-reference-types",
    "--enable-multivalue",
    "--enable-simd",
];

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// wasm-bindgen then wasm-opt one build into `dist` as `{name}.js` + `{name}_bg.wasm`.
fn bind(
    wasm: &Path,
    dist: &Path,
    name: &str,
    wasm_opt: &Path,
    threads: bool,
) -> Result<PathBuf, String> {
    run(Command::new("wasm-bindgen")
        .args(["--target", "web", "--out-name", name, "--out-dir"])
        .arg(dist)
        .arg(wasm))?;
    let out_wasm = dist.join(format!("{name}_bg.wasm"));
    if wasm_opt.exists() {
        let mut cmd = Command::new(wasm_opt);
        cmd.arg("-Oz").args(WASM_OPT_FEATURES);
        if threads {
            cmd.arg("--enable-threads");
        }
        run(cmd.arg("-o").arg(&out_wasm).arg(&out_wasm))?;
    }
    Ok(out_wasm)
}

/// The second build: the CPU engine with wasm threads (nightly: std rebuilt with
/// atomics). Its own target dir keeps both builds' caches. `None` when there is no
/// nightly toolchain (the package then runs the CPU engine on one thread).
fn build_threads() -> Result<Option<PathBuf>, String> {
    let nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !nightly {
        eprintln!(
            "warning: no nightly toolchain (`rustup toolchain install nightly`): the package \
             gets no threaded build, and its CPU engine runs on one thread"
        );
        return Ok(None);
    }
    run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))?;
    let dir = target_dir().join("wasm-mt");
    run(Command::new("rustup")
        .args([
            "run",
            "nightly",
            "cargo",
            "build",
            "-Z",
            "build-std=std,panic_abort",
        ])
        .args(["--profile", "wasm", "-p", "wisp-js", "--target", TARGET])
        .args([
            "--no-default-features",
            "--features",
            "threads",
            "--target-dir",
        ])
        .arg(&dir)
        .env(
            "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS",
            MT_RUSTFLAGS,
        )
        // The outer `cargo xtask` is stable: don't let its toolchain leak in.
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .env_remove("RUSTC"))?;
    Ok(Some(dir.join(TARGET).join("wasm/wisp_js.wasm")))
}

/// Build the npm package into bindings/js/dist (importable as is).
pub fn js() -> Result<(), String> {
    run(Command::new("rustup").args(["target", "add", TARGET]))?;
    ensure_wasm_bindgen()?;
    let node_modules = ensure_node_tools()?;
    run(cargo().args([
        "build",
        "--profile",
        "wasm",
        "-p",
        "wisp-js",
        "--target",
        TARGET,
    ]))?;
    let wasm = target_dir().join(TARGET).join("wasm/wisp_js.wasm");
    let threaded = build_threads()?;
    let dist = dist_dir();
    let _ = std::fs::remove_dir_all(&dist);
    std::fs::create_dir_all(&dist).map_err(|e| e.to_string())?;
    let wasm_opt = node_modules.join(".bin/wasm-opt");
    let out_wasm = bind(&wasm, &dist, "wisp_wasm", &wasm_opt, false)?;
    let out_mt = match &threaded {
        Some(w) => Some(bind(w, &dist, "wisp_wasm_mt", &wasm_opt, true)?),
        None => None,
    };
    for entry in std::fs::read_dir(js_dir().join("package")).map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        std::fs::copy(entry.path(), dist.join(entry.file_name())).map_err(|e| e.to_string())?;
    }
    let size = |p: &Path| -> Result<String, String> {
        let raw = std::fs::metadata(p).map_err(|e| e.to_string())?.len();
        Ok(format!(
            "{} KB, {} KB gzipped",
            raw / 1024,
            gzip_size(p)? / 1024
        ))
    };
    eprintln!(
        "npm package in {}: wisp_wasm_bg.wasm {} (target ≤ 1024 KB)",
        dist.display(),
        size(&out_wasm)?
    );
    if let Some(mt) = &out_mt {
        eprintln!(
            "  wisp_wasm_mt_bg.wasm (the CPU engine with threads, loaded only for it): {}",
            size(mt)?
        );
    }
    Ok(())
}

fn roots() -> serve::Roots {
    serve::Roots {
        demo: workspace_root().join("demo"),
        dist: dist_dir(),
        models: models::models_dir(),
    }
}

/// Build everything, fetch the default model and serve the demo until interrupted.
pub fn demo(rebuild: bool) -> Result<(), String> {
    if rebuild || !dist_dir().join("wisp_wasm_bg.wasm").exists() {
        js()?;
    }
    let models = models::fetch_all()?;
    let addr = std::env::var("WISP_DEMO_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let (bound, _) = serve::start(&addr, roots())?;
    let default = models
        .iter()
        .find(|(k, _)| *k == "smollm2")
        .and_then(|(_, p)| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    println!("Wisp demo: http://{bound}/?model=/models/{default}");
    println!("(a browser with WebGPU: Chrome/Edge 113+; Ctrl-C to stop)");
    loop {
        std::thread::park();
    }
}

/// The browser tests: the package's own tests and the demo page, in headless Chromium.
/// `rebuild: false` reuses bindings/js/dist as it is (for iterating on the tests).
pub fn js_test(rebuild: bool) -> Result<(), String> {
    if rebuild || !dist_dir().join("wisp_wasm_bg.wasm").exists() {
        js()?;
    }
    let models = models::fetch_all()?;
    let (bound, _) = serve::start("127.0.0.1:0", roots())?;
    let model = |key: &str| {
        models
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, p)| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let artifacts = target_dir().join("artifacts");
    std::fs::create_dir_all(&artifacts).map_err(|e| e.to_string())?;
    run(Command::new("node")
        .arg(js_dir().join("tests/run.mjs"))
        .env("WISP_BASE_URL", format!("http://{bound}"))
        .env("WISP_SMOLLM2", model("smollm2"))
        .env("WISP_QWEN2", model("qwen2"))
        .env("WISP_MODELS_DIR", models::models_dir())
        .env("WISP_ARTIFACTS", &artifacts)
        .env("WISP_CLI", cli_binary()?))
}

/// Build the native CLI the browser tests compare against.
fn cli_binary() -> Result<PathBuf, String> {
    run(cargo().args(["build", "-p", "wisp-cli"]))?;
    Ok(target_dir().join("debug/wisp"))
}

/// The CPU engine's kernel tests built for wasm32 with `simd128` and run under Node's
/// WASI: the browser's kernels against the scalar reference. (Only the kernel, matrix and
/// f16 tests: the thread pool's panic test needs unwinding, which wasm32 lacks.)
pub fn wasm_kernel_tests() -> Result<(), String> {
    run(Command::new("rustup").args(["target", "add", "wasm32-wasip1"]))?;
    let args = [
        "test",
        "-p",
        "wisp",
        "--no-default-features",
        "--lib",
        "--target",
        "wasm32-wasip1",
        "--no-run",
        "--message-format=json",
    ];
    let out = cargo()
        .args(args)
        .current_dir(workspace_root())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cargo test --no-run: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo {} failed", args.join(" ")));
    }
    let wasm = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["executable"].as_str().map(String::from))
        .find(|e| e.ends_with(".wasm"))
        .ok_or("cargo test --no-run built no .wasm test binary")?;
    run(Command::new("node")
        .arg("xtask/wasi_run.mjs")
        .arg(&wasm)
        .args([
            "cpu::kernels",
            "cpu::matrix",
            "cpu::half",
            "--test-threads=1",
        ]))
}
