//! `cargo xtask bench`: Wisp's speed on the real test models and a Llama-3.2-3B-shaped
//! synthetic model, the device's roofline, and (with `--vs llama.cpp`) llama.cpp on the
//! same models, prompt ids, sizes and Vulkan device.
//!
//! ```text
//! cargo xtask bench [--reps N] [--lp-threads N] [--models KEYS] [--no-build]
//! cargo xtask bench --vs llama.cpp [--reps N] [--lp-threads N] [--models KEYS]
//!                   [--engines gpu,cpu] [--threads N]
//! cargo xtask bench --smoke           (CI: one model, tiny sizes, checks the JSON)
//! ```
//!
//! Decisions:
//! - The main table runs `wisp bench` twice per model: pp128 + tg128 in one run (decode
//!   follows a 128-token prompt), then pp512 alone. `--reps` defaults to 1 (after the
//!   CLI's warm-up): on lavapipe a full table takes minutes per model; raise it on a GPU.
//! - The synthetic model is test depth (2 layers) at Llama-3.2-3B's full width, vocabulary
//!   and head, run under `--webgpu-default-limits` (the floor every device must meet).
//! - `--vs llama.cpp` compares at pp128 / tg32 only: llama.cpp's Vulkan backend on lavapipe
//!   runs at 1–10 tok/s, so it gets one repetition, and the comparison takes minutes. Per
//!   model the three runs follow each other (Wisp, llama.cpp-Vulkan, llama.cpp-CPU), so
//!   a change in machine load hits both sides of a ratio alike.
//! - The CPU pair (Wisp's CPU engine against llama.cpp's CPU build) runs both with the
//!   same thread count (`--threads`, default one per core) on the same prompt ids;
//!   `--engines cpu` runs only that pair (minutes instead of tens of minutes).
//! - Both sides get the same `LP_NUM_THREADS` (lavapipe's threads; `--lp-threads` or the
//!   environment, default unset) and it is printed with the table.
//! - The smoke run uses the `test`-profile binary: `cargo test --workspace` (the CI step
//!   before it) has just built exactly that for the CLI's tests, and a release build of
//!   wgpu would take minutes for numbers nobody reads.

use crate::{cargo, models, run, synth, workspace_root};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// A model to run: (key, path, extra `wisp` flags).
type ModelRun = (String, PathBuf, Vec<&'static str>);

/// The synthetic model: (family, mix) keys of `synth.rs`.
const SYNTH: (&str, &str) = ("llama32-3b", "q4km");
const MODEL_KEYS: &[&str] = &["smollm2", "gemma3", "qwen2", "llama32-3b"];

#[derive(Clone)]
struct Opts {
    smoke: bool,
    vs_llama: bool,
    reps: usize,
    lp_threads: Option<String>,
    models: Vec<String>,
    build: bool,
    /// Which Wisp engines `--vs llama.cpp` compares: the GPU one against llama.cpp's
    /// Vulkan build, the CPU one against llama.cpp's CPU build.
    gpu_pair: bool,
    cpu_pair: bool,
    threads: usize,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        smoke: false,
        vs_llama: false,
        reps: 1,
        lp_threads: std::env::var("LP_NUM_THREADS").ok(),
        models: MODEL_KEYS.iter().map(|s| s.to_string()).collect(),
        build: true,
        gpu_pair: true,
        cpu_pair: true,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value"))
        };
        match a.as_str() {
            "--smoke" => o.smoke = true,
            "--no-build" => o.build = false,
            "--vs" => {
                let peer = value()?;
                if peer != "llama.cpp" {
                    return Err(format!("--vs knows only llama.cpp, not {peer:?}"));
                }
                o.vs_llama = true;
            }
            "--reps" => {
                o.reps = value()?
                    .parse()
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or("--reps needs a number ≥ 1")?
            }
            "--lp-threads" => {
                let n = value()?;
                n.parse::<u32>()
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or("--lp-threads needs a number ≥ 1")?;
                o.lp_threads = Some(n);
            }
            "--models" => {
                o.models = value()?.split(',').map(|s| s.trim().to_string()).collect();
                if let Some(bad) = o.models.iter().find(|m| !MODEL_KEYS.contains(&m.as_str())) {
                    return Err(format!(
                        "unknown model {bad:?} (known: {})",
                        MODEL_KEYS.join(", ")
                    ));
                }
            }
            "--engines" => {
                let v = value()?;
                let list: Vec<&str> = v.split(',').map(str::trim).collect();
                if let Some(bad) = list.iter().find(|e| !["gpu", "cpu"].contains(e)) {
                    return Err(format!("--engines takes gpu and/or cpu, not {bad:?}"));
                }
                o.gpu_pair = list.contains(&"gpu");
                o.cpu_pair = list.contains(&"cpu");
            }
            "--threads" => {
                o.threads = value()?
                    .parse()
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or("--threads needs a number ≥ 1")?
            }
            other => return Err(format!("unknown bench option {other:?}")),
        }
    }
    Ok(o)
}

