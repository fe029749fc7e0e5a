//! The brute-force throttle as the HTTP routes that check passwords use it (`POST /token` and
//! `PUT /users/{uuid}/password`): one guard per attempt, keyed by the attempted login and the
//! client address (see `wazo_auth_core::throttle`). Failures on either route count together, so
//! a stolen token does not buy more password guesses than the login route allows.

use actix_web::http::header::{HeaderValue, RETRY_AFTER};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

use super::errors::{storage_unavailable, token_error};
use super::State;

/// One password attempt under the throttle.
pub struct Attempt {
    keys: Vec<(String, i32)>,
    /// Whether a key had a failure record before this attempt (a success then clears it).
    known: bool,
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
    ) -> Result<Attempt, HttpResponse> {
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
        let local = state
            .tokens
            .throttle_state(&keys, wazo_auth_core::tokens::now());
        let checked = match local {
            Some(v) => Ok(v),
            None => state.storage.throttle_state(&keys).await,
        };
        match checked {
            Ok((Some(wait), _)) => {
                log::info!("{route}: throttled after repeated failures");
                let mut resp = token_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many failed authentication attempts; retry later",
                );
                if let Ok(v) = HeaderValue::from_str(&(wait.ceil() as u64).max(1).to_string()) {
                    resp.headers_mut().insert(RETRY_AFTER, v);
                }
                Err(resp)
            }
            Ok((None, known)) => Ok(Attempt { keys, known }),
            Err(e) => Err(storage_unavailable("reading the login throttle failed", e)),
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
