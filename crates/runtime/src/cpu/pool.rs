//! The engine's threads: natively N − 1 workers of its own plus the calling thread (so
//! `--threads N` means N); on wasm with threads (`wasm-threads`) rayon's global pool,
//! which the embedder builds over Web Workers before loading (the caller blocks while the
//! pool works, so it must not be a page's main thread); else the calling thread alone.
//!
//! Why not rayon's pool: a decode token of a small model is ~150 parallel regions of
//! 20–100 µs each (one per matrix group), and handing a region to sleeping rayon workers
//! cost 18 µs per region here (2 cores, measured by the ignored `region_overhead` test),
//! a quarter of a SmolLM2 token. These workers spin on a generation counter for a while
//! after each region (as llama.cpp's do) and only then sleep, and the caller works too;
//! the same test measures the hand-off at a few microseconds. The caller waits for the
//! region's tasks, not for every worker, and waiting threads yield after a short spin, so
//! an oversubscribed machine (tests in parallel, a busy desktop) degrades gracefully.

#[cfg(feature = "native")]
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
#[cfg(feature = "native")]
use std::sync::{Arc, Condvar, Mutex};

/// Runs `tasks` independent jobs on the engine's threads and waits for all of them.
pub struct Pool {
    #[cfg(feature = "native")]
    shared: Option<Arc<Shared>>,
    #[cfg(feature = "native")]
    workers: Vec<std::thread::JoinHandle<()>>,
    threads: usize,
    /// One region at a time (sessions on several threads share a model's pool).
    #[cfg(feature = "native")]
    region: Mutex<()>,
}

/// A region's job: a type-erased `&dyn Fn(usize)` that lives until no worker can reach
/// it any more (the caller waits for that before returning).
#[cfg(feature = "native")]
#[derive(Clone, Copy)]
struct JobPtr(*const (dyn Fn(usize) + Sync));

// SAFETY: the pointee is `Sync` and outlives every use (see `Pool::for_each`).
#[cfg(feature = "native")]
unsafe impl Send for JobPtr {}

#[cfg(feature = "native")]
struct Shared {
    /// Bumped once per region; workers wait for it to change.
    generation: AtomicU64,
    job: Mutex<Option<(JobPtr, usize)>>,
    next: AtomicUsize,
    /// Tasks of the current region that have run (or panicked).
    done: AtomicUsize,
    /// Workers between announcing themselves and leaving a region: the caller returns
    /// only when none is, so no worker can hold a job that has gone.
    inflight: AtomicUsize,
    panicked: AtomicBool,
    sleepers: AtomicUsize,
    wake: Condvar,
    sleep_lock: Mutex<()>,
    stop: AtomicBool,
}

/// How long a worker spins for the next region before sleeping.
#[cfg(feature = "native")]
const SPIN: std::time::Duration = std::time::Duration::from_micros(300);

/// Busy-wait politely: spin a little, then give the core away (on an oversubscribed
/// machine the thread being waited for may need this one).
#[cfg(feature = "native")]
fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 256 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

#[cfg(feature = "native")]
fn run_tasks(shared: &Shared, job: &(dyn Fn(usize) + Sync), tasks: usize) {
    loop {
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        if i >= tasks {
            return;
        }
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(i)));
        if r.is_err() {
            shared.panicked.store(true, Ordering::Release);
        }
        shared.done.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(feature = "native")]