pub fn main(args: &[String]) -> Result<(), String> {
    let o = parse(args)?;
    if o.smoke {
        return smoke(&o);
    }
    let wisp = build_cli(&o, "release")?;
    let paths = model_paths(&o.models)?;
    println!(
        "device: {} | LP_NUM_THREADS={} | reps {} (after a warm-up) | {}",
        device_name(&wisp)?,
        o.lp_threads.as_deref().unwrap_or("unset"),
        o.reps,
        machine()
    );
    if o.vs_llama {
        vs_llama(&o, &wisp, &paths)
    } else {
        table(&o, &wisp, &paths)
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Build the CLI in `profile` (`release` or `test`) and return the binary.
fn build_cli(o: &Opts, profile: &str) -> Result<PathBuf, String> {
    if o.build {
        run(cargo().args(["build", "--quiet", "--profile", profile, "-p", "wisp-cli"]))?;
    }
    // `dev` and `test` builds both live in target/debug.
    let dir = if profile == "release" {
        "release"
    } else {
        "debug"
    };
    let bin = target_dir().join(dir).join("wisp");
    if !bin.exists() {
        return Err(format!("{} is missing (drop --no-build)", bin.display()));
    }
    Ok(bin)
}

/// (key, path, extra wisp flags) of each model asked for; fetches or generates them.
fn model_paths(keys: &[String]) -> Result<Vec<ModelRun>, String> {
    let real: Vec<(&str, PathBuf)> = if keys.iter().any(|k| k != SYNTH.0) {
        models::fetch_all()?
    } else {
        Vec::new()
    };
    let mut out = Vec::new();
    for k in keys {
        if k == SYNTH.0 {
            let f = synth::family(SYNTH.0).expect("family");
            let m = synth::mix(SYNTH.1).expect("mix");
            let (path, _) =
                synth::ensure(&models::models_dir().join("synth"), f, m, f.n_layer_test)?;
            out.push((k.clone(), path, vec!["--webgpu-default-limits"]));
        } else {
            let path = real
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, p)| p.clone())
                .ok_or_else(|| format!("no model {k}"))?;
            out.push((k.clone(), path, vec![]));
        }
    }
    Ok(out)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

/// CPU model and cores, for the record beside the numbers.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, load average {load}")
}

fn with_lp(cmd: &mut Command, o: &Opts) {
    match &o.lp_threads {
        Some(n) => cmd.env("LP_NUM_THREADS", n),
        None => cmd.env_remove("LP_NUM_THREADS"),
    };
}

/// Longest a single benchmark run may take before it is stopped (a hung peer must not
/// hang the table; the slowest run here, Qwen2.5 pp512 on a loaded lavapipe, takes minutes).
const RUN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(45 * 60);

/// Run a command and parse the last line of its stdout as JSON; stop it after
/// [`RUN_TIMEOUT`].
fn json_of(cmd: &mut Command) -> Result<Value, String> {
    let name = format!("{:?}", cmd.get_program());
    let dir = target_dir().join("bench-runs");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (out_path, err_path) = (
        dir.join(format!("{}.out", std::process::id())),
        dir.join(format!("{}.err", std::process::id())),
    );
    let file = |p: &Path| std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut child = cmd
        .current_dir(workspace_root())
        .stdout(file(&out_path)?)
        .stderr(file(&err_path)?)
        .spawn()
        .map_err(|e| format!("cannot start {name}: {e}"))?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if started.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{name} took over {} min; stopped",
                RUN_TIMEOUT.as_secs() / 60
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    let _ = std::fs::remove_file(&err_path);
    if !status.success() {
        let why = stderr.lines().last().unwrap_or("no message");
        return Err(format!("{name} failed ({status}): {why}"));
    }
    let line = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    serde_json::from_str(line).map_err(|e| format!("{name} printed no JSON ({e}): {line:?}"))
}

