//! The bounds of the anonymous password-reset request (`GET /users/password/reset`), which
//! mails whoever it names: per client address, per name asked for and per user, a few requests
//! in a window, beyond which requests are silently ignored (the answer is the same 204, so the
//! bounds tell nothing about accounts); and a bound on the look-ups in progress. Kept in memory,
//! per server process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The window of the counts.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Requests per client address and window.
pub const PER_CLIENT: u32 = 10;
/// Requests per name asked for (username, address or login, in lower case) and window.
pub const PER_NAME: u32 = 3;
/// Reset mails per user and window.
pub const PER_USER: u32 = 3;
/// Look-ups (and mails being prepared) at the same time.
pub const JOBS: usize = 8;
/// Counters kept at most; when full of live counters, requests are ignored (fail closed).
const MAX_KEYS: usize = 100_000;

/// The counters.
pub struct ResetLimits {
    counts: Mutex<HashMap<String, (Instant, u32)>>,
    jobs: Arc<Semaphore>,
}

impl Default for ResetLimits {
    fn default() -> Self {
        ResetLimits {
            counts: Mutex::new(HashMap::new()),
            jobs: Arc::new(Semaphore::new(JOBS)),
        }
    }
}

impl ResetLimits {
    /// Counts one use of `key`; `false` when it is over `max` in the current window.
    pub fn allow(&self, key: &str, max: u32) -> bool {
        let now = Instant::now();
        let Ok(mut counts) = self.counts.lock() else {
            return false;
        };
        if counts.len() >= MAX_KEYS && !counts.contains_key(key) {
            counts.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
            if counts.len() >= MAX_KEYS {
                return false;
            }
        }
        let entry = counts.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1 <= max
    }

    /// A place for one look-up, if one is free.
    pub fn job(&self) -> Option<OwnedSemaphorePermit> {
        self.jobs.clone().try_acquire_owned().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_key_within_the_window() {
        let l = ResetLimits::default();
        assert!(l.allow("a", 2));
        assert!(l.allow("a", 2));
        assert!(!l.allow("a", 2));
        assert!(l.allow("b", 2));
        let jobs: Vec<_> = (0..JOBS).filter_map(|_| l.job()).collect();
        assert_eq!(jobs.len(), JOBS);
        assert!(l.job().is_none());
        drop(jobs);
        assert!(l.job().is_some());
    }
}
