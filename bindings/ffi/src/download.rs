//! Model downloads into the app's cache directory: resumable (`.part` file + HTTP Range),
//! with progress, an optional SHA-256 check and cancellation.

use crate::oneshot::{guard, spawn};
use crate::{CancelToken, LoadStage, ProgressListener, WispError};
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const CHUNK: usize = 256 << 10;

/// Download `url` into `cache_dir` (created if missing) and return the file's path.
///
/// The file is named after the URL's last path segment. A finished file is reused (after
/// checking `sha256`, when given); an interrupted one (`NAME.part`) is resumed with an
/// HTTP Range request. A SHA-256 mismatch deletes the file and fails with
/// `ChecksumMismatch`; cancelling keeps the `.part` file for a later resume. Blocking.
#[uniffi::export]
pub fn download_model(
    url: String,
    cache_dir: String,
    sha256: Option<String>,
    progress: Option<Arc<dyn ProgressListener>>,
    cancel: Option<Arc<CancelToken>>,
) -> Result<String, WispError> {
    guard(|| {
        let job = Job {
            progress,
            cancel,
            expected: sha256.map(|s| normalize_sha(&s)).transpose()?,
        };
        job.run(&url, Path::new(&cache_dir))
            .map(|p| p.to_string_lossy().into_owned())
    })
}

/// `download_model` on a background thread.
#[uniffi::export]
pub async fn download_model_async(
    url: String,
    cache_dir: String,
    sha256: Option<String>,
    progress: Option<Arc<dyn ProgressListener>>,
    cancel: Option<Arc<CancelToken>>,
) -> Result<String, WispError> {
    spawn("download", move || {
        download_model(url, cache_dir, sha256, progress, cancel)
    })
    .await
}

pub(crate) fn normalize_sha(s: &str) -> Result<String, WispError> {
    let s = s.trim().to_ascii_lowercase();
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(WispError::InvalidRequest {
            detail: format!("sha256 wants 64 hex digits, got {s:?}"),
        });
    }
    Ok(s)
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> WispError {
    WispError::Io {
        detail: format!("cannot {what} {}: {e}", path.display()),
    }
}

/// The file name a URL is saved under: its last path segment, without query or fragment.
fn file_name(url: &str) -> Result<String, WispError> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let after_host = path.split_once("://").map_or(path, |(_, rest)| rest);
    let name = after_host
        .split_once('/')
        .map(|(_, p)| p.rsplit('/').next().unwrap_or(""))
        .unwrap_or("");
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['\\', '\0'])
        && name.len() <= 255;
    if ok {
        Ok(name.to_string())
    } else {
        Err(WispError::InvalidRequest {
            detail: format!("cannot name a file after {url:?}: it has no file name"),
        })
    }
}

struct Job {
    progress: Option<Arc<dyn ProgressListener>>,
    cancel: Option<Arc<CancelToken>>,
    expected: Option<String>,
}

impl Job {
    fn report(&self, stage: LoadStage, done: u64, total: u64) {
        if let Some(p) = &self.progress {
            p.on_progress(stage, done, total);
        }
    }

    fn check_cancel(&self) -> Result<(), WispError> {
        match &self.cancel {
            Some(c) if c.is_cancelled() => Err(WispError::Cancelled),
            _ => Ok(()),
        }
    }

    fn run(&self, url: &str, dir: &Path) -> Result<PathBuf, WispError> {
        let name = file_name(url)?;
        fs::create_dir_all(dir).map_err(|e| io_err("create", dir, e))?;
        let dest = dir.join(&name);
        let part = dir.join(format!("{name}.part"));
        if dest.is_file() {
            match self.verify(&dest) {
                Ok(()) => return Ok(dest),
                // A stale or damaged cached copy: fetch it again.
                Err(WispError::ChecksumMismatch { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        self.fetch(url, &part)?;
        self.verify(&part)?;
        fs::rename(&part, &dest).map_err(|e| io_err("rename", &part, e))?;
        Ok(dest)
    }

    /// Append the rest of `url` to `part`.
    fn fetch(&self, url: &str, part: &Path) -> Result<(), WispError> {
        self.check_cancel()?;
        let have = fs::metadata(part).map(|m| m.len()).unwrap_or(0);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_body(Some(Duration::from_secs(60)))
            .build()
            .into();
        let mut req = agent.get(url);
        if have > 0 {
            req = req.header("Range", format!("bytes={have}-"));
        }
        let resp = req.call().map_err(|e| WispError::Download {
            detail: format!("{url}: {e}"),
        })?;
        let status = resp.status().as_u16();
        let len = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let (mut done, append) = match status {
            206 => (have, true),
            200 => (0, false),
            // The part file already holds everything the server has.
            416 if have > 0 => return Ok(()),
            _ => {
                return Err(WispError::Download {
                    detail: format!("{url}: HTTP {status}"),
                })
            }
        };
        let total = len.map_or(0, |l| l + done);
        let mut out = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(!append)
            .open(part)
            .map_err(|e| io_err("create", part, e))?;
        if append {
            out.seek(SeekFrom::End(0))
                .map_err(|e| io_err("seek", part, e))?;
        }
        let mut body = resp.into_body().into_reader();
        let mut buf = vec![0u8; CHUNK];
        self.report(LoadStage::Downloading, done, total);
        loop {
            self.check_cancel()?;
            let n = body.read(&mut buf).map_err(|e| WispError::Download {
                detail: format!("{url}: {e} after {done} bytes (call again to resume)"),
            })?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n])
                .map_err(|e| io_err("write", part, e))?;
            done += n as u64;
            self.report(LoadStage::Downloading, done, total);
        }
        out.flush().map_err(|e| io_err("write", part, e))?;
        if total > 0 && done != total {
            return Err(WispError::Download {
                detail: format!("{url}: the connection closed after {done} of {total} bytes (call again to resume)"),
            });
        }
        Ok(())
    }

    /// Check the file's SHA-256 when one is expected; a mismatch deletes the file.
    fn verify(&self, path: &Path) -> Result<(), WispError> {
        let Some(expected) = &self.expected else {
            return Ok(());
        };
        let mut file = File::open(path).map_err(|e| io_err("open", path, e))?;
        let total = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let mut done = 0u64;
        loop {
            self.check_cancel()?;
            let n = file.read(&mut buf).map_err(|e| io_err("read", path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            done += n as u64;
            self.report(LoadStage::Verifying, done, total);
        }
        let actual = hex(hasher);
        if &actual != expected {
            let _ = fs::remove_file(path);
            return Err(WispError::ChecksumMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        Ok(())
    }
}

pub(crate) fn hex(hasher: Sha256) -> String {
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Check `bytes` (a loaded model's file) against `expected` (normalized), reporting
/// progress as `Verifying` and stopping when `cancelled` says so.
pub(crate) fn verify_bytes(
    bytes: &[u8],
    expected: &str,
    progress: Option<&Arc<dyn ProgressListener>>,
    cancelled: &dyn Fn() -> bool,
) -> Result<(), WispError> {
    let total = bytes.len() as u64;
    let mut hasher = Sha256::new();
    let mut done = 0u64;
    for chunk in bytes.chunks(CHUNK) {
        if cancelled() {
            return Err(WispError::Cancelled);
        }
        hasher.update(chunk);
        done += chunk.len() as u64;
        if let Some(p) = progress {
            p.on_progress(LoadStage::Verifying, done, total);
        }
    }
    let actual = hex(hasher);
    if actual != expected {
        return Err(WispError::ChecksumMismatch {
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
