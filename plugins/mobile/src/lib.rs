//! The `mobile` external-auth plugin (group `wazo_auth.external_auth`), built in: the Wazo mobile
//! apps keep their push-notification device tokens here, and wazo-calld / wazo-webhookd read them
//! to ring a phone. It follows the original's `external_auth/mobile` plugin (spec core §4.5).
//!
//! `/0.1/users/{user_uuid}/external/mobile` (the host checks the ACL
//! `auth.users.{user_uuid}.external.mobile.{read,create,update,delete}` and the tenant scope):
//! - `POST` stores the body read through the original's schema (below) and answers it, 201;
//!   409 when the user already has data;
//! - `PUT` replaces it, or stores it when there is none, 200;
//! - `GET` answers the stored data written through the schema (`apns_call_topic` and
//!   `apns_default_topic` always present, `null` when unset), 404 without data;
//! - `DELETE` removes it, 204 (404 without data).
//!
//! The schema: `token` (FCM, 1 to 512 characters), `apns_token` (deprecated),
//! `apns_voip_token`, `apns_notification_token`, `apns_call_topic` and `apns_default_topic` (at
//! most 512 characters): each a string or `null`, `null` when absent; other fields are dropped.
//! The first invalid field, in that order, answers 400 `invalid-data` with the original's body
//! (`details: {field: {message, constraint_id, constraint}}`, resource `users`).
//!
//! Sub-route `GET /0.1/users/{user_uuid}/external/mobile/sender_id` (ACL
//! `auth.users.{user_uuid}.external.mobile.sender_id.read`): `{"sender_id": ...}`, the
//! `fcm_sender_id` of the caller's scoping tenant's `mobile` configuration (`null` when the
//! configuration has none), 404 `unknown-external-auth` when the tenant has no configuration.
//!
//! `GET /0.1/users/{user_uuid}/external` shows no field of this plugin's data (`data: {}`), as the
//! original registers no safe model for it, and `plugin_info` is `{}`.

use std::time::{SystemTime, UNIX_EPOCH};

use wazo_auth_plugin_api::serde_json::{json, Map, Value};
use wazo_auth_plugin_api::{
    export_plugins, ErrorKind, ExternalAuth, ExternalRequest, Host, PluginError, Reply, SubRequest,
    SubRoute,
};

const AUTH_TYPE: &str = "mobile";

/// The path of the sender-id sub-route, after `/external/mobile/`.
const SENDER_ID: &str = "sender_id";
const SENDER_ID_ACL: &str = "auth.users.{user_uuid}.external.mobile.sender_id.read";

/// The longest value of every field, in characters.
const MAX_LENGTH: usize = 512;

/// The fields of the original's schema, in its order (the order in which errors are reported),
/// with their minimum length.
const FIELDS: [(&str, Option<usize>); 6] = [
    ("token", Some(1)),
    ("apns_token", None),
    ("apns_voip_token", None),
    ("apns_notification_token", None),
    ("apns_call_topic", None),
    ("apns_default_topic", None),
];

/// The fields written out as `null` when the stored data lacks them (the others are left out).
const ALWAYS_DUMPED: [&str; 2] = ["apns_call_topic", "apns_default_topic"];

pub struct Mobile {
    host: Host,
}

/// Seconds since the epoch, the `timestamp` of the original's error bodies.
fn timestamp() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// An error answer in the original's `APIException` shape.
fn api_error(
    status: u16,
    message: String,
    error_id: &str,
    details: Value,
    resource: &str,
) -> Reply {
    Reply::json(
        status,
        json!({
            "message": message,
            "error_id": error_id,
            "details": details,
            "timestamp": timestamp(),
            "resource": resource,
        }),
    )
}

/// The original's 404 for a user without mobile data.
fn no_data() -> Reply {
    api_error(
        404,
        format!("No such external auth: \"{AUTH_TYPE}\""),
        "unknown-external-auth",
        json!({ "type": AUTH_TYPE }),
        AUTH_TYPE,
    )
}

/// The original's 404 for a tenant without mobile configuration.
fn no_config() -> Reply {
    api_error(
        404,
        format!("No config found for this external auth type: \"{AUTH_TYPE}\""),
        "unknown-external-auth",
        json!({ "type": AUTH_TYPE }),
        AUTH_TYPE,
    )
}

