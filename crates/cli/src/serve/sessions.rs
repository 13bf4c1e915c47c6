//! The sessions over the one loaded model and the bounded queue in front of them.
//!
//! A request first takes a [`Ticket`] (refused when `parallel + queue` requests already
//! hold or wait for a session: the 429), then waits for a session ([`Pool::lease`]) and
//! gets the free one whose KV cache shares the longest prefix with its prompt (ties: the
//! least recently used, so a long cached conversation is kept while others come and go).
//! Dropping the [`Lease`] puts the session back, with whatever it has cached.
//!
//! Each lease hands one session to one generating thread. On the CPU engine the
//! sessions are `wisp::batch::Batched`, so those threads' decode steps meet in one pass
//! (see `super::sessions_for`); admission and the choice of session do not change.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wisp::generate::Forward;

pub type Session = Box<dyn Forward + Send>;

struct Slot {
    session: Session,
    last_used: u64,
}

pub struct Pool {
    free: Mutex<Vec<Slot>>,
    /// One permit per free session; a permit held means a slot is reserved.
    permits: Arc<Semaphore>,
    /// Requests holding or waiting for a session.
    admitted: AtomicUsize,
    parallel: usize,
    queue: usize,
    clock: AtomicU64,
}

/// A place among the requests that hold or wait for a session.
pub struct Ticket(Arc<Pool>);

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A session taken from the pool; it goes back when this is dropped.
pub struct Lease {
    slot: Option<Slot>,
    pool: Arc<Pool>,
    _permit: OwnedSemaphorePermit,
    _ticket: Ticket,
}

impl Lease {
    pub fn session(&mut self) -> &mut dyn Forward {
        self.slot
            .as_mut()
            .expect("a lease holds its slot until dropped")
            .session
            .as_mut()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(mut slot) = self.slot.take() {
            slot.last_used = self.pool.clock.fetch_add(1, Ordering::Relaxed);
            // Back in the free list before the permit (a field, dropped after this) is.
            lock(&self.pool.free).push(slot);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the list cannot leave it half-updated (push/remove only).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl Pool {
    pub fn new(sessions: Vec<Session>, queue: usize) -> Arc<Pool> {
        let parallel = sessions.len();
        Arc::new(Pool {
            free: Mutex::new(
                sessions
                    .into_iter()
                    .enumerate()
                    .map(|(i, session)| Slot {
                        session,
                        last_used: i as u64,
                    })
                    .collect(),
            ),
            permits: Arc::new(Semaphore::new(parallel)),
            admitted: AtomicUsize::new(0),
            parallel,
            queue,
            clock: AtomicU64::new(parallel as u64),
        })
    }

    /// A place in line, or `Err(waiting)` when the queue is full.
    pub fn admit(self: &Arc<Self>) -> Result<Ticket, usize> {
        let limit = self.parallel + self.queue;
        self.admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .map(|_| Ticket(Arc::clone(self)))
            .map_err(|n| n.saturating_sub(self.parallel))
    }

    /// Wait for a free session and take the best one for `prompt`.
    pub async fn lease(self: &Arc<Self>, ticket: Ticket, prompt: &[u32]) -> Lease {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .expect("the pool's semaphore is never closed");
        let slot = {
            let mut free = lock(&self.free);
            let best = free
                .iter()
                .enumerate()
                .max_by_key(|(_, s)| {
                    (
                        common_prefix(s.session.cached_tokens(), prompt),
                        std::cmp::Reverse(s.last_used),
                    )
                })
                .map(|(i, _)| i)
                .expect("a permit means a free session");
            free.swap_remove(best)
        };
        Lease {
            slot: Some(slot),
            pool: Arc::clone(self),
            _permit: permit,
            _ticket: ticket,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wisp::model::Logits;

    /// A session that only records tokens.
    struct Fake(Vec<u32>);

    impl Forward for Fake {
        fn n_ctx(&self) -> usize {
            64
        }
        fn cached_tokens(&self) -> &[u32] {
            &self.0
        }
        fn truncate(&mut self, n: usize) {
            self.0.truncate(n);
        }
        fn forward(&mut self, tokens: &[u32], _: Logits) -> Result<Vec<f32>, wisp::Error> {
            self.0.extend(tokens);
            Ok(vec![0.0; 4])
        }
    }

    fn pool(caches: &[&[u32]], queue: usize) -> Arc<Pool> {
        let sessions = caches
            .iter()
            .map(|c| Box::new(Fake(c.to_vec())) as Session)
            .collect();
        Pool::new(sessions, queue)
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn the_longest_cached_prefix_wins() {
        let p = pool(&[&[1, 2], &[1, 2, 3, 4], &[9]], 0);
        let mut lease = block_on(p.lease(p.admit().unwrap(), &[1, 2, 3, 5]));
        assert_eq!(lease.session().cached_tokens(), &[1, 2, 3, 4]);
    }

    #[test]
    fn queue_is_bounded_and_tickets_come_back() {
        let p = pool(&[&[]], 1);
        let a = p.admit().unwrap();
        let b = p.admit().unwrap();
        assert_eq!(p.admit().err(), Some(1));
        drop(b);
        let lease = block_on(p.lease(a, &[1]));
        let c = p.admit().unwrap();
        assert!(p.admit().is_err());
        drop(lease);
        // The session is free again: the waiting ticket gets it at once.
        let mut lease = block_on(p.lease(c, &[1]));
        assert!(lease.session().cached_tokens().is_empty());
    }
}