fn worker(shared: Arc<Shared>) {
    let mut seen = 0u64;
    loop {
        // Spin, then sleep, until a new region (or stop).
        let start = std::time::Instant::now();
        let mut spins = 0u32;
        loop {
            if shared.stop.load(Ordering::Acquire) {
                return;
            }
            let g = shared.generation.load(Ordering::Acquire);
            if g != seen {
                seen = g;
                break;
            }
            if spins % 64 == 63 && start.elapsed() > SPIN {
                let guard = shared.sleep_lock.lock().unwrap_or_else(|p| p.into_inner());
                shared.sleepers.fetch_add(1, Ordering::SeqCst);
                let unchanged = shared.generation.load(Ordering::SeqCst) == seen
                    && !shared.stop.load(Ordering::SeqCst);
                let guard = if unchanged {
                    shared.wake.wait(guard).unwrap_or_else(|p| p.into_inner())
                } else {
                    guard
                };
                shared.sleepers.fetch_sub(1, Ordering::SeqCst);
                drop(guard);
                spins = 0;
            } else {
                backoff(&mut spins);
            }
        }
        shared.inflight.fetch_add(1, Ordering::SeqCst);
        let job = *shared.job.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((job, tasks)) = job {
            // SAFETY: the caller keeps the job alive while `inflight` counts us.
            run_tasks(&shared, unsafe { &*job.0 }, tasks);
        }
        shared.inflight.fetch_sub(1, Ordering::SeqCst);
    }
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
            let shared = Arc::new(Shared {
                generation: AtomicU64::new(0),
                job: Mutex::new(None),
                next: AtomicUsize::new(0),
                done: AtomicUsize::new(0),
                inflight: AtomicUsize::new(0),
                panicked: AtomicBool::new(false),
                sleepers: AtomicUsize::new(0),
                wake: Condvar::new(),
                sleep_lock: Mutex::new(()),
                stop: AtomicBool::new(false),
            });
            let mut workers = Vec::new();
            for i in 1..threads {
                let s = Arc::clone(&shared);
                let handle = std::thread::Builder::new()
                    .name(format!("wisp-cpu-{i}"))
                    .spawn(move || worker(s))
                    .map_err(|e| crate::Error::Io(format!("cannot start {threads} threads: {e}")));
                match handle {
                    Ok(h) => workers.push(h),
                    Err(e) => {
                        // Stop the ones already started before reporting.
                        drop(Pool {
                            shared: Some(shared),
                            workers,
                            threads,
                            region: Mutex::new(()),
                        });
                        return Err(e);
                    }
                }
            }
            Ok(Pool {
                shared: Some(shared),
                workers,
                threads,
                region: Mutex::new(()),
            })
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
    /// done. Jobs must be independent (each writes only its own outputs). A panicking job
    /// panics the caller once every task of the region has run.
    pub fn for_each(&self, tasks: usize, job: impl Fn(usize) + Sync + Send) {
        if tasks == 0 {
            return;
        }
        #[cfg(feature = "native")]
        if let (Some(shared), true) = (&self.shared, self.threads > 1 && tasks > 1) {
            let _region = self.region.lock().unwrap_or_else(|p| p.into_inner());
            let job: &(dyn Fn(usize) + Sync) = &job;
            // SAFETY (lifetime erased): this function does not return before every
            // task has run and no worker is in flight, after which none touches the job.
            let ptr = JobPtr(unsafe {
                std::mem::transmute::<
                    *const (dyn Fn(usize) + Sync + '_),
                    *const (dyn Fn(usize) + Sync),
                >(job as *const _)
            });
            shared.next.store(0, Ordering::Relaxed);
            shared.done.store(0, Ordering::Relaxed);
            *shared.job.lock().unwrap_or_else(|p| p.into_inner()) = Some((ptr, tasks));
            shared.generation.fetch_add(1, Ordering::SeqCst);
            if shared.sleepers.load(Ordering::SeqCst) > 0 {
                let _g = shared.sleep_lock.lock().unwrap_or_else(|p| p.into_inner());
                shared.wake.notify_all();
            }
            // The caller works too; then waits for the tasks, not for the workers (one
            // descheduled worker must not hold the region up).
            run_tasks(shared, job, tasks);
            let mut spins = 0;
            while shared.done.load(Ordering::Acquire) < tasks {
                backoff(&mut spins);
            }
            *shared.job.lock().unwrap_or_else(|p| p.into_inner()) = None;
            while shared.inflight.load(Ordering::SeqCst) > 0 {
                backoff(&mut spins);
            }
            if shared.panicked.swap(false, Ordering::AcqRel) {
                panic!("a CPU engine job panicked");
            }
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

#[cfg(feature = "native")]
impl Drop for Pool {
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            shared.stop.store(true, Ordering::SeqCst);
            let _g = shared.sleep_lock.lock().unwrap_or_else(|p| p.into_inner());
            shared.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// A mutable buffer (of f32 unless said otherwise) that parallel jobs write disjoint
/// elements of.
pub(crate) struct SharedOut<'a, T = f32> {
    ptr: *mut T,
    len: usize,
    _life: std::marker::PhantomData<&'a mut [T]>,
}

// SAFETY: jobs write disjoint indices (each caller documents its partition), and the
// buffer outlives the parallel region (`for_each` returns only after every job).
unsafe impl<T: Send> Send for SharedOut<'_, T> {}
unsafe impl<T: Send> Sync for SharedOut<'_, T> {}

impl<'a, T> SharedOut<'a, T> {
    pub fn new(out: &'a mut [T]) -> SharedOut<'a, T> {
        SharedOut {
            ptr: out.as_mut_ptr(),
            len: out.len(),
            _life: std::marker::PhantomData,
        }
    }

    /// # Safety
    /// No other job may read or write index `i` during the parallel region.
    #[inline]
    pub unsafe fn write(&self, i: usize, v: T) {
        assert!(i < self.len);
        // SAFETY: in bounds (checked); exclusive per the caller's contract.
        unsafe { *self.ptr.add(i) = v }
    }

    /// # Safety
    /// No other job may touch `[start, start + len)` during the parallel region.
    #[inline]
    #[allow(clippy::mut_from_ref)] // disjoint ranges per job: the caller's contract
    pub unsafe fn slice(&self, start: usize, len: usize) -> &mut [T] {
        assert!(start + len <= self.len);
        // SAFETY: in bounds (checked); exclusive per the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_task_runs_once_and_panics_propagate() {
        for threads in [1, 2, 3] {
            let pool = Pool::new(threads).unwrap();
            for tasks in [0, 1, 2, 5, 100] {
                let hits: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
                pool.for_each(tasks, |i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
            }
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                pool.for_each(10, |i| assert!(i != 7, "job 7"));
            }));
            assert!(
                r.is_err(),
                "{threads} threads: the panic must reach the caller"
            );
            // The pool still works afterwards, also after its workers slept.
            std::thread::sleep(std::time::Duration::from_millis(5));
            let n = AtomicUsize::new(0);
            pool.for_each(50, |_| {
                n.fetch_add(1, Ordering::Relaxed);
            });
            assert_eq!(n.load(Ordering::Relaxed), 50);
        }
    }

    #[test]
    #[ignore]
    fn region_overhead() {
        let pool = Pool::new(2).unwrap();
        let t = std::time::Instant::now();
        let n = 20000;
        for _ in 0..n {
            pool.for_each(8, |i| {
                std::hint::black_box(i);
            });
        }
        eprintln!(
            "{:.2} us per region",
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        );
    }
}
