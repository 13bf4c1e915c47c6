//! Continuous batching: the decode steps of concurrent requests on one model, evaluated
//! together as one pass.
//!
//! Each request keeps its own generating thread and its own session, and drives it
//! through [`crate::generate`] as usual. Its session is wrapped in a [`Batched`], which
//! sends every single-token decode step to the [`StepGroup`] all sessions of the model
//! share. The first step to arrive leads: it waits until every session that is decoding
//! has arrived (or [`StepGroup::gather`] has passed, so a straggler costs one short
//! wait, not a stall), evaluates all of them in one pass ([`StepMany`]) and hands each
//! its logits. Steps that arrive while a pass runs gather for the next one. Prefill
//! chunks are not batched: a session prefilling leaves the group until it decodes again.
//!
//! What one pass saves: a decode step of a small model is bound by reading its weights;
//! in a pass of `n` steps each weight row is read once for all `n` (a mat-mat product
//! instead of `n` mat-vec products), so `n` streams cost far less than `n` times one.

use crate::generate::Forward;
use crate::model::Logits;
use crate::sampling::Sampler;
use crate::Error;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Sessions whose single-token steps can be evaluated together in one pass.
pub trait StepMany: Forward + Send + Sized {
    /// Append `tokens[i]` to `sessions[i]` for every `i` and return each one's logits.
    /// A session that cannot take its token gets its own error; the others go on.
    fn step_many(sessions: &mut [&mut Self], tokens: &[u32]) -> Vec<Result<Vec<f32>, Error>>;
}

impl StepMany for crate::cpu::CpuEngineSession {
    fn step_many(sessions: &mut [&mut Self], tokens: &[u32]) -> Vec<Result<Vec<f32>, Error>> {
        let steps: Vec<&[u32]> = tokens.chunks(1).collect();
        match crate::cpu::session::forward_many(sessions, &steps, Logits::Last) {
            Ok(all) => all.into_iter().map(Ok).collect(),
            // Nothing was evaluated: find out which session refused, one by one.
            Err(_) => sessions
                .iter_mut()
                .zip(&steps)
                .map(|(s, step)| s.forward(step, Logits::Last))
                .collect(),
        }
    }
}

/// The rendezvous of one model's decode steps.
pub struct StepGroup<S> {
    state: Mutex<State<S>>,
    changed: Condvar,
    gather: Duration,
}

struct State<S> {
    /// Steps waiting for the next pass.
    gathering: Vec<Entry<S>>,
    /// One of the gathering steps is waiting to lead the next pass.
    leader: bool,
    /// A pass is being evaluated.
    running: bool,
    /// Sessions that are decoding: the next pass waits for this many steps.
    decoding: usize,
    /// Evaluated steps not yet collected by their threads, by entry id.
    done: HashMap<u64, (S, Result<Vec<f32>, Error>)>,
    next_id: u64,
    stats: PassStats,
}

/// What a group has evaluated so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassStats {
    /// Passes evaluated.
    pub passes: u64,
    /// Decode steps evaluated in them (`steps / passes` is the mean batch).
    pub steps: u64,
}

struct Entry<S> {
    id: u64,
    session: S,
    token: u32,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update of the state is a push, a take or a counter: a panic cannot leave
    // it half-done (the pass itself runs outside the lock).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<S: StepMany> StepGroup<S> {
    /// A group whose passes wait at most `gather` for sessions still on their way.
    pub fn new(gather: Duration) -> Arc<StepGroup<S>> {
        Arc::new(StepGroup {
            state: Mutex::new(State {
                gathering: Vec::new(),
                leader: false,
                running: false,
                decoding: 0,
                done: HashMap::new(),
                next_id: 0,
                stats: PassStats::default(),
            }),
            changed: Condvar::new(),
            gather,
        })
    }

    /// The longest a pass waits for a decoding session that has not arrived.
    pub fn gather(&self) -> Duration {
        self.gather
    }

    /// Passes and steps evaluated so far.
    pub fn stats(&self) -> PassStats {
        lock(&self.state).stats
    }

    fn join(&self) {
        lock(&self.state).decoding += 1;
    }

    fn leave(&self) {
        let mut st = lock(&self.state);
        st.decoding -= 1;
        // A leader may be waiting for this session's step.
        self.changed.notify_all();
    }

