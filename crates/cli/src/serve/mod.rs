//! `wisp serve`: an OpenAI-compatible HTTP server over one loaded model.
//!
//! Built on tokio, hyper (through hyper-util, for its header-read timeout and graceful
//! shutdown) and axum's router, with tower-http for CORS, body timeouts and catching
//! panics. Nothing here parses HTTP by hand.
//!
//! # Shape
//!
//! - [`routes`]: the endpoints. A request is parsed and checked (JSON, types, sampling
//!   ranges, unsupported features) and its prompt tokenized *before* it asks for a
//!   session, so bad input is a 400 at once and never waits in the queue.
//! - [`sessions`]: `--parallel N` sessions over the one model, each with its own KV
//!   cache. A request takes the free session whose cached tokens share the longest prefix
//!   with its prompt, so a conversation's follow-up evaluates only the new turn. At most
//!   `--queue M` requests wait for a session; the next one gets 429 at once.
//! - Generation runs on tokio's blocking threads (never on the async workers). A request
//!   whose client goes away (its response future or its event stream is dropped) sets a
//!   flag that `generate_cancellable` checks before every prefill chunk and token, so the
//!   session is back in the pool within a token and keeps the evaluated prefix.
//! - [`sse`]: `stream: true` responses. Text goes from the generating thread to the
//!   stream through an unbounded channel: generation never waits for a slow reader, so a
//!   client that reads slowly holds a connection but never a session for longer than its
//!   generation takes.
//!
//! # Not here yet (and where it would go)
//!
//! - **Continuous batching** (the CPU engine, `--parallel` above 1): each request still
//!   runs `generate_cancellable` on its own thread over its own session, but the
//!   sessions are [`wisp::batch::Batched`]: every decode step goes to the model's one
//!   step group, which evaluates the pending token of every decoding request in one
//!   mat-mat pass. Prefill chunks run on their own. The GPU engine steps each session
//!   alone (a batched GPU decode would need one submission over several caches).
//!
//! # Not here yet
//!
//! - `tools`, `tool_choice` and `response_format` other than text: a 400 saying so, not
//!   silently ignored. `/v1/embeddings`: a 400 until embedding models load.
//!
//! # Safety defaults
//!
//! Loopback unless `--host` says otherwise, and then only with `--api-key`. Without a
//! key the server answers only `Host` headers naming a loopback address (a web page
//! cannot reach it by DNS rebinding), POST bodies must be `application/json` (a
//! cross-site form cannot post one without a CORS preflight) and no CORS headers are
//! sent unless `--cors-origin` allows an origin. Bodies are capped at [`MAX_BODY`],
//! headers must arrive within [`HEADER_TIMEOUT`] (idle keep-alive connections close
//! after it too) and a body within [`BODY_TIMEOUT`].

mod api;
mod errors;
mod generation;
mod reply;
mod routes;
mod sessions;
mod sse;

use crate::load::{self, Backend, Loaded};
use crate::prompt::ChatFormat;
use crate::ModelArgs;
use clap::Args;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use wisp::batch::{Batched, StepGroup};
use wisp::cpu::CpuEngineSession;

/// Request bodies above this are refused with 413.
pub const MAX_BODY: usize = 1 << 20;
/// A request's headers must arrive within this (also how long an idle connection stays).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A request's body must arrive within this.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// After Ctrl-C / SIGTERM, in-flight requests get this long before they are cancelled.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Flags of `wisp serve`.
#[derive(Args, Clone, Debug)]
pub struct ServeArgs {
    /// Address to listen on; anything but loopback needs --api-key.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: any free port; the chosen one is printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Require `Authorization: Bearer KEY` on every endpoint but /health.
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
    /// Sessions (KV caches) over the one model: requests generated at the same time.
    #[arg(long, default_value_t = 1)]
    pub parallel: usize,
    /// Requests that may wait for a session; beyond them the answer is 429.
    #[arg(long, default_value_t = 16)]
    pub queue: usize,
    /// The model's id in /v1/models and responses (default: the file name without .gguf).
    #[arg(long)]
    pub alias: Option<String>,
    /// Send CORS headers allowing this origin (repeatable; `*` for any).
    #[arg(long, value_name = "ORIGIN")]
    pub cors_origin: Vec<String>,
}

