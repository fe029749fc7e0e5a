//! The token resources (spec core §1): create, read, check, delete, check scopes.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::http::{Method, StatusCode};
use actix_web::web;
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Local, TimeZone, Utc};
use serde_json::{json, Value};
use wazo_auth_core::cache::CachedToken;
use wazo_auth_core::ids;
use wazo_auth_core::tokens::{self, Token};

use super::error::{marshmallow_repr, ApiError};
use super::extract::read_limited;
use super::request::{basic_auth, client_addr, query_param, BasicAuth};
use super::throttle::Attempt;
use super::{token_request, validate, State};
use crate::login::{self, LoginError, LoginRequest};
use crate::plugins::CallError;
use crate::telemetry::metrics::{self, LoginOutcome};

const AUTH_FAILED: &str = "Authentication Failed";
const NO_SUCH_TOKEN: &str = "No such token";

fn auth_failed() -> ApiError {
    ApiError::token(StatusCode::UNAUTHORIZED, AUTH_FAILED)
}

fn no_such_token() -> ApiError {
    ApiError::token(StatusCode::NOT_FOUND, NO_SUCH_TOKEN)
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
    metadata: &'a tokens::Metadata,
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
    token_body_with_acl(t, &t.acl, refresh_token)
}

/// What [`token_body`] writes before the ACL (the first field).
const BODY_BEFORE_ACL: &str = r#"{"data":{"acl":"#;

/// [`token_body`] without its beginning up to the end of the ACL ([`BODY_BEFORE_ACL`] and the
/// ACL's JSON): what a cached token keeps, the ACL's JSON being shared by the tokens of the same
/// ACL ([`wazo_auth_core::acl::AclProgram::acl_json`]). `None` if the body does not start as
/// expected.
fn token_body_after_acl(t: &Token) -> Option<String> {
    let body = token_body_with_acl(t, &[], None);
    let before = format!("{BODY_BEFORE_ACL}[]");
    body.strip_prefix(before.as_str()).map(str::to_string)
}

/// The body of a cached token: [`BODY_BEFORE_ACL`], the ACL's JSON (shared) and the rest (kept
/// with the token), the same bytes as [`token_body`].
fn cached_token_body(entry: &CachedToken) -> web::Bytes {
    let after = entry.rendered.get_or_init(|| {
        token_body_after_acl(&entry.token)
            .unwrap_or_default()
            .into()
    });
    if after.is_empty() {
        return token_body(&entry.token, None).into();
    }
    let acl = entry.acl.program().acl_json();
    let mut body = web::BytesMut::with_capacity(BODY_BEFORE_ACL.len() + acl.len() + after.len());
    body.extend_from_slice(BODY_BEFORE_ACL.as_bytes());
    body.extend_from_slice(acl);
    body.extend_from_slice(after);
    body.freeze()
}

