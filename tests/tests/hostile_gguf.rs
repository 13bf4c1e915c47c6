//! Hostile GGUF files through the whole CPU load path, each in a child process under an
//! address-space limit: every one must end in a typed error whose message names the
//! problem, with no panic and no allocation beyond the bound.
//!
//! The bound: a child may use its baseline (its peak virtual size on the tiny valid
//! model, measured first, ~20 MiB plus the binary) plus 2 × the file size + 64 MiB.
//! RLIMIT_AS counts the file's memory map, so that leaves the parser one file size plus
//! 64 MiB of heap. The limit is set with `prlimit` (util-linux) on the child.

use std::path::{Path, PathBuf};
use std::process::Command;
use wisp::gguf::{GgufError, GgufHeader};
use wisp_e2e::hostile::{self, Case};

const CHILD: &str = env!("CARGO_BIN_EXE_gguf-load-check");
const SLACK: u64 = 64 << 20;

fn scratch(name: &str) -> PathBuf {
    let dir = wisp_e2e::workspace_root()
        .join("target/tmp/hostile-gguf")
        .join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One child's answer per file, and its peak virtual size.
struct ChildRun {
    lines: Vec<Result<(), (String, String)>>,
    vm_peak: u64,
}

fn run_child(files: &[PathBuf], as_limit: Option<u64>) -> Result<ChildRun, String> {
    let mut cmd = match as_limit {
        Some(limit) => {
            let mut c = Command::new("prlimit");
            c.arg(format!("--as={limit}")).arg("--").arg(CHILD);
            c
        }
        None => Command::new(CHILD),
    };
    let out = cmd
        .args(files)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run gguf-load-check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!(
            "child failed ({}) after {} results: {stderr}",
            out.status,
            stdout.lines().count()
        ));
    }
    let mut lines = Vec::new();
    let mut vm_peak = 0;
    for line in stdout.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        match f[0] {
            "ok" => lines.push(Ok(())),
            "err" => lines.push(Err((f[2].to_string(), f[3].to_string()))),
            "vm_peak" => vm_peak = f[1].parse().unwrap(),
            _ => panic!("unexpected child output {line:?}"),
        }
    }
    assert_eq!(lines.len(), files.len(), "child output: {stdout}");
    Ok(ChildRun { lines, vm_peak })
}

fn write(dir: &Path, i: usize, bytes: &[u8]) -> PathBuf {
    let p = dir.join(format!("{i:05}.gguf"));
    std::fs::write(&p, bytes).unwrap();
    p
}

/// The child's peak virtual size on the tiny valid model. Each caller (`name`) writes
/// its own copy: tests run in parallel, and rewriting a shared file truncates it under
/// another test's child.
fn baseline(name: &str) -> u64 {
    let dir = scratch(&format!("baseline-{name}"));
    let p = write(&dir, 0, &hostile::tiny_llama().bytes());
    let run = run_child(&[p], None).unwrap();
    assert_eq!(run.lines[0], Ok(()), "the tiny model must load");
    assert!(run.vm_peak > 0, "VmPeak not readable");
    run.vm_peak
}

fn limit_for(baseline: u64, file_len: u64) -> u64 {
    baseline + 2 * file_len + SLACK
}

/// The browser's way: growing prefixes with the file length known must end in the same
/// answer as the whole file (checked in this process; no model load).
fn prefix_answer(bytes: &[u8]) -> Result<(), GgufError> {
    let len = bytes.len() as u64;
    let mut have = 16.min(bytes.len());
    loop {
        match GgufHeader::parse(&bytes[..have], Some(len)) {
            Err(GgufError::NeedMore { needed }) => {
                assert!(
                    needed > have as u64 && needed <= len,
                    "NeedMore({needed}) at {have}"
                );
                have = (needed as usize).max(have * 2).min(bytes.len());
            }
            r => return r.map(|_| ()),
        }
    }
}

