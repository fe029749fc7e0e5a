//! The brute-force throttle as the HTTP routes that check passwords use it (`POST /token` and
//! `PUT /users/{uuid}/password`): one guard per attempt, keyed by the attempted login and the
//! client address (see `wazo_auth_core::throttle`). Failures on either route count together, so
//! a stolen token does not buy more password guesses than the login route allows.
//!
//! The burst bound: an attempt reserves its place on each of its keys before its password is
//! checked, and the reservations of a process count against a key's budget as provisional
//! failures. A key's budget is twice its `free` failures, less the failures it already has
//! (one attempt at a time once they are used up, when the block has ended). A failed attempt turns its reservation into the recorded failure (recorded
//! before the reservation goes), a success or another outcome (backend unavailable, timeout)
//! just releases it. An attempt beyond the budget waits for the outcome of those under way and
//! then looks again: refused (429) if they blocked the key, on its way if they succeeded. So a
//! burst of guesses on a fresh login has at most `2 × free` of them checked in one process,
//! whatever its size, and a burst of right passwords all succeed (they only wait their turn).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::http::header::{HeaderValue, RETRY_AFTER};
use actix_web::http::StatusCode;
use actix_web::HttpRequest;
use tokio::sync::watch;
use wazo_auth_core::throttle::{Failure, KeyState};

use super::error::ApiError;
use super::State;

/// The password attempts of a process under way, per throttle key, shared by its workers.
/// Entries exist only while an attempt holds or waits for a reservation on them.
#[derive(Default)]
pub struct AttemptTurns {
    keys: Mutex<HashMap<String, Slot>>,
}

/// One key's attempts under way in this process.
struct Slot {
    /// Attempts holding or waiting for a reservation (the slot goes at 0).
    users: usize,
    /// Reservations: attempts whose password is being checked, each a provisional failure.
    reserved: usize,
    /// The highest failure count this process learnt of while the slot lived: read from the
    /// database when an attempt started (while the notified view is not live), returned by its
    /// own failures; 0 again after a success clears a login, or `forget_after` after it was
    /// last raised (a busy key's slot may live long).
    failures: i32,
    /// When `failures` was last raised (epoch seconds).
    failures_at: f64,
    /// Until when (epoch seconds) the key blocks, as learnt the same way.
    blocked_until: f64,
    /// Bumped when a reservation goes: the attempts waiting look again.
    released: watch::Sender<u64>,
}

/// How many attempts of one process may have a key's password checked at once: while the key
/// has not used up its free failures, twice the free failures less those it has (so that at
/// most twice the free failures are ever checked, the documented bound, and that many clients
/// of one account log in at once); once it has, one at a time (the block has ended).
fn budget(free: i32, failures: i32) -> usize {
    let failures = failures.max(0);
    if failures > free {
        return 1;
    }
    usize::try_from(free.saturating_mul(2).saturating_sub(failures))
        .unwrap_or(0)
        .max(1)
}

/// What an attempt may do now.
enum Admission {
    /// Its reservations are taken; `known` tells whether a key has a failure record.
    Reserved { known: bool },
    /// A key blocks for this many more seconds.
    Blocked(f64),
    /// A key's budget is taken by the attempts under way: look again when one of them ends.
    Wait(watch::Receiver<u64>),
}

/// An attempt's place on its keys: a user of their slots from its start, and a reservation
/// once admitted. Both are released on drop, after the outcome (if any) is recorded.
struct Hold {
    turns: Arc<AttemptTurns>,
    keys: Vec<(String, i32)>,
    reserved: bool,
}

impl AttemptTurns {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        // Only counters change under this lock: a poisoned lock holds consistent slots.
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Becomes a user of the slots of `keys` (no reservation yet).
    fn hold(self: &Arc<Self>, keys: &[(String, i32)]) -> Hold {
        let mut slots = self.lock();
        for (key, _) in keys {
            slots
                .entry(key.clone())
                .or_insert_with(|| Slot {
                    users: 0,
                    reserved: 0,
                    failures: 0,
                    failures_at: 0.0,
                    blocked_until: 0.0,
                    released: watch::channel(0).0,
                })
                .users += 1;
        }
        Hold {
            turns: self.clone(),
            keys: keys.to_vec(),
            reserved: false,
        }
    }
}

