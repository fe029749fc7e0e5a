//! The token resources (spec core §1): create, read, check, delete, check scopes.

use std::collections::BTreeMap;

use abi_stable::std_types::{RResult, RStr, RString};
use actix_web::http::{Method, StatusCode};
use actix_web::web;
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Local, TimeZone, Utc};
use serde_json::{json, Map, Value};
use wazo_auth_core::cache::CachedToken;
use wazo_auth_core::tokens::{self, NewToken, Token};

use super::errors::{marshmallow_repr, route_not_found, storage_unavailable, token_error};
use super::request::{
    basic_auth, client_addr, json_object_body, path_uuid, query_param, read_body, BasicAuth,
};
use super::{token_request, State};
use std::sync::Arc;

use crate::plugins::{CallError, LoadedBackend};

const AUTH_FAILED: &str = "Authentication Failed";
const NO_SUCH_TOKEN: &str = "No such token";

fn auth_failed() -> HttpResponse {
    token_error(StatusCode::UNAUTHORIZED, AUTH_FAILED)
}

fn no_such_token() -> HttpResponse {
    token_error(StatusCode::NOT_FOUND, NO_SUCH_TOKEN)
}

/// `YYYY-MM-DDTHH:MM:SS` with `.ffffff` when `micros` is given: written directly (this is on
/// every login and the first check of every token; strftime-style formatting cost more than the
/// rest of the rendering).
fn write_iso(out: &mut String, dt: &chrono::NaiveDateTime, micros: Option<u32>) {
    use chrono::{Datelike, Timelike};
    use std::fmt::Write;
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    );
    if let Some(us) = micros {
        let _ = write!(out, ".{us:06}");
    }
}

/// Python's `datetime.isoformat()` of a naive local datetime: fraction only when non-zero.
fn local_iso(t: f64) -> String {
    let dt: DateTime<Local> = match Local.timestamp_micros((t * 1e6).round() as i64) {
        chrono::LocalResult::Single(d) => d,
        chrono::LocalResult::Ambiguous(d, _) => d,
        chrono::LocalResult::None => return String::new(),
    };
    let mut out = String::with_capacity(26);
    let us = dt.timestamp_subsec_micros() % 1_000_000;
    write_iso(&mut out, &dt.naive_local(), (us != 0).then_some(us));
    out
}

/// The UTC time with microseconds, always.
fn utc_iso(t: f64) -> String {
    match Utc.timestamp_micros((t * 1e6).round() as i64) {
        chrono::LocalResult::Single(d) => {
            let mut out = String::with_capacity(26);
            write_iso(
                &mut out,
                &d.naive_utc(),
                Some(d.timestamp_subsec_micros() % 1_000_000),
            );
            out
        }
        _ => String::new(),
    }
}

/// The token representation of spec §1.4, fields in the order the original's JSON has them
/// (sorted), borrowed from the token.
#[derive(serde::Serialize)]
struct TokenView<'a> {
    acl: &'a [String],
    auth_id: &'a str,
    expires_at: String,
    issued_at: String,
    metadata: &'a Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    remote_addr: &'a str,
    session_uuid: &'a str,
    token: uuid::fmt::Hyphenated,
    user_agent: &'a str,
    utc_expires_at: String,
    utc_issued_at: String,
    xivo_user_uuid: Option<&'a str>,
    xivo_uuid: Option<&'a str>,
}

#[derive(serde::Serialize)]
struct Data<T> {
    data: T,
}

/// `{"data": <token>}`, the body of a login and of a token check, serialized directly.
pub fn token_body(t: &Token, refresh_token: Option<&str>) -> String {
    let view = TokenView {
        acl: &t.acl,
        auth_id: &t.auth_id,
        expires_at: local_iso(t.expire_t),
        issued_at: local_iso(t.issued_t),
        metadata: &t.metadata,
        refresh_token,
        remote_addr: &t.remote_addr,
        session_uuid: &t.session_uuid,
        token: t.token.hyphenated(),
        user_agent: &t.user_agent,
        utc_expires_at: utc_iso(t.expire_t),
        utc_issued_at: utc_iso(t.issued_t),
        xivo_user_uuid: t.pbx_user_uuid.as_deref(),
        xivo_uuid: t.xivo_uuid.as_deref(),
    };
    serde_json::to_string(&Data { data: view }).unwrap_or_default()
}

