//! Users (spec management §2, §4 password change; core §2.4, §2.5, §3.4): `/users`,
//! `/users/{user_uuid}` and `/users/{user_uuid}/password`. Each handler extracts, validates,
//! calls a service of `wazo_auth_core::services::users`, and renders.
//!
//! The path uuid comes before the token here (a segment that is not a UUID matches no route of
//! the original): the [`Id`] extractor.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use wazo_auth_core::ids::UserUuid;
use wazo_auth_core::services::users::{
    self as service, CreateUserError, OldPassword, PasswordChangeError, UserCreation,
    UserWriteError,
};
use wazo_auth_core::users::{self, UserOrder, UserQuery, UserUpdate, PURPOSES};

use super::error::ApiError;
use super::extract::{Caller, Id, RawBody};
use super::listing;
use super::request::client_addr;
use super::routes::{acl, Router};
use super::validate::{self, Invalid, Nul, Presence, Raw};
use super::State;

const RESOURCE: &str = "users";

pub fn routes(r: &mut Router) {
    r.resource("/users")
        .get(acl("auth.users.read"), list)
        .post(acl("auth.users.create"), create);
    r.resource("/users/{user_uuid}")
        .get(acl("auth.users.{user_uuid}.read"), get)
        .put(acl("auth.users.{user_uuid}.update"), update)
        .delete(acl("auth.users.{user_uuid}.delete"), delete);
    r.resource("/users/{user_uuid}/password").put(
        acl("auth.users.{user_uuid}.password.update"),
        change_password,
    );
}

// ------------------------------------------------------------------------------------------------
// Errors
// ------------------------------------------------------------------------------------------------

fn unknown_user(user: &UserUuid) -> ApiError {
    ApiError::unknown("user", RESOURCE, &user.to_string())
}

/// A failed password hashing task: a plain 500 (the cause is logged).
pub(super) fn hashing_failed(e: impl std::fmt::Display) -> ApiError {
    ApiError::plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        .with_cause(format!("password hashing task failed: {e}"))
}

fn conflict(field: &'static str, value: &str) -> ApiError {
    let message = if field == "uuid" {
        format!("The uuid \"{value}\" is already used")
    } else {
        format!("The login \"{value}\" is already used")
    };
    ApiError::api(
        StatusCode::CONFLICT,
        "Conflict detected",
        "conflict",
        json!({ field: {"constraint_id": "unique", "message": message} }),
        Some(RESOURCE),
    )
}

fn create_error(e: CreateUserError) -> ApiError {
    match e {
        CreateUserError::Conflict { field, value } => conflict(field, &value),
        CreateUserError::Hashing(e) => hashing_failed(e),
        CreateUserError::Storage(e) => e.into(),
    }
}

fn write_error(e: UserWriteError, user: &UserUuid) -> ApiError {
    match e {
        UserWriteError::Unknown => unknown_user(user),
        UserWriteError::Conflict { field, value } => conflict(field, &value),
        UserWriteError::Storage(e) => e.into(),
    }
}

fn authentication_failed() -> ApiError {
    ApiError::token(StatusCode::UNAUTHORIZED, "Authentication Failed")
}

fn password_error(e: PasswordChangeError, user: &UserUuid) -> ApiError {
    match e {
        PasswordChangeError::UnknownUser => unknown_user(user),
        PasswordChangeError::NoLogin => authentication_failed(),
        PasswordChangeError::Hashing(e) => hashing_failed(e),
        PasswordChangeError::Storage(e) => e.into(),
    }
}

/// 400 when the method is not `native`, `default` or an enabled IdP.
fn check_auth_method(state: &State, method: &str) -> Result<(), ApiError> {
    if state.settings.idp_types.contains(method) {
        return Ok(());
    }
    Err(ApiError::api(
        StatusCode::BAD_REQUEST,
        format!("Invalid authentication method {method}"),
        "invalid-data",
        json!({ "authentication_method": method }),
        Some(RESOURCE),
    ))
}

// ------------------------------------------------------------------------------------------------
// Body validation (marshmallow schemas of the original, xivo field wrappers)
// ------------------------------------------------------------------------------------------------

