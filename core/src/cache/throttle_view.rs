//! What this process knows of the shared login throttle (see `crate::throttle`), kept current
//! by notifications ([`crate::notify::Notification::ThrottleFailed`] and `ThrottleCleared`):
//! the blocked keys (until when, epoch seconds) and the keys with a failure record, with their
//! failure count as far as this process knows it (exact after its own failures, which return the
//! count; at least 1 after another process's, whose notification does not carry it). It answers
//! logins without a query while live; when not, the database is asked.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::throttle::{Failure, KeyState};

/// The most keys with a failure record kept before the ones that no longer block are dropped.
const THROTTLE_VIEW_MAX: usize = 100_000;

#[derive(Default)]
struct View {
    blocked: HashMap<String, f64>,
    /// Keys with a failure record, and their failure count as far as known.
    failed: HashMap<String, i32>,
}

/// The local view of the throttle.
#[derive(Default)]
pub struct ThrottleView {
    view: Mutex<View>,
    /// Whether throttle notifications are being received.
    live: AtomicBool,
}

impl ThrottleView {
    fn lock(&self) -> std::sync::MutexGuard<'_, View> {
        // Only map operations run under this lock: a poisoned lock holds a consistent view.
        self.view.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether notifications are being received (when not, the view is not used).
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Notifications are received from now on; `records` (`(key, blocked until)`) are the
    /// throttle's records when they started.
    pub fn start(&self, records: Vec<(String, Option<f64>)>) {
        {
            let mut view = self.lock();
            *view = View::default();
            for (key, until) in records {
                if let Some(until) = until {
                    view.blocked.insert(key.clone(), until);
                }
                // How many failures is not in the snapshot: at least one.
                view.failed.insert(key, 1);
            }
        }
        self.live.store(true, Ordering::Release);
    }

    /// Notifications may be missed from now on (the view is replaced at the next start).
    pub fn stop(&self) {
        self.live.store(false, Ordering::Release);
    }

    /// `(seconds to wait if any key is blocked, whether any key has a failure record)`, when
    /// live; `None` when not (ask the database).
    pub fn state(&self, keys: &[(String, i32)], now: f64) -> Option<(Option<f64>, bool)> {
        if !self.is_live() {
            return None;
        }
        let view = self.lock();
        let mut wait: Option<f64> = None;
        let mut known = false;
        for (k, _) in keys {
            known |= view.failed.contains_key(k);
            if let Some(until) = view.blocked.get(k) {
                if *until > now {
                    wait = Some(wait.map_or(until - now, |w| w.max(until - now)));
                }
            }
        }
        Some((wait, known))
    }

    /// Each of `keys` as this view knows it (in their order), when live; `None` when not.
    pub fn key_states(&self, keys: &[(String, i32)], now: f64) -> Option<Vec<KeyState>> {
        if !self.is_live() {
            return None;
        }
        let view = self.lock();
        Some(
            keys.iter()
                .map(|(k, _)| KeyState {
                    wait: view
                        .blocked
                        .get(k)
                        .filter(|until| **until > now)
                        .map(|until| until - now),
                    failures: view.failed.get(k).copied().unwrap_or(0),
                    known: view.failed.contains_key(k),
                })
                .collect(),
        )
    }

    /// A failure on `key` (`failures` when the count is known), blocking it until
    /// `blocked_until` if given.
    fn record(&self, key: &str, failures: Option<i32>, blocked_until: Option<f64>) {
        let mut view = self.lock();
        if view.failed.len() >= THROTTLE_VIEW_MAX {
            // Full: forget the keys that no longer block (a later failure starts them again),
            // never one that still does (a flood of logins must not lift a block).
            let now = crate::tokens::now();
            let View { failed, blocked } = &mut *view;
            blocked.retain(|_, until| *until > now);
            failed.retain(|k, _| blocked.contains_key(k));
        }
        let count = view.failed.entry(key.to_string()).or_insert(0);
        *count = match failures {
            // The record started again (`forget_after`): its count is exact.
            Some(n) if n <= 1 => 1,
            // Failures of this process may be noted out of order: the highest count holds.
            Some(n) => (*count).max(n),
            None => (*count).max(1),
        };
        if let Some(until) = blocked_until {
            view.blocked.insert(key.to_string(), until);
        }
    }

    /// A failure on `key`, blocking it until `blocked_until` if given (a notification: the
    /// count is not known).
    pub fn failed(&self, key: &str, blocked_until: Option<f64>) {
        self.record(key, None, blocked_until);
    }

    /// `key`'s record is gone.
    pub fn cleared(&self, key: &str) {
        let mut view = self.lock();
        view.failed.remove(key);
        view.blocked.remove(key);
    }

    /// Records this process's own failures at once, with their counts (the notifications
    /// follow).
    pub fn note_failures(&self, results: &[Failure]) {
        for f in results {
            self.record(&f.key, Some(f.failures), f.blocked_until);
        }
    }

