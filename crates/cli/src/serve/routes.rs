//! The endpoints, the middleware in front of them (request log, `Host` check, API key,
//! content type, panics) and the accept loop with its timeouts and graceful shutdown.

use super::api::{self, ChatRequest, Common, CompletionRequest, PromptInput, Settings};
use super::errors::ApiError;
use super::generation::{self, CancelOnDrop, Event};
use super::reply::{self, Kind, Reply};
use super::{sse, App, BODY_TIMEOUT, HEADER_TIMEOUT, MAX_BODY, SHUTDOWN_GRACE};
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::RequestBodyTimeoutLayer;

/// Open connections beyond this are closed at once (idle ones close after
/// [`HEADER_TIMEOUT`] anyway).
const MAX_CONNECTIONS: usize = 1024;

type AppState = State<Arc<App>>;

pub fn router(app: Arc<App>, cors_origins: &[String]) -> Result<Router, String> {
    let api = Router::new()
        .route("/v1/models", get(models))
        .route("/v1/models/{id}", get(model))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(RequestBodyTimeoutLayer::new(BODY_TIMEOUT))
        .layer(middleware::from_fn(json_only))
        .layer(middleware::from_fn_with_state(Arc::clone(&app), auth));
    let mut router = Router::new()
        .route("/health", get(health))
        .merge(api)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&app),
            loopback_host,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal("internal error (the server keeps running)").into_response()
        }));
    if !cors_origins.is_empty() {
        let origin = if cors_origins.iter().any(|o| o == "*") {
            AllowOrigin::any()
        } else {
            let list = cors_origins
                .iter()
                .map(|o| {
                    HeaderValue::from_str(o)
                        .map_err(|_| format!("--cors-origin {o:?} is not a valid origin"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            AllowOrigin::list(list)
        };
        router = router.layer(
            CorsLayer::new()
                .allow_origin(origin)
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]),
        );
    }
    Ok(router
        .layer(middleware::from_fn(log_requests))
        .with_state(app))
}

// ---- the request log -------------------------------------------------------------

/// What a handler tells the log line about its request (tokens, how it ended).
#[derive(Clone, Default)]
pub struct LogCell(Arc<Mutex<LogInfo>>);

#[derive(Default)]
struct LogInfo {
    prompt: Option<usize>,
    completion: Option<usize>,
    /// Prompt tokens the session already had cached.
    cached: Option<usize>,
    outcome: Option<&'static str>,
}

impl LogCell {
    fn with(&self, f: impl FnOnce(&mut LogInfo)) {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn prompt(&self, n: usize) {
        self.with(|i| i.prompt = Some(n));
    }

    pub fn finished(&self, g: &wisp::generate::Generation) {
        self.with(|i| {
            i.completion = Some(g.tokens.len());
            i.cached = Some(g.prompt_tokens.saturating_sub(g.prefilled_tokens));
            i.outcome = Some(g.finish_reason.as_str());
        });
    }

    pub fn failed(&self) {
        self.with(|i| i.outcome = Some("error"));
    }

    /// The client left before the end (unless an outcome is already known).
    pub fn gone(&self) {
        self.with(|i| {
            i.outcome.get_or_insert("cancelled: client gone");
        });
    }
}

/// Printed when the response body is done or dropped (streams are logged at their
/// end), or when the request is dropped before it has a response (the client left).
struct LogLine {
    method: Method,
    path: String,
    status: Option<StatusCode>,
    cell: LogCell,
    start: Instant,
}

impl Drop for LogLine {
    fn drop(&mut self) {
        let info = self.cell.0.lock().unwrap_or_else(PoisonError::into_inner);
        let status = self
            .status
            .map_or("-".to_string(), |s| s.as_u16().to_string());
        let mut line = format!("{} {} {status}", self.method, self.path);
        if let Some(p) = info.prompt {
            let c = info.completion.map_or("-".to_string(), |c| c.to_string());
            line += &format!(" tokens={p}+{c}");
            if let Some(cached) = info.cached {
                line += &format!(" cached={cached}");
            }
        }
        match (info.outcome, self.status) {
            (Some(o), _) => line += &format!(" {o}"),
            (None, None) => line += " client gone",
            (None, Some(_)) => {}
        }
        eprintln!("{line} {} ms", self.start.elapsed().as_millis());
    }
}

/// A response body that carries its log line.
struct Logged {
    inner: Body,
    _line: LogLine,
}

impl http_body::Body for Logged {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

async fn log_requests(mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let cell = LogCell::default();
    req.extensions_mut().insert(cell.clone());
    // Logs on drop, so a request whose client leaves before the answer is logged too.
    let mut line = LogLine {
        method,
        path,
        status: None,
        cell,
        start,
    };
    let res = next.run(req).await;
    line.status = Some(res.status());
    let (parts, inner) = res.into_parts();
    Response::from_parts(parts, Body::new(Logged { inner, _line: line }))
}

// ---- guards ----------------------------------------------------------------------

/// Without an API key the server is for this machine only: a `Host` naming anything
/// but a loopback address is refused, so a web page cannot reach it by DNS rebinding.
async fn loopback_host(State(app): AppState, req: Request, next: Next) -> Response {
    if app.loopback_only {
        if let Some(host) = req.headers().get(header::HOST) {
            if !is_loopback_host(host.to_str().unwrap_or("")) {
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    "invalid_request_error",
                    "this server answers only requests addressed to localhost (Host header); \
                     serve with --api-key to accept others",
                )
                .into_response();
            }
        }
    }
    next.run(req).await
}

fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    // Constant time in the key's content, so its bytes cannot be timed out one by one.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn auth(State(app): AppState, req: Request, next: Next) -> Response {
    if let Some(key) = &app.api_key {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if !given.is_some_and(|g| same_bytes(g.as_bytes(), key.as_bytes())) {
            let mut e = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "missing or wrong API key: send Authorization: Bearer KEY",
            )
            .with_code("invalid_api_key");
            if given.is_none() {
                e.message = "no API key: send Authorization: Bearer KEY".into();
            }
            return e.into_response();
        }
    }
    next.run(req).await
}