/// A plugin call that produced no answer: 401 (the login failed), except when the plugin says
/// the service it depends on is unavailable (e.g. the database behind `wazo_user`): 503.
fn plugin_failure(backend: &LoadedBackend, method: &str, e: CallError) -> HttpResponse {
    log::error!(
        "backend {} ({}): {method} failed: {e}",
        backend.name,
        backend.file.display()
    );
    match e {
        CallError::Plugin(err) if err.kind == wazo_auth_plugin_api::ErrorKind::UNAVAILABLE => {
            storage_unavailable("the backend's service is unavailable", err.message.as_str())
        }
        _ => auth_failed(),
    }
}

fn parse_json_object(text: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// How a login is authenticated.
enum Credentials {
    /// Basic credentials, checked by the backend's `verify_password`.
    Password { login: String, password: String },
    /// A refresh token: no password; its stored login and persistent metadata are used.
    Refresh(wazo_auth_core::refresh_tokens::RefreshToken),
}

/// The plugin calls of one login, run in order on the blocking pool.
struct LoginSteps {
    login: String,
    /// `None` for a refresh-token login (no password check).
    password: Option<String>,
    args: Map<String, Value>,
    default_acl: Arc<Vec<String>>,
    offline: bool,
}

/// What the plugin calls produced.
struct LoginDone {
    args: Map<String, Value>,
    metadata: Map<String, Value>,
    acl: Vec<String>,
    persistent: Option<Map<String, Value>>,
}

enum LoginStepError {
    /// verify_password said no.
    Rejected,
    /// A call failed (or returned something unusable).
    Failed(&'static str, wazo_auth_plugin_api::PluginError),
}

fn json_object_of(method: &'static str, text: &str) -> Result<Map<String, Value>, LoginStepError> {
    parse_json_object(text).ok_or_else(|| {
        LoginStepError::Failed(
            method,
            wazo_auth_plugin_api::PluginError::failed(
                "returned something that is not a JSON object",
            ),
        )
    })
}

impl LoginSteps {
    fn run(
        mut self,
        backend: &wazo_auth_plugin_api::ffi::BackendBox,
    ) -> Result<LoginDone, LoginStepError> {
        let login = RStr::from_str(&self.login);
        let failed = |method| move |e| LoginStepError::Failed(method, e);
        let mut args = serde_json::to_string(&self.args).unwrap_or_default();
        if let Some(password) = &self.password {
            let outcome = backend
                .verify_password(login, RStr::from_str(password), RStr::from_str(&args))
                .into_result()
                .map_err(failed("verify_password"))?;
            if !outcome.accepted {
                return Err(LoginStepError::Rejected);
            }
            // Most backends hand the arguments back unchanged: no need to parse them again.
            if outcome.args_json.as_str() != args {
                self.args = json_object_of("verify_password", outcome.args_json.as_str())?;
                args = outcome.args_json.into_string();
            }
        }
        let metadata = backend
            .get_metadata(login, RStr::from_str(&args))
            .into_result()
            .map_err(failed("get_metadata"))?;
        let metadata = json_object_of("get_metadata", metadata.as_str())?;
        self.args.insert(
            "acl".into(),
            Value::Array(self.default_acl.iter().cloned().map(Value::from).collect()),
        );
        let args = serde_json::to_string(&self.args).unwrap_or_default();
        let acl = backend
            .get_acl(login, RStr::from_str(&args))
            .into_result()
            .map_err(failed("get_acl"))?
            .into_iter()
            .map(RString::into_string)
            .collect();
        let persistent = if self.offline {
            let p = backend
                .get_persistent_metadata(login, RStr::from_str(&args))
                .into_result()
                .map_err(failed("get_persistent_metadata"))?;
            Some(json_object_of("get_persistent_metadata", p.as_str())?)
        } else {
            None
        };
        Ok(LoginDone {
            args: self.args,
            metadata,
            acl,
            persistent,
        })
    }
}

/// `POST /0.1/token`.
async fn create(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let body = match read_body(payload, state.settings.max_body_bytes).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let body = match json_object_body(&body) {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let request = match token_request::parse(&body) {
        Ok(r) => r,
        Err(errors) => return token_error(StatusCode::BAD_REQUEST, marshmallow_repr(&errors)),
    };
    let mobile = req
        .headers()
        .get("Wazo-Session-Type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("mobile"));
    let user_agent = req
        .headers()
        .get("User-Agent")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let remote_addr = client_addr(&req, state.settings.num_proxies);

    // Brute-force throttling: refuse at once while the login or the client address is blocked.
    let basic = basic_auth(req.headers().get("Authorization").map(|v| v.as_bytes()));
    let throttle_login = match &basic {
        BasicAuth::Credentials { login, .. } if request.refresh_token.is_none() => {
            Some(login.clone())
        }
        _ => None,
    };
    let attempt = match super::throttle::Attempt::start(
        &state,
        &req,
        &remote_addr,
        throttle_login.as_deref(),
        "POST /token",
    )
    .await
    {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let failed = |state: State, attempt: super::throttle::Attempt| async move {
        attempt.failed(&state).await;
        auth_failed()
    };

    // Choose how to authenticate: a refresh token first, then Basic credentials.
    let credentials = if let (Some(value), Some(client_id)) =
        (&request.refresh_token, &request.client_id)
    {
        match state.storage.find_refresh_token(value, client_id).await {
            Ok(Some(row)) => Credentials::Refresh(row),
            Ok(None) => {
                log::info!("POST /token: unknown or expired refresh token");
                return failed(state.clone(), attempt).await;
            }
            Err(e) => return storage_unavailable("refresh token look-up failed", e),
        }
    } else if request.saml_session_id.is_some() {
        // No SAML identity provider in this version: the session look-up misses (401).
        return auth_failed();
    } else {
        match basic {
            BasicAuth::Credentials { login, password } => Credentials::Password { login, password },
            BasicAuth::Missing => return auth_failed(),
            BasicAuth::Invalid => {
                log::info!("POST /token: invalid base64 in Authorization header");
                return auth_failed();
            }
        }
    };

    // The backend: for a refresh token the one that issued it; else the one named in the body;
    // in both cases the default one when that one is not loaded.
    let wanted = match &credentials {
        Credentials::Refresh(row) => row.backend.clone(),
        Credentials::Password { .. } => request.backend.clone(),
    };
    let named = wanted
        .as_deref()
        .and_then(|name| state.plugins.backend(name));
    let Some(backend) = named.or_else(|| state.plugins.backend(&state.settings.default_backend))
    else {
        log::info!(
            "POST /token: no usable backend (asked {:?}, default {:?})",
            wanted,
            state.settings.default_backend
        );
        return auth_failed();
    };
    let login = match &credentials {
        Credentials::Password { login, .. } => login.clone(),
        Credentials::Refresh(row) => row.login.clone().unwrap_or_default(),
    };

    let mut args = Map::new();
    args.insert("login".into(), Value::from(login.clone()));
    args.insert("mobile".into(), Value::from(mobile));
    args.insert("user_agent".into(), Value::from(user_agent.clone()));
    args.insert("remote_addr".into(), Value::from(remote_addr.clone()));
    args.insert(
        "backend".into(),
        Value::from(wanted.clone().unwrap_or_else(|| backend.name.clone())),
    );
    args.insert(
        "access_type".into(),
        Value::from(if request.offline { "offline" } else { "online" }),
    );
    for (k, v) in [
        ("client_id", &request.client_id),
        ("tenant_id", &request.tenant_id),
        ("domain_name", &request.domain_name),
    ] {
        if let Some(v) = v {
            args.insert(k.into(), Value::from(v.clone()));
        }
    }
    if let Some(e) = request.expiration {
        args.insert("expiration".into(), Value::from(e));
    }
    if let Some(x) = &state.settings.xivo_uuid {
        args.insert("xivo_uuid".into(), Value::from(x.clone()));
    }
    let timeout = state.settings.plugin_call_timeout;

    // The default user policy's ACL, handed to get_acl in `args.acl` (the deprecated
    // `backend_policies[backend]` wins when configured).
    let backend_arg = args
        .get("backend")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let default_policy = state
        .settings
        .backend_policies
        .get(&backend_arg)
        .or(state.settings.default_user_policy.as_ref());
    let default_acl = match default_policy {
        Some(name) => match state.tokens.policy_acl(&state.storage, name).await {
            Ok(acl) => acl,
            Err(e) => return storage_unavailable("reading the default user policy failed", e),
        },
        None => Arc::default(),
    };

    // Every plugin call of the login, in order, in one trip to the blocking pool:
    // verify_password (not for refresh-token logins), get_metadata, get_acl, and
    // get_persistent_metadata for offline logins.
    let (password, persistent_from_refresh) = match credentials {
        Credentials::Password { password, .. } => (Some(password), None),
        Credentials::Refresh(row) => {
            args.insert(
                "persistent_metadata".into(),
                Value::Object(row.metadata.clone()),
            );
            (None, Some(row))
        }
    };
    let steps = LoginSteps {
        login: login.clone(),
        password,
        args,
        default_acl,
        offline: request.offline,
    };
    let outcome = backend
        .call(timeout, move |b| RResult::ROk(steps.run(b)))
        .await;
    let done = match outcome {
        Ok(Ok(done)) => done,
        Ok(Err(LoginStepError::Rejected)) => {
            log::info!(
                "POST /token: authentication failed for a login on backend {}",
                backend.name
            );
            return failed(state.clone(), attempt).await;
        }
        Ok(Err(LoginStepError::Failed(method, e))) => {
            return plugin_failure(&backend, method, CallError::Plugin(e))
        }
        Err(e) => return plugin_failure(&backend, "a login call", e),
    };
    let LoginDone {
        args,
        metadata,
        acl,
        persistent,
    } = done;
    let Some(auth_id) = metadata
        .get("auth_id")
        .and_then(Value::as_str)
        .map(String::from)
    else {
        return plugin_failure(
            &backend,
            "get_metadata",
            CallError::Plugin(wazo_auth_plugin_api::PluginError::failed(
                "returned metadata without a string auth_id",
            )),
        );
    };
    if let Some(row) = &persistent_from_refresh {
        // A refresh token belongs to one user: refuse if the backend now maps its login to
        // someone else.
        if metadata.get("uuid").and_then(Value::as_str) != Some(row.user_uuid.as_str()) {
            log::warn!("POST /token: refresh token login resolved to another user; refused");
            return auth_failed();
        }
    }

    // Token metadata: persistent metadata (refresh token or offline login) under the backend's.
    let mut token_metadata = persistent_from_refresh
        .as_ref()
        .map(|r| r.metadata.clone())
        .unwrap_or_default();
    let mut offline = None;
    if request.offline {
        let Some(user_uuid) = metadata
            .get("uuid")
            .and_then(Value::as_str)
            .map(String::from)
        else {
            return token_error(
                StatusCode::BAD_REQUEST,
                "offline access needs a backend that identifies users (metadata uuid)",
            );
        };
        match state.storage.user_tenant(&user_uuid).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                return token_error(
                    StatusCode::BAD_REQUEST,
                    "offline access is only available to wazo-auth users",
                )
            }
            Err(e) => return storage_unavailable("user look-up failed", e),
        }
        let persistent = persistent.unwrap_or_default();
        token_metadata.extend(persistent.clone());
        let real_login = args
            .get("real_login")
            .and_then(Value::as_str)
            .map(String::from)
            .unwrap_or_else(|| login.clone());
        offline = Some(wazo_auth_core::refresh_tokens::OfflineRequest {
            client_id: request.client_id.clone().unwrap_or_default(),
            user_uuid,
            backend: backend_arg.clone(),
            login: real_login,
            user_agent: user_agent.clone(),
            remote_addr: remote_addr.clone(),
            mobile,
            metadata: persistent,
            lifetime_seconds: state.settings.refresh_token_lifetime,
        });
    }
    token_metadata.extend(metadata.clone());

    let str_field = |k: &str| metadata.get(k).and_then(Value::as_str).map(String::from);
    // Session limit for user and external_api logins whose auth_id is a user uuid.
    let purpose = metadata
        .get("purpose")
        .and_then(Value::as_str)
        .unwrap_or("");
    let session_limit = (matches!(purpose, "user" | "external_api")
        && uuid::Uuid::parse_str(&auth_id)
            .is_ok_and(|u| u.get_version_num() == 4 && u.hyphenated().to_string() == auth_id))
    .then_some(state.settings.max_user_concurrent_sessions);
    let issued_t = tokens::now();
    let lifetime = request
        .expiration
        .unwrap_or(state.settings.default_token_lifetime);
    let auth_id_for_error = auth_id.clone();
    let new = NewToken {
        auth_id,
        pbx_user_uuid: str_field("pbx_user_uuid"),
        xivo_uuid: str_field("xivo_uuid").or_else(|| state.settings.xivo_uuid.clone()),
        issued_t,
        expire_t: issued_t + lifetime as f64,
        tenant_uuid: str_field("tenant_uuid"),
        metadata: token_metadata,
        user_agent,
        remote_addr,
        acl,
        mobile,
        session_limit,
        offline,
        refresh_token_uuid: persistent_from_refresh.map(|r| r.uuid),
    };
    match state.storage.create_token(new, &state.keyring).await {
        Ok(created) => {
            attempt.succeeded(&state).await;
            let token = &created.token;
            log::info!(
                "token {} created for auth_id {} (backend {}, session {})",
                tokens::redact(&token.token.hyphenated().to_string()),
                token.auth_id,
                backend.name,
                token.session_uuid
            );
            HttpResponse::Ok()
                .insert_header((
                    "Wazo-Sessions-Revoked",
                    created.sessions_revoked.to_string(),
                ))
                .content_type(actix_web::http::header::ContentType::json())
                .body(token_body(token, created.refresh_token.as_deref()))
        }
        Err(wazo_auth_core::Error::SessionLimit) => token_error(
            StatusCode::TOO_MANY_REQUESTS,
            format!("User {auth_id_for_error} has exceeded the maximum number of active sessions"),
        ),
        Err(e) => storage_unavailable("POST /token: storing the token failed", e),
    }
}

async fn load_token(state: &State, segment: &str) -> Result<Arc<CachedToken>, HttpResponse> {
    let Some(id) = path_uuid(segment) else {
        return Err(no_such_token());
    };
    match state.tokens.get(&state.storage, &id, tokens::now()).await {
        Ok(Some(t)) => Ok(t),
        Ok(None) => Err(no_such_token()),
        Err(e) => Err(storage_unavailable("token look-up failed", e)),
    }
}

/// ASCII transliteration as Python's `unidecode` (for the 403 message).
fn ascii(s: &str) -> String {
    deunicode::deunicode(s)
}

/// The tenant rule of spec §1.5 step 3, for tokens whose auth_id is not `wazo-auth`: the tenant
/// must exist and be the token's tenant or one of its descendants.
async fn tenant_allowed(state: &State, token: &Token, tenant: &str) -> Result<bool, HttpResponse> {
    if token.auth_id == "wazo-auth" {
        return Ok(true);
    }
    let token_tenant = token
        .metadata
        .get("tenant_uuid")
        .and_then(Value::as_str)
        .map(String::from);
    let token_tenant = match token_tenant {
        Some(t) => t,
        None => match state.storage.top_tenant_uuid().await {
            Ok(t) => t,
            Err(e) => return Err(storage_unavailable("tenant look-up failed", e)),
        },
    };
    state
        .storage
        .is_subtenant(tenant, &token_tenant)
        .await
        .map_err(|e| storage_unavailable("tenant look-up failed", e))
}

async fn check_token(
    state: &State,
    req: &HttpRequest,
    segment: &str,
) -> Result<Arc<CachedToken>, HttpResponse> {
    let entry = load_token(state, segment).await?;
    let token = &entry.token;
    if let Some(scope) = query_param(req, "scope") {
        if !entry.acl.matches(&scope) {
            return Err(token_error(
                StatusCode::FORBIDDEN,
                format!("Unauthorized for {}", ascii(&scope)),
            ));
        }
    }
    // An empty tenant is no tenant, as in the original.
    if let Some(tenant) = query_param(req, "tenant").filter(|t| !t.is_empty()) {
        if !tenant_allowed(state, token, &tenant).await? {
            return Err(token_error(
                StatusCode::FORBIDDEN,
                format!("Unauthorized for tenant {}", ascii(&tenant)),
            ));
        }
    }
    Ok(entry)
}

/// `GET /0.1/token/{token}`.
async fn get(state: State, req: HttpRequest, segment: &str) -> HttpResponse {
    match check_token(&state, &req, segment).await {
        Ok(entry) => {
            let body = entry
                .rendered
                .get_or_init(|| token_body(&entry.token, None).into());
            HttpResponse::Ok()
                .content_type(actix_web::http::header::ContentType::json())
                .body(body.clone())
        }
        Err(resp) => resp,
    }
}

/// `HEAD /0.1/token/{token}`.
async fn head(state: State, req: HttpRequest, segment: &str) -> HttpResponse {
    match check_token(&state, &req, segment).await {
        Ok(_) => HttpResponse::NoContent().finish(),
        // A HEAD answer has no body: send the status alone (with no Content-Length of a body
        // that will not come, which some HTTP clients wait for).
        Err(resp) => HttpResponse::build(resp.status()).finish(),
    }
}

/// `DELETE /0.1/token/{token}`: always 200 for a well-formed id, known or not.
async fn delete(state: State, segment: &str) -> HttpResponse {
    let Some(id) = path_uuid(segment) else {
        return no_such_token();
    };
    match state.storage.delete_token(&id).await {
        Ok(deleted) => {
            state.tokens.forget(&id);
            if deleted {
                log::info!("token {} deleted", tokens::redact(segment));
            }
            HttpResponse::Ok().json(json!({ "data": { "message": "success" } }))
        }
        Err(e) => storage_unavailable("DELETE /token failed", e),
    }
}

/// `POST /0.1/token/{token}/scopes/check`.
async fn check_scopes(state: State, payload: web::Payload, segment: &str) -> HttpResponse {
    let body = match read_body(payload, state.settings.max_body_bytes).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let body = match json_object_body(&body) {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let scopes: Vec<String> = match body.get("scopes") {
        None => {
            return token_error(
                StatusCode::BAD_REQUEST,
                marshmallow_repr(&[("scopes".into(), "Missing data for required field.".into())]),
            )
        }
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => out.push(s.clone()),
                    _ => {
                        return token_error(
                            StatusCode::BAD_REQUEST,
                            marshmallow_repr(&[("scopes".into(), "Not a valid string.".into())]),
                        )
                    }
                }
            }
            out
        }
        Some(_) => {
            return token_error(
                StatusCode::BAD_REQUEST,
                marshmallow_repr(&[("scopes".into(), "Not a valid list.".into())]),
            )
        }
    };
    let tenant = match body.get("tenant_uuid") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return token_error(
                StatusCode::BAD_REQUEST,
                marshmallow_repr(&[("tenant_uuid".into(), "Not a valid string.".into())]),
            )
        }
    };
    let token = match load_token(&state, segment).await {
        Ok(t) => t,
        Err(resp) => return resp,
    };
    if let Some(tenant) = tenant {
        match tenant_allowed(&state, &token.token, &tenant).await {
            Ok(true) => {}
            Ok(false) => {
                return token_error(
                    StatusCode::FORBIDDEN,
                    format!("Unauthorized for tenant {}", ascii(&tenant)),
                )
            }
            Err(resp) => return resp,
        }
    }
    let acl = &token.acl;
    let result: BTreeMap<String, bool> = scopes
        .into_iter()
        .map(|s| {
            let granted = acl.matches(&s);
            (s, granted)
        })
        .collect();
    HttpResponse::Ok().json(json!({ "scopes": result }))
}

