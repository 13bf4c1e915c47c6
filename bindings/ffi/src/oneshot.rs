//! Run a blocking call on its own thread and await it: the async twins of the blocking
//! API. uniffi polls Rust futures from the foreign executor (Swift tasks, Kotlin
//! coroutines), so the future itself must never block; a plain thread plus a waker keeps
//! the bindings free of any async runtime.

use crate::WispError;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
}

pub struct Pending<T>(Arc<Mutex<Slot<T>>>);

impl<T> Future for Pending<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match slot.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Start `f` on a new thread; the future resolves with its result (a panic becomes
/// `WispError::Internal`, never an unwind across the FFI).
pub fn spawn<T, F>(name: &str, f: F) -> Pending<Result<T, WispError>>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, WispError> + Send + 'static,
{
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        waker: None,
    }));
    let done = Arc::clone(&slot);
    let finish = move |result: Result<T, WispError>| {
        let mut s = done.lock().unwrap_or_else(|p| p.into_inner());
        s.value = Some(result);
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    };
    let spawned = std::thread::Builder::new()
        .name(format!("wisp-{name}"))
        .spawn({
            let finish = finish.clone();
            move || finish(guard(f))
        });
    if let Err(e) = spawned {
        finish(Err(WispError::Internal {
            detail: format!("cannot start a thread: {e}"),
        }));
    }
    Pending(slot)
}

/// Run `f`, turning a panic into `WispError::Internal`.
pub fn guard<T>(f: impl FnOnce() -> Result<T, WispError>) -> Result<T, WispError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let detail = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        Err(WispError::Internal { detail })
    })
}
