//! The OAuth2 authorization-code flow of the built-in `google` and `microsoft` external-auth
//! plugins (`plugins/google`, `plugins/microsoft`), as the original's plugins run it:
//!
//! - `POST /users/{u}/external/{type}` validates the body (an optional `scope` list), reads the
//!   tenant's `client_id` / `client_secret` (`/external/{type}/config`), answers 201
//!   `{authorization_url, state}` and, in a background thread, waits on the synchronization
//!   websocket `<websocket_host>/ws/<state>` for `{"code": ...}`, exchanges the code at
//!   `token_url`, stores `{access_token, refresh_token, token_expiration, scope}` (created, or
//!   updated when present) and publishes `auth_user_external_auth_authorized`.
//! - `GET` answers `{access_token, token_expiration, scope}`, refreshed at `token_url` first when
//!   it expires within 30 seconds.
//! - `DELETE` removes the stored token (204).
//!
//! Bounds (see docs/configuration.md): at most `max_pending_flows` flows wait at once (further
//! `POST`s answer 503), the websocket connects within `websocket_connect_timeout`, a flow waits
//! at most `authorization_timeout` for its code, and each token-endpoint request is bounded by
//! `token_request_timeout` (3 s by default, under the host's 5 s `plugin_call_timeout`).

mod settings;
mod sync;
mod token_endpoint;

use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wazo_auth_plugin_api::serde_json::{json, Map, Value};
use wazo_auth_plugin_api::{ErrorKind, ExternalAuth, ExternalRequest, Host, PluginError, Reply};

pub use settings::{Settings, WS_TEMPLATE_KEY};
pub use token_endpoint::{Granted, TokenEndpoint, TokenError};

/// What differs between providers. The defaults are the packaged `config.yml`'s values, used
/// for the keys the configuration section leaves out.
pub trait Provider: Send + Sync + 'static {
    /// The auth type (`google`), in routes, ACLs and the store.
    const AUTH_TYPE: &'static str;
    /// The name shown in messages (`Google`).
    const NAME: &'static str;
    const AUTHORIZATION_BASE_URL: &'static str;
    const REDIRECT_URI: &'static str;
    const TOKEN_URL: &'static str;
    const SCOPE: &'static [&'static str];
    /// Parameters added to the authorization URL (google: `access_type=offline`,
    /// `prompt=consent`).
    const AUTHORIZATION_PARAMS: &'static [(&'static str, &'static str)];
}

/// A token that expires within this margin is refreshed before `GET` answers it.
const EXPIRY_MARGIN_SECONDS: f64 = 30.0;
/// How long `POST` waits for the flow's websocket to connect before answering (the answer is
/// 201 either way; waiting lets a quick user find the listener ready).
const POST_WAITS_FOR_CONNECT: Duration = Duration::from_secs(1);
/// The length of the random `state` (as the original's oauthlib).
const STATE_LENGTH: usize = 30;
/// marshmallow's `Length(min=1, max=512)` of each requested scope.
const SCOPE_MAX: usize = 512;

/// The external-auth plugin of provider `P`.
pub struct OAuth2<P: Provider> {
    shared: Arc<Shared>,
    _provider: PhantomData<fn() -> P>,
}

/// What a flow's thread needs.
struct Shared {
    host: Host,
    auth_type: &'static str,
    name: &'static str,
    params: &'static [(&'static str, &'static str)],
    settings: Settings,
    endpoint: TokenEndpoint,
    tls: Arc<rustls::ClientConfig>,
    pending: AtomicUsize,
}

impl<P: Provider> ExternalAuth for OAuth2<P> {
    // No safe model, as the original: `GET /users/{u}/external` shows `data: {}`.