/// Everything under `/0.1/token`, routed by hand: `POST /token`, `GET|HEAD|DELETE /token/{token}`
/// and `POST /token/{token}/scopes/check`. Every request to every Wazo service is a token check,
/// and actix matches a `{token}` resource with a regular expression that cost more than the
/// rest of the check (see docs/benchmarks.md); the segment split below is a few comparisons.
/// Paths and methods answer exactly as the equivalent resources would (404 for an unknown path,
/// 405 for a known path with another method).
pub async fn dispatch(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    // The part after `/0.1/token`, as actix's router would have matched it (same decoding).
    let rest = req.match_info().unprocessed();
    let method = req.method();
    if rest.is_empty() {
        return if method == Method::POST {
            create(state, req, payload).await
        } else {
            super::method_not_allowed().await
        };
    }
    let Some(rest) = rest.strip_prefix('/') else {
        return route_not_found();
    };
    let (segment, tail) = match rest.split_once('/') {
        Some((segment, tail)) => (segment, Some(tail)),
        None => (rest, None),
    };
    if segment.is_empty() {
        return route_not_found();
    }
    // Owned: the handlers keep the request.
    let segment = segment.to_owned();
    match tail {
        None => match *method {
            Method::GET => get(state, req, &segment).await,
            Method::HEAD => head(state, req, &segment).await,
            Method::DELETE => delete(state, &segment).await,
            _ => super::method_not_allowed().await,
        },
        Some("scopes/check") if method == Method::POST => {
            check_scopes(state, payload, &segment).await
        }
        Some("scopes/check") => super::method_not_allowed().await,
        Some(_) => route_not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(issued_t: f64) -> Token {
        let mut metadata = Map::new();
        metadata.insert("uuid".into(), json!("u-1"));
        metadata.insert("nested".into(), json!({"a": [1, "\"q\""]}));
        Token {
            token: uuid::Uuid::parse_str("7f6a2b8e-3c1d-4e5f-9a0b-1c2d3e4f5a6b").unwrap(),
            auth_id: "alice".into(),
            pbx_user_uuid: None,
            xivo_uuid: Some("x-1".into()),
            issued_t,
            expire_t: issued_t + 3600.0,
            metadata,
            session_uuid: "s-1".into(),
            user_agent: "agent \"007\"".into(),
            remote_addr: "10.0.0.1".into(),
            acl: vec!["confd.#".into(), "auth.users.me.read".into()],
            refresh_token_uuid: None,
        }
    }

    #[test]
    fn token_body_has_every_field_of_the_original() {
        // 2021-03-04T05:06:07.000089 UTC.
        let t = sample(1_614_834_367.000_089);
        let v: Value = serde_json::from_str(&token_body(&t, None)).unwrap();
        let local = |secs: f64| {
            let dt = Local.timestamp_micros((secs * 1e6).round() as i64).unwrap();
            dt.naive_local().format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
        };
        assert_eq!(
            v,
            json!({"data": {
                "token": "7f6a2b8e-3c1d-4e5f-9a0b-1c2d3e4f5a6b",
                "auth_id": "alice",
                "xivo_user_uuid": null,
                "xivo_uuid": "x-1",
                "issued_at": local(1_614_834_367.000_089),
                "expires_at": local(1_614_837_967.000_089),
                "utc_issued_at": "2021-03-04T05:06:07.000089",
                "utc_expires_at": "2021-03-04T06:06:07.000089",
                "acl": ["confd.#", "auth.users.me.read"],
                "metadata": {"uuid": "u-1", "nested": {"a": [1, "\"q\""]}},
                "session_uuid": "s-1",
                "remote_addr": "10.0.0.1",
                "user_agent": "agent \"007\"",
            }})
        );
        let v: Value = serde_json::from_str(&token_body(&t, Some("r-1"))).unwrap();
        assert_eq!(v["data"]["refresh_token"], "r-1");
    }

    #[test]
    fn whole_seconds_have_no_fraction_in_local_time_but_do_in_utc() {
        let t = sample(1_614_834_367.0);
        let v: Value = serde_json::from_str(&token_body(&t, None)).unwrap();
        let issued = v["data"]["issued_at"].as_str().unwrap();
        assert_eq!(issued.len(), "2021-03-04T05:06:07".len(), "{issued}");
        assert!(!issued.contains('.'), "{issued}");
        assert_eq!(v["data"]["utc_issued_at"], "2021-03-04T05:06:07.000000");
    }
}
