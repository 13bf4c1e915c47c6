//! A small static file server for the demo and the browser tests: GET/HEAD with byte
//! ranges, `no-store` caching (so a reload that needs no network proves Wisp's own cache,
//! not the browser's), counters of model bytes sent, and a fault switch that drops a
//! connection mid-body to exercise resuming.
//!
//! Routes: `/` → `demo/index.html`; `/demo/…`; `/dist/…` (the npm package);
//! `/models/…` (the test models); `/__stats` (JSON counters); `/__reset`.
//! `?drop=N` on a model URL cuts the first full response after N bytes.
//!
//! Every response carries `Cross-Origin-Opener-Policy: same-origin` and
//! `Cross-Origin-Embedder-Policy: require-corp` (plus `Cross-Origin-Resource-Policy:
//! same-origin`), which make the pages cross-origin isolated: the CPU engine's worker
//! threads need `SharedArrayBuffer`, which browsers give only to isolated pages. `?coi=0`
//! on a page's URL leaves the two headers out (to test the one-thread fallback).

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct Stats {
    pub model_bytes: AtomicU64,
    pub model_requests: AtomicU64,
    /// Where the last ranged model request started (what a resumed download asked for).
    pub model_range_start: AtomicU64,
    dropped: Mutex<HashSet<String>>,
}

pub struct Roots {
    pub demo: PathBuf,
    pub dist: PathBuf,
    pub models: PathBuf,
}

/// Serve on `addr` ("127.0.0.1:0" for any free port) in background threads; returns
/// the bound address.
pub fn start(addr: &str, roots: Roots) -> Result<(String, Arc<Stats>), String> {
    let listener = TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| e.to_string())?
        .to_string();
    let stats = Arc::new(Stats::default());
    let roots = Arc::new(roots);
    let s = Arc::clone(&stats);
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let (roots, stats) = (Arc::clone(&roots), Arc::clone(&s));
            std::thread::spawn(move || {
                let _ = handle(conn, &roots, &stats);
            });
        }
    });
    Ok((bound, stats))
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("wasm") => "application/wasm",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        Some("ts") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// `rel` under `root`, refusing `..` and absolute parts.
fn under(root: &Path, rel: &str) -> Option<PathBuf> {
    let rel = Path::new(rel);
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    Some(root.join(rel))
}

/// The headers of cross-origin isolation (see the module docs); none with `?coi=0`.
fn isolation(query: &str) -> &'static str {
    if query.split('&').any(|kv| kv == "coi=0") {
        "Cross-Origin-Resource-Policy: same-origin\r\n"
    } else {
        "Cross-Origin-Opener-Policy: same-origin\r\nCross-Origin-Embedder-Policy: require-corp\r\nCross-Origin-Resource-Policy: same-origin\r\n"
    }
}

fn respond(conn: &mut TcpStream, status: &str, ctype: &str, body: &[u8]) -> std::io::Result<()> {
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n{}Connection: close\r\n\r\n",
        body.len(),
        isolation("")
    )?;
    conn.write_all(body)
}

fn handle(mut conn: TcpStream, roots: &Roots, stats: &Stats) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let mut range: Option<String> = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let drop_after: Option<u64> = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("drop="))
        .and_then(|n| n.parse().ok());
    if path == "/__stats" {
        let body = format!(
            "{{\"model_bytes\":{},\"model_requests\":{},\"model_range_start\":{}}}",
            stats.model_bytes.load(Ordering::Relaxed),
            stats.model_requests.load(Ordering::Relaxed),
            stats.model_range_start.load(Ordering::Relaxed)
        );
        return respond(&mut conn, "200 OK", "application/json", body.as_bytes());
    }
    if path == "/__reset" {
        stats.model_bytes.store(0, Ordering::Relaxed);
        stats.model_requests.store(0, Ordering::Relaxed);
        stats.model_range_start.store(0, Ordering::Relaxed);
        stats
            .dropped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        return respond(&mut conn, "200 OK", "application/json", b"{}");
    }
    let file = if path == "/" {
        under(&roots.demo, "index.html")
    } else if let Some(rel) = path.strip_prefix("/demo/") {
        under(&roots.demo, rel)
    } else if let Some(rel) = path.strip_prefix("/dist/") {
        under(&roots.dist, rel)
    } else if let Some(rel) = path.strip_prefix("/models/") {
        under(&roots.models, rel)
    } else {
        None
    };
    let is_model = path.starts_with("/models/");
    let Some(file) = file.filter(|f| f.is_file()) else {
        return respond(&mut conn, "404 Not Found", "text/plain", b"not found");
    };
    if method != "GET" && method != "HEAD" {
        return respond(
            &mut conn,
            "405 Method Not Allowed",
            "text/plain",
            b"GET only",
        );
    }
    let mut f = std::fs::File::open(&file)?;
    let size = f.metadata()?.len();
    let (status, start, end) = match range.as_deref().and_then(|r| parse_range(r, size)) {
        Some((s, e)) => ("206 Partial Content", s, e),
        None if range.is_some() => {
            write!(
                conn,
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{size}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )?;
            return Ok(());
        }
        None => ("200 OK", 0, size),
    };
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {}\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\nCache-Control: no-store\r\n{}Connection: close\r\n",
        content_type(&file),
        end - start,
        isolation(query)
    );
    if status.starts_with("206") {
        head += &format!("Content-Range: bytes {start}-{}/{size}\r\n", end - 1);
    }
    head += "\r\n";
    conn.write_all(head.as_bytes())?;
    if method == "HEAD" {
        return Ok(());
    }
    if is_model {
        stats.model_requests.fetch_add(1, Ordering::Relaxed);
        if range.is_some() {
            stats.model_range_start.store(start, Ordering::Relaxed);
        }
    }
    // The fault switch: cut the first full response of this URL after N bytes.
    let cut = drop_after.filter(|_| {
        range.is_none()
            && stats
                .dropped
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(target.to_string())
    });
    f.seek(SeekFrom::Start(start))?;
    let mut left = end - start;
    let mut sent = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let mut n = (buf.len() as u64).min(left) as usize;
        if let Some(c) = cut {
            if sent >= c {
                return Ok(()); // drop the connection
            }
            n = n.min((c - sent) as usize);
        }
        f.read_exact(&mut buf[..n])?;
        conn.write_all(&buf[..n])?;
        if is_model {
            stats.model_bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
        left -= n as u64;
        sent += n as u64;
    }
    Ok(())
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` → [start, end) within `size`.
fn parse_range(r: &str, size: u64) -> Option<(u64, u64)> {
    let spec = r.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => (size.saturating_sub(n.parse().ok()?), size),
        (a, "") => (a.parse().ok()?, size),
        (a, b) => (
            a.parse().ok()?,
            b.parse::<u64>().ok()?.saturating_add(1).min(size),
        ),
    };
    (start < end).then_some((start, end))
}
