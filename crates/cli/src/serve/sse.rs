//! `stream: true`: server-sent events, one `data: {chunk}` per piece of text, ending
//! with the finish chunk, the usage chunk when asked for, and `data: [DONE]`.
//!
//! The stream owns the request's [`CancelOnDrop`]: when the client goes away hyper drops
//! the body, and with it the stream, which cancels the generation.

use super::errors::ApiError;
use super::generation::{CancelOnDrop, Event};
use super::reply::Reply;
use super::routes::LogCell;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, StreamExt};
use std::convert::Infallible;
use tokio::sync::mpsc::UnboundedReceiver;

struct State {
    rx: UnboundedReceiver<Event>,
    reply: Reply,
    log: LogCell,
    started: bool,
    ended: bool,
    _cancel: CancelOnDrop,
}

impl Drop for State {
    fn drop(&mut self) {
        if !self.ended {
            self.log.gone();
        }
    }
}

fn data(v: &serde_json::Value) -> Result<SseEvent, Infallible> {
    Ok(SseEvent::default().data(v.to_string()))
}

async fn next(mut s: State) -> Option<(Vec<Result<SseEvent, Infallible>>, State)> {
    if s.ended {
        return None;
    }
    if !s.started {
        s.started = true;
        if let Some(first) = s.reply.first_chunk() {
            return Some((vec![data(&first)], s));
        }
    }
    let events = match s.rx.recv().await {
        Some(Event::Text(t)) => vec![data(&s.reply.text_chunk(&t))],
        Some(Event::Done(Ok(g))) => {
            s.ended = true;
            s.log.finished(&g);
            let mut out = vec![data(&s.reply.finish_chunk(g.finish_reason))];
            if s.reply.include_usage {
                out.push(data(&s.reply.usage_chunk(&g)));
            }
            out.push(Ok(SseEvent::default().data("[DONE]")));
            out
        }
        Some(Event::Done(Err(e))) => {
            s.ended = true;
            s.log.failed();
            vec![data(&ApiError::from(e).body())]
        }
        None => {
            s.ended = true;
            s.log.failed();
            vec![data(
                &ApiError::internal("generation ended unexpectedly").body(),
            )]
        }
    };
    Some((events, s))
}

pub fn response(
    rx: UnboundedReceiver<Event>,
    cancel: CancelOnDrop,
    reply: Reply,
    log: LogCell,
) -> Response {
    let state = State {
        rx,
        reply,
        log,
        started: false,
        ended: false,
        _cancel: cancel,
    };
    let events = stream::unfold(state, next).flat_map(stream::iter);
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}
