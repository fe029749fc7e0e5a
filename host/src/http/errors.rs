//! The original's error body shapes (spec core §0.1).

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::{json, Value};

fn epoch_now() -> f64 {
    wazo_auth_core::tokens::now()
}

/// Shape A, "token-service" errors: `{"reason": [msg], "timestamp": [t], "status_code": n}`.
pub fn token_error(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(json!({
        "reason": [message.into()],
        "timestamp": [epoch_now()],
        "status_code": status.as_u16(),
    }))
}

/// Shape B, API exceptions: `{"message", "error_id", "details", "timestamp"[, "resource"]}`.
pub fn api_error(
    status: StatusCode,
    message: impl Into<Value>,
    error_id: &str,
    details: Value,
    resource: Option<&str>,
) -> HttpResponse {
    let mut body = json!({
        "message": message.into(),
        "error_id": error_id,
        "details": details,
        "timestamp": epoch_now(),
    });
    if let Some(r) = resource {
        body["resource"] = Value::from(r);
    }
    HttpResponse::build(status).json(body)
}

/// `400 invalid-data` for the first failing field of a body (spec management §1.4):
/// `details = {field: {message, constraint_id, constraint}}`.
pub fn invalid_data(
    resource: &str,
    field: &str,
    message: &str,
    constraint_id: &str,
    constraint: Value,
) -> HttpResponse {
    let mut detail = json!({
        "message": message,
        "constraint_id": constraint_id,
        "constraint": constraint,
    });
    // Nested fields are written "address.state": details {"address": {"state": {...}}}.
    let parts: Vec<&str> = field.split('.').collect();
    for part in parts[1..].iter().rev() {
        detail = json!({ *part: detail });
    }
    let top = parts[0];
    api_error(
        StatusCode::BAD_REQUEST,
        message,
        "invalid-data",
        json!({ top: detail }),
        Some(resource),
    )
}

/// `404 unknown-<kind>`, e.g. `unknown_resource("user", "users", uuid)`.
pub fn unknown_resource(kind: &str, resource: &str, id: &str) -> HttpResponse {
    api_error(
        StatusCode::NOT_FOUND,
        format!("No such {kind}: \"{id}\""),
        &format!("unknown-{kind}"),
        json!({ "uuid": id }),
        Some(resource),
    )
}

/// A 503 when the database fails (the reason is logged, never sent).
pub fn storage_unavailable(context: &str, e: impl std::fmt::Display) -> HttpResponse {
    log::error!("{context}: {e}");
    plain_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "The authentication database is unavailable; try again later",
    )
}

/// The router's 404 (no route matches, e.g. a path segment that must be a UUID is not one), with
/// a JSON body (the original answers an HTML page).
pub fn route_not_found() -> HttpResponse {
    plain_error(
        StatusCode::NOT_FOUND,
        "The requested URL was not found on the server. If you entered the URL manually please \
         check your spelling and try again.",
    )
}

/// Shape C, plain HTTP errors: `{"message": "..."}`.
pub fn plain_error(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "message": message.into() }))
}

/// A Python-style `repr` of a marshmallow error dict, as the original puts in `reason[0]`:
/// `{'field': ['message.']}`.
pub fn marshmallow_repr(errors: &[(String, String)]) -> String {
    let mut out = String::from("{");
    for (i, (field, msg)) in errors.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&format!("'{}': ['{}']", py_escape(field), py_escape(msg)));
    }
    out.push('}');
    out
}

fn py_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "\\'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_looks_like_python() {
        let r = marshmallow_repr(&[("expiration".into(), "Not a valid integer.".into())]);
        assert_eq!(r, "{'expiration': ['Not a valid integer.']}");
        let r = marshmallow_repr(&[("_schema".into(), "it's".into()), ("b".into(), "x".into())]);
        assert_eq!(r, "{'_schema': ['it\\'s'], 'b': ['x']}");
    }
}
