//! Users (spec management §2, §4 password change; core §2.4, §2.5, §3.4): `/users`,
//! `/users/{user_uuid}` and `/users/{user_uuid}/password`.

use actix_web::http::StatusCode;
use actix_web::{guard, web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use tokio_postgres::IsolationLevel;
use wazo_auth_core::password;
use wazo_auth_core::services::users::{self as user_services, CreateUserError, UserCreation};
use wazo_auth_core::users::{
    self, is_external_method, UserOrder, UserQuery, UserUpdate, WriteError, PURPOSES,
};

use super::auth::{authorize, required_acl, scoping_tenant, visible_tenants};
use super::errors::{
    api_error, invalid_data, plain_error, storage_unavailable, token_error, unknown_resource,
};
use super::listing;
use super::request::{client_addr, path_uuid, read_body};
use super::State;

const RESOURCE: &str = "users";

type Reply = Result<HttpResponse, HttpResponse>;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/users")
            .route(web::get().to(list))
            .route(web::head().to(list))
            .route(web::post().to(create))
            .default_service(web::to(super::method_not_allowed)),
    )
    // The original's `uuid` path converter: a segment that is not a UUID matches no route (the
    // global 404), and leaves single-segment routes such as `/users/register` to their owners.
    .service(
        web::resource("/users/{user_uuid}")
            .guard(guard::fn_guard(|ctx| {
                user_segment_is_uuid(ctx.head().uri.path())
            }))
            .route(web::get().to(get))
            .route(web::head().to(get))
            .route(web::put().to(update))
            .route(web::delete().to(delete))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/users/{user_uuid}/password")
            .guard(guard::fn_guard(|ctx| {
                user_segment_is_uuid(ctx.head().uri.path())
            }))
            .route(web::put().to(change_password))
            .default_service(web::to(super::method_not_allowed)),
    );
}

/// Whether the segment after `/users/` is a UUID.
fn user_segment_is_uuid(path: &str) -> bool {
    let Some(idx) = path.find("/users/") else {
        return false;
    };
    let rest = &path[idx + "/users/".len()..];
    let segment = rest.split('/').next().unwrap_or("");
    path_uuid(segment).is_some()
}

/// The canonical (lower-case, hyphenated) user uuid of the path.
fn path_user(req: &HttpRequest) -> Result<String, HttpResponse> {
    req.match_info()
        .get("user_uuid")
        .and_then(path_uuid)
        .map(|u| u.hyphenated().to_string())
        .ok_or_else(super::errors::route_not_found)
}

fn flatten(r: Reply) -> HttpResponse {
    match r {
        Ok(r) | Err(r) => r,
    }
}

fn db_error(e: impl std::fmt::Display) -> HttpResponse {
    storage_unavailable("user storage", e)
}

fn internal_error(context: &str, e: impl std::fmt::Display) -> HttpResponse {
    log::error!("{context}: {e}");
    plain_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
}

fn unknown_user(uuid: &str) -> HttpResponse {
    unknown_resource("user", RESOURCE, uuid)
}

fn write_error(e: WriteError) -> HttpResponse {
    match e {
        WriteError::Conflict { field, value } => {
            let message = if field == "uuid" {
                format!("The uuid \"{value}\" is already used")
            } else {
                format!("The login \"{value}\" is already used")
            };
            api_error(
                StatusCode::CONFLICT,
                "Conflict detected",
                "conflict",
                json!({ field: {"constraint_id": "unique", "message": message} }),
                Some(RESOURCE),
            )
        }
        WriteError::Storage(e) => db_error(e),
    }
}

// ------------------------------------------------------------------------------------------------
// Body validation (marshmallow schemas of the original, xivo field wrappers)
// ------------------------------------------------------------------------------------------------

/// The first failing field of a body.
#[derive(Debug, PartialEq)]
struct Invalid {
    field: &'static str,
    message: String,
    constraint_id: &'static str,
    constraint: Value,
}

impl Invalid {
    fn new(
        field: &'static str,
        message: impl Into<String>,
        constraint_id: &'static str,
        constraint: Value,
    ) -> Invalid {
        Invalid {
            field,
            message: message.into(),
            constraint_id,
            constraint,
        }
    }

    fn not_null(field: &'static str) -> Invalid {
        Invalid::new(
            field,
            "Field may not be null.",
            "not_null",
            json!("not_null"),
        )
    }