/// POST bodies must say they are JSON: a cross-site form or `text/plain` fetch (which
/// needs no CORS preflight) then cannot make the server generate.
async fn json_only(req: Request, next: Next) -> Response {
    if req.method() == Method::POST {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_request_error",
                "the body must be JSON with Content-Type: application/json",
            )
            .into_response();
        }
    }
    next.run(req).await
}

// ---- endpoints -------------------------------------------------------------------

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

fn model_object(app: &App) -> serde_json::Value {
    json!({
        "id": app.model_id,
        "object": "model",
        "created": app.created,
        "owned_by": "wisp",
        "meta": {"n_ctx": app.loaded.n_ctx, "n_vocab": app.loaded.config.n_vocab},
    })
}

async fn models(State(app): AppState) -> Json<serde_json::Value> {
    Json(json!({"object": "list", "data": [model_object(&app)]}))
}

async fn model(
    State(app): AppState,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    if id == app.model_id {
        Json(model_object(&app)).into_response()
    } else {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!(
                "the model {id:?} does not exist; this server serves {:?}",
                app.model_id
            ),
        )
        .with_code("model_not_found")
        .into_response()
    }
}

async fn embeddings(State(app): AppState) -> ApiError {
    ApiError::invalid(format!(
        "{} is not an embedding model; /v1/embeddings needs one (embedding models are not supported yet)",
        app.model_id
    ))
    .with_param("model")
    .with_code("model_not_embedding")
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!("no endpoint {} {}", req.method(), req.uri().path()),
    )
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

fn body_error(e: BytesRejection) -> ApiError {
    let text = e.body_text();
    let (status, message) = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        (
            e.status(),
            format!("the body is larger than {MAX_BODY} bytes"),
        )
    } else if text.contains("timeout") {
        (
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the body did not arrive within {} s",
                BODY_TIMEOUT.as_secs()
            ),
        )
    } else {
        (e.status(), format!("cannot read the body: {text}"))
    };
    ApiError::new(status, "invalid_request_error", message)
}

fn join_error(e: tokio::task::JoinError) -> ApiError {
    ApiError::internal(format!("generation failed: {e}"))
}

fn n_vocab(app: &App) -> usize {
    app.loaded
        .config
        .n_vocab
        .min(app.loaded.tokenizer.vocab_size())
}