/// What every request reads: the model, its tokenizer and chat format, the sessions.
pub struct App {
    pub loaded: Loaded,
    pub chat: ChatFormat,
    pub model_id: String,
    /// Unix time the server started (the model's `created`).
    pub created: u64,
    pub fingerprint: String,
    pub pool: Arc<sessions::Pool>,
    pub api_key: Option<String>,
    /// Only loopback `Host` headers are answered (no key, loopback bind).
    pub loopback_only: bool,
    /// Set when shutdown's grace period is over: every generation stops.
    pub shutting_down: Arc<AtomicBool>,
}

fn parse_host(host: &str) -> Result<IpAddr, String> {
    if host == "localhost" {
        return Ok(IpAddr::from([127, 0, 0, 1]));
    }
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| {
            format!("--host wants an IP address (e.g. 127.0.0.1 or 0.0.0.0), got {host:?}")
        })
}

pub fn run(args: &ModelArgs, serve: &ServeArgs) -> Result<(), String> {
    let ip = parse_host(&serve.host)?;
    let api_key = serve.api_key.clone().filter(|k| !k.is_empty());
    if serve.api_key.is_some() && api_key.is_none() {
        return Err("--api-key must not be empty".into());
    }
    if !ip.is_loopback() && api_key.is_none() {
        return Err(format!(
            "refusing to listen on {ip} without --api-key: anyone who can reach it could use the model; \
             add --api-key KEY or keep the default --host 127.0.0.1"
        ));
    }
    if serve.parallel == 0 {
        return Err("--parallel must be at least 1".into());
    }
    // Bound before loading, so a taken port fails at once; accepting starts after.
    let addr = SocketAddr::new(ip, serve.port);
    let listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|_| l))
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let loaded = load::load(args)?;
    let chat = ChatFormat::new(&loaded)?;
    let sessions = sessions_for(&loaded, serve.parallel)?;
    let model_id = serve.alias.clone().unwrap_or_else(|| {
        let name = args
            .model
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        name.strip_suffix(".gguf")
            .map(str::to_string)
            .unwrap_or(name)
    });
    let device = match loaded.backend {
        Backend::Cpu(_) => "oracle",
        Backend::Engine(_) => "cpu",
        Backend::Gpu(_) => "gpu",
    };
    let app = Arc::new(App {
        chat,
        model_id,
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        fingerprint: format!("wisp-{}-{device}", env!("CARGO_PKG_VERSION")),
        pool: sessions::Pool::new(sessions, serve.queue),
        loopback_only: api_key.is_none(),
        api_key,
        shutting_down: Arc::new(AtomicBool::new(false)),
        loaded,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("wisp-serve")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the server's runtime: {e}"))?;
    let router = routes::router(Arc::clone(&app), &serve.cors_origin)?;
    let result = runtime.block_on(routes::serve(listener, router, app));
    // Generations still running were cancelled; do not wait on blocked threads.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// The `parallel` sessions over the loaded model. On the CPU engine their decode steps
/// are batched (one pass for every stream that is decoding, [`wisp::batch`]); the other
/// engines step each session on its own.
fn sessions_for(loaded: &load::Loaded, parallel: usize) -> Result<Vec<sessions::Session>, String> {
    if let (Backend::Engine(model), true) = (&loaded.backend, parallel > 1) {
        let group = StepGroup::new(BATCH_GATHER);
        return (0..parallel)
            .map(|_| {
                let session = CpuEngineSession::new(Arc::clone(model), loaded.n_ctx)
                    .map_err(|e| e.to_string())?;
                Ok(Box::new(Batched::new(session, Arc::clone(&group))) as sessions::Session)
            })
            .collect();
    }
    (0..parallel).map(|_| loaded.session()).collect()
}

/// How long a batched decode pass waits for a stream that is decoding but has not sent
/// its step yet (it is streaming text to a slow client, say): a fraction of one step.
const BATCH_GATHER: Duration = Duration::from_millis(2);