    fn required(field: &'static str) -> Invalid {
        Invalid::new(
            field,
            "Missing data for required field.",
            "required",
            json!("required"),
        )
    }

    fn not_string(field: &'static str) -> Invalid {
        Invalid::new(field, "Not a valid string.", "type", json!("string"))
    }

    fn response(self) -> HttpResponse {
        invalid_data(
            RESOURCE,
            self.field,
            &self.message,
            self.constraint_id,
            self.constraint,
        )
    }
}

/// Reads a JSON body as the original: undecodable → 400 `{"message"}`; Python-falsy values
/// (`null`, `false`, `0`, `""`, `[]`, `{}`) → `{}`; any other non-object → 400 invalid-data with
/// `details = {"_schema": {"message": "Invalid input type."}}`.
fn body_object(body: &[u8]) -> Result<Map<String, Value>, HttpResponse> {
    super::request::decode_json_body(body)?
        .ok_or_else(|| super::request::invalid_input_type(RESOURCE))
}

/// A field as present in the body.
enum Raw<'a> {
    Missing,
    Null,
    Value(&'a Value),
}

fn raw<'a>(body: &'a Map<String, Value>, name: &str) -> Raw<'a> {
    match body.get(name) {
        None => Raw::Missing,
        Some(Value::Null) => Raw::Null,
        Some(v) => Raw::Value(v),
    }
}

/// A string value (PostgreSQL text cannot hold NUL: such a string is not a valid string here).
fn as_string(field: &'static str, v: &Value) -> Result<String, Invalid> {
    match v {
        Value::String(s) if !s.contains('\0') => Ok(s.clone()),
        _ => Err(Invalid::not_string(field)),
    }
}

/// marshmallow's `Length(min, max)` on a string (length in code points).
fn check_length(
    field: &'static str,
    s: &str,
    min: usize,
    max: Option<usize>,
) -> Result<(), Invalid> {
    let n = s.chars().count();
    let too_long = max.is_some_and(|m| n > m);
    if n >= min && !too_long {
        return Ok(());
    }
    let message = match max {
        Some(m) => format!("Length must be between {min} and {m}."),
        None => format!("Shorter than minimum length {min}."),
    };
    Err(Invalid::new(
        field,
        message,
        "length",
        json!({"min": min, "max": max}),
    ))
}

/// A nullable string field: `Ok(None)` when missing or null.
fn nullable_string(
    body: &Map<String, Value>,
    field: &'static str,
    length: Option<(usize, Option<usize>)>,
) -> Result<Option<String>, Invalid> {
    match raw(body, field) {
        Raw::Missing | Raw::Null => Ok(None),
        Raw::Value(v) => {
            let s = as_string(field, v)?;
            if let Some((min, max)) = length {
                check_length(field, &s, min, max)?;
            }
            Ok(Some(s))
        }
    }
}