fn wisp_bench(
    o: &Opts,
    wisp: &Path,
    model: &Path,
    extra: &[&str],
    pp: usize,
    tg: usize,
) -> Result<Value, String> {
    let mut cmd = Command::new(wisp);
    cmd.arg("bench").arg(model).args(extra).args([
        "--pp",
        &pp.to_string(),
        "--tg",
        &tg.to_string(),
        "--reps",
        &o.reps.to_string(),
        "--json",
    ]);
    with_lp(&mut cmd, o);
    json_of(&mut cmd)
}

fn kernels_json(o: &Opts, wisp: &Path, quick: bool) -> Result<Value, String> {
    let mut cmd = Command::new(wisp);
    cmd.args(["bench", "--kernels", "--json"]);
    if quick {
        cmd.arg("--quick");
    }
    with_lp(&mut cmd, o);
    json_of(&mut cmd)
}

fn device_name(wisp: &Path) -> Result<String, String> {
    let v = json_of(Command::new(wisp).args(["devices", "--json"]))?;
    Ok(v.get(0)
        .and_then(|a| a["name"].as_str())
        .unwrap_or("no GPU adapter")
        .to_string())
}

fn f(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(f64::NAN)
}

/// The main table: pp128, pp512, tg128 and the work counters per model, then the roofline.
fn table(o: &Opts, wisp: &Path, models: &[ModelRun]) -> Result<(), String> {
    let started = Instant::now();
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    for (key, path, extra) in models {
        eprintln!("bench: {key}");
        let r = wisp_bench(o, wisp, path, extra, 128, 128)
            .and_then(|a| Ok((a, wisp_bench(o, wisp, path, extra, 512, 0)?)));
        match r {
            Ok((a, b)) => rows.push((file_name(path), a, b)),
            Err(e) => {
                eprintln!("bench: {key}: {e}");
                failed.push(key.clone());
            }
        }
    }
    eprintln!("bench: kernels");
    let k = kernels_json(o, wisp, false)?;
    println!(
        "\n| model | pp128 tok/s | pp512 tok/s | tg128 tok/s | TTFT128 s | dispatches / token | weights MB / token | decode GB/s | of stream | GPU MiB | load s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, a, b) in &rows {
        println!(
            "| {name} | {:.1} | {:.1} | {:.2} | {:.2} | {:.0} | {:.1} | {:.2} | {:.0}% | {} | {:.1} |",
            f(a, "pp_tok_s"),
            f(b, "pp_tok_s"),
            f(a, "tg_tok_s"),
            f(a, "ttft_s"),
            f(a, "dispatches_per_token"),
            f(a, "weight_bytes_per_token") / 1e6,
            f(a, "decode_weight_gb_s"),
            100.0 * f(a, "decode_of_stream"),
            a["gpu_bytes"].as_u64().unwrap_or(0) >> 20,
            f(a, "load_s"),
        );
    }
    print_kernels(&k);
    eprintln!("bench: {:.0} s", started.elapsed().as_secs_f64());
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("bench failed for {}", failed.join(", ")))
    }
}

/// The roofline: one row per weight type.
fn print_kernels(k: &Value) {
    println!(
        "\nroofline ({}, timed by {}): streaming read {:.2} GB/s, f32 FMA {:.1} GFLOP/s",
        k["device"].as_str().unwrap_or("?"),
        k["timer"].as_str().unwrap_or("?"),
        f(k, "stream_gb_s"),
        f(k, "peak_gflop_s")
    );
    let empty = Vec::new();
    let list = k["kernels"].as_array().unwrap_or(&empty);
    let find = |ty: &str, shape: &str| {
        list.iter()
            .find(|e| e["type"] == ty && e["shape"] == shape)
            .cloned()
            .unwrap_or(Value::Null)
    };
    // The head's rows shrink for wide types (one binding must hold it): name the largest.
    let shape_of = |shape: &str| {
        list.iter()
            .filter(|e| e["shape"] == shape)
            .max_by_key(|e| e["rows"].as_u64())
            .map(|e| format!("{}×{}×{}", e["rows"], e["cols"], e["n_tokens"]))
            .unwrap_or_default()
    };
    println!(
        "\n| type | mat-vec {} GB/s | of stream | mat-vec {} GB/s | of stream | mat-mul {} GFLOP/s | of roof |",
        shape_of("decode"),
        shape_of("head"),
        shape_of("prefill")
    );
    println!("|---|---|---|---|---|---|---|");
    let mut types: Vec<&str> = list.iter().filter_map(|e| e["type"].as_str()).collect();
    types.dedup();
    for ty in types {
        let (d, h, p) = (find(ty, "decode"), find(ty, "head"), find(ty, "prefill"));
        println!(
            "| {ty} | {:.2} | {:.0}% | {:.2} | {:.0}% | {:.2} | {:.1}% |",
            f(&d, "gb_s"),
            100.0 * f(&d, "of_roof"),
            f(&h, "gb_s"),
            100.0 * f(&h, "of_roof"),
            f(&p, "gflop_s"),
            100.0 * f(&p, "of_roof"),
        );
    }
}

