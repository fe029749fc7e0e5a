//! Password reset (spec management §4): `GET /users/password/reset` (anonymous: mails a reset
//! token to the user it names) and `POST /users/password/reset?user_uuid=` (with that token, or
//! any token granting the ACL: sets or removes the password).
//!
//! The `GET` answers 204 whatever it finds, at once: the look-up, the token and the mail happen
//! after the answer, in a background job, so neither the answer nor its timing says whether the
//! account exists. Its requests are bounded per client address, per name asked for and per user
//! (`crate::mail::limits`); beyond, they are ignored, with the same 204.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use wazo_auth_core::ids::{self, UserUuid};
use wazo_auth_core::reset::ResetLookup;
use wazo_auth_core::services::password_reset::{self as service, ResetError, ResetTarget};
use wazo_auth_core::users;

use super::error::ApiError;
use super::extract::{query_param, Caller, RawBody};
use super::request::client_addr;
use super::routes::{acl_query_token, Acl, Router};
use super::validate::{self, Invalid};
use super::State;
use crate::mail::{self, limits, Party};

const RESOURCE: &str = "reset";

pub fn routes(r: &mut Router) {
    r.resource("/users/password/reset")
        .get(Acl::Public, request_reset)
        .post(
            acl_query_token("auth.users.password.reset.{user_uuid}.create"),
            reset,
        );
}

// ------------------------------------------------------------------------------------------------
// Validation
// ------------------------------------------------------------------------------------------------

/// 400 `invalid-data` of the reset (resource `reset`, details always empty): `message` is the
/// first field's message, or the list of the schema's messages.
fn invalid(message: Value) -> ApiError {
    ApiError::api(
        StatusCode::BAD_REQUEST,
        message,
        "invalid-data",
        json!({}),
        Some(RESOURCE),
    )
}

/// The query of the `GET`: exactly one of `username` (1..256), `email` (an address), `login`
/// (1..256). A value holding NUL is not a valid string.
fn validate_query(query: &[(String, String)]) -> Result<ResetLookup, ApiError> {
    let first = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let text = |field: &str, v: Option<String>| -> Result<Option<String>, Invalid> {
        let Some(v) = v else { return Ok(None) };
        if v.contains('\0') {
            return Err(Invalid::not_string(field));
        }
        validate::check_length(field, &v, 1, Some(256))?;
        Ok(Some(v))
    };
    let username = text("username", first("username")).map_err(|e| invalid(e.message.into()))?;
    let email = match first("email") {
        None => None,
        Some(v) if v.chars().count() <= 254 && !v.contains('\0') && users::is_valid_email(&v) => {
            Some(v)
        }
        Some(_) => return Err(invalid("Not a valid email address.".into())),
    };
    let login = text("login", first("login")).map_err(|e| invalid(e.message.into()))?;
    match (username, email, login) {
        (Some(u), None, None) => Ok(ResetLookup::Username(u)),
        (None, Some(e), None) => Ok(ResetLookup::Email(e)),
        (None, None, Some(l)) => Ok(ResetLookup::Login(l)),
        _ => Err(invalid(json!([
            "\"username\" or \"email\" or \"login\" should be used"
        ]))),
    }
}

/// The body of the `POST`: `password`, required, a string of at least one character or null.
fn validate_body(body: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    let fail = |e: Invalid| invalid(e.message.into());
    match body.get("password") {
        None => Err(fail(Invalid::required("password"))),
        Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.contains('\0') => {
            validate::check_length("password", s, 1, None).map_err(fail)?;
            Ok(Some(s.clone()))
        }
        Some(_) => Err(fail(Invalid::not_string("password"))),
    }
}

// ------------------------------------------------------------------------------------------------
// GET: the request
// ------------------------------------------------------------------------------------------------

/// The name a lookup asks for, as a throttle key.
fn name_key(lookup: &ResetLookup) -> String {
    let name = match lookup {
        ResetLookup::Username(v) | ResetLookup::Email(v) | ResetLookup::Login(v) => v,
    };
    format!("name:{}", name.to_lowercase())
}

/// `GET /users/password/reset`: query (400) → 204 at once. Then, unless a bound is reached, in
/// the background: the user (all tenants), not managed externally, an address to mail (the one
/// asked for, else the main confirmed one, else a confirmed one), a token, the mail (queued).
async fn request_reset(state: State, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let query: Vec<(String, String)> = form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    let lookup = validate_query(&query)?;
    let limits = &state.mail.reset_limits;
    let client = client_addr(&req, &state.settings.proxies);
    let job = if !limits.allow(&format!("client:{client}"), limits::PER_CLIENT) {
        log::info!("password reset request ignored: too many from this client ({client})");
        None
    } else if !limits.allow(&name_key(&lookup), limits::PER_NAME) {
        log::info!("password reset request ignored: too many for this name");
        None
    } else {
        limits.job().or_else(|| {
            log::warn!("password reset request ignored: too many in progress");
            None
        })
    };
    if let Some(job) = job {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        let context = mail::connection_params(header("Host"), header("X-Script-Name"));
        let state = state.clone();
        actix_web::rt::spawn(async move {
            if let Err(e) = mail_reset(&state, &lookup, context).await {
                log::error!("password reset request failed: {e}");
            }
            drop(job);
        });
    }
    Ok(HttpResponse::NoContent().finish())
}