    fn load(host: &Host, config: Value) -> Result<Self, PluginError> {
        let settings = Settings::read::<P>(&config)?;
        let tls = sync::tls_config().map_err(PluginError::config)?;
        log::info!(
            "{} OAuth2: token endpoint {}, synchronization websocket {}",
            P::NAME,
            settings.token_url,
            settings.ws_url_template
        );
        Ok(OAuth2 {
            shared: Arc::new(Shared {
                host: host.clone(),
                auth_type: P::AUTH_TYPE,
                name: P::NAME,
                params: P::AUTHORIZATION_PARAMS,
                endpoint: TokenEndpoint::new(&settings.token_url, settings.token_request_timeout),
                settings,
                tls,
                pending: AtomicUsize::new(0),
            }),
            _provider: PhantomData,
        })
    }

    fn create(&self, req: &ExternalRequest) -> Result<Reply, PluginError> {
        let requested = match requested_scope(&req.body) {
            Ok(s) => s,
            Err(reply) => return Ok(reply),
        };
        let shared = &self.shared;
        let (client_id, client_secret) = match shared.credentials(&req.user_uuid)? {
            Ok(c) => c,
            Err(reply) => return Ok(reply),
        };
        let scope = requested.unwrap_or_else(|| shared.settings.scope.clone());
        let state = random_state()?;
        let authorization_url = shared.authorization_url(&client_id, &scope, &state);
        let Some(slot) = Slot::take(shared) else {
            log::warn!(
                "{}: {} authorizations are already waiting (max_pending_flows); refused a new one",
                shared.name,
                shared.settings.max_pending_flows
            );
            return Ok(api_error(
                503,
                format!(
                    "Too many {} authorizations are in progress; try again later",
                    shared.name
                ),
                "too-many-pending-authorizations",
                json!({"type": shared.auth_type}),
                shared.auth_type,
            ));
        };
        let flow = Flow {
            shared: shared.clone(),
            user_uuid: req.user_uuid.clone(),
            state: state.clone(),
            client_id,
            client_secret,
        };
        let (connected_tx, connected_rx) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name(format!("{}-oauth2", shared.auth_type))
            .spawn(move || {
                let _slot = slot;
                flow.run(connected_tx);
            })
            .map_err(|e| PluginError::failed(format!("cannot start the flow's thread: {e}")))?;
        let _ = connected_rx.recv_timeout(POST_WAITS_FOR_CONNECT);
        Ok(Reply::json(
            201,
            json!({"authorization_url": authorization_url, "state": state}),
        ))
    }

    fn get(&self, req: &ExternalRequest) -> Result<Reply, PluginError> {
        let shared = &self.shared;
        let Some(data) = shared.host.external_get(&req.user_uuid)? else {
            return Err(PluginError::not_found(format!(
                "no {} token for this user",
                shared.auth_type
            )));
        };
        if !data.is_object() {
            log::error!(
                "user {}: the stored {} data is not a JSON object",
                req.user_uuid,
                shared.auth_type
            );
            // No usable token: answered as no token at all (authorize again), never a 500.
            return Ok(api_error(
                404,
                "Stored external authentication data cannot be read: authorize again".to_string(),
                "unknown-external-auth",
                json!({"type": shared.auth_type}),
                shared.auth_type,
            ));
        }
        let expiration = data.get("token_expiration").and_then(Value::as_f64);
        let expired = expiration.is_none_or(|e| now() + EXPIRY_MARGIN_SECONDS > e);
        if !expired {
            return Ok(Reply::json(200, dump(&data)));
        }
        match shared.refresh(&req.user_uuid, data)? {
            Ok(data) => Ok(Reply::json(200, dump(&data))),
            Err(reply) => Ok(reply),
        }
    }

    fn delete(&self, req: &ExternalRequest) -> Result<Reply, PluginError> {
        self.shared.host.external_delete(&req.user_uuid)?;
        Ok(Reply::no_content())
    }
}

/// A place among the `max_pending_flows`, given back when dropped.
struct Slot(Arc<Shared>);