impl Slot {
    /// The failures counted, `forget_after` seconds after they were last raised.
    fn failures(&self, now: f64, forget_after: f64) -> i32 {
        if now - self.failures_at > forget_after {
            0
        } else {
            self.failures
        }
    }

    /// Raises the failures counted to `failures` (never lowers them: this process's outcomes
    /// may be noted out of order).
    fn raise(&mut self, failures: i32, now: f64, forget_after: f64) {
        self.failures = self.failures(now, forget_after).max(failures);
        self.failures_at = now;
    }
}

impl Hold {
    /// Folds what was read of the keys from the database (at `now`) into their slots.
    fn learn(&self, states: &[KeyState], now: f64, forget_after: f64) {
        let mut slots = self.turns.lock();
        for ((key, _), state) in self.keys.iter().zip(states) {
            if let Some(slot) = slots.get_mut(key) {
                slot.raise(state.failures, now, forget_after);
                if let Some(wait) = state.wait {
                    slot.blocked_until = slot.blocked_until.max(now + wait);
                }
            }
        }
    }

    /// Takes a reservation on every key, or says why not. `view` is the process's notified view
    /// of the keys now (`None` when it is not live), read under the lock so that an outcome
    /// noted before its reservation went is never missed.
    fn admit(
        &mut self,
        view: impl FnOnce() -> Option<Vec<KeyState>>,
        now: f64,
        forget_after: f64,
        read_known: bool,
    ) -> Admission {
        let mut slots = self.turns.lock();
        let view = view();
        let mut wait: Option<f64> = None;
        let mut full: Option<&str> = None;
        let mut known = read_known;
        for (i, (key, free)) in self.keys.iter().enumerate() {
            let Some(slot) = slots.get(key) else { continue };
            let seen = view.as_ref().and_then(|v| v.get(i)).copied();
            let failures = slot
                .failures(now, forget_after)
                .max(seen.map_or(0, |s| s.failures));
            let blocked = slot.blocked_until - now;
            let blocked = seen
                .and_then(|s| s.wait)
                .map_or(blocked, |w| w.max(blocked));
            known |= failures > 0 || seen.is_some_and(|s| s.known);
            if blocked > 0.0 {
                wait = Some(wait.map_or(blocked, |w| w.max(blocked)));
            } else if full.is_none() && slot.reserved >= budget(*free, failures) {
                full = Some(key);
            }
        }
        if let Some(wait) = wait {
            return Admission::Blocked(wait);
        }
        if let Some(key) = full {
            if let Some(slot) = slots.get(key) {
                return Admission::Wait(slot.released.subscribe());
            }
        }
        for (key, _) in &self.keys {
            if let Some(slot) = slots.get_mut(key) {
                slot.reserved += 1;
            }
        }
        self.reserved = true;
        Admission::Reserved { known }
    }

    /// Notes this attempt's own recorded failures (or, when they could not be recorded, one
    /// more failure on each key while the slots live).
    fn failed(&self, results: Option<&[Failure]>, now: f64, forget_after: f64) {
        let mut slots = self.turns.lock();
        match results {
            Some(results) => {
                for f in results {
                    if let Some(slot) = slots.get_mut(&f.key) {
                        slot.raise(f.failures, now, forget_after);
                        if let Some(until) = f.blocked_until {
                            slot.blocked_until = slot.blocked_until.max(until);
                        }
                    }
                }
            }
            None => {
                for (key, _) in &self.keys {
                    if let Some(slot) = slots.get_mut(key) {
                        let more = slot.failures(now, forget_after).saturating_add(1);
                        slot.raise(more, now, forget_after);
                    }
                }
            }
        }
    }