/// marshmallow's `Boolean`: JSON booleans, 0/1 and its truthy/falsy strings.
fn parse_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => {
            let x = n.as_f64()?;
            if x == 1.0 {
                Some(true)
            } else if x == 0.0 {
                Some(false)
            } else {
                None
            }
        }
        Value::String(s) => match s.as_str() {
            "t" | "T" | "true" | "True" | "TRUE" | "on" | "On" | "ON" | "y" | "Y" | "yes"
            | "Yes" | "YES" | "1" => Some(true),
            "f" | "F" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" | "n" | "N" | "no"
            | "No" | "NO" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Python's `uuid.UUID(str)`: `urn:`/`uuid:` prefixes, braces and hyphens are ignored, 32 hex
/// digits remain. Returns the canonical form.
fn parse_py_uuid(s: &str) -> Option<String> {
    let h = s.replace("urn:", "").replace("uuid:", "");
    let h = h.trim_matches(|c| c == '{' || c == '}').replace('-', "");
    if h.len() != 32 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    uuid::Uuid::parse_str(&h)
        .ok()
        .map(|u| u.hyphenated().to_string())
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
    let username = nullable_string(body, "username", Some((1, Some(256))))?;
    let firstname = nullable_string(body, "firstname", None)?;
    let lastname = nullable_string(body, "lastname", None)?;
    let purpose = match raw(body, "purpose") {
        Raw::Missing => "user".to_string(),
        Raw::Null => return Err(Invalid::not_null("purpose")),
        Raw::Value(v) => {
            let s = as_string("purpose", v)?;
            if !PURPOSES.contains(&s.as_str()) {
                return Err(Invalid::new(
                    "purpose",
                    format!("Must be one of: {}.", PURPOSES.join(", ")),
                    "enum",
                    json!({ "choices": PURPOSES }),
                ));
            }
            s
        }
    };
    let authentication_method = match raw(body, "authentication_method") {
        // The original's pre-load default, from the purpose as sent.
        Raw::Missing => {
            if purpose == "internal" || purpose == "external_api" {
                "native".to_string()
            } else {
                "default".to_string()
            }
        }
        Raw::Null => return Err(Invalid::not_null("authentication_method")),
        Raw::Value(v) => as_string("authentication_method", v)?,
    };
    let enabled = match raw(body, "enabled") {
        Raw::Missing => true,
        Raw::Null => return Err(Invalid::not_null("enabled")),
        Raw::Value(v) => parse_bool(v).ok_or_else(|| {
            Invalid::new("enabled", "Not a valid boolean.", "type", json!("boolean"))
        })?,
    };
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
    let uuid = match raw(body, "uuid") {
        Raw::Missing => None,
        Raw::Null => return Err(Invalid::not_null("uuid")),
        Raw::Value(v) => Some(
            v.as_str()
                .and_then(parse_py_uuid)
                .ok_or_else(|| Invalid::new("uuid", "Not a valid UUID.", "type", json!("uuid")))?,
        ),
    };
    let password = nullable_string(body, "password", Some((1, None)))?;
    let email_address = match raw(body, "email_address") {
        Raw::Missing | Raw::Null => None,
        Raw::Value(v) => {
            let invalid = || {
                Invalid::new(
                    "email_address",
                    "Not a valid email address.",
                    "type",
                    json!("email"),
                )
            };
            match v {
                Value::String(s) if !s.contains('\0') && users::is_valid_email(s) => {
                    Some(s.clone())
                }
                _ => return Err(invalid()),
            }
        }
    };
    Ok(PostBody {
        fields,
        uuid,
        password,
        email_address,
    })
}

/// Decodes and validates a POST (`post`) or PUT body as `create` / `update` do, short of the
/// database and the configured authentication methods (for the fuzz targets, through
/// [`super::body_check`]).
pub(super) fn check_body(body: &[u8], post: bool) -> Result<(), HttpResponse> {
    let body = body_object(body)?;
    let checked = if post {
        validate_post(&body).map(drop)
    } else {
        validate_user_fields(&body).map(drop)
    };
    checked.map_err(Invalid::response)
}

/// The password-change body: both fields required, non-null strings of at least one character.
fn validate_password_change(body: &Map<String, Value>) -> Result<(String, String), Invalid> {
    let mut out = Vec::new();
    for field in ["old_password", "new_password"] {
        let s = match raw(body, field) {
            Raw::Missing => return Err(Invalid::required(field)),
            Raw::Null => return Err(Invalid::not_null(field)),
            Raw::Value(v) => as_string(field, v)?,
        };
        check_length(field, &s, 1, None)?;
        out.push(s);
    }
    let new = out.pop().unwrap_or_default();
    let old = out.pop().unwrap_or_default();
    Ok((old, new))
}

/// 400 when the method is not `native`, `default` or an enabled IdP.
fn check_auth_method(state: &State, method: &str) -> Result<(), HttpResponse> {
    if state.settings.auth_methods.iter().any(|m| m == method) {
        return Ok(());
    }
    Err(api_error(
        StatusCode::BAD_REQUEST,
        format!("Invalid authentication method {method}"),
        "invalid-data",
        json!({ "authentication_method": method }),
        Some(RESOURCE),
    ))
}

async fn read_object(
    state: &State,
    payload: web::Payload,
) -> Result<Map<String, Value>, HttpResponse> {
    let bytes = read_body(payload, state.settings.max_body_bytes).await?;
    body_object(&bytes)
}

/// Runs a CPU-heavy password function off the async executor.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, HttpResponse> {
    web::block(f)
        .await
        .map_err(|e| internal_error("password hashing task failed", e))
}

// ------------------------------------------------------------------------------------------------
// Handlers
// ------------------------------------------------------------------------------------------------