fn benches_dir() -> PathBuf {
    workspace_root().join("benches")
}

/// node-llama-cpp in benches/node_modules (installed from the lockfile when missing).
fn ensure_llama_cpp() -> Result<(), String> {
    let dir = benches_dir();
    let modules = dir.join("node_modules");
    if modules.join("node-llama-cpp/package.json").exists() {
        return Ok(());
    }
    // A symlink to a cache that is not there would make npm fail.
    if modules
        .symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink())
    {
        std::fs::remove_file(&modules).map_err(|e| format!("{}: {e}", modules.display()))?;
    }
    eprintln!(
        "installing node-llama-cpp (prebuilt llama.cpp) into {}",
        modules.display()
    );
    // `npm install` (not `ci`): the lockfile pins every version, but the registry this
    // project can reach lacks some of node-llama-cpp's optional platform packages
    // (riscv64, macOS, Windows), which `npm ci` refuses as "missing from lock file".
    let verb = "install";
    let status = Command::new("npm")
        .args([
            verb,
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ])
        .current_dir(&dir)
        .env("NODE_LLAMA_CPP_SKIP_DOWNLOAD", "true")
        .status()
        .map_err(|e| format!("cannot run npm (install Node.js 18+ with npm): {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("npm {verb} in {} failed ({status})", dir.display()))
    }
}