async fn chat(
    State(app): AppState,
    Extension(log): Extension<LogCell>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    chat_inner(app, log, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn chat_inner(
    app: Arc<App>,
    log: LogCell,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_error)?;
    let body = api::json(&body)?;
    let common: Common = api::fields(&body)?;
    let req: ChatRequest = api::fields(&body)?;
    common.check_model(&app.model_id)?;
    req.check_unsupported()?;
    let settings = common.settings(n_vocab(&app))?;
    let messages = req.messages()?;
    let a = Arc::clone(&app);
    // Templates are untrusted code on a fuel budget: render off the async workers.
    let prompt = tokio::task::spawn_blocking(move || a.chat.tokens(&a.loaded.tokenizer, &messages))
        .await
        .map_err(join_error)??;
    let reply = reply_for(&app, Kind::Chat, None, &settings);
    respond(app, log, prompt, settings, reply, "messages").await
}

async fn completions(
    State(app): AppState,
    Extension(log): Extension<LogCell>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    completions_inner(app, log, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn completions_inner(
    app: Arc<App>,
    log: LogCell,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_error)?;
    let body = api::json(&body)?;
    let common: Common = api::fields(&body)?;
    let req: CompletionRequest = api::fields(&body)?;
    common.check_model(&app.model_id)?;
    req.check_unsupported()?;
    let settings = common.settings(n_vocab(&app))?;
    let input = req.prompt(n_vocab(&app))?;
    let echo = req.echo.unwrap_or(false);
    let a = Arc::clone(&app);
    let (prompt, text) = tokio::task::spawn_blocking(move || match input {
        // As `wisp run --special`: a raw prompt is the caller's own markup.
        PromptInput::Text(t) => (crate::prompt::raw_tokens(&a.loaded.tokenizer, &t, true), t),
        PromptInput::Tokens(ids) => {
            let text = a.loaded.tokenizer.decode(&ids, false);
            (ids, text)
        }
    })
    .await
    .map_err(join_error)?;
    let reply = reply_for(&app, Kind::Completion, echo.then_some(text), &settings);
    respond(app, log, prompt, settings, reply, "prompt").await
}

fn reply_for(app: &App, kind: Kind, echo: Option<String>, settings: &Settings) -> Reply {
    Reply {
        kind,
        id: reply::new_id(match kind {
            Kind::Chat => "chatcmpl",
            Kind::Completion => "cmpl",
        }),
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        model: app.model_id.clone(),
        fingerprint: app.fingerprint.clone(),
        echo,
        include_usage: settings.include_usage,
    }
}

/// Queue for a session, generate on a blocking thread, answer whole or as a stream.
async fn respond(
    app: Arc<App>,
    log: LogCell,
    prompt: Vec<u32>,
    settings: Settings,
    reply: Reply,
    prompt_param: &str,
) -> Result<Response, ApiError> {
    let n_ctx = app.loaded.n_ctx;
    log.prompt(prompt.len());
    if prompt.len() > n_ctx {
        return Err(ApiError::from(wisp::Error::ContextFull {
            needed: prompt.len(),
            n_ctx,
        })
        .with_param(prompt_param));
    }
    let ticket = app.pool.admit().map_err(ApiError::busy)?;
    // Dropped with this future (the client went away while queued or generating) or
    // with the event stream: either way the generation stops.
    let cancel = CancelOnDrop::new();
    let flag = cancel.flag();
    let mut lease = app.pool.lease(ticket, &prompt).await;
    if settings.stream {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let a = Arc::clone(&app);
        tokio::task::spawn_blocking(move || {
            let result = generation::run(&a, &mut lease, &prompt, &settings, &flag, &mut |t| {
                tx.send(Event::Text(t.to_string())).is_ok()
            });
            // The session is free before the client hears the end.
            drop(lease);
            let _ = tx.send(Event::Done(result));
        });
        return Ok(sse::response(rx, cancel, reply, log));
    }
    let a = Arc::clone(&app);
    let generated = tokio::task::spawn_blocking(move || {
        let result = generation::run(&a, &mut lease, &prompt, &settings, &flag, &mut |_| true);
        drop(lease);
        result
    })
    .await
    .map_err(join_error)?;
    let g = match generated {
        Ok(g) => g,
        Err(e) => {
            log.failed();
            return Err(e.into());
        }
    };
    log.finished(&g);
    if app.shutting_down.load(Ordering::Acquire) {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "the server is shutting down",
        ));
    }
    drop(cancel);
    Ok(Json(reply.full(&g)).into_response())
}

// ---- the accept loop -------------------------------------------------------------

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

pub async fn serve(
    listener: std::net::TcpListener,
    router: Router,
    app: Arc<App>,
) -> Result<(), String> {
    let listener = TcpListener::from_std(listener).map_err(|e| format!("cannot listen: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot listen: {e}"))?;
    eprintln!("listening on http://{local}");
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut signal = std::pin::pin!(shutdown_signal());
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    eprintln!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut signal => break,
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            continue; // dropping the stream closes it
        };
        let _ = stream.set_nodelay(true);
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(
                TokioIo::new(stream),
                TowerToHyperService::new(router.clone()),
            );
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    eprintln!("shutting down");
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        // Stop what is still generating; its clients get what was generated so far.
        app.shutting_down.store(true, Ordering::Release);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:8080",
            "127.0.0.1:1",
            "127.8.0.1",
            "[::1]:80",
            "[::1]",
            "LOCALHOST",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "evil.example",
            "evil.example:8080",
            "10.0.0.1:80",
            "[::2]:80",
            "localhost.evil.example",
            "",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }
}
