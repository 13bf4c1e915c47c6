//! Waiting for the GPU without blocking the thread: on the web the page's event loop must
//! keep running while a buffer maps, so every readback is a future. Natively the device is
//! polled to completion first and the future is ready at once, so `pollster::block_on`
//! over it never parks.
//!
//! Faults: every wait first checks that the device is not lost, and a wait that fails
//! reports the loss (or the first device error) rather than a bare "map failed". Natively
//! a callback that has still not run after the device was polled to completion is an
//! error, never a park (a lost device may drop or forget callbacks), and a panic inside
//! wgpu's poll (what wgpu 30 does when the driver reports the device lost) is caught and
//! turned into the loss.

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

impl<T> Receiver<T> {
    /// The value if it was sent, `Err(())` while the sender is still alive.
    #[cfg(feature = "native")]
    fn try_take(&self) -> Result<Option<T>, ()> {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match slot.value.take() {
            Some(v) => Ok(Some(v)),
            None if slot.closed => Ok(None),
            None => Err(()),
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
        self.check_alive()?;
        let (tx, rx) = oneshot();
        slice.map_async(wgpu::MapMode::Read, move |r| tx.send(r));
        match self.settle(rx).await? {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(self.failure(format!("readback failed: {e}"))),
            None => Err(self.failure("the GPU never finished the readback".into())),
        }
    }

    /// Wait until the GPU has finished everything submitted so far.
    pub async fn wait_submitted(&self) -> Result<(), Error> {
        self.check_alive()?;
        let (tx, rx) = oneshot();
        self.queue.on_submitted_work_done(move || tx.send(()));
        match self.settle(rx).await? {
            Some(()) => self.check(),
            None => Err(self.failure("the GPU never finished its work".into())),
        }
    }

    /// The outcome of a callback: natively after polling the device to completion (so it
    /// has run, or never will).
    ///
    /// Another thread polling the same device may be running this callback right now
    /// (wgpu fires callbacks on whichever thread polled), so an idle device with no answer
    /// yet is waited on briefly, then reported.
    #[cfg(feature = "native")]
    async fn settle<T>(&self, rx: Receiver<T>) -> Result<Option<T>, Error> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            self.poll_to_completion()?;
            if let Ok(v) = rx.try_take() {
                return Ok(v);
            }
            self.check_alive()?;
            if std::time::Instant::now() > deadline {
                return Err(self.failure("the GPU finished without answering".into()));
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// The outcome of a callback: on the web, by awaiting it (the event loop runs).
    #[cfg(not(feature = "native"))]
    async fn settle<T>(&self, rx: Receiver<T>) -> Result<Option<T>, Error> {
        Ok(rx.await)
    }

    /// Block until the device is idle. wgpu panics when the driver reports the device lost
    /// during a poll; that panic is caught here and recorded as the loss.
    #[cfg(feature = "native")]
    fn poll_to_completion(&self) -> Result<(), Error> {
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.device.poll(wgpu::PollType::wait_indefinitely())
        }));
        match polled {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.failure(format!("waiting for the GPU failed: {e}"))),
            Err(panic) => {
                let detail = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("wgpu panicked while waiting");
                self.mark_lost("poll failed", detail);
                Err(self.failure(String::new()))
            }
        }
    }
}

/// Run a future that completes without the event loop (native GPU waits poll first).
#[cfg(feature = "native")]
pub fn block_on<F: Future>(f: F) -> F::Output {
    pollster::block_on(f)
}
