//! The original's error body shapes (spec core §0.1).

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::json;

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