    /// Evaluate `token` on `session` in the next pass; gives the session back with its
    /// logits.
    fn step(&self, session: S, token: u32) -> (S, Result<Vec<f32>, Error>) {
        let mut st = lock(&self.state);
        let id = st.next_id;
        st.next_id += 1;
        st.gathering.push(Entry { id, session, token });
        self.changed.notify_all();
        if st.leader {
            loop {
                if let Some(done) = st.done.remove(&id) {
                    return done;
                }
                st = self
                    .changed
                    .wait(st)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
        st.leader = true;
        while st.running {
            st = self
                .changed
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let deadline = Instant::now() + self.gather;
        while st.gathering.len() < st.decoding {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            st = self
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let batch = std::mem::take(&mut st.gathering);
        st.leader = false;
        st.running = true;
        st.stats.passes += 1;
        st.stats.steps += batch.len() as u64;
        drop(st);

        let (ids, tokens): (Vec<u64>, Vec<u32>) = batch.iter().map(|e| (e.id, e.token)).unzip();
        let mut sessions: Vec<S> = batch.into_iter().map(|e| e.session).collect();
        let results = catch_unwind(AssertUnwindSafe(|| {
            let mut refs: Vec<&mut S> = sessions.iter_mut().collect();
            S::step_many(&mut refs, &tokens)
        }))
        .unwrap_or_else(|_| {
            // The caches hold only what their token lists say, so the sessions stay
            // usable; every step of the pass fails.
            let failed = || {
                Err(Error::Io(
                    "internal error: a batched decode step panicked".into(),
                ))
            };
            (0..ids.len()).map(|_| failed()).collect()
        });

        let mut st = lock(&self.state);
        st.running = false;
        let mut mine = None;
        for ((entry, session), result) in ids.into_iter().zip(sessions).zip(results) {
            if entry == id {
                mine = Some((session, result));
            } else {
                st.done.insert(entry, (session, result));
            }
        }
        self.changed.notify_all();
        mine.expect("the leader's own step is in its pass")
    }
}

/// A session whose decode steps are batched with the other sessions of its group.
pub struct Batched<S: StepMany> {
    /// Always `Some`, except while its step is in a pass on another thread.
    session: Option<S>,
    group: Arc<StepGroup<S>>,
    decoding: bool,
}

impl<S: StepMany> Batched<S> {
    pub fn new(session: S, group: Arc<StepGroup<S>>) -> Batched<S> {
        Batched {
            session: Some(session),
            group,
            decoding: false,
        }
    }

    fn inner(&self) -> &S {
        self.session
            .as_ref()
            .expect("the session is back after each step")
    }

    fn inner_mut(&mut self) -> &mut S {
        self.session
            .as_mut()
            .expect("the session is back after each step")
    }

    fn stop_decoding(&mut self) {
        if std::mem::take(&mut self.decoding) {
            self.group.leave();
        }
    }
}

impl<S: StepMany> Drop for Batched<S> {
    fn drop(&mut self) {
        self.stop_decoding();
    }
}

impl<S: StepMany> Forward for Batched<S> {
    fn n_ctx(&self) -> usize {
        self.inner().n_ctx()
    }

    fn cached_tokens(&self) -> &[u32] {
        self.inner().cached_tokens()
    }

    fn truncate(&mut self, n: usize) {
        self.stop_decoding();
        self.inner_mut().truncate(n)
    }

    fn forward(&mut self, tokens: &[u32], logits: Logits) -> Result<Vec<f32>, Error> {
        let &[token] = tokens else {
            self.stop_decoding();
            return self.inner_mut().forward(tokens, logits);
        };
        if logits != Logits::Last {
            self.stop_decoding();
            return self.inner_mut().forward(tokens, logits);
        }
        if !self.decoding {
            self.decoding = true;
            self.group.join();
        }
        let session = self.session.take().expect("no step is in flight");
        let (session, result) = self.group.step(session, token);
        self.session = Some(session);
        result
    }

    fn prefill(&mut self, tokens: &[u32]) -> Result<(), Error> {
        self.stop_decoding();
        self.inner_mut().prefill(tokens)
    }

    fn forward_sample(
        &mut self,
        tokens: &[u32],
        sampler: &mut Sampler,
        history: &[u32],
    ) -> Result<u32, Error> {
        let logits = self.forward(tokens, Logits::Last)?;
        sampler.sample(&logits, history)
    }

    fn idle(&mut self) {
        self.stop_decoding();
    }
}
