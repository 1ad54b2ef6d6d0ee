//! Which reconcile failures get a log line. When a member's API server is down every
//! key fails, and is retried every few seconds: one warning per failure would be
//! thousands of lines a second that bury whatever else is logged. Instead a key warns
//! once per run of failures (later ones are debug), at most [`WARN_LIMIT`] keys warn
//! individually at a time, the others are counted into a summary at most every
//! [`SUMMARY_EVERY`], and recoveries are said once. A key that fails again within
//! [`SUMMARY_EVERY`] of recovering is flapping: it is counted into the summaries, and
//! its recoveries are quiet, so a key that alternates between success and failure
//! every few milliseconds costs a line every few seconds, not two per flip.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Keys failing at once that each get their own warning.
pub const WARN_LIMIT: usize = 10;
/// The shortest time between two summaries of the keys beyond the limit.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// What to log for one reconcile outcome.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// This key started failing: a warning with its error.
    Warn,
    /// Keys beyond the limit started failing: a warning with how many keys fail now
    /// and how many first failures went unlogged since the last line.
    Summary { failing: usize, unlogged: usize },
    /// A key that had warned reconciles again.
    Recovered,
    /// Every failing key reconciles again, some of which never warned themselves;
    /// `failed` keys had failed since the last time none was failing.
    AllRecovered { failed: usize },
    /// Nothing above debug.
    Quiet,
}

#[derive(Default)]
pub struct FailureLog {
    state: Mutex<State>,
    /// `state.failing.len()`, readable without the lock (every reconcile reports it).
    failing: AtomicUsize,
}

#[derive(Default)]
struct State {
    failing: HashSet<String>,
    warned: HashSet<String>,
    unlogged: usize,
    /// Whether a key failed without its own warning since everything last recovered.
    summarised: bool,
    /// Keys that started failing since everything last recovered.
    failed: usize,
    last_summary: Option<Instant>,
    /// When keys last recovered (those of the past [`SUMMARY_EVERY`], and some older
    /// ones until the next pruning).
    recovered: HashMap<String, Instant>,
}

/// Recoveries remembered before the old ones are pruned.
const RECOVERED_PRUNE_AT: usize = 1024;

impl FailureLog {
    /// A failure of `key` (unique across the controllers sharing this log).
    pub fn failed(&self, key: &str, now: Instant) -> Line {
        let mut s = self.state.lock();
        if !s.failing.insert(key.to_string()) {
            return Line::Quiet;
        }
        self.failing.store(s.failing.len(), Ordering::Relaxed);
        s.failed += 1;
        let flapping = s
            .recovered
            .get(key)
            .is_some_and(|at| now.saturating_duration_since(*at) < SUMMARY_EVERY);
        if !flapping && s.warned.len() < WARN_LIMIT {
            s.warned.insert(key.to_string());
            return Line::Warn;
        }
        s.unlogged += 1;
        // A flapping key alone never makes the all-clear worth a line.
        s.summarised |= !flapping;
        if s.last_summary
            .is_some_and(|at| now.duration_since(at) < SUMMARY_EVERY)
        {
            return Line::Quiet;
        }
        s.last_summary = Some(now);
        let unlogged = std::mem::take(&mut s.unlogged);
        Line::Summary {
            failing: s.failing.len(),
            unlogged,
        }
    }

    /// Keys whose last reconcile failed.
    pub fn failing(&self) -> usize {
        self.failing.load(Ordering::Relaxed)
    }

