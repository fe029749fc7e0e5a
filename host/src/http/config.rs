//! `/config` (spec management §15): the effective configuration, secrets redacted, and the
//! run-time switches (`debug`, `profiling_enabled`) changed by a JSON-Patch document. Both
//! routes need a token of the top tenant, as in the original. The configuration itself lives in
//! [`crate::config::LiveConfig`].

use actix_web::HttpResponse;
use serde_json::{Map, Value};

use super::error::ApiError;
use super::extract::{Caller, RawBody};
use super::routes::{acl, Router};
use super::validate::{self, Invalid, Presence};
use super::State;
use crate::config::Switch;

const RESOURCE: &str = "config";
/// The only JSON-Patch operation the original accepts.
const REPLACE: &str = "replace";

pub fn routes(r: &mut Router) {
    r.resource("/config")
        .get(acl("auth.config.read"), get)
        .patch(acl("auth.config.update"), patch);
}

/// `GET /config`: ACL (401) → the token's tenant is the top tenant (401) → 200, the
/// configuration with its secrets redacted (the original shows them).
async fn get(state: State, caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.require_top_tenant().await?;
    Ok(HttpResponse::Ok().json(state.config.current()))
}

/// `PATCH /config`: ACL (401) → top tenant (401) → the patch document (400, where the original
/// answers 500 to anything but an empty body) → every operation applied, in order → 200, the
/// configuration as `GET` shows it.
async fn patch(state: State, caller: Caller, body: RawBody) -> Result<HttpResponse, ApiError> {
    caller.require_top_tenant().await?;
    let changes = patch_document(&body.read().await?)?;
    Ok(HttpResponse::Ok().json(state.config.apply(&changes)))
}

/// Reads a JSON-Patch document as the original's `ConfigPatchSchema(many=True)`: a list of
/// `{"op": "replace", "path": "/debug" | "/profiling_enabled", "value": <boolean>}` (marshmallow's
/// `Boolean`; other members ignored, as RFC 6902 asks). The first error answers 400
/// `invalid-data`, the failing field under its operation's index (`{"0": {"value": {...}}}`);
/// a document that is not a list is `_schema` "Invalid input type.".
fn patch_document(raw: &[u8]) -> Result<Vec<(Switch, bool)>, ApiError> {
    let Value::Array(operations) = validate::json(raw)? else {
        return Err(ApiError::invalid_input_type(RESOURCE));
    };
    operations
        .iter()
        .enumerate()
        .map(|(index, op)| operation(index, op).map_err(|e| e.into_error(RESOURCE)))
        .collect()
}

fn operation(index: usize, op: &Value) -> Result<(Switch, bool), Invalid> {
    let at = index.to_string();
    let Value::Object(op) = op else {
        return Err(Invalid::input_type(&at));
    };
    operation_fields(op).map_err(|e| e.under(&at))
}

fn operation_fields(op: &Map<String, Value>) -> Result<(Switch, bool), Invalid> {
    let name = validate::string(op, "op", Presence::Required, 0, None)?.unwrap_or_default();
    if name != REPLACE {
        return Err(Invalid::equal("op", REPLACE));
    }
    let path = validate::string(op, "path", Presence::Required, 0, None)?.unwrap_or_default();
    let Some(switch) = Switch::at(&path) else {
        let paths: Vec<&str> = Switch::PATHS.iter().map(|(p, _)| *p).collect();
        return Err(Invalid::one_of("path", &paths));
    };
    let value = validate::boolean(op, "value", Presence::Required)?.unwrap_or_default();
    Ok((switch, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::StatusCode;
    use serde_json::json;

    fn error(raw: &str) -> Value {
        let e = patch_document(raw.as_bytes()).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{raw}");
        e.body()
    }

    #[test]
    fn patch_documents() {
        assert_eq!(
            patch_document(
                br#"[{"op": "replace", "path": "/debug", "value": true},
                     {"op": "replace", "path": "/profiling_enabled", "value": "false", "x": 1}]"#
            )
            .unwrap(),
            vec![(Switch::Debug, true), (Switch::Profiling, false)]
        );
        assert!(patch_document(b"[]").unwrap().is_empty());

        // Not JSON, or empty: the decode error of every body.
        assert_eq!(
            error("").as_object().unwrap().keys().collect::<Vec<_>>(),
            ["message"]
        );
        for not_a_list in ["{}", "null", "true", r#"{"op": "replace"}"#, r#""/debug""#] {
            let b = error(not_a_list);
            assert_eq!(b["error_id"], "invalid-data");
            assert_eq!(b["resource"], "config");
            assert_eq!(
                b["details"],
                json!({"_schema": {"message": "Invalid input type."}})
            );
        }
        let b = error(r#"[{"op": "replace", "path": "/debug", "value": true}, 3]"#);
        assert_eq!(
            b["details"],
            json!({"1": {"_schema": {"message": "Invalid input type."}}})
        );
        let cases = [
            (r#"[{"path": "/debug", "value": true}]"#, "op", "required"),
            (
                r#"[{"op": "add", "path": "/debug", "value": true}]"#,
                "op",
                "equal",
            ),
            (
                r#"[{"op": 1, "path": "/debug", "value": true}]"#,
                "op",
                "type",
            ),
            (r#"[{"op": "replace", "value": true}]"#, "path", "required"),
            (
                r#"[{"op": "replace", "path": "/log_level", "value": true}]"#,
                "path",
                "enum",
            ),
            (
                r#"[{"op": "replace", "path": "/debug/x", "value": true}]"#,
                "path",
                "enum",
            ),
            (
                r#"[{"op": "replace", "path": "/debug"}]"#,
                "value",
                "required",
            ),
            (
                r#"[{"op": "replace", "path": "/debug", "value": null}]"#,
                "value",
                "not_null",
            ),
            (
                r#"[{"op": "replace", "path": "/debug", "value": "maybe"}]"#,
                "value",
                "type",
            ),
            (
                r#"[{"op": "replace", "path": "/debug", "value": [true]}]"#,
                "value",
                "type",
            ),
        ];
        for (raw, field, constraint_id) in cases {
            let b = error(raw);
            assert_eq!(b["error_id"], "invalid-data", "{raw}");
            assert_eq!(
                b["details"]["0"][field]["constraint_id"], constraint_id,
                "{raw}: {b}"
            );
            assert_eq!(b["message"], b["details"]["0"][field]["message"], "{raw}");
        }
    }
}