/// A field refused by the schema: `(field, {message, constraint_id, constraint})`.
type FieldError = (&'static str, Value);

/// The 400 `invalid-data` answer to a refused field.
fn invalid(error: FieldError) -> Reply {
    let (field, detail) = error;
    let message = detail["message"].as_str().unwrap_or_default().to_string();
    let mut details = Map::new();
    details.insert(field.to_string(), detail);
    api_error(
        400,
        message,
        "invalid-data",
        Value::Object(details),
        "users",
    )
}

/// The length check of a field (marshmallow's `Length`, as xivo words it).
fn check_length(value: &str, min: Option<usize>) -> Result<(), Value> {
    let length = value.chars().count();
    let too_short = min.is_some_and(|m| length < m);
    if !too_short && length <= MAX_LENGTH {
        return Ok(());
    }
    let message = match min {
        Some(m) => format!("Length must be between {m} and {MAX_LENGTH}."),
        None => format!("Longer than maximum length {MAX_LENGTH}."),
    };
    Err(json!({
        "constraint_id": "length",
        "constraint": {"min": min, "max": MAX_LENGTH},
        "message": message,
    }))
}

/// Reads a request body through the schema: every field of [`FIELDS`], in order, `null` when
/// absent; unknown fields are dropped. The first refused field is the error.
fn load(body: &Value) -> Result<Map<String, Value>, FieldError> {
    let empty = Map::new();
    let given = body.as_object().unwrap_or(&empty);
    let mut loaded = Map::new();
    for (field, min) in FIELDS {
        let value = match given.get(field) {
            None | Some(Value::Null) => Value::Null,
            Some(Value::String(s)) => {
                check_length(s, min).map_err(|detail| (field, detail))?;
                Value::String(s.clone())
            }
            Some(_) => {
                return Err((
                    field,
                    json!({
                        "message": "Not a valid string.",
                        "constraint_id": "type",
                        "constraint": "string",
                    }),
                ))
            }
        };
        loaded.insert(field.to_string(), value);
    }
    Ok(loaded)
}

/// Writes stored data through the schema: its fields of [`FIELDS`] only (a value that is not a
/// string nor `null` as Python's `str` writes it), with [`ALWAYS_DUMPED`] as `null` when absent.
fn dump(data: &Value) -> Value {
    let mut out = Map::new();
    for (field, _) in FIELDS {
        let value = match data.get(field) {
            Some(Value::Null) => Value::Null,
            Some(Value::String(s)) => Value::String(s.clone()),
            Some(other) => Value::String(py_str(other)),
            None if ALWAYS_DUMPED.contains(&field) => Value::Null,
            None => continue,
        };
        out.insert(field.to_string(), value);
    }
    Value::Object(out)
}

/// Python's `str()` of a JSON value (what the original's schema makes of a stored value that is
/// not a string; only data written by something else than this plugin can hold one).
fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".to_string(),
        Value::Bool(true) => "True".to_string(),
        Value::Bool(false) => "False".to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(py_repr).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", py_repr(&Value::String(k.clone())), py_repr(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
    }
}

/// A host error meaning the user has no data (not an unknown user).
fn is_no_data(e: &PluginError) -> bool {
    e.kind == ErrorKind::NOT_FOUND && e.message.as_str() != "unknown user"
}

impl Mobile {
    /// Stores `data` for the user, replacing what is there (`auth_user_external_auth_updated`),
    /// or creating it (`auth_user_external_auth_added`).
    fn update_or_create(&self, user: &str, data: &Value) -> Result<(), PluginError> {
        match self.host.external_update(user, data) {
            Err(e) if is_no_data(&e) => match self.host.external_create(user, data) {
                // Created meanwhile by another request: replace it.
                Err(e) if e.kind == ErrorKind::CONFLICT => self.host.external_update(user, data),
                other => other,
            },
            other => other,
        }
    }

    fn sender_id(&self, req: &SubRequest) -> Result<Reply, PluginError> {
        Ok(match self.host.external_tenant_config(&req.tenant_uuid)? {
            Some(config) => Reply::json(
                200,
                json!({ "sender_id": config.get("fcm_sender_id").cloned().unwrap_or(Value::Null) }),
            ),
            None => no_config(),
        })
    }
}