/// A string field of users: a string holding NUL is not a valid string, before its length.
fn string(
    body: &Map<String, Value>,
    field: &str,
    presence: Presence,
    min: usize,
    max: Option<usize>,
) -> Result<Option<String>, Invalid> {
    validate::string_with(body, field, presence, min, max, Nul::NotAStringFirst)
}

/// The fields shared by POST and PUT.
#[derive(Debug, PartialEq)]
struct UserFields {
    username: Option<String>,
    firstname: Option<String>,
    lastname: Option<String>,
    purpose: String,
    authentication_method: String,
    enabled: bool,
}

fn validate_user_fields(body: &Map<String, Value>) -> Result<UserFields, Invalid> {
    let username = string(body, "username", Presence::Nullable, 1, Some(256))?;
    let firstname = string(body, "firstname", Presence::Nullable, 0, None)?;
    let lastname = string(body, "lastname", Presence::Nullable, 0, None)?;
    let purpose =
        string(body, "purpose", Presence::Optional, 0, None)?.unwrap_or_else(|| "user".to_string());
    if !PURPOSES.contains(&purpose.as_str()) {
        return Err(Invalid::one_of("purpose", &PURPOSES));
    }
    let authentication_method =
        match string(body, "authentication_method", Presence::Optional, 0, None)? {
            Some(method) => method,
            // The original's pre-load default, from the purpose as sent.
            None if purpose == "internal" || purpose == "external_api" => "native".to_string(),
            None => "default".to_string(),
        };
    let enabled = validate::boolean(body, "enabled", Presence::Optional)?.unwrap_or(true);
    Ok(UserFields {
        username,
        firstname,
        lastname,
        purpose,
        authentication_method,
        enabled,
    })
}

/// The POST body.
#[derive(Debug, PartialEq)]
struct PostBody {
    fields: UserFields,
    uuid: Option<String>,
    password: Option<String>,
    email_address: Option<String>,
}

fn validate_post(body: &Map<String, Value>) -> Result<PostBody, Invalid> {
    let fields = validate_user_fields(body)?;
    let uuid = validate::uuid(body, "uuid", Presence::Optional)?.map(|u| u.to_string());
    let password = string(body, "password", Presence::Nullable, 1, None)?;
    let email_address = match validate::raw(body, "email_address") {
        Raw::Missing | Raw::Null => None,
        Raw::Value(Value::String(s)) if !s.contains('\0') && users::is_valid_email(s) => {
            Some(s.clone())
        }
        Raw::Value(_) => {
            return Err(Invalid::new(
                "email_address",
                "Not a valid email address.",
                "type",
                json!("email"),
            ))
        }
    };
    Ok(PostBody {
        fields,
        uuid,
        password,
        email_address,
    })
}

/// Decodes a body as the original: undecodable → 400 `{"message"}`; Python-falsy values →
/// `{}`; any other non-object → 400 invalid-data `_schema`.
fn body_object(raw: &[u8]) -> Result<Map<String, Value>, ApiError> {
    validate::object(raw, RESOURCE)
}

/// Decodes and validates a POST (`post`) or PUT body as `create` / `update` do, short of the
/// database and the configured authentication methods (for the fuzz targets, through
/// [`super::body_check`]).
pub(super) fn check_body(body: &[u8], post: bool) -> Result<(), ApiError> {
    let body = body_object(body)?;
    let checked = if post {
        validate_post(&body).map(drop)
    } else {
        validate_user_fields(&body).map(drop)
    };
    checked.map_err(|e| e.into_error(RESOURCE))
}

/// [`validate_password_change`] on raw bytes (for the fuzz targets, through
/// [`super::body_check`]).
pub(super) fn check_password_change(body: &[u8]) -> Result<(), ApiError> {
    let body = body_object(body)?;
    validate_password_change(&body)
        .map(drop)
        .map_err(|e| e.into_error(RESOURCE))
}

