//! User registration (spec management §5): `POST /users/register`, without authentication,
//! served only when `enabled_http_plugins.user_registration` is true (off by default, as in the
//! original: otherwise the route does not exist).
//!
//! The confirmation mail is the one mail sent while the request waits: the new tenant, user and
//! token are kept only if the SMTP server accepted it (bounded by `smtp.timeout`), in the same
//! database transaction ([`wazo_auth_core::services::registration::register`]).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use wazo_auth_core::services::registration::{self as service, RegisterError, Registration};
use wazo_auth_core::users;

use super::error::ApiError;
use super::extract::RawBody;
use super::routes::{Acl, Router};
use super::validate::{self, Invalid, Nul, Presence};
use super::State;

const RESOURCE: &str = "users";

pub fn routes(r: &mut Router) {
    r.resource("/users/register").post(Acl::Public, register);
}

/// The body: `username` (1..256), `password` (at least 1), `email_address` (an address), all
/// required; `firstname`, `lastname` (strings or null). Unknown keys are ignored. The first
/// failing field, in that order, is the 400 (resource `users`).
fn validate_body(body: &Map<String, Value>) -> Result<Registration, Invalid> {
    let string = |field: &str, presence: Presence, min: usize, max: Option<usize>| {
        validate::string_with(body, field, presence, min, max, Nul::NotAStringFirst)
    };
    let username = string("username", Presence::Required, 1, Some(256))?.unwrap_or_default();
    let password = string("password", Presence::Required, 1, None)?.unwrap_or_default();
    let firstname = string("firstname", Presence::Nullable, 0, None)?;
    let lastname = string("lastname", Presence::Nullable, 0, None)?;
    let email_address = match body.get("email_address") {
        None => return Err(Invalid::required("email_address")),
        Some(Value::Null) => return Err(Invalid::not_null("email_address")),
        Some(Value::String(s))
            if s.chars().count() <= 254 && !s.contains('\0') && users::is_valid_email(s) =>
        {
            s.clone()
        }
        Some(_) => {
            return Err(Invalid::new(
                "email_address",
                "Not a valid email address.",
                "type",
                json!("email"),
            ))
        }
    };
    Ok(Registration {
        username,
        password,
        firstname,
        lastname,
        email_address,
    })
}

/// The request's answer when the registration was refused.
fn register_error(e: RegisterError<ApiError>) -> ApiError {
    match e {
        RegisterError::Conflict { field, value } => ApiError::api(
            StatusCode::CONFLICT,
            "Conflict detected",
            "conflict",
            json!({ field: {
                "constraint_id": "unique",
                "message": format!("The login \"{value}\" is already used"),
            }}),
            Some(RESOURCE),
        ),
        RegisterError::Mail(e) => e,
        RegisterError::Tenant(e) => {
            ApiError::plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
                .with_cause(format!("registration: {e}"))
        }
        RegisterError::Hashing(e) => super::users::hashing_failed(e),
        RegisterError::Storage(e) => e.into(),
    }
}

/// The SMTP server did not take the confirmation mail: nothing was created.
fn mail_not_sent(e: crate::mail::queue::SendError) -> ApiError {
    ApiError::api(
        StatusCode::SERVICE_UNAVAILABLE,
        "The confirmation e-mail could not be sent: nothing was registered",
        "email-not-sent",
        json!({}),
        Some(RESOURCE),
    )
    .with_cause(format!("registration mail: {e}"))
}

/// `POST /users/register`: body (413, 400) → in one transaction: the tenant, the user (409 on a
/// used login), the confirmation token, the mail sent (503 when the SMTP server does not take
/// it; then nothing is kept) → 200 with the user (its address unconfirmed).
async fn register(state: State, req: HttpRequest, body: RawBody) -> Result<HttpResponse, ApiError> {
    let raw = body.read().await?;
    let registration =
        validate_body(&validate::object(&raw, RESOURCE)?).map_err(|e| e.into_error(RESOURCE))?;
    let lifetime = state.mail.settings.confirmation_expiration;
    let send = |token| {
        let mail = super::emails::confirmation_mail(&state, &req, &token);
        let mailer = &state.mail.mailer;
        async move { mailer.send_now(&mail?).await.map_err(mail_not_sent) }
    };
    let user = service::register(
        &state.storage,
        registration,
        &state.settings.tenant_defaults,
        state.settings.password_scheme,
        lifetime,
        send,
    )
    .await
    .map_err(register_error)?;
    log::info!(
        "user {} registered in its new tenant {}",
        user.uuid,
        user.tenant_uuid
    );
    Ok(HttpResponse::Ok().json(user.to_json()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn registration_bodies() {
        let r = validate_body(&obj(json!({
            "username": "zoe", "password": "pw", "email_address": "zoe@example.com",
            "purpose": "internal", "firstname": null,
        })))
        .unwrap();
        assert_eq!((r.username.as_str(), r.firstname), ("zoe", None));
        for (body, field) in [
            (
                json!({"password": "pw", "email_address": "a@example.com"}),
                "username",
            ),
            (
                json!({"username": "", "password": "pw", "email_address": "a@example.com"}),
                "username",
            ),
            (
                json!({"username": "z", "email_address": "a@example.com"}),
                "password",
            ),
            (json!({"username": "z", "password": "pw"}), "email_address"),
            (
                json!({"username": "z", "password": "pw", "email_address": "x"}),
                "email_address",
            ),
            (
                json!({"username": "z\u{0}", "password": "pw", "email_address": "a@example.com"}),
                "username",
            ),
            (
                json!({"username": "z", "password": "pw", "email_address": "a@example.com", "lastname": 1}),
                "lastname",
            ),
        ] {
            assert_eq!(validate_body(&obj(body)).unwrap_err().field, field);
        }
    }
}