    /// Forgets the login keys cleared by a successful login (`Storage::throttle_success`).
    pub fn note_cleared(&self, keys: &[(String, i32)]) {
        for (key, _) in keys.iter().filter(|(k, _)| k.starts_with("login:")) {
            self.cleared(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(names: &[&str]) -> Vec<(String, i32)> {
        names.iter().map(|k| (k.to_string(), 3)).collect()
    }

    fn failure(key: &str, blocked_until: Option<f64>, failures: i32) -> Failure {
        Failure {
            key: key.into(),
            blocked_until,
            failures,
        }
    }

    fn counts(view: &ThrottleView, names: &[&str]) -> Vec<i32> {
        view.key_states(&keys(names), 0.0)
            .unwrap_or_default()
            .iter()
            .map(|k| k.failures)
            .collect()
    }

    /// Failure counts: exact from this process's failures (whatever order they are noted in),
    /// at least 1 from a notification or the snapshot, back to exact when a record starts
    /// again; gone when cleared.
    #[test]
    fn counts_follow_own_failures_and_notifications() {
        let view = ThrottleView::default();
        assert_eq!(view.key_states(&keys(&["login:a"]), 0.0), None);
        view.start(vec![("login:old".into(), None)]);
        assert_eq!(counts(&view, &["login:old", "login:a"]), [1, 0]);
        view.note_failures(&[failure("login:a", None, 4)]);
        view.note_failures(&[failure("login:a", None, 3)]);
        assert_eq!(counts(&view, &["login:a"]), [4]);
        // Its own notification, or another process's: not fewer than known.
        view.failed("login:a", None);
        view.failed("login:b", None);
        assert_eq!(counts(&view, &["login:a", "login:b"]), [4, 1]);
        // Started again after `forget_after`.
        view.note_failures(&[failure("login:a", None, 1)]);
        assert_eq!(counts(&view, &["login:a"]), [1]);
        view.note_failures(&[failure("login:a", Some(30.0), 11)]);
        assert_eq!(
            view.key_states(&keys(&["login:a"]), 10.0),
            Some(vec![KeyState {
                wait: Some(20.0),
                failures: 11,
                known: true
            }])
        );
        view.cleared("login:a");
        assert_eq!(
            view.key_states(&keys(&["login:a"]), 10.0),
            Some(vec![KeyState::default()])
        );
    }

    #[test]
    fn answers_only_while_live() {
        let view = ThrottleView::default();
        view.failed("login:a", Some(100.0));
        assert_eq!(view.state(&keys(&["login:a"]), 50.0), None);
        view.start(vec![
            ("addr:x".into(), None),
            ("login:b".into(), Some(80.0)),
        ]);
        // Replaced by the records at start.
        assert_eq!(view.state(&keys(&["login:a"]), 50.0), Some((None, false)));
        assert_eq!(view.state(&keys(&["addr:x"]), 50.0), Some((None, true)));
        assert_eq!(
            view.state(&keys(&["addr:x", "login:b"]), 50.0),
            Some((Some(30.0), true))
        );
        view.stop();
        assert_eq!(view.state(&keys(&["login:b"]), 50.0), None);
    }

    #[test]
    fn failures_block_and_clears_lift() {
        let view = ThrottleView::default();
        view.start(Vec::new());
        view.note_failures(&[
            failure("login:a", None, 1),
            failure("addr:x", Some(20.0), 5),
        ]);
        assert_eq!(
            view.state(&keys(&["login:a", "addr:x"]), 10.0),
            Some((Some(10.0), true))
        );
        assert_eq!(view.state(&keys(&["addr:x"]), 25.0), Some((None, true)));
        view.failed("login:a", Some(40.0));
        assert_eq!(
            view.state(&keys(&["login:a", "addr:x"]), 10.0),
            Some((Some(30.0), true))
        );
        // A successful login clears its login key, never the address.
        view.note_cleared(&keys(&["login:a", "addr:x"]));
        assert_eq!(view.state(&keys(&["login:a"]), 10.0), Some((None, false)));
        assert_eq!(
            view.state(&keys(&["addr:x"]), 10.0),
            Some((Some(10.0), true))
        );
        view.cleared("addr:x");
        assert_eq!(view.state(&keys(&["addr:x"]), 10.0), Some((None, false)));
    }

    #[test]
    fn a_full_view_keeps_the_keys_that_block() {
        let view = ThrottleView::default();
        view.start(Vec::new());
        let later = crate::tokens::now() + 3600.0;
        view.failed("login:blocked", Some(later));
        view.failed("login:was-blocked", Some(1.0));
        for i in 0..THROTTLE_VIEW_MAX {
            view.failed(&format!("addr:{i}"), None);
        }
        let now = crate::tokens::now();
        assert!(matches!(
            view.state(&keys(&["login:blocked"]), now),
            Some((Some(_), true))
        ));
        assert_eq!(
            view.state(&keys(&["login:was-blocked"]), now),
            Some((None, false))
        );
        assert!(view.lock().failed.len() < THROTTLE_VIEW_MAX);
    }
}