/// The background part of a reset request.
async fn mail_reset(
    state: &State,
    lookup: &ResetLookup,
    mut context: Map<String, Value>,
) -> Result<(), String> {
    let target: Option<ResetTarget> = service::find_target(&state.storage, lookup)
        .await
        .map_err(|e| e.to_string())?;
    let Some(target) = target else {
        log::debug!("password reset: nobody to mail");
        return Ok(());
    };
    let limits = &state.mail.reset_limits;
    if !limits.allow(&format!("user:{}", target.user_uuid), limits::PER_USER) {
        log::info!(
            "password reset of user {} not mailed: too many requests",
            target.user_uuid
        );
        return Ok(());
    }
    let lifetime = state.mail.settings.reset_expiration;
    let token = service::issue_token(&state.storage, &target, lifetime)
        .await
        .map_err(|e| e.to_string())?;
    context.insert("token".into(), Value::from(token.to_string()));
    context.insert("username".into(), json!(target.username));
    context.insert("user_uuid".into(), Value::from(target.user_uuid.clone()));
    context.insert("email_address".into(), Value::from(target.address.clone()));
    let to = Party {
        name: target.username.clone(),
        address: target.address.clone(),
    };
    let outgoing = state.mail.reset(to, &context).map_err(|e| e.to_string())?;
    state.mail.mailer.queue(outgoing);
    log::info!("password reset of user {} mailed", target.user_uuid);
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// POST: the reset
// ------------------------------------------------------------------------------------------------

fn reset_error(e: ResetError, user: &str, removing: bool) -> ApiError {
    match e {
        ResetError::UnknownUser => {
            let details = if removing {
                json!({"uuid": user, "password": null})
            } else {
                json!({ "uuid": user })
            };
            ApiError::api(
                StatusCode::NOT_FOUND,
                format!("No such user: \"{user}\""),
                "unknown-user",
                details,
                Some("users"),
            )
        }
        ResetError::NoLogin => ApiError::token(StatusCode::UNAUTHORIZED, "Authentication Failed"),
        ResetError::ManagedExternally => ApiError::api(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("Unable to update externally managed password for user : \"{user}\""),
            "password-managed-externally",
            json!({ "uuid": user }),
            Some("users"),
        ),
        ResetError::Hashing(e) => super::users::hashing_failed(e),
        ResetError::Storage(e) => e.into(),
    }
}

/// `POST /users/password/reset?user_uuid=<u>`: token from `?token=` or `X-Auth-Token` granting
/// `auth.users.password.reset.<u>.create` (401, the original's short body) → body (413, 400) →
/// user in the token's own scope (404) → for a new password: a login (401), not managed
/// externally (405) → stored (or removed for `null`), the user's sessions deleted; 204.
async fn reset(
    state: State,
    req: HttpRequest,
    caller: Result<Caller, ApiError>,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    let caller = caller.map_err(|e| {
        if e.status() != StatusCode::UNAUTHORIZED {
            return e;
        }
        let token = query_param(&req, "token")
            .filter(|t| !t.is_empty())
            .or_else(|| {
                req.headers()
                    .get("X-Auth-Token")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            })
            .unwrap_or_default();
        ApiError::unauthorized(json!({ "invalid_token": token }))
    })?;
    let raw = body.read().await?;
    let password = validate_body(&validate::object(&raw, RESOURCE)?)?;
    let removing = password.is_none();
    let user_text = query_param(&req, "user_uuid").unwrap_or_default();
    let Some(user) = ids::parse_canonical(&user_text).map(UserUuid::from) else {
        return Err(reset_error(ResetError::UnknownUser, &user_text, removing));
    };
    let scope = caller.own_scope().await?;
    let scheme = state.settings.password_scheme;
    let sessions = service::reset(&state.storage, &scope, user, password, scheme)
        .await
        .map_err(|e| reset_error(e, &user.text(), removing))?;
    log::info!(
        "password of user {user} {} by reset; {sessions} session(s) deleted",
        if removing { "removed" } else { "changed" }
    );
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn exactly_one_name() {
        assert_eq!(
            validate_query(&q(&[("username", "bob")])).unwrap(),
            ResetLookup::Username("bob".into())
        );
        assert_eq!(
            validate_query(&q(&[("email", "b@example.com"), ("other", "x")])).unwrap(),
            ResetLookup::Email("b@example.com".into())
        );
        assert_eq!(
            validate_query(&q(&[("login", "Bob")])).unwrap(),
            ResetLookup::Login("Bob".into())
        );
        for bad in [
            q(&[]),
            q(&[("username", "a"), ("login", "b")]),
            q(&[("username", "")]),
            q(&[("email", "nope")]),
            q(&[("login", "a\0b")]),
        ] {
            let e = validate_query(&bad).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        }
        let long = "a".repeat(257);
        assert!(validate_query(&q(&[("username", &long)])).is_err());
    }

    #[test]
    fn the_password_is_required_and_may_be_null() {
        let obj = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(
            validate_body(&obj(json!({"password": null}))).unwrap(),
            None
        );
        assert_eq!(
            validate_body(&obj(json!({"password": "x"}))).unwrap(),
            Some("x".into())
        );
        for bad in [
            json!({}),
            json!({"password": ""}),
            json!({"password": 3}),
            json!({"password": "a\u{0}"}),
        ] {
            assert!(validate_body(&obj(bad)).is_err());
        }
    }
}