impl ExternalAuth for Mobile {
    fn load(host: &Host, _config: Value) -> Result<Self, PluginError> {
        Ok(Mobile { host: host.clone() })
    }

    fn create(&self, req: &ExternalRequest) -> Result<Reply, PluginError> {
        let args = match load(&req.body) {
            Ok(args) => Value::Object(args),
            Err(e) => return Ok(invalid(e)),
        };
        self.host.external_create(&req.user_uuid, &args)?;
        log::info!(
            "Tokens registered for User({}) in plugin external mobile",
            req.user_uuid
        );
        Ok(Reply::json(201, args))
    }

    fn get(&self, req: &ExternalRequest) -> Result<Reply, PluginError> {
        Ok(match self.host.external_get(&req.user_uuid)? {
            Some(data) => Reply::json(200, dump(&data)),
            None => no_data(),
        })
    }

    fn update(&self, req: &ExternalRequest) -> Result<Reply, PluginError> {
        let args = match load(&req.body) {
            Ok(args) => Value::Object(args),
            Err(e) => return Ok(invalid(e)),
        };
        self.update_or_create(&req.user_uuid, &args)?;
        Ok(Reply::json(200, args))
    }

    fn delete(&self, req: &ExternalRequest) -> Result<Reply, PluginError> {
        match self.host.external_delete(&req.user_uuid) {
            Ok(()) => Ok(Reply::no_content()),
            Err(e) if is_no_data(&e) => Ok(no_data()),
            Err(e) => Err(e),
        }
    }

    fn routes() -> Vec<SubRoute> {
        vec![SubRoute::new("GET", SENDER_ID, SENDER_ID_ACL)]
    }

    fn api_spec() -> Value {
        json!({
            "/users/{user_uuid}/external/mobile/sender_id": {
                "parameters": [{"$ref": "#/components/parameters/UserUuid"}],
                "get": {
                    "tags": ["external"],
                    "operationId": "getUserMobileSenderId",
                    "summary": "Get the FCM sender id of the mobile push notifications",
                    "description": "The `fcm_sender_id` of the `mobile` configuration of the \
                        scoping tenant (`/external/mobile/config`), `null` when the \
                        configuration has none. Served by the built-in `mobile` plugin.\n\n\
                        **Required ACL**: `auth.users.{user_uuid}.external.mobile.sender_id.read`",
                    "security": [{"XAuthToken": []}],
                    "x-required-acl": SENDER_ID_ACL,
                    "parameters": [{"$ref": "#/components/parameters/WazoTenant"}],
                    "responses": {
                        "200": {
                            "description": "The sender id",
                            "content": {"application/json": {"schema": {
                                "type": "object",
                                "additionalProperties": false,
                                "required": ["sender_id"],
                                "properties": {"sender_id": {
                                    "description": "The tenant's `fcm_sender_id` (any JSON \
                                        value stored there; normally a string)",
                                    "nullable": true
                                }}
                            }}}
                        },
                        "401": {"$ref": "#/components/responses/Unauthorized"},
                        "404": {"$ref": "#/components/responses/NotFound"},
                        "503": {"$ref": "#/components/responses/PluginUnavailable"}
                    }
                }
            }
        })
    }

    fn handle(&self, req: &SubRequest) -> Result<Reply, PluginError> {
        match req.path.as_str() {
            SENDER_ID => self.sender_id(req),
            // Never called: the host serves only the declared routes.
            _ => Err(PluginError::not_found("no such route")),
        }
    }
}

export_plugins! { external_auths: ["mobile" => Mobile] }

#[cfg(test)]
mod tests {
    use super::*;

    fn all_null() -> Value {
        json!({"token": null, "apns_token": null, "apns_voip_token": null,
               "apns_notification_token": null, "apns_call_topic": null, "apns_default_topic": null})
    }