async fn list(state: State, req: HttpRequest) -> HttpResponse {
    flatten(list_inner(state, req).await)
}

async fn list_inner(state: State, req: HttpRequest) -> Reply {
    let caller = authorize(&state, &req, "auth.users.read").await?;
    let tenant = scoping_tenant(&state, &req, &caller).await?;
    let params = listing::parse(&req, &["username", "firstname", "lastname"], "username")?;
    let tenants = if params.recurse {
        visible_tenants(&state, &tenant).await?
    } else {
        vec![tenant]
    };
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
        ..UserQuery::new(tenants)
    };
    let mut client = state.storage.client().await.map_err(db_error)?;
    let tx = client
        .build_transaction()
        .read_only(true)
        .isolation_level(IsolationLevel::RepeatableRead)
        .start()
        .await
        .map_err(db_error)?;
    let page = users::list_users(&tx, &query).await.map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    let items: Vec<Value> = page.items.iter().map(users::User::to_json).collect();
    Ok(HttpResponse::Ok().json(json!({
        "total": page.total,
        "filtered": page.filtered,
        "items": items,
    })))
}

async fn create(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    flatten(create_inner(state, req, payload).await)
}

async fn create_inner(state: State, req: HttpRequest, payload: web::Payload) -> Reply {
    let caller = authorize(&state, &req, "auth.users.create").await?;
    let tenant = scoping_tenant(&state, &req, &caller).await?;
    let body = read_object(&state, payload).await?;
    let post = validate_post(&body).map_err(Invalid::response)?;
    check_auth_method(&state, &post.fields.authentication_method)?;
    let creation = UserCreation {
        uuid: post.uuid,
        username: post.fields.username,
        firstname: post.fields.firstname,
        lastname: post.fields.lastname,
        purpose: post.fields.purpose,
        enabled: post.fields.enabled,
        tenant_uuid: tenant,
        authentication_method: post.fields.authentication_method,
        password: post.password,
        email_address: post.email_address,
        email_confirmed: true,
    };
    let user = user_services::create_user(&state.storage, state.settings.password_scheme, creation)
        .await
        .map_err(|e| match e {
            CreateUserError::Conflict { field, value } => {
                write_error(WriteError::Conflict { field, value })
            }
            CreateUserError::Hashing(e) => internal_error("password hashing task failed", e),
            CreateUserError::Storage(e) => db_error(e),
        })?;
    log::info!("user {} created in tenant {}", user.uuid, user.tenant_uuid);
    Ok(HttpResponse::Ok().json(user.to_json()))
}

async fn get(state: State, req: HttpRequest) -> HttpResponse {
    flatten(get_inner(state, req).await)
}

async fn get_inner(state: State, req: HttpRequest) -> Reply {
    let uuid = path_user(&req)?;
    let acl = required_acl("auth.users.{user_uuid}.read", &[("user_uuid", &uuid)]);
    let caller = authorize(&state, &req, &acl).await?;
    let tenant = scoping_tenant(&state, &req, &caller).await?;
    let visible = visible_tenants(&state, &tenant).await?;
    let client = state.storage.client().await.map_err(db_error)?;
    let user = users::get_user(&client, &uuid).await.map_err(db_error)?;
    match user {
        Some(u) if visible.contains(&u.tenant_uuid) => Ok(HttpResponse::Ok().json(u.to_json())),
        _ => Err(unknown_user(&uuid)),
    }
}

async fn update(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    flatten(update_inner(state, req, payload).await)
}