impl Slot {
    fn take(shared: &Arc<Shared>) -> Option<Slot> {
        let max = shared.settings.max_pending_flows;
        shared
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(shared.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Shared {
    /// The tenant's `client_id` and `client_secret`, or the 404 answer. The original reads the
    /// caller's tenant; plugin API 1.x tells external handlers only the user, so this reads the
    /// user's tenant (the same tenant for a user managing their own link).
    #[allow(clippy::type_complexity)]
    fn credentials(&self, user: &str) -> Result<Result<(String, String), Reply>, PluginError> {
        let not_configured = |message: String| {
            api_error(
                404,
                message,
                "unknown-external-auth",
                json!({"type": self.auth_type}),
                self.auth_type,
            )
        };
        let Some(config) = self.host.external_config(user)? else {
            return Ok(Err(not_configured(format!(
                "No config found for this external auth type: \"{}\"",
                self.auth_type
            ))));
        };
        let field = |k: &str| {
            config
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        match (field("client_id"), field("client_secret")) {
            (Some(id), Some(secret)) => Ok(Ok((id, secret))),
            _ => Ok(Err(not_configured(format!(
                "The \"{}\" config of this tenant has no client_id or client_secret",
                self.auth_type
            )))),
        }
    }

    fn authorization_url(&self, client_id: &str, scope: &[String], state: &str) -> String {
        let base = &self.settings.authorization_base_url;
        let mut query = form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", &self.settings.redirect_uri)
            .append_pair("scope", &scope.join(" "))
            .append_pair("state", state);
        for (k, v) in self.params {
            query.append_pair(k, v);
        }
        let separator = if base.contains('?') { '&' } else { '?' };
        format!("{base}{separator}{}", query.finish())
    }

    /// Refreshes an expired token and stores it: the new data, or the error answer.
    fn refresh(&self, user: &str, mut data: Value) -> Result<Result<Value, Reply>, PluginError> {
        let Some(refresh_token) = data
            .get("refresh_token")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            log::warn!(
                "user {user}: the stored {} token has expired and has no refresh token",
                self.auth_type
            );
            // No usable token: answered as no token at all (authorize again), never a 500.
            return Ok(Err(api_error(
                404,
                format!(
                    "The stored {} token has expired and cannot be refreshed: authorize again",
                    self.name
                ),
                "unknown-external-auth",
                json!({"type": self.auth_type}),
                self.auth_type,
            )));
        };
        let (client_id, client_secret) = match self.credentials(user)? {
            Ok(c) => c,
            Err(reply) => return Ok(Err(reply)),
        };
        let granted = match self
            .endpoint
            .refresh(&refresh_token, &client_id, &client_secret)
        {
            Ok(g) => g,
            Err(e) => {
                log::warn!(
                    "user {user}: refreshing the {} token failed: {e}",
                    self.auth_type
                );
                return Ok(Err(self.provider_error(&e, "refresh the token")));
            }
        };
        let scope = granted
            .scope
            .clone()
            .map(|s| json!(s))
            .or_else(|| data.get("scope").cloned())
            .unwrap_or_else(|| json!([]));
        data["access_token"] = json!(granted.access_token);
        // Google answers a refresh without a new refresh token: the stored one stays valid.
        if let Some(r) = granted.refresh_token {
            data["refresh_token"] = json!(r);
        }
        data["token_expiration"] = json!(expiration_of(granted.expires_in));
        data["scope"] = scope;
        self.host.external_update(user, &data)?;
        log::debug!("user {user}: {} token refreshed", self.auth_type);
        Ok(Ok(data))
    }

    /// The answer for a failed token-endpoint request: 503 when it cannot be reached (or did
    /// not answer within `token_request_timeout`), 502 when it answered something else than a
    /// token.
    fn provider_error(&self, e: &TokenError, doing: &str) -> Reply {
        match e {
            TokenError::Unreachable(_) => api_error(
                503,
                format!(
                    "The {} token endpoint cannot be reached to {doing}; try again later",
                    self.name
                ),
                "external-auth-provider-unavailable",
                json!({"type": self.auth_type}),
                self.auth_type,
            ),
            TokenError::Refused(why) => api_error(
                502,
                format!("The {} token endpoint did not {doing}: {why}", self.name),
                "external-auth-provider-error",
                json!({"type": self.auth_type}),
                self.auth_type,
            ),
        }
    }
}

/// One authorization waiting for its code, run in its own thread.
struct Flow {
    shared: Arc<Shared>,
    user_uuid: String,
    state: String,
    client_id: String,
    client_secret: String,
}

impl Flow {
    fn run(self, connected: std::sync::mpsc::SyncSender<()>) {
        let s = &self.shared;
        let user = &self.user_uuid;
        let started = Instant::now();
        let url = s.settings.ws_url(&self.state);
        let waiter = match sync::connect(&url, s.settings.websocket_connect_timeout, &s.tls) {
            Ok(w) => w,
            Err(e) => {
                log::error!("user {user}: {} authorization abandoned: {e}", s.auth_type);
                return;
            }
        };
        let _ = connected.try_send(());
        log::debug!(
            "user {user}: {} authorization waiting for its code",
            s.auth_type
        );
        let code = match waiter.wait_code(started + s.settings.authorization_timeout) {
            Ok(c) => c,
            Err(e) => {
                log::warn!("user {user}: {} authorization abandoned: {e}", s.auth_type);
                return;
            }
        };
        let granted = match s.endpoint.exchange_code(
            &code,
            &s.settings.redirect_uri,
            &self.client_id,
            &self.client_secret,
        ) {
            Ok(g) => g,
            Err(e) => {
                log::error!(
                    "user {user}: {} authorization failed: exchanging the code: {e}",
                    s.auth_type
                );
                return;
            }
        };
        let mut data = json!({
            "access_token": granted.access_token,
            "token_expiration": expiration_of(granted.expires_in),
            "scope": granted.scope.unwrap_or_else(|| s.settings.scope.clone()),
        });
        if let Some(r) = granted.refresh_token {
            data["refresh_token"] = json!(r);
        }
        if let Err(e) = self.store(&data) {
            log::error!(
                "user {user}: {} authorization failed: storing the token: {e}",
                s.auth_type
            );
            return;
        }
        if let Err(e) = s.host.publish_authorized(user) {
            log::error!(
                "user {user}: {} token stored, but the authorized event was not published: {e}",
                s.auth_type
            );
            return;
        }
        log::info!("user {user}: {} authorization completed", s.auth_type);
    }

    /// Creates the user's data, or replaces it when present (a second authorization).
    fn store(&self, data: &Value) -> Result<(), PluginError> {
        let host = &self.shared.host;
        match host.external_create(&self.user_uuid, data) {
            Err(e) if e.kind == ErrorKind::CONFLICT => host.external_update(&self.user_uuid, data),
            other => other,
        }
    }
}

/// The `scope` of a `POST` body, validated as the original's schema (a list of 1 to 512
/// character strings); `None` when absent or empty (the configured scope then applies).
fn requested_scope(body: &Value) -> Result<Option<Vec<String>>, Reply> {
    let invalid = |details: Value, message: &str| {
        api_error(
            400,
            message.to_string(),
            "invalid-data",
            json!({ "scope": details }),
            "users",
        )
    };
    let rule = |message: &str, id: &str, constraint: Value| json!({"message": message, "constraint_id": id, "constraint": constraint});
    let items = match body.get("scope") {
        None => return Ok(None),
        Some(Value::Null) => {
            let m = "Field may not be null.";
            return Err(invalid(rule(m, "not_null", json!("not_null")), m));
        }
        Some(Value::Array(items)) => items,
        Some(_) => {
            let m = "Not a valid list.";
            return Err(invalid(rule(m, "type", json!("list")), m));
        }
    };
    let mut scope = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Some(s) = item.as_str() else {
            let m = "Not a valid string.";
            return Err(invalid(
                json!({ i.to_string(): rule(m, "type", json!("string")) }),
                m,
            ));
        };
        let len = s.chars().count();
        if !(1..=SCOPE_MAX).contains(&len) {
            let m = format!("Length must be between 1 and {SCOPE_MAX}.");
            return Err(invalid(
                json!({ i.to_string(): rule(&m, "length", json!({"min": 1, "max": SCOPE_MAX})) }),
                &m,
            ));
        }
        scope.push(s.to_string());
    }
    Ok((!scope.is_empty()).then_some(scope))
}

/// The original's schema dump of stored data: `access_token`, `token_expiration` (an integer)
/// and `scope`; never the refresh token.
fn dump(data: &Value) -> Value {
    let mut out = Map::new();
    if let Some(v) = data.get("access_token") {
        out.insert("access_token".into(), v.clone());
    }
    if let Some(e) = data.get("token_expiration").and_then(Value::as_f64) {
        out.insert("token_expiration".into(), json!(e as i64));
    }
    if let Some(v) = data.get("scope") {
        out.insert("scope".into(), v.clone());
    }
    Value::Object(out)
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Epoch seconds at which a token of `expires_in` seconds expires.
fn expiration_of(expires_in: i64) -> i64 {
    now() as i64 + expires_in
}

/// An answer in the host's error shape (`message`, `error_id`, `details`, `timestamp`,
/// `resource`).
fn api_error(
    status: u16,
    message: String,
    error_id: &str,
    details: Value,
    resource: &str,
) -> Reply {
    Reply::json(
        status,
        json!({
            "message": message,
            "error_id": error_id,
            "details": details,
            "timestamp": now(),
            "resource": resource,
        }),
    )
}

/// A random state of [`STATE_LENGTH`] letters and digits.
fn random_state() -> Result<String, PluginError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(STATE_LENGTH);
    let mut buf = [0u8; 64];
    while out.len() < STATE_LENGTH {
        getrandom::getrandom(&mut buf)
            .map_err(|e| PluginError::failed(format!("no randomness for the state: {e}")))?;
        // 248 = 4 * 62: keeping only bytes below it keeps the letters uniform.
        for b in buf.iter().filter(|b| **b < 248) {
            if out.len() == STATE_LENGTH {
                break;
            }
            out.push(char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_random_letters_and_digits() {
        let a = random_state().unwrap();
        let b = random_state().unwrap();
        assert_eq!(a.len(), STATE_LENGTH);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn scope_is_validated_as_the_original_schema() {
        assert_eq!(requested_scope(&json!({})).unwrap(), None);
        assert_eq!(requested_scope(&json!({"scope": []})).unwrap(), None);
        assert_eq!(
            requested_scope(&json!({"scope": ["a", "b"], "other": 1})).unwrap(),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        for (body, message, path) in [
            (
                json!({"scope": null}),
                "Field may not be null.",
                "/details/scope/constraint_id",
            ),
            (
                json!({"scope": "a"}),
                "Not a valid list.",
                "/details/scope/constraint_id",
            ),
            (
                json!({"scope": ["a", 3]}),
                "Not a valid string.",
                "/details/scope/1/constraint_id",
            ),
            (
                json!({"scope": [""]}),
                "Length must be between 1 and 512.",
                "/details/scope/0/constraint_id",
            ),
        ] {
            let r = requested_scope(&body).unwrap_err();
            assert_eq!(r.status, 400);
            let b = r.body.unwrap();
            assert_eq!(b["message"], message, "{body}");
            assert_eq!(b["error_id"], "invalid-data");
            assert_eq!(b["resource"], "users");
            assert!(b.pointer(path).is_some(), "{b}");
        }
        assert!(requested_scope(&json!({"scope": ["x".repeat(513)]})).is_err());
        assert!(requested_scope(&json!({"scope": ["é".repeat(512)]})).is_ok());
    }

    #[test]
    fn the_dump_shows_no_refresh_token_and_an_integer_expiration() {
        let d = dump(
            &json!({"access_token": "a", "refresh_token": "r", "token_expiration": 1700000000.0, "scope": ["s"]}),
        );
        assert_eq!(
            d,
            json!({"access_token": "a", "token_expiration": 1700000000, "scope": ["s"]})
        );
    }
}