    /// Notes a success that cleared the login keys' records.
    fn cleared(&self) {
        let mut slots = self.turns.lock();
        for (key, _) in self.keys.iter().filter(|(k, _)| k.starts_with("login:")) {
            if let Some(slot) = slots.get_mut(key) {
                slot.failures = 0;
                slot.blocked_until = 0.0;
            }
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut slots = self.turns.lock();
        for (key, _) in &self.keys {
            let Some(slot) = slots.get_mut(key) else {
                continue;
            };
            if self.reserved {
                slot.reserved = slot.reserved.saturating_sub(1);
                slot.released.send_modify(|n| *n = n.wrapping_add(1));
            }
            slot.users = slot.users.saturating_sub(1);
            if slot.users == 0 {
                slots.remove(key);
            }
        }
    }
}

/// One password attempt under the throttle.
pub struct Attempt {
    keys: Vec<(String, i32)>,
    /// Whether a key had a failure record before this attempt (a success then clears it).
    known: bool,
    /// This attempt's reservation (none when the throttle is off). Released when the attempt
    /// is recorded, or dropped without an outcome.
    hold: Option<Hold>,
}

impl Attempt {
    /// Checks the throttle before trying `login`'s password from the request's client, and
    /// reserves the attempt's place in its keys' budgets (waiting while the attempts under way
    /// use them up): `Err` is the answer to send (429 with `Retry-After` while blocked; 503
    /// when the database cannot say). Answered from this process's notified view of the shared
    /// throttle when it is current, else from the database.
    pub async fn start(
        state: &State,
        req: &HttpRequest,
        remote_addr: &str,
        login: Option<&str>,
        route: &str,
    ) -> Result<Attempt, ApiError> {
        let keys = if state.settings.throttle.enabled {
            let peer = req
                .peer_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default();
            wazo_auth_core::throttle::keys(
                &state.settings.throttle,
                state.keyring.login_throttle_key(),
                login,
                remote_addr,
                &peer,
            )
        } else {
            Vec::new()
        };
        if keys.is_empty() {
            return Ok(Attempt {
                keys,
                known: false,
                hold: None,
            });
        }
        // Already blocked (as far as this process's view says): refused at once, without
        // waiting behind the attempts under way.
        let now = wazo_auth_core::tokens::now();
        let local = state.tokens.throttle_keys(&keys, now);
        if let Some(wait) = local
            .iter()
            .flatten()
            .filter_map(|k| k.wait)
            .reduce(f64::max)
        {
            return Err(throttled(route, wait));
        }
        let forget_after = state.settings.throttle.forget_after;
        let mut hold = state.attempts.hold(&keys);
        let read_known = match local {
            // Read again under the slots' lock (`Hold::admit`).
            Some(_) => false,
            None => {
                let read = state
                    .storage
                    .throttle_keys(&keys, forget_after)
                    .await
                    .map_err(|e| ApiError::unavailable("reading the login throttle failed", e))?;
                hold.learn(&read, now, forget_after);
                read.iter().any(|k| k.known)
            }
        };
        loop {
            let now = wazo_auth_core::tokens::now();
            let view = || state.tokens.throttle_keys(&keys, now);
            match hold.admit(view, now, forget_after, read_known) {
                Admission::Reserved { known } => {
                    return Ok(Attempt {
                        keys,
                        known,
                        hold: Some(hold),
                    })
                }
                Admission::Blocked(wait) => return Err(throttled(route, wait)),
                // The sender lives as long as the slot, which this attempt keeps.
                Admission::Wait(mut released) => {
                    let _ = released.changed().await;
                }
            }
        }
    }

    /// Records the attempt as failed (a logged warning if the database cannot take it: the
    /// caller's answer does not change), then releases its reservation.
    pub async fn failed(self, state: &State) {
        let Some(hold) = &self.hold else {
            return;
        };
        let recorded = state
            .storage
            .throttle_failure(&state.settings.throttle, &self.keys)
            .await;
        let forget_after = state.settings.throttle.forget_after;
        let now = wazo_auth_core::tokens::now();
        match recorded {
            Ok(results) => {
                state.tokens.note_throttle_failures(&results);
                hold.failed(Some(&results), now, forget_after);
            }
            Err(e) => {
                log::warn!("recording a failed password attempt failed: {e}");
                hold.failed(None, now, forget_after);
            }
        }
    }