fn llama_bench(o: &Opts, model: &Path, backend: &str, reps: usize) -> Result<Value, String> {
    let mut cmd = Command::new("node");
    cmd.arg(benches_dir().join("llamacpp_bench.mjs"))
        .arg(model)
        .args([
            "--pp",
            "128",
            "--tg",
            "32",
            "--reps",
            &reps.to_string(),
            "--backend",
            backend,
            "--threads",
            &o.threads.to_string(),
        ])
        .env("NODE_LLAMA_CPP_SKIP_DOWNLOAD", "true")
        .env("GGML_VK_VISIBLE_DEVICES", "0");
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        cmd.env("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    with_lp(&mut cmd, o);
    json_of(&mut cmd)
}

/// One side-by-side pair: a Wisp engine and the llama.cpp build doing the same job.
struct Pair {
    title: &'static str,
    wisp_flags: Vec<String>,
    llama_backend: &'static str,
    llama_reps: usize,
    peer: &'static str,
}

/// Wisp's GPU engine against llama.cpp's Vulkan build (same device), and Wisp's CPU
/// engine against llama.cpp's CPU build (same threads), pp128 / tg32, same prompt ids.
fn vs_llama(o: &Opts, wisp: &Path, models: &[ModelRun]) -> Result<(), String> {
    ensure_llama_cpp()?;
    let started = Instant::now();
    let mut pairs = Vec::new();
    if o.gpu_pair {
        pairs.push(Pair {
            title: "Wisp GPU engine vs llama.cpp's Vulkan build on the same device",
            wisp_flags: vec![],
            llama_backend: "vulkan",
            llama_reps: 1,
            peer: "llama.cpp-Vulkan",
        });
    }
    if o.cpu_pair {
        pairs.push(Pair {
            title: "Wisp CPU engine vs llama.cpp's CPU build, same threads",
            wisp_flags: vec![
                "--device".into(),
                "cpu".into(),
                "--threads".into(),
                o.threads.to_string(),
            ],
            llama_backend: "cpu",
            llama_reps: o.reps,
            peer: "llama.cpp-CPU",
        });
    }
    let mut tables: Vec<Vec<(String, Value, Value)>> = pairs.iter().map(|_| Vec::new()).collect();
    let mut failed = Vec::new();
    for (key, path, extra) in models {
        // Per model the pairs follow each other, so a change in machine load hits both
        // sides of a ratio alike.
        for (pair, rows) in pairs.iter().zip(&mut tables) {
            let mut flags: Vec<&str> = extra.to_vec();
            if !pair.wisp_flags.is_empty() {
                // The GPU-only flags (e.g. --webgpu-default-limits) do not apply.
                flags.clear();
                flags.extend(pair.wisp_flags.iter().map(String::as_str));
            }
            eprintln!("bench: {key}: Wisp {}", pair.wisp_flags.join(" "));
            let w = wisp_bench(o, wisp, path, &flags, 128, 32);
            eprintln!("bench: {key}: {}", pair.peer);
            let l = llama_bench(o, path, pair.llama_backend, pair.llama_reps);
            for (side, r) in [("Wisp", &w), (pair.peer, &l)] {
                if let Err(e) = r {
                    eprintln!("bench: {key}: {side}: {e}");
                    failed.push(format!("{key} ({side})"));
                }
            }
            rows.push((
                file_name(path),
                w.unwrap_or(Value::Null),
                l.unwrap_or(Value::Null),
            ));
        }
    }
    // A side that failed shows as "-", not NaN.
    let num = |x: f64, digits: usize, unit: &str| {
        if x.is_finite() {
            format!("{x:.digits$}{unit}")
        } else {
            "-".to_string()
        }
    };
    for (pair, rows) in pairs.iter().zip(&tables) {
        let peer = pair.peer;
        println!("\n{}\n", pair.title);
        println!(
            "| model | Wisp pp128 tok/s | {peer} | ratio | Wisp tg32 tok/s | {peer} | ratio |"
        );
        println!("|---|---|---|---|---|---|---|");
        for (name, w, l) in rows {
            let mut line = format!("| {name} |");
            for (key, digits) in [("pp_tok_s", 1), ("tg_tok_s", 2)] {
                let (a, b) = (f(w, key), f(l, key));
                line += &format!(
                    " {} | {} | {} |",
                    num(a, digits, ""),
                    num(b, digits, ""),
                    num(a / b, 2, "×")
                );
            }
            println!("{line}");
        }
        if pair.llama_backend == "cpu" {
            for (name, w, l) in rows {
                if let (Some(rss), Some(file), Some(kv)) = (
                    w["peak_rss_bytes"].as_f64(),
                    w["file_bytes"].as_f64(),
                    w["kv_cache_bytes"].as_f64(),
                ) {
                    let model = w["model_peak_rss_bytes"].as_f64().unwrap_or(f64::NAN);
                    println!(
                        "{name}: Wisp CPU peak resident {:.0} MiB, {:.0} MiB of it for the model = {:.2} × (file {:.0} MiB + KV {:.0} MiB) (llama.cpp-CPU: {:.0} MiB for the model); {} threads, {} kernels, {} precision",
                        rss / 1048576.0,
                        model / 1048576.0,
                        model / (file + kv),
                        file / 1048576.0,
                        kv / 1048576.0,
                        l["model_peak_rss_bytes"].as_f64().unwrap_or(f64::NAN) / 1048576.0,
                        w["threads"],
                        w["isa"].as_str().unwrap_or("?"),
                        w["cpu_precision"].as_str().unwrap_or("?")
                    );
                }
            }
        }
    }
    println!("\nllama.cpp: node-llama-cpp 3.22.1 prebuilt builds, default settings, all layers on the device (Vulkan, 1 repetition) or {} threads (CPU, {} repetitions after a warm-up).", o.threads, o.reps);
    eprintln!("bench: {:.0} s", started.elapsed().as_secs_f64());
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("bench failed for {}", failed.join(", ")))
    }
}

