//! `wisp bench`: a model's prefill and decode speed (`shared/CLI.md`), with the engine's
//! work counters and the decode's effective weight bandwidth; and `wisp bench --kernels`,
//! the device's roofline (streaming read, f32 FMA) and every weight kernel under it.
//!
//! Decisions:
//! - The warm-up repetition is short (≤ 16 prompt tokens, ≤ 2 decode tokens): it exists
//!   to run every pipeline once (lavapipe compiles on first dispatch), and a full-size
//!   warm-up would double the time of a slow device's run for nothing.
//! - Each repetition uses a fresh session, so every prefill starts from an empty cache.
//! - The decode's effective weight bandwidth is (weight bytes a decode token binds, from
//!   the session's counters) × tok/s, compared with the streaming probe on the same
//!   device: how close decode is to being bound by reading its weights once.

use crate::load::{self, Backend};
use crate::{Device, LoadFlags, ModelArgs};
use serde_json::{json, Value as Json};
use std::sync::Arc;
use std::time::Instant;
use wisp::engine::profile::{self, KernelBenchOptions, Timer};
use wisp::engine::{Counters, GpuSession};
use wisp::generate::Forward;
use wisp::gpu::GpuContext;
use wisp::sampling::{Sampler, SamplingParams};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `LP_NUM_THREADS` (lavapipe's worker threads), reported so runs can be compared.
fn lp_threads() -> Json {
    std::env::var("LP_NUM_THREADS").map_or(Json::Null, Json::String)
}

/// A session whose counters can be read when it runs on the GPU.
enum Session {
    Gpu(Box<GpuSession>),
    Cpu(Box<dyn Forward>),
}

impl Session {
    fn forward(&mut self) -> &mut dyn Forward {
        match self {
            Session::Gpu(s) => s.as_mut(),
            Session::Cpu(s) => s.as_mut(),
        }
    }

    fn counters(&self) -> Counters {
        match self {
            Session::Gpu(s) => s.counters,
            Session::Cpu(_) => Counters::default(),
        }
    }
}

/// What one repetition measured.
struct Rep {
    prefill_s: f64,
    decode_s: f64,
    prefill: Counters,
    decode: Counters,
}

fn delta(a: Counters, b: Counters) -> Counters {
    Counters {
        submissions: b.submissions - a.submissions,
        dispatches: b.dispatches - a.dispatches,
        bytes_read_back: b.bytes_read_back - a.bytes_read_back,
        weight_bytes: b.weight_bytes - a.weight_bytes,
    }
}

fn one_rep(loaded: &load::Loaded, prompt: &[u32], tg: usize) -> Result<Rep, String> {
    let mut session = match &loaded.backend {
        Backend::Gpu(m) => Session::Gpu(Box::new(
            GpuSession::new(Arc::clone(m), loaded.n_ctx).map_err(|e| e.to_string())?,
        )),
        Backend::Cpu(_) | Backend::Engine(_) => Session::Cpu(loaded.session()?),
    };
    let mut sampler = Sampler::new(SamplingParams::greedy()).map_err(|e| e.to_string())?;
    let c0 = session.counters();
    let t = Instant::now();
    let mut token = session
        .forward()
        .forward_sample(prompt, &mut sampler, prompt)
        .map_err(|e| e.to_string())?;
    let prefill_s = t.elapsed().as_secs_f64();
    let c1 = session.counters();
    let t = Instant::now();
    for _ in 0..tg {
        token = session
            .forward()
            .forward_sample(&[token], &mut sampler, &[])
            .map_err(|e| e.to_string())?;
    }
    let decode_s = t.elapsed().as_secs_f64();
    Ok(Rep {
        prefill_s,
        decode_s,
        prefill: delta(c0, c1),
        decode: delta(c1, session.counters()),
    })
}

pub fn model(
    args: &ModelArgs,
    pp: usize,
    tg: usize,
    reps: usize,
    as_json: bool,
    profile: bool,
) -> Result<(), String> {
    if pp == 0 || reps == 0 {
        return Err("--pp and --reps must be at least 1".into());
    }
    if profile && args.flags.device.on_cpu() {
        return Err("--profile times GPU kernels; drop --device".into());
    }
    let started = Instant::now();
    // The process before the model: its code, libraries and allocator.
    let baseline_rss = resident_bytes().map(|(rss, _)| rss);
    let mut args = args.clone();
    args.ctx_size = Some(args.ctx_size.unwrap_or(0).max(pp + tg + 1));
    let loaded = load::load(&args)?;
    let load_s = started.elapsed().as_secs_f64();
    // A fixed, ordinary prompt: ids spread over the vocabulary (no control tokens needed).
    let n_vocab = loaded.config.n_vocab as u32;
    // The same ids as benches/llamacpp_bench.mjs.
    let spread = n_vocab.saturating_sub(1000).max(1) as u64;
    let prompt: Vec<u32> = (0..pp as u64)
        .map(|i| (1000 + (i * 7919) % spread).min(n_vocab as u64 - 1) as u32)
        .collect();
    let warm = &prompt[..pp.min(16)];
    one_rep(&loaded, warm, tg.min(2))?;
    let mut runs = Vec::new();
    for _ in 0..reps {
        runs.push(one_rep(&loaded, &prompt, tg)?);
    }
    let pp_s = median(runs.iter().map(|r| r.prefill_s).collect());
    let tg_tok_s = if tg > 0 {
        tg as f64 / median(runs.iter().map(|r| r.decode_s).collect())
    } else {
        0.0
    };
    // Counters are the same every repetition (the graphs are fixed): take the last.
    let last = runs.last().expect("reps >= 1");
    let (device, gpu_bytes, mut extra) = match &loaded.backend {
        Backend::Gpu(m) => {
            let per = |x: u64| {
                if tg > 0 {
                    json!(x as f64 / tg as f64)
                } else {
                    Json::Null
                }
            };
            let mut extra = json!({
                "prefill_submissions": last.prefill.submissions,
                "prefill_dispatches": last.prefill.dispatches,
                "submissions_per_token": per(last.decode.submissions),
                "dispatches_per_token": per(last.decode.dispatches),
                "bytes_read_back_per_token": per(last.decode.bytes_read_back),
                "weight_bytes_per_token": per(last.decode.weight_bytes),
            });
            if tg > 0 {
                let bytes = last.decode.weight_bytes as f64 / tg as f64;
                let gb_s = bytes * tg_tok_s / 1e9;
                let stream =
                    profile::stream_bandwidth(&m.ctx, &Timer::new(&m.ctx), 128 << 20, 0.2, 3)
                        .map_err(|e| e.to_string())?;
                extra["decode_weight_gb_s"] = json!(gb_s);
                extra["stream_gb_s"] = json!(stream);
                extra["decode_of_stream"] = json!(gb_s / stream);
            }
            (m.ctx.caps.adapter_name.clone(), m.plan.total_bytes, extra)
        }
        Backend::Cpu(_) => ("oracle".to_string(), 0, json!({})),
        Backend::Engine(m) => {
            let bytes = m.weight_bytes_per_token() as f64;
            let mut extra = json!({
                "threads": m.threads(), "isa": m.isa().name(),
                "cpu_precision": format!("{:?}", m.precision()).to_lowercase(),
                "weight_bytes_per_token": bytes,
                "decode_weight_gb_s": bytes * tg_tok_s / 1e9,
                "file_bytes": loaded.file.bytes().len(),
                "kv_cache_bytes": m.kv_bytes(loaded.n_ctx),
            });
            // Resident memory: the mapped file pages touched, the KV cache, the rest.
            if let Some((rss, peak)) = resident_bytes() {
                extra["rss_bytes"] = json!(rss);
                extra["peak_rss_bytes"] = json!(peak);
                if let Some(base) = baseline_rss {
                    extra["baseline_rss_bytes"] = json!(base);
                    // What running the model added (the bar: file + KV + 10%).
                    extra["model_peak_rss_bytes"] = json!(peak.saturating_sub(base));
                }
            }
            (
                format!(
                    "cpu ({}, {:?} precision, {} threads)",
                    m.isa().name(),
                    m.precision(),
                    m.threads()
                ),
                0,
                extra,
            )
        }
    };
    let kernel_times = match (&loaded.backend, profile) {
        (Backend::Gpu(m), true) => Some(profile_decode(m, loaded.n_ctx, &prompt)?),
        _ => None,
    };
    let mut out = json!({
        "load_s": load_s, "pp_tokens": pp, "pp_tok_s": pp as f64 / pp_s, "tg_tokens": tg,
        "tg_tok_s": tg_tok_s, "ttft_s": pp_s, "gpu_bytes": gpu_bytes,
        "reps": reps, "device": device, "lp_num_threads": lp_threads(),
    });
    if let (Some(o), Some(e)) = (out.as_object_mut(), extra.as_object_mut()) {
        o.append(e);
    }
    if let Some(k) = &kernel_times {
        out["profile"] = json!(k
            .iter()
            .map(|(name, n, s)| json!({"kernel": name, "dispatches": n, "seconds": s}))
            .collect::<Vec<_>>());
    }
    if as_json {
        println!("{out}");
        return Ok(());
    }
    if let Some(k) = &kernel_times {
        print_profile(k, tg_tok_s);
    }
    println!(
        "load {load_s:.2} s | pp{pp} {:.1} tok/s | tg{tg} {tg_tok_s:.2} tok/s | ttft {pp_s:.3} s | GPU memory {} MiB",
        pp as f64 / pp_s,
        gpu_bytes >> 20
    );
    if let Some(w) = out["weight_bytes_per_token"].as_f64() {
        println!(
            "per decode token: {} submission(s), {} dispatches, {} bytes read back, {:.1} MB of weights",
            out["submissions_per_token"], out["dispatches_per_token"], out["bytes_read_back_per_token"], w / 1e6
        );
    }
    if let (Some(gb), Some(s)) = (
        out["decode_weight_gb_s"].as_f64(),
        out["stream_gb_s"].as_f64(),
    ) {
        println!(
            "decode reads weights at {gb:.2} GB/s = {:.0}% of the device's streaming read ({s:.2} GB/s)",
            100.0 * gb / s
        );
    }
    Ok(())
}

/// GPU time per kernel (name, dispatches, seconds; slowest first) of one decode token
/// after `prompt`, each dispatch timed on its own.
fn profile_decode(
    m: &Arc<wisp::engine::GpuModel>,
    n_ctx: usize,
    prompt: &[u32],
) -> Result<Vec<(String, usize, f64)>, String> {
    let mut session = GpuSession::new(Arc::clone(m), n_ctx).map_err(|e| e.to_string())?;
    let mut sampler = Sampler::new(SamplingParams::greedy()).map_err(|e| e.to_string())?;
    let token = session
        .forward_sample(prompt, &mut sampler, prompt)
        .map_err(|e| e.to_string())?;
    // Once to run every pipeline, then the measured token.
    session.truncate(prompt.len());
    wisp::gpu::wait::block_on(session.profile_decode_async(token)).map_err(|e| e.to_string())?;
    session.truncate(prompt.len());
    let times = wisp::gpu::wait::block_on(session.profile_decode_async(token))
        .map_err(|e| e.to_string())?;
    let mut by_kernel: Vec<(String, usize, f64)> = Vec::new();
    for (name, s) in times {
        match by_kernel.iter_mut().find(|k| k.0 == name) {
            Some(k) => {
                k.1 += 1;
                k.2 += s;
            }
            None => by_kernel.push((name, 1, s)),
        }
    }
    by_kernel.sort_by(|a, b| b.2.total_cmp(&a.2));
    Ok(by_kernel)
}

fn print_profile(k: &[(String, usize, f64)], tg_tok_s: f64) {
    let total: f64 = k.iter().map(|x| x.2).sum();
    println!("one decode token, each dispatch timed on its own (GPU time):");
    println!(
        "{:<34} {:>10} {:>10} {:>7}",
        "kernel", "dispatches", "ms", "share"
    );
    for (name, n, s) in k {
        println!(
            "{name:<34} {n:>10} {:>10.3} {:>6.1}%",
            s * 1e3,
            100.0 * s / total
        );
    }
    let n: usize = k.iter().map(|x| x.1).sum();
    print!("sum {:.2} ms over {n} dispatches", total * 1e3);
    if tg_tok_s > 0.0 {
        let wall = 1.0 / tg_tok_s;
        print!("; a decode token takes {:.2} ms", wall * 1e3);
        if wall > total {
            print!(
                ": {:.2} ms ({:.0} µs per dispatch) is outside the kernels",
                (wall - total) * 1e3,
                (wall - total) * 1e6 / n as f64
            );
        } else {
            // A pass per dispatch costs the kernels a little: their sum can exceed a token.
            print!(": no measurable time outside the kernels");
        }
    }
    println!();
}

pub fn kernels(
    flags: &LoadFlags,
    quick: bool,
    types: Vec<String>,
    as_json: bool,
) -> Result<(), String> {
    match flags.device {
        Device::Cpu => return cpu_kernels(flags, quick, types, as_json),
        Device::Oracle => {
            return Err("--kernels measures an engine's kernels; the oracle has none".into())
        }
        Device::Gpu => {}
    }
    let mut opts = load::device_options(flags);
    opts.timestamps = true;
    let ctx = GpuContext::new_blocking(&opts).map_err(|e| e.to_string())?;
    let r = profile::kernel_bench(&ctx, &KernelBenchOptions { quick, types })
        .map_err(|e| e.to_string())?;
    if as_json {
        let kernels: Vec<Json> = r
            .kernels
            .iter()
            .map(|k| {
                json!({
                    "kernel": k.kind.name(), "shape": k.shape, "type": k.ty.name(), "rows": k.rows,
                    "cols": k.cols, "n_tokens": k.n_tokens, "seconds": k.seconds,
                    "weight_bytes": k.weight_bytes, "gb_s": k.gb_s, "gflop_s": k.gflop_s,
                    "of_roof": k.of_roof,
                })
            })
            .collect();
        println!(
            "{}",
            json!({
                "device": r.adapter, "backend": r.backend, "f16": r.f16, "timer": r.timer.name(),
                "layout": format!("{:?}", r.layout),
                "lp_num_threads": lp_threads(), "stream_bytes": r.stream_bytes,
                "stream_gb_s": r.stream_gb_s, "peak_gflop_s": r.peak_gflop_s, "kernels": kernels,
            })
        );
        return Ok(());
    }
    println!(
        "device: {} ({}), shader-f16 {}, kernels {:?}, timed by {}, LP_NUM_THREADS {}",
        r.adapter,
        r.backend,
        if r.f16 { "yes" } else { "no" },
        r.layout,
        r.timer.name(),
        std::env::var("LP_NUM_THREADS").unwrap_or_else(|_| "unset".into())
    );
    println!(
        "streaming read: {:.2} GB/s ({} MiB buffer) | f32 FMA: {:.1} GFLOP/s",
        r.stream_gb_s,
        r.stream_bytes >> 20,
        r.peak_gflop_s
    );
    println!(
        "\n{:<7} {:<8} {:<7} {:>18} {:>10} {:>8} {:>9} {:>8}",
        "kernel", "shape", "type", "rows×cols×tokens", "µs", "GB/s", "GFLOP/s", "of roof"
    );
    for k in &r.kernels {
        // A mat-mul re-reads its weights per token tile: its GB/s says nothing.
        let gb_s = match k.kind {
            profile::MatKind::MatVec => format!("{:.2}", k.gb_s),
            profile::MatKind::MatMul => "-".into(),
        };
        println!(
            "{:<7} {:<8} {:<7} {:>18} {:>10.1} {:>8} {:>9.2} {:>7.1}%",
            k.kind.name(),
            k.shape,
            k.ty.name(),
            format!("{}×{}×{}", k.rows, k.cols, k.n_tokens),
            k.seconds * 1e6,
            gb_s,
            k.gflop_s,
            100.0 * k.of_roof
        );
    }
    println!(
        "\nroof: the streaming read for mat-vecs (GB/s of weights); for the mat-mul, the lower of \
         the FMA rate and arithmetic intensity × streaming read"
    );
    Ok(())
}

/// (VmRSS, VmHWM) of this process in bytes, where /proc says (Linux).
fn resident_bytes() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// `wisp bench --kernels --device cpu`: the CPU engine's roofline and kernels.
fn cpu_kernels(
    flags: &LoadFlags,
    quick: bool,
    types: Vec<String>,
    as_json: bool,
) -> Result<(), String> {
    use wisp::cpu::bench::{kernel_bench, KernelBenchOptions};
    let types = types
        .iter()
        .map(|t| {
            wisp::quant::GgmlType::from_name(&t.to_ascii_uppercase())
                .ok_or_else(|| format!("unknown weight type {t:?}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let r = kernel_bench(&KernelBenchOptions {
        quick,
        types,
        threads: flags.threads.unwrap_or(0),
    })
    .map_err(|e| e.to_string())?;
    if as_json {
        let kernels: Vec<Json> = r
            .kernels
            .iter()
            .map(|k| {
                json!({
                    "type": k.ty.name(), "isa": k.isa.name(), "activations": format!("{:?}", k.act),
                    "matvec_gb_s_1": k.matvec_gb_s_1, "matvec_gb_s_all": k.matvec_gb_s_all,
                    "matvec_of_stream": k.matvec_gb_s_all / r.stream_gb_s_all,
                    "matmul_gop_s_1": k.matmul_gop_s_1, "matmul_gop_s_all": k.matmul_gop_s_all,
                })
            })
            .collect();
        println!(
            "{}",
            json!({"device": "cpu", "threads": r.threads, "stream_gb_s_1": r.stream_gb_s_1,
                   "stream_gb_s": r.stream_gb_s_all, "kernels": kernels})
        );
        return Ok(());
    }
    println!(
        "CPU engine, {} threads: streaming read {:.1} GB/s (1 thread {:.1} GB/s)",
        r.threads, r.stream_gb_s_all, r.stream_gb_s_1
    );
    println!("mat-vec: 2048 x 2048, one token (GB/s of weights); mat-mul: x 128 tokens (GOP/s)");
    println!(
        "{:<8} {:<13} {:>10} {:>10} {:>8} {:>10} {:>10}",
        "type", "isa", "mv 1 thr", "mv all", "of roof", "mm 1 thr", "mm all"
    );
    for k in &r.kernels {
        println!(
            "{:<8} {:<13} {:>10.2} {:>10.2} {:>7.0}% {:>10.1} {:>10.1}",
            k.ty.name(),
            k.isa.name(),
            k.matvec_gb_s_1,
            k.matvec_gb_s_all,
            100.0 * k.matvec_gb_s_all / r.stream_gb_s_all,
            k.matmul_gop_s_1,
            k.matmul_gop_s_all
        );
    }
    Ok(())
}