    #[test]
    fn load_fills_absent_fields_and_drops_unknown_ones() {
        assert_eq!(Value::Object(load(&json!({})).unwrap()), all_null());
        let mut expected = all_null();
        expected["token"] = json!("t");
        expected["apns_call_topic"] = json!("com.example.app.voip");
        let loaded = load(
            &json!({"token": "t", "apns_call_topic": "com.example.app.voip",
                                  "apns_voip_token": null, "other": 1}),
        )
        .unwrap();
        assert_eq!(Value::Object(loaded.clone()), expected);
        let order: Vec<&String> = loaded.keys().collect();
        assert_eq!(order.len(), 6);
    }

    #[test]
    fn load_checks_lengths_in_characters() {
        let ok = "é".repeat(512);
        assert!(load(&json!({"token": ok, "apns_default_topic": ok})).is_ok());
        let (field, detail) = load(&json!({"token": "x".repeat(600)})).unwrap_err();
        assert_eq!(field, "token");
        assert_eq!(
            detail,
            json!({"constraint_id": "length", "constraint": {"min": 1, "max": 512},
                   "message": "Length must be between 1 and 512."})
        );
        let (field, _) = load(&json!({"token": ""})).unwrap_err();
        assert_eq!(field, "token");
        assert!(load(&json!({"apns_token": ""})).is_ok());
        let (field, detail) = load(&json!({"apns_voip_token": "x".repeat(513)})).unwrap_err();
        assert_eq!(field, "apns_voip_token");
        assert_eq!(
            detail,
            json!({"constraint_id": "length", "constraint": {"min": null, "max": 512},
                   "message": "Longer than maximum length 512."})
        );
    }

    #[test]
    fn load_reports_the_first_field_in_schema_order() {
        let body = json!({"apns_default_topic": 1, "apns_token": "x".repeat(513)});
        let (field, _) = load(&body).unwrap_err();
        assert_eq!(field, "apns_token");
        let (field, detail) = load(&json!({"apns_default_topic": [1]})).unwrap_err();
        assert_eq!(field, "apns_default_topic");
        assert_eq!(
            detail,
            json!({"message": "Not a valid string.", "constraint_id": "type", "constraint": "string"})
        );
    }

    #[test]
    fn invalid_answers_the_original_body() {
        let reply = invalid(load(&json!({"token": "x".repeat(600)})).unwrap_err());
        assert_eq!(reply.status, 400);
        let body = reply.body.unwrap();
        assert_eq!(body["message"], "Length must be between 1 and 512.");
        assert_eq!(body["error_id"], "invalid-data");
        assert_eq!(body["resource"], "users");
        assert_eq!(body["details"]["token"]["constraint_id"], "length");
        assert!(body["timestamp"].as_f64().unwrap() > 1.0e9);
    }

    #[test]
    fn dump_writes_schema_fields_only() {
        assert_eq!(
            dump(&json!({"token": "t", "apns_token": null, "secret": "s"})),
            json!({"token": "t", "apns_token": null, "apns_call_topic": null, "apns_default_topic": null})
        );
        assert_eq!(
            dump(
                &json!({"token": 12, "apns_voip_token": true, "apns_call_topic": {"a": ["b", null]}})
            ),
            json!({"token": "12", "apns_voip_token": "True", "apns_call_topic": "{'a': ['b', None]}",
                   "apns_default_topic": null})
        );
        assert_eq!(
            dump(&json!("not an object")),
            json!({"apns_call_topic": null, "apns_default_topic": null})
        );
    }

    #[test]
    fn sub_route_and_its_description() {
        let routes = Mobile::routes();
        assert_eq!(
            routes,
            vec![SubRoute::new("GET", "sender_id", SENDER_ID_ACL)]
        );
        let spec = Mobile::api_spec();
        let op = &spec["/users/{user_uuid}/external/mobile/sender_id"]["get"];
        assert_eq!(op["x-required-acl"], SENDER_ID_ACL);
    }

    #[test]
    fn no_data_and_no_config_bodies() {
        let r = no_data();
        assert_eq!(r.status, 404);
        let b = r.body.unwrap();
        assert_eq!(b["message"], "No such external auth: \"mobile\"");
        assert_eq!(b["details"], json!({"type": "mobile"}));
        assert_eq!(b["resource"], "mobile");
        let b = no_config().body.unwrap();
        assert_eq!(
            b["message"],
            "No config found for this external auth type: \"mobile\""
        );
        assert_eq!(b["error_id"], "unknown-external-auth");
    }
}