async fn update_inner(state: State, req: HttpRequest, payload: web::Payload) -> Reply {
    let uuid = path_user(&req)?;
    let acl = required_acl("auth.users.{user_uuid}.update", &[("user_uuid", &uuid)]);
    let caller = authorize(&state, &req, &acl).await?;
    let tenant = scoping_tenant(&state, &req, &caller).await?;
    let body = read_object(&state, payload).await?;
    let fields = validate_user_fields(&body).map_err(Invalid::response)?;
    check_auth_method(&state, &fields.authentication_method)?;
    let visible = visible_tenants(&state, &tenant).await?;
    let update = UserUpdate {
        username: fields.username,
        firstname: fields.firstname,
        lastname: fields.lastname,
        purpose: fields.purpose,
        enabled: fields.enabled,
        authentication_method: fields.authentication_method,
    };
    let mut client = state.storage.client().await.map_err(db_error)?;
    let tx = client.transaction().await.map_err(db_error)?;
    if !users::user_in_tenants(&tx, &uuid, &visible)
        .await
        .map_err(db_error)?
    {
        return Err(unknown_user(&uuid));
    }
    if !users::update_user(&tx, &uuid, &update)
        .await
        .map_err(write_error)?
    {
        return Err(unknown_user(&uuid));
    }
    if !update.enabled {
        let sessions = users::delete_user_sessions(&tx, &uuid)
            .await
            .map_err(db_error)?;
        if !sessions.is_empty() {
            log::info!(
                "user {uuid} disabled: {} session(s) deleted",
                sessions.len()
            );
        }
    }
    let user = users::get_user(&tx, &uuid).await.map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    match user {
        Some(u) => Ok(HttpResponse::Ok().json(u.to_json())),
        None => Err(unknown_user(&uuid)),
    }
}

async fn delete(state: State, req: HttpRequest) -> HttpResponse {
    flatten(delete_inner(state, req).await)
}

async fn delete_inner(state: State, req: HttpRequest) -> Reply {
    let uuid = path_user(&req)?;
    let acl = required_acl("auth.users.{user_uuid}.delete", &[("user_uuid", &uuid)]);
    let caller = authorize(&state, &req, &acl).await?;
    let tenant = scoping_tenant(&state, &req, &caller).await?;
    let visible = visible_tenants(&state, &tenant).await?;
    let mut client = state.storage.client().await.map_err(db_error)?;
    let tx = client.transaction().await.map_err(db_error)?;
    if !users::user_in_tenants(&tx, &uuid, &visible)
        .await
        .map_err(db_error)?
    {
        return Err(unknown_user(&uuid));
    }
    // Unlike the original, the sessions (and tokens) of a deleted user go with it.
    users::delete_user_sessions(&tx, &uuid)
        .await
        .map_err(db_error)?;
    if !users::delete_user(&tx, &uuid).await.map_err(db_error)? {
        return Err(unknown_user(&uuid));
    }
    tx.commit().await.map_err(db_error)?;
    log::info!("user {uuid} deleted");
    Ok(HttpResponse::NoContent().finish())
}

async fn change_password(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    flatten(change_password_inner(state, req, payload).await)
}

fn authentication_failed() -> HttpResponse {
    token_error(StatusCode::UNAUTHORIZED, "Authentication Failed")
}

