//! E-mail addresses and their confirmation (spec management §3): `PUT /users/{u}/emails`,
//! `PUT /admin/users/{u}/emails`, `GET /users/{u}/emails/{e}/confirm` (a new confirmation mail),
//! `PUT` and `GET /emails/{e}/confirm`. Each handler extracts, validates, calls a service of
//! `wazo_auth_core::services::emails`, and renders.
//!
//! Unlike the original, which does not scope these routes, a user or address outside the
//! caller's own tenant and its descendants is unknown (404); `Wazo-Tenant` is not looked at, as
//! for the password change.

use actix_web::http::header::{HeaderValue, CONTENT_TYPE};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use wazo_auth_core::emails::EmailInput;
use wazo_auth_core::ids::{EmailUuid, UserUuid};
use wazo_auth_core::services::emails::{
    self as service, ConfirmationError, EmailsError, MailedToken,
};
use wazo_auth_core::users::{self, Email};

use super::error::ApiError;
use super::extract::{Caller, Id, RawBody};
use super::routes::{acl, acl_query_token, Router};
use super::validate::{self, Invalid};
use super::State;
use crate::mail::{self, Outgoing, Party};

const RESOURCE: &str = "emails";

/// The longest address accepted (RFC 5321's limit on a path).
const MAX_ADDRESS: usize = 254;

pub fn routes(r: &mut Router) {
    r.resource("/users/{user_uuid}/emails")
        .put(acl("auth.users.{user_uuid}.emails.update"), update_as_user);
    r.resource("/admin/users/{user_uuid}/emails").put(
        acl("auth.admin.users.{user_uuid}.emails.update"),
        update_as_admin,
    );
    r.resource("/users/{user_uuid}/emails/{email_uuid}/confirm")
        .get(
            acl("auth.users.{user_uuid}.emails.{email_uuid}.confirm.read"),
            resend_confirmation,
        );
    r.resource("/emails/{email_uuid}/confirm")
        .get(
            acl_query_token("auth.emails.{email_uuid}.confirm.update"),
            confirm_link,
        )
        .put(acl("auth.emails.{email_uuid}.confirm.update"), confirm);
}

// ------------------------------------------------------------------------------------------------
// Errors
// ------------------------------------------------------------------------------------------------

fn unknown_user(user: &UserUuid) -> ApiError {
    ApiError::unknown("user", "users", &user.to_string())
}

fn unknown_email(email: &EmailUuid) -> ApiError {
    ApiError::unknown("email", RESOURCE, &email.to_string())
}

fn emails_error(e: EmailsError, user: &UserUuid) -> ApiError {
    match e {
        EmailsError::UnknownUser => unknown_user(user),
        EmailsError::Conflict(address) => login_conflict(&address),
        EmailsError::Storage(e) => e.into(),
    }
}

/// 409: the address is another user's login (the users' conflict body, as the original).
pub(super) fn login_conflict(address: &str) -> ApiError {
    ApiError::api(
        StatusCode::CONFLICT,
        "Conflict detected",
        "conflict",
        json!({"email_address": {
            "constraint_id": "unique",
            "message": format!("The login \"{address}\" is already used"),
        }}),
        Some("users"),
    )
}

fn confirmation_error(e: ConfirmationError, user: &UserUuid, email: &EmailUuid) -> ApiError {
    match e {
        ConfirmationError::UnknownUser => unknown_user(user),
        ConfirmationError::UnknownEmail => unknown_email(email),
        ConfirmationError::AlreadyConfirmed => ApiError::api(
            StatusCode::CONFLICT,
            format!("This email already confirmed: \"{email}\""),
            "conflict",
            json!({ "uuid": email.to_string() }),
            Some(RESOURCE),
        ),
        ConfirmationError::Storage(e) => e.into(),
    }
}

/// A template that cannot be rendered: a 500 (the cause, naming the template key, is logged).
pub(super) fn template_failed(e: mail::templates::TemplateError) -> ApiError {
    ApiError::plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").with_cause(e)
}