fn token_body_with_acl(t: &Token, acl: &[String], refresh_token: Option<&str>) -> String {
    let view = TokenView {
        acl,
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

/// `POST /0.1/token`: body (400) → throttle (429) → the login (401, 400, 429, 503) → the token,
/// with `Wazo-Sessions-Revoked` (read by the revocation barrier).
async fn create(
    state: State,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let raw = read_limited(payload, state.settings.max_body_bytes).await?;
    let body = validate::token_object(&raw)?;
    let body = token_request::parse(&body)
        .map_err(|errors| ApiError::token(StatusCode::BAD_REQUEST, marshmallow_repr(&errors)))?;
    let headers = req.headers();
    let basic = basic_auth(headers.get("Authorization").map(|v| v.as_bytes()));
    let request = LoginRequest {
        mobile: headers
            .get("Wazo-Session-Type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("mobile")),
        user_agent: headers
            .get("User-Agent")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default(),
        remote_addr: client_addr(&req, &state.settings.proxies),
        basic,
        body,
    };
    // Brute-force throttling, keyed by the login of Basic credentials (not for refresh tokens)
    // and the client address. A domain login (LDAP: `domain_name` or `tenant_id`) is keyed by
    // its login and its domain: the same login in another domain, or natively, is another user.
    let throttled_login = match &request.basic {
        BasicAuth::Credentials { login, .. } if request.body.refresh_token.is_none() => {
            Some(match (&request.body.domain_name, &request.body.tenant_id) {
                (Some(d), _) => format!("{login}\u{0}domain_name={}", d.to_lowercase()),
                (None, Some(t)) => format!("{login}\u{0}tenant_id={t}"),
                (None, None) => login.clone(),
            })
        }
        _ => None,
    };
    let attempt = Attempt::start(
        &state,
        &req,
        &request.remote_addr,
        throttled_login.as_deref(),
        "POST /token",
    )
    .await
    .inspect_err(|e| {
        // Refused before the login ran (`login::login` counts the others).
        let outcome = if e.status() == StatusCode::TOO_MANY_REQUESTS {
            LoginOutcome::Throttled
        } else {
            LoginOutcome::Error
        };
        metrics::login(&login::asked_backend(&state, &request.body), outcome);
    })?;
    match login::login(&state, request).await {
        Ok(created) => {
            attempt.succeeded(&state).await;
            Ok(HttpResponse::Ok()
                .insert_header((
                    "Wazo-Sessions-Revoked",
                    created.sessions_revoked.to_string(),
                ))
                .content_type(actix_web::http::header::ContentType::json())
                .body(token_body(&created.token, created.refresh_token.as_deref())))
        }
        Err(e) => {
            if e.is_failed_guess() {
                attempt.failed(&state).await;
            }
            Err(login_error(e))
        }
    }
}

/// The answer to a login that produced no token.
fn login_error(e: LoginError) -> ApiError {
    match e {
        LoginError::Backend(CallError::Plugin(e))
            if e.kind == wazo_auth_plugin_api::ErrorKind::UNAVAILABLE =>
        {
            ApiError::unavailable("the backend's service is unavailable", e.message.as_str())
        }
        LoginError::Rejected | LoginError::Refused | LoginError::Backend(_) => auth_failed(),
        LoginError::OfflineUnavailable(why) => ApiError::token(StatusCode::BAD_REQUEST, why),
        LoginError::SessionLimit { auth_id } => ApiError::token(
            StatusCode::TOO_MANY_REQUESTS,
            format!("User {auth_id} has exceeded the maximum number of active sessions"),
        ),
        LoginError::Storage(e) => ApiError::unavailable("POST /token: the login failed", e),
    }
}

async fn load_token(state: &State, segment: &str) -> Result<Arc<CachedToken>, ApiError> {
    let id = ids::parse_canonical(segment).ok_or_else(no_such_token)?;
    state
        .tokens
        .get(&state.storage, &id, tokens::now())
        .await?
        .ok_or_else(no_such_token)
}

/// ASCII transliteration as Python's `unidecode` (for the 403 message).
fn ascii(s: &str) -> String {
    deunicode::deunicode(s)
}

/// The tenant rule of spec §1.5 step 3, for tokens whose auth_id is not `wazo-auth`: the tenant
/// must exist and be the token's tenant or one of its descendants. A token whose metadata has no
/// `tenant_uuid` at all belongs to no tenant and passes no tenant check; `null` stands for the
/// top tenant (docs/plugins.md, "tenant_uuid").
async fn tenant_allowed(state: &State, token: &Token, tenant: &str) -> Result<bool, ApiError> {
    if token.auth_id == "wazo-auth" {
        return Ok(true);
    }
    let token_tenant = match token.metadata.get("tenant_uuid") {
        Some(Value::String(t)) => t.to_string(),
        Some(Value::Null) => state.storage.top_tenant_uuid().await?,
        None | Some(_) => return Ok(false),
    };
    Ok(state.storage.is_subtenant(tenant, &token_tenant).await?)
}

fn tenant_refused(tenant: &str) -> ApiError {
    ApiError::token(
        StatusCode::FORBIDDEN,
        format!("Unauthorized for tenant {}", ascii(tenant)),
    )
}

async fn check_token(
    state: &State,
    req: &HttpRequest,
    segment: &str,
) -> Result<Arc<CachedToken>, ApiError> {
    let entry = load_token(state, segment).await?;
    if let Some(scope) = query_param(req, "scope") {
        if !entry.acl.matches(&scope) {
            return Err(ApiError::token(
                StatusCode::FORBIDDEN,
                format!("Unauthorized for {}", ascii(&scope)),
            ));
        }
    }
    // An empty tenant is no tenant, as in the original.
    if let Some(tenant) = query_param(req, "tenant").filter(|t| !t.is_empty()) {
        if !tenant_allowed(state, &entry.token, &tenant).await? {
            return Err(tenant_refused(&tenant));
        }
    }
    Ok(entry)
}

/// `GET /0.1/token/{token}`.
async fn get(state: State, req: HttpRequest, segment: &str) -> Result<HttpResponse, ApiError> {
    let entry = check_token(&state, &req, segment).await?;
    Ok(HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::json())
        .body(cached_token_body(&entry)))
}

/// `HEAD /0.1/token/{token}`.
async fn head(state: State, req: HttpRequest, segment: &str) -> Result<HttpResponse, ApiError> {
    match check_token(&state, &req, segment).await {
        Ok(_) => Ok(HttpResponse::NoContent().finish()),
        // A HEAD answer has no body: send the status alone (with no Content-Length of a body
        // that will not come, which some HTTP clients wait for).
        Err(e) => Err(e.without_body()),
    }
}

/// `DELETE /0.1/token/{token}`: always 200 for a well-formed id, known or not.
async fn delete(state: State, segment: &str) -> Result<HttpResponse, ApiError> {
    let id = ids::parse_canonical(segment).ok_or_else(no_such_token)?;
    if state.storage.delete_token(&id).await? {
        log::info!("token {} deleted", tokens::redact(segment));
    }
    state.tokens.forget(&id);
    Ok(HttpResponse::Ok().json(json!({ "data": { "message": "success" } })))
}

fn invalid_scopes_field(field: &str, message: &str) -> ApiError {
    ApiError::token(
        StatusCode::BAD_REQUEST,
        marshmallow_repr(&[(field.into(), message.into())]),
    )
}

/// `POST /0.1/token/{token}/scopes/check`: body (400) → token (404) → tenant (403) → the
/// verdict of each scope.
async fn check_scopes(
    state: State,
    payload: web::Payload,
    segment: &str,
) -> Result<HttpResponse, ApiError> {
    let raw = read_limited(payload, state.settings.max_body_bytes).await?;
    let body = validate::token_object(&raw)?;
    let scopes: Vec<&str> = match body.get("scopes") {
        None => {
            return Err(invalid_scopes_field(
                "scopes",
                "Missing data for required field.",
            ))
        }
        Some(Value::Array(items)) => items
            .iter()
            .map(Value::as_str)
            .collect::<Option<_>>()
            .ok_or_else(|| invalid_scopes_field("scopes", "Not a valid string."))?,
        Some(_) => return Err(invalid_scopes_field("scopes", "Not a valid list.")),
    };
    let tenant = match body.get("tenant_uuid") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(invalid_scopes_field("tenant_uuid", "Not a valid string.")),
    };
    let token = load_token(&state, segment).await?;
    if let Some(tenant) = tenant {
        if !tenant_allowed(&state, &token.token, tenant).await? {
            return Err(tenant_refused(tenant));
        }
    }
    let result: BTreeMap<&str, bool> = scopes
        .into_iter()
        .map(|s| (s, token.acl.matches(s)))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "scopes": result })))
}

