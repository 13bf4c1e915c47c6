//! The CPU engine's threads in the browser (the second build, with wasm atomics and a
//! shared memory): rayon's global pool, whose threads are Web Workers that instantiate
//! this same module over the same memory (`package/thread.js`).
//!
//! Order matters, as in every wasm thread pool: JS starts the workers, each instantiates
//! the module and reports ready before it blocks in [`run_pool_thread`]; only then does
//! the engine's worker call [`build_pool`], which hands each waiting worker its rayon
//! thread. (Blocking the engine's worker before its children have started could stop
//! them from starting at all.) The engine's worker itself blocks while the pool works:
//! it must be a Worker, never the page's main thread, where waiting traps.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Mutex, OnceLock};
use wasm_bindgen::prelude::*;

type Channel = (
    Mutex<Sender<rayon::ThreadBuilder>>,
    Mutex<Receiver<rayon::ThreadBuilder>>,
);

fn handoff() -> &'static Channel {
    static CHANNEL: OnceLock<Channel> = OnceLock::new();
    CHANNEL.get_or_init(|| {
        let (tx, rx) = channel();
        (Mutex::new(tx), Mutex::new(rx))
    })
}

/// `[module, memory]`: what a pool worker instantiates this build with.
#[wasm_bindgen(js_name = threadShare)]
pub fn thread_share() -> js_sys::Array {
    js_sys::Array::of2(&wasm_bindgen::module(), &wasm_bindgen::memory())
}

/// In a pool worker, after instantiating: wait for one rayon thread and run it for good.
#[wasm_bindgen(js_name = runPoolThread)]
pub fn run_pool_thread() {
    let thread = {
        let rx = handoff().1.lock().unwrap_or_else(|p| p.into_inner());
        rx.recv()
    };
    if let Ok(thread) = thread {
        thread.run();
    }
}

/// Build rayon's global pool of `n` threads; `n` workers must be waiting in
/// [`run_pool_thread`]. Returns once every thread has started.
#[wasm_bindgen(js_name = buildPool)]
pub fn build_pool(n: usize) -> Result<(), JsValue> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("wisp-cpu-{i}"))
        .spawn_handler(|thread| {
            handoff()
                .0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .send(thread)
                .map_err(|_| std::io::Error::other("the pool workers are gone"))
        })
        .build_global()
        .map_err(|e| crate::js_error("internal", format!("cannot start {n} threads: {e}")))
}

/// Threads of the pool (1 before [`build_pool`]).
#[wasm_bindgen(js_name = poolThreads)]
pub fn pool_threads() -> usize {
    rayon::current_num_threads()
}