async fn change_password_inner(state: State, req: HttpRequest, payload: web::Payload) -> Reply {
    let uuid = path_user(&req)?;
    let acl = required_acl(
        "auth.users.{user_uuid}.password.update",
        &[("user_uuid", &uuid)],
    );
    // Unscoped, as the original: no Wazo-Tenant check, the user may be in any tenant.
    authorize(&state, &req, &acl).await?;
    let body = read_object(&state, payload).await?;
    let (old_password, new_password) =
        validate_password_change(&body).map_err(Invalid::response)?;

    let client = state.storage.client().await.map_err(db_error)?;
    let Some(user) = users::get_user(&client, &uuid).await.map_err(db_error)? else {
        return Err(unknown_user(&uuid));
    };
    let Some(login) = user.login() else {
        log::warn!("user {uuid} has no login (username or main confirmed e-mail)");
        return Err(authentication_failed());
    };
    // As the original, the old password is checked through the login look-up (enabled users
    // only, e-mail logins need a confirmed address).
    let record = users::find_enabled_user_by_login(&client, login)
        .await
        .map_err(db_error)?
        .filter(|r| r.uuid == uuid);
    // Released first: the throttle check may need a connection of its own.
    drop(client);
    // The old password is a password guess like a login's: under the same throttle (better
    // than the original, which let a token holder guess at hashing speed).
    let remote_addr = client_addr(&req, state.settings.num_proxies);
    let attempt = super::throttle::Attempt::start(
        &state,
        &req,
        &remote_addr,
        Some(login),
        "PUT /users/{uuid}/password",
    )
    .await?;
    let stored = record.as_ref().and_then(|r| r.password.clone());
    let scheme = state.settings.password_scheme;
    let ok = blocking(move || password::verify(&old_password, stored.as_ref(), scheme)).await?;
    let Some(record) = record.filter(|_| ok) else {
        attempt.failed(&state).await;
        return Err(authentication_failed());
    };
    attempt.succeeded(&state).await;
    if is_external_method(record.effective_authentication_method()) {
        return Err(api_error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("Unable to update externally managed password for user : \"{uuid}\""),
            "password-managed-externally",
            json!({ "uuid": uuid }),
            Some(RESOURCE),
        ));
    }
    let new_stored = blocking(move || password::hash(&new_password, scheme)).await?;
    let mut client = state.storage.client().await.map_err(db_error)?;
    let tx = client.transaction().await.map_err(db_error)?;
    users::set_password(&tx, &uuid, &new_stored)
        .await
        .map_err(db_error)?;
    let sessions = users::delete_user_sessions(&tx, &uuid)
        .await
        .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    log::info!(
        "password of user {uuid} changed; {} session(s) deleted",
        sessions.len()
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
    fn user_segments() {
        assert!(user_segment_is_uuid(
            "/0.1/users/0123abcd-1111-2222-3333-444455556666"
        ));
        assert!(user_segment_is_uuid(
            "/0.1/users/0123abcd-1111-2222-3333-444455556666/password"
        ));
        assert!(!user_segment_is_uuid("/0.1/users/register"));
        assert!(!user_segment_is_uuid("/0.1/users/me"));
        assert!(!user_segment_is_uuid("/0.1/users/"));
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
        assert_eq!(e.field, "username");
        assert_eq!(e.message, "Length must be between 1 and 256.");
        assert_eq!(e.constraint, json!({"min": 1, "max": 256}));
        let e = validate_post(&obj(json!({"purpose": 1, "enabled": "x"}))).unwrap_err();
        assert_eq!((e.field, e.constraint_id), ("purpose", "type"));
        let e = validate_post(&obj(json!({"purpose": "boss"}))).unwrap_err();
        assert_eq!(e.message, "Must be one of: user, internal, external_api.");
        assert_eq!(e.constraint_id, "enum");
        let e = validate_post(&obj(json!({"enabled": null}))).unwrap_err();
        assert_eq!((e.field, e.constraint_id), ("enabled", "not_null"));
        let e = validate_post(&obj(json!({"authentication_method": false}))).unwrap_err();
        assert_eq!(
            (e.field, e.constraint_id),
            ("authentication_method", "type")
        );
        let e = validate_post(&obj(json!({"uuid": "nope"}))).unwrap_err();
        assert_eq!((e.field, e.message.as_str()), ("uuid", "Not a valid UUID."));
        let e = validate_post(&obj(json!({"password": ""}))).unwrap_err();
        assert_eq!(e.message, "Shorter than minimum length 1.");
        assert_eq!(e.constraint, json!({"min": 1, "max": null}));
        let e = validate_post(&obj(json!({"email_address": 42}))).unwrap_err();
        assert_eq!(
            (e.field, e.constraint_id, e.constraint),
            ("email_address", "type", json!("email"))
        );
        let e = validate_post(&obj(json!({"firstname": "a\u{0}b"}))).unwrap_err();
        assert_eq!(e.field, "firstname");
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
        assert_eq!(parse_bool(&json!(1)), Some(true));
        assert_eq!(parse_bool(&json!(0.0)), Some(false));
        assert_eq!(parse_bool(&json!(2)), None);
        assert_eq!(parse_bool(&json!([])), None);
        assert_eq!(
            parse_py_uuid("urn:uuid:fcf9724a-15aa-4dc5-af3c-a9acdb6a2ab9").as_deref(),
            Some("fcf9724a-15aa-4dc5-af3c-a9acdb6a2ab9")
        );
    }

    #[test]
    fn password_change_body() {
        let e = validate_password_change(&obj(json!({"new_password": "x"}))).unwrap_err();
        assert_eq!((e.field, e.constraint_id), ("old_password", "required"));
        let e = validate_password_change(&obj(json!({"old_password": "x", "new_password": null})))
            .unwrap_err();
        assert_eq!((e.field, e.constraint_id), ("new_password", "not_null"));
        let e = validate_password_change(&obj(json!({"old_password": "", "new_password": "y"})))
            .unwrap_err();
        assert_eq!((e.field, e.constraint_id), ("old_password", "length"));
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
