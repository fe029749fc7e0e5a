//! Identity providers (spec management §12): `/idp` lists the IdP types of the registry
//! ([`wazo_auth_core::idp::IdpTypes`], `native`, `default` and the registered ones), and
//! `/idp/{idp_type}/users[/{user_uuid}]` sets users' `authentication_method`. Each handler
//! extracts, calls one service of `wazo_auth_core::services::idp`, and renders.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use wazo_auth_core::ids::UserUuid;
use wazo_auth_core::services::idp::{self as service, IdpError};

use super::error::ApiError;
use super::extract::{decoded_param, Caller, Id, RawBody};
use super::routes::{acl, Router};
use super::validate;
use super::State;

const RESOURCE: &str = "idp";

pub fn routes(r: &mut Router) {
    r.resource("/idp").get(acl("auth.idp.read"), list);
    r.resource("/idp/{idp_type}/users")
        .put(acl("auth.idp.{idp_type}.users.update"), assign_many);
    r.resource("/idp/{idp_type}/users/{user_uuid}")
        .put(acl("auth.idp.{idp_type}.users.{user_uuid}.create"), assign)
        .delete(
            acl("auth.idp.{idp_type}.users.{user_uuid}.delete"),
            unassign,
        );
}

// ------------------------------------------------------------------------------------------------
// Errors
// ------------------------------------------------------------------------------------------------

fn unknown_idp_type(idp_type: &str) -> ApiError {
    ApiError::api(
        StatusCode::NOT_FOUND,
        format!("No such IDP type: \"{idp_type}\""),
        "unknown-idp-type",
        json!({ "idp_type": idp_type }),
        Some(RESOURCE),
    )
}

impl From<IdpError> for ApiError {
    fn from(e: IdpError) -> ApiError {
        match e {
            IdpError::UnknownUser(user) => ApiError::unknown("user", "users", &user),
            IdpError::Storage(e) => e.into(),
        }
    }
}

/// The `{idp_type}` of the path, when it is a registered IdP type (404 `unknown-idp-type`).
fn idp_type(state: &State, req: &HttpRequest) -> Result<String, ApiError> {
    let idp_type = decoded_param(req, "idp_type");
    if state.settings.idp_types.contains(&idp_type) {
        Ok(idp_type)
    } else {
        Err(unknown_idp_type(&idp_type))
    }
}

// ------------------------------------------------------------------------------------------------
// Body validation (IDPUsersSchema)
// ------------------------------------------------------------------------------------------------

/// A field error of the original's xivo fields: `{message, constraint_id, constraint}`.
fn field_error(message: &str, constraint_id: &str) -> Value {
    let constraint = if constraint_id == "type" {
        "string"
    } else {
        constraint_id
    };
    json!({"message": message, "constraint_id": constraint_id, "constraint": constraint})
}

/// A nested schema's "Invalid input type." (marshmallow's `_schema` error).
fn input_type() -> Value {
    json!({"_schema": ["Invalid input type."]})
}

/// Reads `{"users": [{"uuid": <string>}, ...]}` (marshmallow's `IDPUsersSchema`; other keys
/// ignored; `null` and the other Python-falsy bodies read as `{}`). The first error is the
/// marshmallow error dict of the original (`{"users": {"0": {"uuid": {...}}}}`), for a 400
/// `invalid-list-param`.
fn users_body(raw: &[u8]) -> Result<Vec<String>, ApiError> {
    let body = validate::decode(raw)?.ok_or_else(|| invalid(input_type()))?;
    users_field(&body).map_err(|e| invalid(json!({ "users": e })))
}

fn users_field(body: &Map<String, Value>) -> Result<Vec<String>, Value> {
    let items = match body.get("users") {
        None => return Err(field_error("Missing data for required field.", "required")),
        Some(Value::Null) => return Err(field_error("Field may not be null.", "not_null")),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(input_type()),
    };
    let mut uuids = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let uuid = match item {
            Value::Object(user) => match user.get("uuid") {
                None => Err(
                    json!({"uuid": field_error("Missing data for required field.", "required")}),
                ),
                Some(Value::Null) => {
                    Err(json!({"uuid": field_error("Field may not be null.", "not_null")}))
                }
                Some(Value::String(s)) if !s.contains('\0') => Ok(s.clone()),
                Some(_) => Err(json!({"uuid": field_error("Not a valid string.", "type")})),
            },
            _ => Err(input_type()),
        };
        uuids.push(uuid.map_err(|e| json!({ index.to_string(): e }))?);
    }
    Ok(uuids)
}