/// The password-change body: both fields required, non-null strings of at least one character.
fn validate_password_change(body: &Map<String, Value>) -> Result<(String, String), Invalid> {
    let old = string(body, "old_password", Presence::Required, 1, None)?.unwrap_or_default();
    let new = string(body, "new_password", Presence::Required, 1, None)?.unwrap_or_default();
    Ok((old, new))
}

// ------------------------------------------------------------------------------------------------
// Handlers
// ------------------------------------------------------------------------------------------------

fn envelope(listing: wazo_auth_core::services::Listing<users::User>) -> HttpResponse {
    let items: Vec<Value> = listing.items.iter().map(users::User::to_json).collect();
    HttpResponse::Ok().json(json!({
        "total": listing.total,
        "filtered": listing.filtered,
        "items": items,
    }))
}

/// `GET /users`: token (401) → scoping tenant (401) → params (400) → the users of the scoping
/// tenant (with its descendants when `recurse`).
async fn list(state: State, req: HttpRequest, caller: Caller) -> Result<HttpResponse, ApiError> {
    let scope = caller.scope().await?;
    let params = listing::parse(&req, &["username", "firstname", "lastname"], "username")?;
    let filter = |name: &str| params.filter(name).map(str::to_string);
    let query = UserQuery {
        search: params.search.clone(),
        uuid: filter("uuid"),
        username: filter("username"),
        firstname: filter("firstname"),
        lastname: filter("lastname"),
        purpose: filter("purpose"),
        email_address: filter("email_address"),
        group_uuid: filter("group_uuid"),
        policy_uuid: filter("policy_uuid"),
        policy_slug: filter("policy_slug"),
        has_policy_uuid: filter("has_policy_uuid"),
        has_policy_slug: filter("has_policy_slug"),
        order: UserOrder::parse(&params.order).unwrap_or(UserOrder::Username),
        descending: params.descending,
        limit: params.limit,
        offset: params.offset,
        ..UserQuery::new(Vec::new())
    };
    let listed = service::list(&state.storage, &scope, params.recurse, query).await?;
    Ok(envelope(listed))
}

/// `POST /users`: token (401) → scoping tenant (401) → body (413, 400) → authentication method
/// (400) → create (409 on a used uuid or login).
async fn create(state: State, caller: Caller, body: RawBody) -> Result<HttpResponse, ApiError> {
    let scope = caller.scope().await?;
    let raw = body.read().await?;
    let post = validate_post(&body_object(&raw)?).map_err(|e| e.into_error(RESOURCE))?;
    check_auth_method(&state, &post.fields.authentication_method)?;
    let creation = UserCreation {
        uuid: post.uuid,
        username: post.fields.username,
        firstname: post.fields.firstname,
        lastname: post.fields.lastname,
        purpose: post.fields.purpose,
        enabled: post.fields.enabled,
        authentication_method: post.fields.authentication_method,
        password: post.password,
        email_address: post.email_address,
        email_confirmed: true,
    };
    let user = service::create_user(
        &state.storage,
        state.settings.password_scheme,
        &scope,
        creation,
    )
    .await
    .map_err(create_error)?;
    log::info!("user {} created in tenant {}", user.uuid, user.tenant_uuid);
    Ok(HttpResponse::Ok().json(user.to_json()))
}

/// `GET /users/{u}`: route uuid (404) → token (401) → scoping tenant (401) → the user when it
/// is in a visible tenant (404).
async fn get(state: State, user: Id<UserUuid>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let scope = caller.scope().await?;
    match service::get(&state.storage, &scope, *user).await? {
        Some(u) => Ok(HttpResponse::Ok().json(u.to_json())),
        None => Err(unknown_user(&user)),
    }
}

/// `PUT /users/{u}`: route uuid (404) → token (401) → scoping tenant (401) → body (413, 400) →
/// authentication method (400) → user visible (404) → update (409 on a used username).
async fn update(
    state: State,
    user: Id<UserUuid>,
    caller: Caller,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.scope().await?;
    let raw = body.read().await?;
    let fields = validate_user_fields(&body_object(&raw)?).map_err(|e| e.into_error(RESOURCE))?;
    check_auth_method(&state, &fields.authentication_method)?;
    let update = UserUpdate {
        username: fields.username,
        firstname: fields.firstname,
        lastname: fields.lastname,
        purpose: fields.purpose,
        enabled: fields.enabled,
        authentication_method: fields.authentication_method,
    };
    let updated = service::update(&state.storage, &scope, *user, &update)
        .await
        .map_err(|e| write_error(e, &user))?;
    Ok(HttpResponse::Ok().json(updated.to_json()))
}