    /// Records the attempt as successful: clears the login's record, if it had one; then
    /// releases its reservation.
    pub async fn succeeded(self, state: &State) {
        if !self.known {
            return;
        }
        match state.storage.throttle_success(&self.keys).await {
            Ok(()) => {
                state.tokens.note_throttle_cleared(&self.keys);
                if let Some(hold) = &self.hold {
                    hold.cleared();
                }
            }
            Err(e) => log::warn!("clearing the login throttle failed: {e}"),
        }
    }
}

/// The answer to an attempt on a blocked key: 429 with `Retry-After` (whole seconds, at least 1).
fn throttled(route: &str, wait: f64) -> ApiError {
    log::info!("{route}: throttled after repeated failures");
    crate::telemetry::metrics::throttle_block(route);
    let error = ApiError::token(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many failed authentication attempts; retry later",
    );
    match HeaderValue::from_str(&(wait.ceil() as u64).max(1).to_string()) {
        Ok(v) => error.with_header(RETRY_AFTER, v),
        Err(_) => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORGET: f64 = 900.0;

    fn failure(key: &str, failures: i32, blocked_until: Option<f64>) -> Failure {
        Failure {
            key: key.into(),
            blocked_until,
            failures,
        }
    }

    fn reserved(admission: &Admission) -> bool {
        matches!(admission, Admission::Reserved { .. })
    }

    #[test]
    fn budgets_are_twice_the_free_failures_less_those_used_at_least_one() {
        assert_eq!(budget(10, 0), 20);
        assert_eq!(budget(10, 4), 16);
        assert_eq!(budget(10, 10), 10);
        assert_eq!(budget(10, 11), 1, "a block ended: one attempt at a time");
        assert_eq!(budget(0, 0), 1);
        assert_eq!(budget(i32::MAX, 0), i32::MAX as usize);
        assert_eq!(budget(3, -1), 6);
    }

    /// A burst on a fresh key: `2 × free` attempts are reserved, the others wait; failures turn
    /// reservations into counted failures, so nobody else gets in before the block; the block
    /// refuses the waiting attempts.
    #[test]
    fn a_burst_of_failures_has_twice_the_free_failures_checked() {
        let turns = Arc::new(AttemptTurns::default());
        let keys = vec![("login:k".to_string(), 3)];
        let no_view = || None;
        let mut holds: Vec<Hold> = (0..20).map(|_| turns.hold(&keys)).collect();
        let admitted: Vec<bool> = holds
            .iter_mut()
            .map(|h| reserved(&h.admit(no_view, 100.0, FORGET, false)))
            .collect();
        assert_eq!(admitted.iter().filter(|a| **a).count(), 6);
        let mut waiting: Vec<Hold> = holds.split_off(6);
        // Five failures recorded (out of order), their reservations released: still full.
        for (n, hold) in [2, 1, 3, 5, 4].into_iter().zip(holds.drain(..5)) {
            hold.failed(Some(&[failure("login:k", n, None)]), 100.0, FORGET);
            drop(hold);
            assert!(!reserved(&waiting[0].admit(no_view, 100.0, FORGET, false)));
        }
        // The sixth blocks the key (it blocks from the fourth on): the attempts waiting are
        // refused.
        holds[0].failed(Some(&[failure("login:k", 6, Some(130.0))]), 100.0, FORGET);
        drop(holds);
        for hold in &mut waiting {
            assert!(matches!(
                hold.admit(no_view, 100.0, FORGET, false),
                Admission::Blocked(w) if w == 30.0
            ));
        }
        // After the block, one at a time.
        assert!(reserved(&waiting[0].admit(no_view, 131.0, FORGET, false)));
        assert!(!reserved(&waiting[1].admit(no_view, 131.0, FORGET, false)));
        drop(waiting);
        assert!(turns.lock().is_empty(), "slots go with their last user");
    }

    /// Successes release their reservations and clear the login's count: a burst of right
    /// passwords all get their turn; the view's count and block count too.
    #[test]
    fn successes_release_and_the_view_counts() {
        let turns = Arc::new(AttemptTurns::default());
        let keys = vec![("login:k".to_string(), 3), ("addr:x".to_string(), 50)];
        let view = |failures: i32, wait: Option<f64>| {
            move || {
                Some(vec![
                    KeyState {
                        wait,
                        failures,
                        known: failures > 0,
                    },
                    KeyState::default(),
                ])
            }
        };
        let mut a = turns.hold(&keys);
        let mut b = turns.hold(&keys);
        let mut e = turns.hold(&keys);
        let mut f = turns.hold(&keys);
        let mut c = turns.hold(&keys);
        assert!(matches!(
            a.admit(view(2, None), 0.0, FORGET, false),
            Admission::Reserved { known: true }
        ));
        // Twice the 3 free failures, less the 2 known: 4 at once.
        assert!(reserved(&b.admit(view(2, None), 0.0, FORGET, false)));
        assert!(reserved(&e.admit(view(2, None), 0.0, FORGET, false)));
        assert!(reserved(&f.admit(view(2, None), 0.0, FORGET, false)));
        assert!(matches!(
            c.admit(view(2, None), 0.0, FORGET, false),
            Admission::Wait(_)
        ));
        // A success clears the login's count (here and in the view).
        a.cleared();
        drop(a);
        assert!(reserved(&c.admit(view(0, None), 0.0, FORGET, false)));
        let mut d = turns.hold(&keys);
        assert!(matches!(
            d.admit(view(0, Some(5.0)), 0.0, FORGET, false),
            Admission::Blocked(w) if w == 5.0
        ));
        drop((b, c, d, e, f));
        assert!(turns.lock().is_empty());
    }

    /// Counts learnt from the database, or from failures that could not be recorded, are
    /// forgotten `forget_after` after they were last raised.
    #[test]
    fn slot_counts_are_forgotten() {
        let turns = Arc::new(AttemptTurns::default());
        let keys = vec![("addr:x".to_string(), 2)];
        let keeper = turns.hold(&keys);
        keeper.learn(
            &[KeyState {
                wait: None,
                failures: 2,
                known: true,
            }],
            0.0,
            FORGET,
        );
        keeper.failed(None, 10.0, FORGET);
        let mut h = turns.hold(&keys);
        assert!(reserved(&h.admit(|| None, 20.0, FORGET, false)));
        let mut i = turns.hold(&keys);
        assert!(!reserved(&i.admit(|| None, 20.0, FORGET, false)));
        drop(h);
        // Forgotten: the key's whole budget again (twice its 2 free failures).
        let later = 20.0 + FORGET;
        assert!(matches!(
            i.admit(|| None, later, FORGET, false),
            Admission::Reserved { known: false }
        ));
        let mut j = turns.hold(&keys);
        assert!(reserved(&j.admit(|| None, later, FORGET, false)));
        let mut k = turns.hold(&keys);
        assert!(reserved(&k.admit(|| None, later, FORGET, false)));
        let mut m = turns.hold(&keys);
        assert!(reserved(&m.admit(|| None, later, FORGET, false)));
        let mut l = turns.hold(&keys);
        assert!(!reserved(&l.admit(|| None, later, FORGET, false)));
        drop((keeper, i, j, k, m, l));
        assert!(turns.lock().is_empty());
    }

    /// An attempt waiting is woken when a reservation goes.
    #[tokio::test]
    async fn waiting_attempts_are_woken_by_a_release() {
        let turns = Arc::new(AttemptTurns::default());
        let keys = vec![("login:k".to_string(), 0)];
        let mut first = turns.hold(&keys);
        assert!(reserved(&first.admit(|| None, 0.0, FORGET, false)));
        let mut second = turns.hold(&keys);
        let Admission::Wait(mut released) = second.admit(|| None, 0.0, FORGET, false) else {
            panic!("the budget of a key without free failures is one");
        };
        let waiter = tokio::spawn(async move { released.changed().await.is_ok() });
        tokio::task::yield_now().await;
        drop(first);
        assert!(
            tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
                .await
                .is_ok_and(|r| r.is_ok_and(|ok| ok))
        );
        assert!(reserved(&second.admit(|| None, 0.0, FORGET, false)));
    }
}