/// Everything under `/0.1/token`, routed by hand: `POST /token`, `GET|HEAD|DELETE /token/{token}`
/// and `POST /token/{token}/scopes/check`. Every request to every Wazo service is a token check,
/// and actix matches a `{token}` resource with a regular expression that cost more than the
/// rest of the check (see docs/benchmarks.md); the segment split below is a few comparisons.
/// Paths and methods answer exactly as the equivalent resources would (404 for an unknown path,
/// 405 for a known path with another method).
pub async fn dispatch(
    state: State,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    // The part after `/0.1/token`, as actix's router would have matched it (same decoding).
    let rest = req.match_info().unprocessed();
    let method = req.method();
    if rest.is_empty() {
        return if method == Method::POST {
            create(state, req, payload).await
        } else {
            Err(ApiError::method_not_allowed())
        };
    }
    let Some(rest) = rest.strip_prefix('/') else {
        return Err(ApiError::route_not_found());
    };
    let (segment, tail) = match rest.split_once('/') {
        Some((segment, tail)) => (segment, Some(tail)),
        None => (rest, None),
    };
    if segment.is_empty() {
        return Err(ApiError::route_not_found());
    }
    // Owned: the handlers keep the request.
    let segment = segment.to_owned();
    match tail {
        None => match *method {
            Method::GET => get(state, req, &segment).await,
            Method::HEAD => head(state, req, &segment).await,
            Method::DELETE => delete(state, &segment).await,
            _ => Err(ApiError::method_not_allowed()),
        },
        Some("scopes/check") if method == Method::POST => {
            check_scopes(state, payload, &segment).await
        }
        Some("scopes/check") => Err(ApiError::method_not_allowed()),
        Some(_) => Err(ApiError::route_not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

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
            metadata: metadata.into(),
            session_uuid: "s-1".into(),
            user_agent: "agent \"007\"".into(),
            remote_addr: "10.0.0.1".into(),
            acl: vec!["confd.#".to_string(), "auth.users.me.read".into()].into(),
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
    fn a_cached_body_is_the_same_bytes_as_the_body() {
        let interner = wazo_auth_core::acl::AclInterner::default();
        for (t, acl) in [
            (sample(1_614_834_367.000_089), None),
            (sample(1_614_834_367.0), Some(vec![])),
            (
                sample(1.5),
                Some(vec!["\"quoted\" \\ é \n".to_string(), "#".into()]),
            ),
        ] {
            let mut t = t;
            if let Some(acl) = acl {
                t.acl = acl.into();
            }
            let entry = CachedToken {
                acl: Arc::new(interner.compile(&t.acl, &t.auth_id, &t.session_uuid)),
                token: t.clone(),
                rendered: std::sync::OnceLock::new(),
            };
            for _ in 0..2 {
                assert_eq!(
                    &cached_token_body(&entry)[..],
                    token_body(&t, None).as_bytes()
                );
            }
            // What the token keeps does not hold its ACL.
            let kept = entry.rendered.get().unwrap();
            assert!(!kept.is_empty() && !kept.starts_with(b"["));
        }
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
