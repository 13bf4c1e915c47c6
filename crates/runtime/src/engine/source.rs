//! Where model bytes come from: anything that can deliver byte ranges of the file in
//! increasing order — a file or mmap natively, fetch/Blob streams in the browser, a
//! download on a phone. The loader asks for each tensor's range once, in file order, so a
//! plain forward-only stream works as well as random access.

use crate::Error;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A source of the model file's bytes.
pub trait ByteSource {
    /// Total length, when known.
    fn total_len(&self) -> Option<u64>;

    /// Deliver bytes `[start, end)` to `sink`, in order, in chunks of any size.
    /// Calls come with non-decreasing `start`.
    fn read_range(
        &mut self,
        start: u64,
        end: u64,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), Error>,
    ) -> Result<(), Error>;
}

/// An in-memory (or memory-mapped) file.
pub struct SliceSource<'a>(pub &'a [u8]);

impl ByteSource for SliceSource<'_> {
    fn total_len(&self) -> Option<u64> {
        Some(self.0.len() as u64)
    }

    fn read_range(
        &mut self,
        start: u64,
        end: u64,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let bytes = self.0.get(start as usize..end as usize).ok_or_else(|| {
            Error::Io(format!(
                "read past the end of the model ({end} > {})",
                self.0.len()
            ))
        })?;
        for chunk in bytes.chunks(8 << 20) {
            sink(chunk)?;
        }
        Ok(())
    }
}

/// Progress reports and cancellation for a load.
#[derive(Clone, Default)]
pub struct LoadControl {
    /// Called with (bytes uploaded, bytes to upload).
    pub on_progress: Option<Arc<dyn Fn(u64, u64) + Send + Sync>>,
    /// Set to true to stop the load; it then fails with `Error::Cancelled`.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl LoadControl {
    pub fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    }

    pub fn progress(&self, done: u64, total: u64) {
        if let Some(f) = &self.on_progress {
            f(done, total);
        }
    }
}
