//! A work queue of keys with client-go's semantics: a key waiting is queued once
//! however often it is added, a key being worked on is never handed to a second
//! worker (an add meanwhile queues it again once the first finishes), and failures
//! are retried with per-key exponential backoff.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

pub struct Queue<K> {
    state: Mutex<State<K>>,
    wake: Notify,
}

struct State<K> {
    order: VecDeque<K>,
    queued: HashSet<K>,
    active: HashSet<K>,
    /// Added while active: queue again when done.
    again: HashSet<K>,
    failures: HashMap<K, u32>,
}

const FIRST_RETRY: Duration = Duration::from_millis(10);
const LAST_RETRY: Duration = Duration::from_secs(10);

impl<K: Clone + Eq + Hash + Send + Sync + 'static> Queue<K> {
    pub fn new() -> Arc<Self> {
        Arc::new(Queue {
            state: Mutex::new(State {
                order: VecDeque::new(),
                queued: HashSet::new(),
                active: HashSet::new(),
                again: HashSet::new(),
                failures: HashMap::new(),
            }),
            wake: Notify::new(),
        })
    }

    pub fn add(&self, key: K) {
        let mut s = self.state.lock().expect("queue lock");
        if s.active.contains(&key) {
            s.again.insert(key);
        } else if s.queued.insert(key.clone()) {
            s.order.push_back(key);
            drop(s);
            self.wake.notify_one();
        }
    }

    /// Keys waiting or being worked on.
    pub fn len(&self) -> usize {
        let s = self.state.lock().expect("queue lock");
        s.queued.len() + s.active.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    async fn next(&self) -> K {
        loop {
            let wake = self.wake.notified();
            {
                let mut s = self.state.lock().expect("queue lock");
                if let Some(key) = s.order.pop_front() {
                    s.queued.remove(&key);
                    s.active.insert(key.clone());
                    return key;
                }
            }
            wake.await;
        }
    }

    fn done(self: &Arc<Self>, key: K, ok: bool) {
        let mut s = self.state.lock().expect("queue lock");
        s.active.remove(&key);
        let again = s.again.remove(&key);
        if ok {
            s.failures.remove(&key);
        }
        let retry = (!ok).then(|| {
            let n = s.failures.entry(key.clone()).or_insert(0);
            *n += 1;
            FIRST_RETRY
                .saturating_mul(1 << (*n - 1).min(16))
                .min(LAST_RETRY)
        });
        drop(s);
        if again {
            self.add(key);
        } else if let Some(delay) = retry {
            let queue = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                queue.add(key);
            });
        }
    }

    /// Works the queue with up to `workers` reconciles at once until the task is
    /// dropped. A reconcile that fails is retried after a backoff.
    pub async fn run<F, Fut, E>(self: Arc<Self>, workers: usize, reconcile: F)
    where
        F: Fn(K) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send,
        E: std::fmt::Display,
    {
        let reconcile = Arc::new(reconcile);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..workers.max(1) {
            let queue = self.clone();
            let reconcile = reconcile.clone();
            tasks.spawn(async move {
                loop {
                    let key = queue.next().await;
                    // A panicking reconcile counts as a failure: the key must not stay
                    // marked active (and the worker gone) for good.
                    let run = std::panic::AssertUnwindSafe(reconcile(key.clone()));
                    let ok = match futures::FutureExt::catch_unwind(run).await {
                        Ok(result) => result.is_ok(),
                        Err(_) => {
                            tracing::error!("reconcile panicked; retrying the key");
                            false
                        }
                    };
                    queue.done(key, ok);
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn adds_coalesce_and_a_key_runs_once_at_a_time() {
        let queue = Queue::new();
        for _ in 0..5 {
            queue.add("a");
        }
        queue.add("b");
        assert_eq!(queue.len(), 2, "five adds of one key queue it once");
        let running = Arc::new(AtomicUsize::new(0));
        let runs = Arc::new(AtomicUsize::new(0));
        let (r, n) = (running.clone(), runs.clone());
        let q = queue.clone();
        let worker = tokio::spawn(queue.clone().run(4, move |key: &'static str| {
            let (r, n, q) = (r.clone(), n.clone(), q.clone());
            async move {
                if key != "a" {
                    return Ok(());
                }
                assert_eq!(r.fetch_add(1, Ordering::SeqCst), 0, "one key at a time");
                if n.fetch_add(1, Ordering::SeqCst) == 0 {
                    q.add("a"); // added while active: runs again afterwards
                }
                tokio::task::yield_now().await;
                r.fetch_sub(1, Ordering::SeqCst);
                Ok::<(), String>(())
            }
        }));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !(queue.is_empty() && runs.load(Ordering::SeqCst) >= 2) {
            assert!(tokio::time::Instant::now() < deadline, "queue drains");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        worker.abort();
    }

    #[tokio::test]
    async fn failures_are_retried() {
        let queue = Queue::new();
        queue.add(1u32);
        let attempts = Arc::new(AtomicUsize::new(0));
        let a = attempts.clone();
        let worker = tokio::spawn(queue.clone().run(1, move |_k: u32| {
            let a = a.clone();
            async move {
                if a.fetch_add(1, Ordering::SeqCst) < 3 {
                    Err("not yet")
                } else {
                    Ok(())
                }
            }
        }));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while attempts.load(Ordering::SeqCst) < 4 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "retried until it succeeds"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        worker.abort();
    }

    #[tokio::test]
    async fn a_panicking_reconcile_is_retried_not_wedged() {
        let queue = Queue::new();
        queue.add(7u32);
        let attempts = Arc::new(AtomicUsize::new(0));
        let a = attempts.clone();
        let worker = tokio::spawn(queue.clone().run(1, move |_k: u32| {
            let a = a.clone();
            async move {
                if a.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("bad input");
                }
                Ok::<(), String>(())
            }
        }));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !(attempts.load(Ordering::SeqCst) >= 2 && queue.is_empty()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the key runs again after the panic"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        worker.abort();
    }
}
