//! Waiting for the GPU without blocking the thread: on the web the page's event loop must
//! keep running while a buffer maps, so every readback is a future. Natively the device is
//! polled to completion first and the future is ready at once, so `pollster::block_on`
//! over it never parks.

use super::device::GpuContext;
use crate::Error;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// The sending half of a one-value channel (wgpu's callbacks need `Send`).
struct Sender<T>(Arc<Mutex<Slot<T>>>);

/// A future resolving to the value sent, or `None` if the sender was dropped unsent.
struct Receiver<T>(Arc<Mutex<Slot<T>>>);

struct Slot<T> {
    value: Option<T>,
    closed: bool,
    waker: Option<Waker>,
}

fn oneshot<T>() -> (Sender<T>, Receiver<T>) {
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        closed: false,
        waker: None,
    }));
    (Sender(Arc::clone(&slot)), Receiver(slot))
}

impl<T> Sender<T> {
    fn send(self, value: T) {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        slot.value = Some(value);
        // `Drop` closes the slot and wakes the receiver.
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        slot.closed = true;
        if let Some(w) = slot.waker.take() {
            w.wake();
        }
    }
}

impl<T> Future for Receiver<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = slot.value.take() {
            return Poll::Ready(Some(v));
        }
        if slot.closed {
            return Poll::Ready(None);
        }
        slot.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl GpuContext {
    /// Map `slice` for reading once the GPU has finished the work submitted before it.
    pub async fn map_read(&self, slice: wgpu::BufferSlice<'_>) -> Result<(), Error> {
        let (tx, rx) = oneshot();
        slice.map_async(wgpu::MapMode::Read, move |r| tx.send(r));
        #[cfg(feature = "native")]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the GPU failed: {e}")))?;
        rx.await
            .ok_or_else(|| Error::Gpu("the GPU never finished the readback".into()))?
            .map_err(|e| Error::Gpu(format!("readback failed: {e}")))
    }
}

/// Run a future that completes without the event loop (native GPU waits poll first).
#[cfg(feature = "native")]
pub fn block_on<F: Future>(f: F) -> F::Output {
    pollster::block_on(f)
}