/// 400 `invalid-list-param`: the message is the error dict, the resource always `users`, as in
/// the original.
fn invalid(errors: Value) -> ApiError {
    ApiError::api(
        StatusCode::BAD_REQUEST,
        errors,
        "invalid-list-param",
        json!({}),
        Some("users"),
    )
}

// ------------------------------------------------------------------------------------------------
// Handlers
// ------------------------------------------------------------------------------------------------

/// `GET /idp`: the IdP types (unscoped).
async fn list(state: State, _caller: Caller) -> Result<HttpResponse, ApiError> {
    let names = state.settings.idp_types.names();
    Ok(HttpResponse::Ok().json(json!({
        "total": names.len(),
        "filtered": names.len(),
        "items": names,
    })))
}

/// `PUT /idp/{t}/users/{u}`: IdP type (404) → scoping tenant (401) → user visible (404) → the
/// user's method is `t` (idempotent) → 204.
async fn assign(
    state: State,
    req: HttpRequest,
    user: Id<UserUuid>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let idp_type = idp_type(&state, &req)?;
    let scope = caller.scope().await?;
    service::assign(&state.storage, &scope, *user, &idp_type).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /idp/{t}/users/{u}`: IdP type (404) → scoping tenant (401) → user visible (404) →
/// a user whose method is `t` goes back to `default`, any other is left alone → 204.
async fn unassign(
    state: State,
    req: HttpRequest,
    user: Id<UserUuid>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let idp_type = idp_type(&state, &req)?;
    let scope = caller.scope().await?;
    service::unassign(&state.storage, &scope, *user, &idp_type).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `PUT /idp/{t}/users`: IdP type (404) → scoping tenant (401) → body (400
/// `invalid-list-param`) → every user visible, in order (404 for the first that is not; then
/// nobody changes, where the original keeps the users before it) → 204.
async fn assign_many(
    state: State,
    req: HttpRequest,
    caller: Caller,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    let idp_type = idp_type(&state, &req)?;
    let scope = caller.scope().await?;
    let users = users_body(&body.read().await?)?;
    service::assign_many(&state.storage, &scope, &users, &idp_type).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(raw: &str) -> Value {
        let e = users_body(raw.as_bytes()).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{raw}");
        let body = e.body();
        assert_eq!(body["error_id"], "invalid-list-param", "{raw}");
        assert_eq!(body["resource"], "users", "{raw}");
        assert_eq!(body["details"], json!({}), "{raw}");
        body["message"].clone()
    }

    #[test]
    fn users_bodies() {
        assert_eq!(
            users_body(br#"{"users": [{"uuid": "a"}, {"uuid": "b", "x": 1}], "y": 2}"#).unwrap(),
            ["a", "b"]
        );
        assert!(users_body(br#"{"users": []}"#).unwrap().is_empty());
        assert_eq!(message("[1]"), json!({"_schema": ["Invalid input type."]}));
        assert_eq!(message("{}")["users"]["constraint_id"], "required");
        assert_eq!(message("null")["users"]["constraint_id"], "required");
        assert_eq!(
            message(r#"{"users": null}"#)["users"]["constraint_id"],
            "not_null"
        );
        assert_eq!(
            message(r#"{"users": {"uuid": "a"}}"#),
            json!({"users": {"_schema": ["Invalid input type."]}})
        );
        assert_eq!(
            message(r#"{"users": [{"uuid": "a"}, "b"]}"#),
            json!({"users": {"1": {"_schema": ["Invalid input type."]}}})
        );
        assert_eq!(
            message(r#"{"users": [{}]}"#)["users"]["0"]["uuid"]["constraint_id"],
            "required"
        );
        assert_eq!(
            message(r#"{"users": [{"uuid": 3}]}"#)["users"]["0"]["uuid"],
            json!({"message": "Not a valid string.", "constraint_id": "type", "constraint": "string"})
        );
        assert!(users_body(b"").unwrap_err().body()["message"]
            .as_str()
            .unwrap()
            .starts_with("Failed to decode JSON object"));
    }
}