// ------------------------------------------------------------------------------------------------
// Body validation (the original's EmailPutSchema: the error message is the whole error object)
// ------------------------------------------------------------------------------------------------

/// The body of an address-set replacement: `{"emails": [{"address", "main", "confirmed"}]}`
/// (`confirmed` read for the administrators' variant only). `Err` is marshmallow's error object.
fn validate_emails(body: &Map<String, Value>, admin: bool) -> Result<Vec<EmailInput>, Value> {
    let detail = |e: Invalid| json!({"message": e.message, "constraint_id": e.constraint_id, "constraint": e.constraint});
    let items = match body.get("emails") {
        None => return Err(json!({"emails": detail(Invalid::required("emails"))})),
        Some(Value::Null) => return Err(json!({"emails": detail(Invalid::not_null("emails"))})),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(json!({"emails": {"_schema": ["Invalid input type."]}})),
    };
    let mut errors = Map::new();
    let mut wanted = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match validate_email(item, admin) {
            Ok(email) => wanted.push(email),
            Err(e) => {
                errors.insert(i.to_string(), e);
            }
        }
    }
    if !errors.is_empty() {
        return Err(json!({ "emails": errors }));
    }
    let mut schema = Vec::new();
    if !wanted.is_empty() {
        match wanted.iter().filter(|e| e.main).count() {
            1 => {}
            0 => schema.push("At least one address should be main"),
            _ => schema.push("Only one address should be main"),
        }
        // Case-insensitively: two addresses differing only in case are one login.
        let mut seen = std::collections::BTreeSet::new();
        if !wanted.iter().all(|e| seen.insert(e.address.to_lowercase())) {
            schema.push("The same address can only be used once");
        }
    }
    if !schema.is_empty() {
        return Err(json!({ "_schema": schema }));
    }
    Ok(wanted)
}

/// One address of the set; `Err` is its error object.
fn validate_email(item: &Value, admin: bool) -> Result<EmailInput, Value> {
    let Value::Object(fields) = item else {
        return Err(json!({"_schema": ["Invalid input type."]}));
    };
    let mut errors = Map::new();
    let mut fail = |e: Invalid| {
        errors.insert(
            e.field.clone(),
            json!({"message": e.message, "constraint_id": e.constraint_id, "constraint": e.constraint}),
        );
    };
    let address = match fields.get("address") {
        None => {
            fail(Invalid::required("address"));
            None
        }
        Some(Value::Null) => {
            fail(Invalid::not_null("address"));
            None
        }
        // At most 254 characters (RFC 5321's limit): longer ones could not be indexed.
        Some(Value::String(s))
            if s.chars().count() <= MAX_ADDRESS
                && !s.contains('\0')
                && users::is_valid_email(s) =>
        {
            Some(s.clone())
        }
        Some(_) => {
            fail(Invalid::new(
                "address",
                "Not a valid email address.",
                "type",
                json!("email"),
            ));
            None
        }
    };
    let main = match fields.get("main") {
        None => Some(false),
        Some(Value::Null) => {
            fail(Invalid::not_null("main"));
            None
        }
        Some(v) => validate::parse_bool(v).or_else(|| {
            fail(Invalid::not_boolean("main"));
            None
        }),
    };
    let confirmed = match fields.get("confirmed") {
        _ if !admin => Some(None),
        None | Some(Value::Null) => Some(None),
        Some(v) => validate::parse_bool(v).map(Some).or_else(|| {
            fail(Invalid::not_boolean("confirmed"));
            None
        }),
    };
    match (address, main, confirmed) {
        (Some(address), Some(main), Some(confirmed)) if errors.is_empty() => Ok(EmailInput {
            address,
            main,
            confirmed,
        }),
        _ => Err(Value::Object(errors)),
    }
}

/// Decodes and validates an address-set body as `update` does (for the fuzz targets, through
/// [`super::body_check`]).
pub(super) fn check_body(body: &[u8], admin: bool) -> Result<(), ApiError> {
    let body = validate::object(body, RESOURCE)?;
    validate_emails(&body, admin)
        .map(drop)
        .map_err(invalid_emails)
}

