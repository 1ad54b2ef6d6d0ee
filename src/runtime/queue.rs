//! A work queue of keys with client-go's semantics: a key waiting is queued once
//! however often it is added, a key being worked on is never handed to a second
//! worker (an add meanwhile queues it again once the first finishes), and failures
//! are retried with per-key exponential backoff.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

pub struct Queue<K> {
    state: Mutex<State<K>>,
    wake: Notify,
    /// Set when the future of [`Queue::run`] is dropped (the role is stopping).
    stopped: AtomicBool,
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
            stopped: AtomicBool::new(false),
        })
    }

    pub fn add(&self, key: K) {
        let mut s = self.state.lock();
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
        let s = self.state.lock();
        s.queued.len() + s.active.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    async fn next(&self) -> K {
        loop {
            let wake = self.wake.notified();
            {
                let mut s = self.state.lock();
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
        let mut s = self.state.lock();
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

    /// Whether the future of [`Queue::run`] has been dropped.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Works the queue with up to `workers` reconciles at once until the future is
    /// dropped, handing each outcome to `report` (metrics, logs). A reconcile that
    /// fails is retried after a backoff.
    ///
    /// Dropping the future aborts the reconciles, but one that is being polled at that
    /// moment still finishes, possibly failing because the process is exiting and its
    /// client closed: such late outcomes are neither reported nor retried, so a clean
    /// shutdown logs no failures.
    pub async fn run<F, Fut, E, R>(self: Arc<Self>, workers: usize, reconcile: F, report: R)
    where
        F: Fn(K) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send,
        R: Fn(&K, &Result<(), E>) + Send + Sync + 'static,
    {
        // A queue run again (after its earlier run was dropped) works again.
        self.stopped.store(false, Ordering::SeqCst);
        let reconcile = Arc::new(reconcile);
        let report = Arc::new(report);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..workers.max(1) {
            let queue = self.clone();
            let (reconcile, report) = (reconcile.clone(), report.clone());
            tasks.spawn(async move {
                loop {
                    let key = queue.next().await;
                    // A panicking reconcile counts as a failure: the key must not stay
                    // marked active (and the worker gone) for good.
                    let run = std::panic::AssertUnwindSafe(reconcile(key.clone()));
                    let outcome = futures::FutureExt::catch_unwind(run).await;
                    if queue.is_stopped() {
                        return;
                    }
                    let ok = match outcome {
                        Ok(result) => {
                            report(&key, &result);
                            result.is_ok()
                        }
                        Err(_) => {
                            tracing::error!("reconcile panicked; retrying the key");
                            false
                        }
                    };
                    queue.done(key, ok);
                }
            });
        }
        // Dropped before `tasks` (declared after it), so the flag is up before the abort.
        let _stop = StopOnDrop(self.clone());
        while tasks.join_next().await.is_some() {}
    }
}

struct StopOnDrop<K>(Arc<Queue<K>>);

impl<K> Drop for StopOnDrop<K> {
    fn drop(&mut self) {
        self.0.stopped.store(true, Ordering::SeqCst);
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
        let worker = tokio::spawn(queue.clone().run(
            4,
            move |key: &'static str| {
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
            },
            |_, _| {},
        ));
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
        let worker = tokio::spawn(queue.clone().run(
            1,
            move |_k: u32| {
                let a = a.clone();
                async move {
                    if a.fetch_add(1, Ordering::SeqCst) < 3 {
                        Err("not yet")
                    } else {
                        Ok(())
                    }
                }
            },
            |_, _| {},
        ));
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
        let worker = tokio::spawn(queue.clone().run(
            1,
            move |_k: u32| {
                let a = a.clone();
                async move {
                    if a.fetch_add(1, Ordering::SeqCst) == 0 {
                        panic!("bad input");
                    }
                    Ok::<(), String>(())
                }
            },
            |_, _| {},
        ));
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

    /// A role stopping mid-reconcile: the reconcile, being polled when the queue's
    /// future is dropped, fails as its client goes away; that is not reported.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reconcile_finishing_after_the_stop_is_not_reported() {
        let queue = Queue::new();
        queue.add(1u32);
        let started = Arc::new(AtomicBool::new(false));
        let reported = Arc::new(AtomicUsize::new(0));
        let (s, q, n) = (started.clone(), queue.clone(), reported.clone());
        let running = tokio::spawn(queue.clone().run(
            1,
            move |_k: u32| {
                let (s, q) = (s.clone(), q.clone());
                async move {
                    s.store(true, Ordering::SeqCst);
                    // One long poll, as a reconcile has when its client fails at once.
                    let deadline = std::time::Instant::now() + Duration::from_secs(5);
                    while !q.is_stopped() && std::time::Instant::now() < deadline {
                        std::thread::yield_now();
                    }
                    Err::<(), _>("client closed")
                }
            },
            move |_, _| {
                n.fetch_add(1, Ordering::SeqCst);
            },
        ));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !started.load(Ordering::SeqCst) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the reconcile starts"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        running.abort();
        assert!(running.await.unwrap_err().is_cancelled());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !queue.is_stopped() {
            assert!(tokio::time::Instant::now() < deadline, "the queue stops");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // The reconcile's task is gone once its last poll ends: the key is released
        // neither as done nor queued for a retry, and nothing was reported.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&queue) > 1 {
            assert!(tokio::time::Instant::now() < deadline, "the worker ends");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(reported.load(Ordering::SeqCst), 0);
    }
}
