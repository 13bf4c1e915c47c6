//! The engine's threads: a rayon pool of its own natively (so `--threads N` means N),
//! rayon's global pool on wasm with threads (`wasm-threads`: the embedder builds it over
//! Web Workers before loading; the caller blocks while the pool works, so it must not be
//! a page's main thread), and the calling thread alone where there are no threads.

/// Runs `tasks` independent jobs on the engine's threads and waits for all of them.
pub struct Pool {
    #[cfg(feature = "native")]
    pool: rayon::ThreadPool,
    threads: usize,
}

impl Pool {
    /// `threads = 0` means one per core.
    pub fn new(threads: usize) -> Result<Pool, crate::Error> {
        #[cfg(feature = "native")]
        {
            let threads = if threads == 0 {
                std::thread::available_parallelism().map_or(1, |n| n.get())
            } else {
                threads
            };
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("wisp-cpu-{i}"))
                .build()
                .map_err(|e| crate::Error::Io(format!("cannot start {threads} threads: {e}")))?;
            Ok(Pool { pool, threads })
        }
        #[cfg(all(feature = "wasm-threads", not(feature = "native")))]
        {
            let _ = threads;
            Ok(Pool {
                threads: rayon::current_num_threads(),
            })
        }
        #[cfg(not(any(feature = "native", feature = "wasm-threads")))]
        {
            let _ = threads;
            Ok(Pool { threads: 1 })
        }
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Call `job(i)` for every `i < tasks`, spread over the threads; returns when all are
    /// done. Jobs must be independent (each writes only its own outputs).
    pub fn for_each(&self, tasks: usize, job: impl Fn(usize) + Sync + Send) {
        if tasks == 0 {
            return;
        }
        #[cfg(feature = "native")]
        if self.threads > 1 && tasks > 1 {
            use rayon::prelude::*;
            self.pool
                .install(|| (0..tasks).into_par_iter().for_each(|i| job(i)));
            return;
        }
        #[cfg(all(feature = "wasm-threads", not(feature = "native")))]
        if self.threads > 1 && tasks > 1 {
            use rayon::prelude::*;
            (0..tasks).into_par_iter().for_each(job);
            return;
        }
        (0..tasks).for_each(job);
    }
}

/// A mutable f32 buffer that parallel jobs write disjoint elements of.
pub(crate) struct SharedOut<'a> {
    ptr: *mut f32,
    len: usize,
    _life: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: jobs write disjoint indices (each caller documents its partition), and the
// buffer outlives the parallel region (`for_each` returns only after every job).
unsafe impl Send for SharedOut<'_> {}
unsafe impl Sync for SharedOut<'_> {}

impl<'a> SharedOut<'a> {
    pub fn new(out: &'a mut [f32]) -> SharedOut<'a> {
        SharedOut {
            ptr: out.as_mut_ptr(),
            len: out.len(),
            _life: std::marker::PhantomData,
        }
    }

    /// # Safety
    /// No other job may read or write index `i` during the parallel region.
    #[inline]
    pub unsafe fn write(&self, i: usize, v: f32) {
        assert!(i < self.len);
        // SAFETY: in bounds (checked); exclusive per the caller's contract.
        unsafe { *self.ptr.add(i) = v }
    }

    /// # Safety
    /// No other job may touch `[start, start + len)` during the parallel region.
    #[inline]
    pub unsafe fn slice(&self, start: usize, len: usize) -> &mut [f32] {
        assert!(start + len <= self.len);
        // SAFETY: in bounds (checked); exclusive per the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }
}