/// `DELETE /users/{u}`: route uuid (404) → token (401) → scoping tenant (401) → user visible
/// (404) → deleted with its sessions; 204.
async fn delete(
    state: State,
    user: Id<UserUuid>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.scope().await?;
    service::delete(&state.storage, &scope, *user)
        .await
        .map_err(|e| write_error(e, &user))?;
    log::info!("user {} deleted", *user);
    Ok(HttpResponse::NoContent().finish())
}

/// `PUT /users/{u}/password`: route uuid (404) → token (401) → body (413, 400) → user in the
/// token's own scope (404; `Wazo-Tenant` is not looked at, as the original, which does not
/// scope this route at all) → login (401) → throttle (429) → old password (401) → externally
/// managed (405) → new password stored, the user's sessions deleted; 204.
async fn change_password(
    state: State,
    req: HttpRequest,
    user: Id<UserUuid>,
    caller: Caller,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    let raw = body.read().await?;
    let (old_password, new_password) =
        validate_password_change(&body_object(&raw)?).map_err(|e| e.into_error(RESOURCE))?;
    let scope = caller.own_scope().await?;
    let found = service::password_login(&state.storage, &scope, *user)
        .await
        .map_err(|e| password_error(e, &user))?;
    // The old password is a password guess like a login's: under the same throttle (better
    // than the original, which let a token holder guess at hashing speed).
    let remote_addr = client_addr(&req, &state.settings.proxies);
    let attempt = super::throttle::Attempt::start(
        &state,
        &req,
        &remote_addr,
        Some(&found.login),
        "PUT /users/{uuid}/password",
    )
    .await?;
    let scheme = state.settings.password_scheme;
    let checked = service::check_old_password(&found, old_password, scheme)
        .await
        .map_err(|e| password_error(e, &user))?;
    if checked == OldPassword::Refused {
        attempt.failed(&state).await;
        return Err(authentication_failed());
    }
    attempt.succeeded(&state).await;
    if checked == OldPassword::ManagedExternally {
        return Err(ApiError::api(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "Unable to update externally managed password for user : \"{}\"",
                *user
            ),
            "password-managed-externally",
            json!({ "uuid": user.text() }),
            Some(RESOURCE),
        ));
    }
    let sessions = service::set_password(&state.storage, &found, new_password, scheme)
        .await
        .map_err(|e| password_error(e, &user))?;
    log::info!(
        "password of user {} changed; {sessions} session(s) deleted",
        *user
    );
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn defaults_of_an_empty_body() {
        let f = validate_user_fields(&Map::new()).unwrap();
        assert_eq!(
            f,
            UserFields {
                username: None,
                firstname: None,
                lastname: None,
                purpose: "user".into(),
                authentication_method: "default".into(),
                enabled: true,
            }
        );
        let f = validate_user_fields(&obj(json!({"purpose": "internal"}))).unwrap();
        assert_eq!(f.authentication_method, "native");
        let f = validate_user_fields(&obj(json!({"purpose": "external_api"}))).unwrap();
        assert_eq!(f.authentication_method, "native");
    }

    #[test]
    fn first_failing_field_in_declared_order() {
        let e = validate_post(&obj(json!({"email_address": "x", "username": ""}))).unwrap_err();
        assert_eq!(e.field.as_str(), "username");
        assert_eq!(e.message, "Length must be between 1 and 256.");
        assert_eq!(e.constraint, json!({"min": 1, "max": 256}));
        let e = validate_post(&obj(json!({"purpose": 1, "enabled": "x"}))).unwrap_err();
        assert_eq!((e.field.as_str(), e.constraint_id), ("purpose", "type"));
        let e = validate_post(&obj(json!({"purpose": "boss"}))).unwrap_err();
        assert_eq!(e.message, "Must be one of: user, internal, external_api.");
        assert_eq!(e.constraint_id, "enum");
        let e = validate_post(&obj(json!({"enabled": null}))).unwrap_err();
        assert_eq!((e.field.as_str(), e.constraint_id), ("enabled", "not_null"));
        let e = validate_post(&obj(json!({"authentication_method": false}))).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.constraint_id),
            ("authentication_method", "type")
        );
        let e = validate_post(&obj(json!({"uuid": "nope"}))).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("uuid", "Not a valid UUID.")
        );
        let e = validate_post(&obj(json!({"password": ""}))).unwrap_err();
        assert_eq!(e.message, "Shorter than minimum length 1.");
        assert_eq!(e.constraint, json!({"min": 1, "max": null}));
        let e = validate_post(&obj(json!({"email_address": 42}))).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.constraint_id, e.constraint),
            ("email_address", "type", json!("email"))
        );
        let e = validate_post(&obj(json!({"firstname": "a\u{0}b"}))).unwrap_err();
        assert_eq!(e.field.as_str(), "firstname");
    }

    #[test]
    fn accepted_values() {
        let p = validate_post(&obj(json!({
            "uuid": "{FCF9724A15AA4DC5AF3CA9ACDB6A2AB9}",
            "username": "a".repeat(256),
            "enabled": "off",
            "password": "x",
            "email_address": null,
        })))
        .unwrap();
        assert_eq!(
            p.uuid.as_deref(),
            Some("fcf9724a-15aa-4dc5-af3c-a9acdb6a2ab9")
        );
        assert!(!p.fields.enabled);
        assert_eq!(p.email_address, None);
        for (enabled, expected) in [(json!(1), true), (json!(0.0), false)] {
            let f = validate_user_fields(&obj(json!({ "enabled": enabled }))).unwrap();
            assert_eq!(f.enabled, expected);
        }
        for bad in [json!(2), json!([])] {
            let e = validate_user_fields(&obj(json!({ "enabled": bad }))).unwrap_err();
            assert_eq!((e.field.as_str(), e.constraint_id), ("enabled", "type"));
        }
        let p = validate_post(&obj(json!({
            "uuid": "urn:uuid:FCF9724A-15aa-4dc5-af3c-a9acdb6a2ab9",
        })))
        .unwrap();
        assert_eq!(
            p.uuid.as_deref(),
            Some("fcf9724a-15aa-4dc5-af3c-a9acdb6a2ab9")
        );
        // NUL makes a string invalid before its length is checked.
        let long = format!("{}\u{0}", "a".repeat(300));
        let e = validate_post(&obj(json!({ "username": long }))).unwrap_err();
        assert_eq!((e.field.as_str(), e.constraint_id), ("username", "type"));
        let e =
            validate_password_change(&obj(json!({"old_password": "\u{0}", "new_password": ""})))
                .unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.constraint_id),
            ("old_password", "type")
        );
    }

    #[test]
    fn password_change_body() {
        let e = validate_password_change(&obj(json!({"new_password": "x"}))).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.constraint_id),
            ("old_password", "required")
        );
        let e = validate_password_change(&obj(json!({"old_password": "x", "new_password": null})))
            .unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.constraint_id),
            ("new_password", "not_null")
        );
        let e = validate_password_change(&obj(json!({"old_password": "", "new_password": "y"})))
            .unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.constraint_id),
            ("old_password", "length")
        );
        assert_eq!(
            validate_password_change(&obj(json!({"old_password": "x", "new_password": "y"})))
                .unwrap(),
            ("x".to_string(), "y".to_string())
        );
    }

    #[test]
    fn bodies() {
        assert!(body_object(b"").is_err());
        assert!(body_object(b"null").unwrap().is_empty());
        assert!(body_object(b"0").unwrap().is_empty());
        assert!(body_object(b"\"\"").unwrap().is_empty());
        assert_eq!(
            body_object(b"[1]").unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            body_object(b"\"x\"").unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
    }
}