/// 400 `invalid-data` whose message is the error object (details empty), as the original's
/// `EmailUpdateException`.
fn invalid_emails(messages: Value) -> ApiError {
    ApiError::api(
        StatusCode::BAD_REQUEST,
        messages,
        "invalid-data",
        json!({}),
        Some(RESOURCE),
    )
}

// ------------------------------------------------------------------------------------------------
// Mail
// ------------------------------------------------------------------------------------------------

/// The template variables of a request (`hostname`, `port`, `prefix`) and the token's.
pub(super) fn mail_context(req: &HttpRequest, token: &MailedToken) -> Map<String, Value> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let mut context = mail::connection_params(header("Host"), header("X-Script-Name"));
    context.insert("token".into(), Value::from(token.token.to_string()));
    context.insert("username".into(), json!(token.username));
    context.insert("email_address".into(), Value::from(token.address.clone()));
    context
}

/// The confirmation mail of `token`.
pub(super) fn confirmation_mail(
    state: &State,
    req: &HttpRequest,
    token: &MailedToken,
) -> Result<Outgoing, ApiError> {
    let mut context = mail_context(req, token);
    context.insert("email_uuid".into(), Value::from(token.email_uuid.clone()));
    let to = Party {
        name: token.username.clone(),
        address: token.address.clone(),
    };
    state
        .mail
        .confirmation(to, &context)
        .map_err(template_failed)
}

// ------------------------------------------------------------------------------------------------
// Handlers
// ------------------------------------------------------------------------------------------------

fn email_list(emails: &[Email]) -> HttpResponse {
    let items: Vec<Value> = emails.iter().map(Email::to_json).collect();
    HttpResponse::Ok().json(items)
}

/// Both replacements: route uuid (404) → token (401) → body (413, 400) → user in the token's
/// own scope (404) → each address free as a login (409) → the new set, 200.
async fn update(
    state: State,
    user: Id<UserUuid>,
    caller: Caller,
    body: RawBody,
    admin: bool,
) -> Result<HttpResponse, ApiError> {
    let raw = body.read().await?;
    let wanted =
        validate_emails(&validate::object(&raw, RESOURCE)?, admin).map_err(invalid_emails)?;
    let scope = caller.own_scope().await?;
    let stored = service::replace(&state.storage, &scope, *user, &wanted)
        .await
        .map_err(|e| emails_error(e, &user))?;
    log::info!("addresses of user {} replaced ({})", *user, stored.len());
    Ok(email_list(&stored))
}

/// `PUT /users/{u}/emails`: `confirmed` is not read (kept, or false for a new address).
async fn update_as_user(
    state: State,
    user: Id<UserUuid>,
    caller: Caller,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    update(state, user, caller, body, false).await
}

/// `PUT /admin/users/{u}/emails`: `confirmed` is honoured.
async fn update_as_admin(
    state: State,
    user: Id<UserUuid>,
    caller: Caller,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    update(state, user, caller, body, true).await
}

/// `GET /users/{u}/emails/{e}/confirm`: route uuids (404) → token (401) → user in the token's own
/// scope (404 unknown-user) → its address (404 unknown-email) → unconfirmed (409) → a new
/// confirmation token, mailed (queued: the answer does not wait for the SMTP server); 204.
async fn resend_confirmation(
    state: State,
    req: HttpRequest,
    user: Id<UserUuid>,
    email: Id<EmailUuid>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.own_scope().await?;
    let lifetime = state.mail.settings.confirmation_expiration;
    let token = service::confirmation_token(&state.storage, &scope, *user, *email, lifetime)
        .await
        .map_err(|e| confirmation_error(e, &user, &email))?;
    state
        .mail
        .mailer
        .queue(confirmation_mail(&state, &req, &token)?);
    log::info!(
        "confirmation of address {} of user {} mailed",
        *email,
        *user
    );
    Ok(HttpResponse::NoContent().finish())
}