    /// A success; `key` is only built when some key is failing (successes are the
    /// common case and must stay cheap).
    pub fn succeeded(&self, key: impl FnOnce() -> String, now: Instant) -> Line {
        let mut s = self.state.lock();
        if s.failing.is_empty() {
            return Line::Quiet;
        }
        let key = key();
        if !s.failing.remove(&key) {
            return Line::Quiet;
        }
        self.failing.store(s.failing.len(), Ordering::Relaxed);
        let warned = s.warned.remove(&key);
        if s.recovered.len() >= RECOVERED_PRUNE_AT {
            s.recovered
                .retain(|_, at| now.saturating_duration_since(*at) < SUMMARY_EVERY);
        }
        s.recovered.insert(key, now);
        if s.failing.is_empty() {
            let failed = std::mem::take(&mut s.failed);
            s.unlogged = 0;
            if std::mem::take(&mut s.summarised) {
                // The slate is clean: the next failure of any key warns again.
                s.recovered.clear();
                return Line::AllRecovered { failed };
            }
        }
        if warned {
            Line::Recovered
        } else {
            Line::Quiet
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_warns_once_per_run_of_failures() {
        let log = FailureLog::default();
        let t = Instant::now();
        assert_eq!(log.failed("demo/web", t), Line::Warn);
        assert_eq!(log.failed("demo/web", t), Line::Quiet, "the retry is debug");
        assert_eq!(log.succeeded(|| "demo/web".into(), t), Line::Recovered);
        assert_eq!(
            log.succeeded(|| "demo/web".into(), t),
            Line::Quiet,
            "said once"
        );
        assert_eq!(
            log.failed("demo/web", t + SUMMARY_EVERY),
            Line::Warn,
            "a new run warns again"
        );
    }

    #[test]
    fn a_flapping_key_is_summarised_not_warned_at_each_flip() {
        let log = FailureLog::default();
        let t = Instant::now();
        let ms = |n: u64| t + Duration::from_millis(n);
        assert_eq!(log.failed("demo/web", ms(0)), Line::Warn);
        assert_eq!(log.succeeded(|| "demo/web".into(), ms(3)), Line::Recovered);
        assert_eq!(
            log.failed("demo/web", ms(6)),
            Line::Summary {
                failing: 1,
                unlogged: 1
            },
            "failing again at once: a flap"
        );
        for i in 0..1000 {
            assert_eq!(
                log.succeeded(|| "demo/web".into(), ms(7 + 2 * i)),
                Line::Quiet
            );
            assert_eq!(log.failed("demo/web", ms(8 + 2 * i)), Line::Quiet);
        }
        assert_eq!(
            log.failed("demo/api", ms(2100)),
            Line::Warn,
            "another key still warns"
        );
        // Quiet for longer than the window: a new run of failures.
        assert_eq!(log.succeeded(|| "demo/web".into(), ms(2200)), Line::Quiet);
        let later = ms(2200) + SUMMARY_EVERY;
        assert_eq!(log.failed("demo/web", later), Line::Warn);
    }

    #[test]
    fn an_outage_of_many_keys_is_summarised() {
        let log = FailureLog::default();
        let t = Instant::now();
        let keys: Vec<String> = (0..1000).map(|i| format!("demo/s{i}")).collect();
        let lines: Vec<Line> = keys.iter().map(|k| log.failed(k, t)).collect();
        let warns = lines.iter().filter(|l| **l == Line::Warn).count();
        assert_eq!(warns, WARN_LIMIT);
        assert_eq!(
            lines[WARN_LIMIT],
            Line::Summary {
                failing: WARN_LIMIT + 1,
                unlogged: 1
            }
        );
        assert!(lines[WARN_LIMIT + 1..].iter().all(|l| *l == Line::Quiet));
        // Retries of the same keys stay quiet, later ones are summed up.
        assert!(keys.iter().all(|k| log.failed(k, t) == Line::Quiet));
        assert_eq!(log.failed("demo/late", t + SUMMARY_EVERY / 2), Line::Quiet);
        assert_eq!(
            log.failed("demo/later", t + SUMMARY_EVERY),
            Line::Summary {
                failing: 1002,
                unlogged: 991
            }
        );
        // The member comes back.
        let mut recovered = Vec::new();
        for k in keys
            .iter()
            .chain(&["demo/late".to_string(), "demo/later".to_string()])
        {
            recovered.push(log.succeeded(|| k.clone(), t));
        }
        let count = |line: Line| recovered.iter().filter(|l| **l == line).count();
        assert_eq!(count(Line::Recovered), WARN_LIMIT);
        assert_eq!(recovered.last(), Some(&Line::AllRecovered { failed: 1002 }));
        assert_eq!(log.failed("demo/s1", t), Line::Warn, "the slate is clean");
    }
}