/// CI: the test-profile binary on SmolLM2 at tiny sizes and the quick kernel benchmark; every
/// number must parse and be positive.
fn smoke(o: &Opts) -> Result<(), String> {
    let started = Instant::now();
    let wisp = build_cli(o, "test")?;
    let paths = model_paths(&["smollm2".to_string()])?;
    let (_, path, extra) = &paths[0];
    let smoke = Opts {
        reps: 1,
        ..o.clone()
    };
    let mut flags = extra.to_vec();
    flags.push("--profile");
    let v = wisp_bench(&smoke, &wisp, path, &flags, 8, 4)?;
    for key in [
        "load_s",
        "pp_tok_s",
        "tg_tok_s",
        "ttft_s",
        "gpu_bytes",
        "dispatches_per_token",
        "weight_bytes_per_token",
        "decode_weight_gb_s",
        "stream_gb_s",
    ] {
        let x = f(&v, key);
        if !(x > 0.0 && x.is_finite()) {
            return Err(format!(
                "wisp bench --json: {key} is {}, not a positive number",
                v[key]
            ));
        }
    }
    if v["pp_tokens"] != 8 || v["tg_tokens"] != 4 {
        return Err(format!("wisp bench --json: wrong sizes in {v}"));
    }
    if f(&v, "submissions_per_token") != 1.0 {
        return Err(format!("decode is not one submission per token: {v}"));
    }
    // --profile: every dispatch of a decode token timed, none lost.
    let profile = v["profile"].as_array().cloned().unwrap_or_default();
    let timed: f64 = profile.iter().map(|e| f(e, "dispatches")).sum();
    let seconds: f64 = profile.iter().map(|e| f(e, "seconds")).sum();
    if timed != f(&v, "dispatches_per_token") || !(seconds > 0.0 && seconds.is_finite()) {
        return Err(format!(
            "wisp bench --profile: {timed} dispatches in {seconds} s, the token has {}",
            v["dispatches_per_token"]
        ));
    }
    let k = kernels_json(&smoke, &wisp, true)?;
    let list = k["kernels"].as_array().cloned().unwrap_or_default();
    if !(f(&k, "stream_gb_s") > 0.0 && f(&k, "peak_gflop_s") > 0.0) || list.is_empty() {
        return Err(format!("wisp bench --kernels --json: {k}"));
    }
    for e in &list {
        if !(f(e, "gb_s") > 0.0 && f(e, "gflop_s") > 0.0 && f(e, "of_roof") > 0.0) {
            return Err(format!("wisp bench --kernels --json: {e}"));
        }
    }
    // The CPU engine: the model bench (with resident memory) and its kernel bench.
    let cpu = wisp_bench(&smoke, &wisp, path, &["--device", "cpu"], 8, 4)?;
    for key in [
        "pp_tok_s",
        "tg_tok_s",
        "weight_bytes_per_token",
        "peak_rss_bytes",
    ] {
        let x = f(&cpu, key);
        if !(x > 0.0 && x.is_finite()) {
            return Err(format!(
                "wisp bench --device cpu --json: {key} is {}",
                cpu[key]
            ));
        }
    }
    let mut cmd = Command::new(&wisp);
    cmd.args(["bench", "--kernels", "--device", "cpu", "--quick", "--json"])
        .args(["--types", "Q4_1,Q8_0,Q4_K,Q6_K"]);
    let ck = json_of(&mut cmd)?;
    let cpu_list = ck["kernels"].as_array().cloned().unwrap_or_default();
    let stream_gb_s = f(&ck, "stream_gb_s");
    if cpu_list.is_empty() || stream_gb_s.is_nan() || stream_gb_s <= 0.0 {
        return Err(format!("wisp bench --kernels --device cpu --json: {ck}"));
    }
    for e in &cpu_list {
        if !(f(e, "matvec_gb_s_all") > 0.0 && f(e, "matmul_gop_s_all") > 0.0) {
            return Err(format!("wisp bench --kernels --device cpu --json: {e}"));
        }
    }
    println!(
        "bench smoke (CPU engine): pp8 {:.1} tok/s, tg4 {:.2} tok/s, {} kernels ({})",
        f(&cpu, "pp_tok_s"),
        f(&cpu, "tg_tok_s"),
        cpu_list.len(),
        cpu["isa"].as_str().unwrap_or("?")
    );
    println!(
        "bench smoke: pp8 {:.1} tok/s, tg4 {:.2} tok/s, {} dispatches / token; streaming read {:.2} GB/s; {} kernels ({:.0} s)",
        f(&v, "pp_tok_s"),
        f(&v, "tg_tok_s"),
        v["dispatches_per_token"],
        f(&k, "stream_gb_s"),
        list.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