/// Run `cases` in one child under the limit of the smallest file, and check each error.
fn check_cases(name: &str, cases: &[Case]) {
    let base = baseline(name);
    let dir = scratch(name);
    let files: Vec<PathBuf> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| write(&dir, i, &c.bytes))
        .collect();
    let min_len = cases.iter().map(|c| c.bytes.len() as u64).min().unwrap();
    let limit = limit_for(base, min_len);
    let run = run_child(&files, Some(limit)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut failures = Vec::new();
    for (c, got) in cases.iter().zip(&run.lines) {
        match got {
            Ok(()) => failures.push(format!("{}: loaded without error", c.name)),
            Err((kind, msg)) => {
                let lower = msg.to_lowercase();
                let missing: Vec<&String> = c
                    .expect
                    .iter()
                    .filter(|w| !lower.contains(&w.to_lowercase()))
                    .collect();
                if !missing.is_empty() {
                    failures.push(format!(
                        "{}: {kind} {msg:?} does not mention {missing:?}",
                        c.name
                    ));
                }
            }
        }
        let whole = GgufHeader::parse(&c.bytes, Some(c.bytes.len() as u64)).map(|_| ());
        let prefix = prefix_answer(&c.bytes);
        if whole != prefix {
            failures.push(format!(
                "{}: prefix loop {prefix:?} vs whole file {whole:?}",
                c.name
            ));
        }
    }
    println!(
        "{name}: {} files, child VmPeak {:.1} MiB, baseline {:.1} MiB, limit {:.1} MiB",
        cases.len(),
        run.vm_peak as f64 / 1048576.0,
        base as f64 / 1048576.0,
        limit as f64 / 1048576.0
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_tiny_model_loads() {
    let g = hostile::tiny_llama();
    let bytes = g.bytes();
    assert!(bytes.len() < 8 << 10, "{} bytes", bytes.len());
    let dir = scratch("tiny");
    let p = write(&dir, 0, &bytes);
    assert_eq!(hostile::load_check(&p), Ok(()));
    // Every truncation case must really be cut (the suite relies on this).
    assert!(hostile::truncations()
        .iter()
        .all(|c| c.bytes.len() < bytes.len()));
}

/// The fuzz seed is this generator's tiny model (regenerate with WISP_UPDATE_SEEDS=1).
#[test]
fn fuzz_seed_is_the_tiny_model() {
    let seeds = wisp_e2e::workspace_root().join("fuzz/seeds");
    let seed = seeds.join("gguf_file/tiny-llama.gguf");
    let bytes = hostile::tiny_llama().bytes();
    if std::env::var_os("WISP_UPDATE_SEEDS").is_some() {
        std::fs::write(&seed, &bytes).unwrap();
        let mut prefixed = vec![0x80 | 40];
        prefixed.extend(&bytes);
        std::fs::write(seeds.join("gguf_prefix/tiny-llama"), prefixed).unwrap();
    }
    assert!(
        std::fs::read(&seed).ok() == Some(bytes),
        "{} is stale: rerun with WISP_UPDATE_SEEDS=1",
        seed.display()
    );
}

#[test]
fn truncated_files() {
    check_cases("truncated", &hostile::truncations());
}

#[test]
fn broken_files() {
    check_cases("broken", &hostile::broken());
}

/// Headers whose in-memory form outgrows the file (tens of MiB of tiny records), each
/// in its own child with the limit for its own size.
#[test]
fn memory_amplifiers() {
    let base = baseline("amplifiers");
    let dir = scratch("amplifiers");
    let mut failures = Vec::new();
    for (i, (name, make, expect)) in hostile::amplifiers().into_iter().enumerate() {
        let bytes = make();
        let len = bytes.len() as u64;
        let p = write(&dir, i, &bytes);
        drop(bytes);
        let limit = limit_for(base, len);
        let run = run_child(std::slice::from_ref(&p), Some(limit));
        let _ = std::fs::remove_file(&p);
        let run = match run {
            Ok(run) => run,
            Err(e) => {
                failures.push(format!("{name} ({len} bytes, limit {limit}): {e}"));
                continue;
            }
        };
        match &run.lines[0] {
            Ok(()) => failures.push(format!("{name}: loaded")),
            Err((_, msg)) if !msg.to_lowercase().contains(expect) => {
                failures.push(format!("{name}: {msg:?} does not mention {expect:?}"))
            }
            Err(_) => {}
        }
        println!(
            "{name}: {:.1} MiB file, child VmPeak {:.1} MiB (limit {:.1} MiB)",
            len as f64 / 1048576.0,
            run.vm_peak as f64 / 1048576.0,
            limit as f64 / 1048576.0
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
