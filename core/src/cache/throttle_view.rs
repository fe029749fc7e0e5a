//! What this process knows of the shared login throttle (see `crate::throttle`), kept current
//! by notifications ([`crate::notify::Notification::ThrottleFailed`] and `ThrottleCleared`):
//! the blocked keys (until when, epoch seconds) and the keys with a failure record. It answers
//! logins without a query while live; when not, the database is asked.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// The most keys with a failure record kept before the ones that no longer block are dropped.
const THROTTLE_VIEW_MAX: usize = 100_000;

#[derive(Default)]
struct View {
    blocked: HashMap<String, f64>,
    failed: HashSet<String>,
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
                view.failed.insert(key);
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
            known |= view.failed.contains(k);
            if let Some(until) = view.blocked.get(k) {
                if *until > now {
                    wait = Some(wait.map_or(until - now, |w| w.max(until - now)));
                }
            }
        }
        Some((wait, known))
    }

    /// A failure on `key`, blocking it until `blocked_until` if given.
    pub fn failed(&self, key: &str, blocked_until: Option<f64>) {
        let mut view = self.lock();
        if view.failed.len() >= THROTTLE_VIEW_MAX {
            // Full: forget the keys that no longer block (a later failure starts them again),
            // never one that still does (a flood of logins must not lift a block).
            let now = crate::tokens::now();
            let View { failed, blocked } = &mut *view;
            blocked.retain(|_, until| *until > now);
            failed.retain(|k| blocked.contains_key(k));
        }
        view.failed.insert(key.to_string());
        if let Some(until) = blocked_until {
            view.blocked.insert(key.to_string(), until);
        }
    }

    /// `key`'s record is gone.
    pub fn cleared(&self, key: &str) {
        let mut view = self.lock();
        view.failed.remove(key);
        view.blocked.remove(key);
    }

    /// Records this process's own failures at once (the notifications follow).
    pub fn note_failures(&self, results: &[(String, Option<f64>)]) {
        for (key, until) in results {
            self.failed(key, *until);
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
        view.note_failures(&[("login:a".into(), None), ("addr:x".into(), Some(20.0))]);
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
