//! Downloads against a local HTTP server that can drop the connection midway.

use super::*;
use std::io::BufRead;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

struct Server {
    url: String,
    /// The `Range` start of every request received (None: no Range header).
    ranges: Arc<Mutex<Vec<Option<u64>>>>,
}

/// Serve `body` at /models/test.gguf; the first `cut_first` requests stop after `cut_at`
/// bytes, as a dropped connection would.
fn serve(body: Vec<u8>, cut_first: usize, cut_at: usize) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/models/test.gguf?download=true",
        listener.local_addr().unwrap()
    );
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&ranges);
    let served = AtomicUsize::new(0);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut start = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(r) = lower.strip_prefix("range: bytes=") {
                    start = r.trim().trim_end_matches('-').parse::<u64>().ok();
                }
            }
            seen.lock().unwrap().push(start);
            let from = start.unwrap_or(0) as usize;
            let head = if from >= body.len() && start.is_some() {
                let _ = stream.write_all(
                    b"HTTP/1.1 416 Range Not Satisfiable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            } else if start.is_some() {
                format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {from}-{}/{}\r\nConnection: close\r\n\r\n",
                    body.len() - from,
                    body.len() - 1,
                    body.len()
                )
            } else {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
            };
            let _ = stream.write_all(head.as_bytes());
            let n = served.fetch_add(1, Ordering::SeqCst);
            let end = if n < cut_first {
                cut_at.max(from).min(body.len())
            } else {
                body.len()
            };
            let _ = stream.write_all(&body[from..end]);
        }
    });
    Server { url, ranges }
}

fn body() -> Vec<u8> {
    (0..3_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn tmp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wisp-ffi-dl-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

struct Recorder(Mutex<Vec<(LoadStage, u64, u64)>>);
impl ProgressListener for Recorder {
    fn on_progress(&self, stage: LoadStage, done: u64, total: u64) {
        self.0.lock().unwrap().push((stage, done, total));
    }
}

fn dl(
    url: &str,
    dir: &Path,
    sha: Option<String>,
    progress: Option<Arc<dyn ProgressListener>>,
    cancel: Option<Arc<CancelToken>>,
) -> Result<String, WispError> {
    download_model(
        url.into(),
        dir.to_string_lossy().into_owned(),
        sha,
        progress,
        cancel,
    )
}

#[test]
fn downloads_checks_and_reuses() {
    let data = body();
    let server = serve(data.clone(), 0, 0);
    let dir = tmp_dir("full");
    let rec = Arc::new(Recorder(Mutex::new(Vec::new())));
    let path = dl(
        &server.url,
        &dir,
        Some(sha(&data).to_uppercase()),
        Some(rec.clone()),
        None,
    )
    .unwrap();
    assert_eq!(path, dir.join("test.gguf").to_string_lossy());
    assert_eq!(fs::read(&path).unwrap(), data);
    let events = rec.0.lock().unwrap().clone();
    let last_dl = events
        .iter()
        .rev()
        .find(|e| e.0 == LoadStage::Downloading)
        .unwrap();
    assert_eq!(
        (last_dl.1, last_dl.2),
        (data.len() as u64, data.len() as u64)
    );
    assert!(events.iter().any(|e| e.0 == LoadStage::Verifying));
    // A second call finds the file and does not ask the server again.
    dl(&server.url, &dir, Some(sha(&data)), None, None).unwrap();
    assert_eq!(server.ranges.lock().unwrap().len(), 1);
    // A cached file altered since (same size) fails its hash and is fetched again.
    let mut tampered = data.clone();
    tampered[100] ^= 1;
    fs::write(&path, &tampered).unwrap();
    dl(&server.url, &dir, Some(sha(&data)), None, None).unwrap();
    assert_eq!(server.ranges.lock().unwrap().len(), 2);
    assert_eq!(fs::read(&path).unwrap(), data);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn resumes_after_a_dropped_connection() {
    let data = body();
    let server = serve(data.clone(), 1, 1_000_000);
    let dir = tmp_dir("resume");
    let err = dl(&server.url, &dir, Some(sha(&data)), None, None).unwrap_err();
    assert!(matches!(err, WispError::Download { .. }), "{err:?}");
    assert_eq!(
        fs::metadata(dir.join("test.gguf.part")).unwrap().len(),
        1_000_000
    );
    let path = dl(&server.url, &dir, Some(sha(&data)), None, None).unwrap();
    assert_eq!(fs::read(&path).unwrap(), data);
    assert_eq!(*server.ranges.lock().unwrap(), vec![None, Some(1_000_000)]);
    assert!(!dir.join("test.gguf.part").exists());
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_wrong_checksum_fails_and_deletes() {
    let data = body();
    let server = serve(data.clone(), 0, 0);
    let dir = tmp_dir("sha");
    let wrong = "0".repeat(64);
    let err = dl(&server.url, &dir, Some(wrong.clone()), None, None).unwrap_err();
    assert_eq!(
        err,
        WispError::ChecksumMismatch {
            expected: wrong,
            actual: sha(&data)
        }
    );
    assert!(!dir.join("test.gguf").exists() && !dir.join("test.gguf.part").exists());
    let bad = dl(&server.url, &dir, Some("abc".into()), None, None).unwrap_err();
    assert!(matches!(bad, WispError::InvalidRequest { .. }), "{bad:?}");
    let _ = fs::remove_dir_all(&dir);
}

/// Cancels from inside the progress callback once some bytes arrived.
struct CancelAfter(Arc<CancelToken>, u64);
impl ProgressListener for CancelAfter {
    fn on_progress(&self, _: LoadStage, done: u64, _: u64) {
        if done >= self.1 {
            self.0.cancel();
        }
    }
}

#[test]
fn cancels_and_keeps_the_part_file() {
    let data = body();
    let server = serve(data.clone(), 0, 0);
    let dir = tmp_dir("cancel");
    let token = CancelToken::new();
    let err = dl(
        &server.url,
        &dir,
        None,
        Some(Arc::new(CancelAfter(token.clone(), 1))),
        Some(token),
    )
    .unwrap_err();
    assert_eq!(err, WispError::Cancelled);
    let kept = fs::metadata(dir.join("test.gguf.part")).unwrap().len();
    assert!(kept > 0 && kept < data.len() as u64, "{kept}");
    let path = dl(&server.url, &dir, None, None, None).unwrap();
    assert_eq!(fs::read(&path).unwrap(), data);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn names_files_after_the_url() {
    assert_eq!(
        file_name("https://h.co/a/b/SmolLM2.Q4_1.gguf?download=true").unwrap(),
        "SmolLM2.Q4_1.gguf"
    );
    assert!(file_name("https://h.co/").is_err());
    assert!(file_name("https://h.co").is_err());
    assert!(file_name("https://h.co/a/..").is_err());
}

#[test]
fn http_errors_are_typed() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let dir = tmp_dir("404");
    let err = dl(&format!("http://{addr}/x.gguf"), &dir, None, None, None).unwrap_err();
    assert!(
        matches!(&err, WispError::Download { detail } if detail.contains("404")),
        "{err:?}"
    );
    let _ = fs::remove_dir_all(&dir);
}