/// `PUT /emails/{e}/confirm`: route uuid (404) → token (401) → address in the token's own scope
/// (404) → confirmed; 204.
async fn confirm(
    state: State,
    email: Id<EmailUuid>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.own_scope().await?;
    if !service::confirm(&state.storage, &scope, *email).await? {
        return Err(unknown_email(&email));
    }
    log::info!("address {} confirmed", *email);
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /emails/{e}/confirm?token=...` (the mailed link; the token may also come in
/// `X-Auth-Token`): as the `PUT`, then 200 with the rendered
/// `email_confirmation_get_response_body_template` as `email_confirmation_get_mimetype`.
async fn confirm_link(
    state: State,
    email: Id<EmailUuid>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.own_scope().await?;
    if !service::confirm(&state.storage, &scope, *email).await? {
        return Err(unknown_email(&email));
    }
    log::info!("address {} confirmed", *email);
    let page = state
        .mail
        .settings
        .templates
        .render(mail::TemplateKind::ConfirmationPage, &Map::new())
        .map_err(template_failed)?;
    let mimetype = HeaderValue::from_str(&state.mail.settings.confirmation_get_mimetype)
        .unwrap_or(HeaderValue::from_static("text/html"));
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, mimetype))
        .body(page))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn address_sets() {
        let one = json!({"address": "one@example.com", "main": true, "confirmed": true});
        let two = json!({"address": "two@example.com"});
        let set = validate_emails(&obj(json!({"emails": [one, two]})), true).unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(set[0].confirmed, Some(true));
        assert_eq!((set[1].main, set[1].confirmed), (false, None));
        // The user variant does not read `confirmed`.
        let set = validate_emails(&obj(json!({"emails": [one]})), false).unwrap();
        assert_eq!(set[0].confirmed, None);
        assert!(validate_emails(&obj(json!({"emails": []})), false)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn refused_address_sets() {
        let e = validate_emails(&Map::new(), false).unwrap_err();
        assert_eq!(e["emails"]["constraint_id"], "required");
        let e = validate_emails(&obj(json!({"emails": "x"})), false).unwrap_err();
        assert_eq!(e["emails"]["_schema"][0], "Invalid input type.");
        let e = validate_emails(
            &obj(json!({"emails": [{"address": "nope", "main": true}, 3]})),
            false,
        )
        .unwrap_err();
        assert_eq!(
            e["emails"]["0"]["address"]["message"],
            "Not a valid email address."
        );
        assert_eq!(e["emails"]["1"]["_schema"][0], "Invalid input type.");
        let a = json!({"address": "a@example.com", "main": true});
        let e = validate_emails(&obj(json!({"emails": [a, a]})), false).unwrap_err();
        assert_eq!(
            e["_schema"],
            json!([
                "Only one address should be main",
                "The same address can only be used once"
            ])
        );
        let b = json!({"address": "A@example.com"});
        let e = validate_emails(&obj(json!({"emails": [a, b]})), false).unwrap_err();
        assert_eq!(
            e["_schema"],
            json!(["The same address can only be used once"])
        );
        let e = validate_emails(
            &obj(json!({"emails": [{"address": "b@example.com"}]})),
            false,
        )
        .unwrap_err();
        assert_eq!(e["_schema"], json!(["At least one address should be main"]));
        let e = validate_emails(
            &obj(json!({"emails": [{"address": "a\u{0}@example.com", "main": "x"}]})),
            true,
        )
        .unwrap_err();
        assert_eq!(e["emails"]["0"]["address"]["constraint_id"], "type");
        assert_eq!(e["emails"]["0"]["main"]["constraint_id"], "type");
        let e = validate_emails(
            &obj(json!({"emails": [{"address": "a@example.com", "main": true, "confirmed": []}]})),
            true,
        )
        .unwrap_err();
        assert_eq!(e["emails"]["0"]["confirmed"]["constraint_id"], "type");
    }
}
