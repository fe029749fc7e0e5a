//! The brute-force throttle as the HTTP routes that check passwords use it (`POST /token` and
//! `PUT /users/{uuid}/password`): one guard per attempt, keyed by the attempted login and the
//! client address (see `wazo_auth_core::throttle`). Failures on either route count together, so
//! a stolen token does not buy more password guesses than the login route allows.
//!
//! A process runs at most `max(free + 1, MIN_TURNS)` attempts at once on one key (a login, or a
//! client address, each with its own `free` failures), and checks the throttle once an
//! attempt's turn has come: the failures of the attempts in flight are recorded before the others
//! go ahead, so a burst of parallel guesses gets at most `free + turns` tries before the block,
//! instead of as many as the attacker sends at once. Legitimate logins beyond that many at the
//! same instant on one account or address wait for a turn; they are not refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::http::header::{HeaderValue, RETRY_AFTER};
use actix_web::http::StatusCode;
use actix_web::HttpRequest;

use super::error::ApiError;
use super::State;

/// Concurrent attempts always allowed per key, whatever its free failures: legitimate bursts on
/// one account (a service account used by many clients at once) do not wait.
const MIN_TURNS: usize = 32;

/// The turns of password attempts, per throttle key, shared by a process's workers. Entries
/// exist only while an attempt holds or waits for them.
#[derive(Default)]
pub struct AttemptTurns {
    keys: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
}

/// An attempt's turn on one key; released (and the key forgotten when nobody else uses it) on
/// drop.
struct Turn {
    turns: Arc<AttemptTurns>,
    key: String,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl AttemptTurns {
    async fn take(self: &Arc<Self>, key: &str, width: usize) -> Turn {
        let semaphore = self
            .keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.to_string())
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(width)))
            .clone();
        let mut turn = Turn {
            turns: self.clone(),
            key: key.to_string(),
            permit: None,
        };
        // Never closed; on a (cancelled) wait, dropping `turn` cleans up.
        turn.permit = semaphore.acquire_owned().await.ok();
        turn
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.permit.take();
        let mut keys = self.turns.keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys
            .get(&self.key)
            .is_some_and(|s| Arc::strong_count(s) == 1)
        {
            keys.remove(&self.key);
        }
    }
}

/// One password attempt under the throttle.
pub struct Attempt {
    keys: Vec<(String, i32)>,
    /// Whether a key had a failure record before this attempt (a success then clears it).
    known: bool,
    /// This attempt's turns (login key first, then address key: one order for all, so that
    /// attempts never wait on each other in a cycle). Released when the attempt is recorded.
    _turns: Vec<Turn>,
}

impl Attempt {
    /// Checks the throttle before trying `login`'s password from the request's client: `Err` is
    /// the answer to send at once (429 with `Retry-After` while blocked; 503 when the database
    /// cannot say). Answered from this process's notified view of the shared throttle when it
    /// is current, else from the database.
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
        // Already blocked (as far as this process's view says): refused at once, without
        // queuing for a turn behind the attempts under way.
        let now = wazo_auth_core::tokens::now();
        if let Some((Some(wait), _)) = state.tokens.throttle_state(&keys, now) {
            return Err(throttled(route, wait));
        }
        let mut turns = Vec::with_capacity(keys.len());
        for (key, free) in &keys {
            let width = usize::try_from(*free)
                .unwrap_or(0)
                .saturating_add(1)
                .max(MIN_TURNS);
            turns.push(state.attempts.take(key, width).await);
        }
        // Checked again once the turn has come: the failures of the attempts before it count.
        let local = state
            .tokens
            .throttle_state(&keys, wazo_auth_core::tokens::now());
        let checked = match local {
            Some(v) => Ok(v),
            None => state.storage.throttle_state(&keys).await,
        };
        match checked {
            Ok((Some(wait), _)) => Err(throttled(route, wait)),
            Ok((None, known)) => Ok(Attempt {
                keys,
                known,
                _turns: turns,
            }),
            Err(e) => Err(ApiError::unavailable(
                "reading the login throttle failed",
                e,
            )),
        }
    }

    /// Records the attempt as failed (a logged warning if the database cannot take it: the
    /// caller's answer does not change).
    pub async fn failed(self, state: &State) {
        if self.keys.is_empty() {
            return;
        }
        match state
            .storage
            .throttle_failure(&state.settings.throttle, &self.keys)
            .await
        {
            Ok(results) => state.tokens.note_throttle_failures(&results),
            Err(e) => log::warn!("recording a failed password attempt failed: {e}"),
        }
    }

    /// Records the attempt as successful: clears the login's record, if it had one.
    pub async fn succeeded(self, state: &State) {
        if !self.known {
            return;
        }
        match state.storage.throttle_success(&self.keys).await {
            Ok(()) => state.tokens.note_throttle_cleared(&self.keys),
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
