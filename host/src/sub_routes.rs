//! The sub-routes of external-auth plugins (plugin-api 1.3): what a plugin declares under
//! `/users/{user_uuid}/external/{auth_type}/`, checked once at load, and its OpenAPI fragment.

use abi_stable::std_types::RResult;
use serde_json::Value;
use wazo_auth_plugin_api::ffi::ExternalAuthBox;

/// Methods a sub-route may declare.
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// One declared sub-route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubRoute {
    pub method: String,
    /// The path after `/external/{auth_type}/` (no leading or trailing `/`).
    pub path: String,
    /// The required ACL template (`{user_uuid}` filled by the host).
    pub acl: String,
}

impl SubRoute {
    /// The required ACL for `user_uuid`.
    pub fn acl_for(&self, user_uuid: &str) -> String {
        self.acl.replace("{user_uuid}", user_uuid)
    }
}

/// A plugin's sub-routes and OpenAPI `paths` fragment.
#[derive(Debug, Clone, Default)]
pub struct Declared {
    pub routes: Vec<SubRoute>,
    pub api_spec: serde_json::Map<String, Value>,
}

/// Reads what `plugin` (external auth `auth_type`) declares; a malformed declaration is logged
/// and left out (the plugin's other routes stay served).
pub fn declared(auth_type: &str, plugin: &ExternalAuthBox) -> Declared {
    let mut out = Declared::default();
    match plugin.routes_json() {
        RResult::ROk(text) => match serde_json::from_str::<Value>(text.as_str()) {
            Ok(Value::Array(items)) => {
                for item in items {
                    match parse_route(&item) {
                        Ok(r) => out.routes.push(r),
                        Err(why) => log::error!(
                            "external auth {auth_type}: sub-route {item} refused: {why}"
                        ),
                    }
                }
            }
            _ => log::error!(
                "external auth {auth_type}: routes() is not a JSON array; no sub-route served"
            ),
        },
        RResult::RErr(e) => {
            log::error!("external auth {auth_type}: routes() failed: {e}; no sub-route served")
        }
    }
    match plugin.api_spec_json() {
        RResult::ROk(text) => match serde_json::from_str::<Value>(text.as_str()) {
            Ok(Value::Object(paths)) => {
                let prefix = format!("/users/{{user_uuid}}/external/{auth_type}/");
                for (path, item) in paths {
                    if path.starts_with(&prefix) && item.is_object() {
                        out.api_spec.insert(path, item);
                    } else {
                        log::error!(
                            "external auth {auth_type}: api_spec path {path:?} is not an object \
                             under {prefix}; left out of the API description"
                        );
                    }
                }
            }
            _ => log::error!(
                "external auth {auth_type}: api_spec() is not a JSON object; left out of the \
                 API description"
            ),
        },
        RResult::RErr(e) => log::error!("external auth {auth_type}: api_spec() failed: {e}"),
    }
    out
}

fn parse_route(item: &Value) -> Result<SubRoute, String> {
    let s = |k: &str| item.get(k).and_then(Value::as_str);
    let method = s("method").unwrap_or_default().to_ascii_uppercase();
    if !METHODS.contains(&method.as_str()) {
        return Err(format!("method must be one of {}", METHODS.join(", ")));
    }
    let path = s("path").unwrap_or_default().trim_matches('/').to_string();
    let literal = |seg: &str| {
        !seg.is_empty()
            && seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    };
    if path.is_empty() || !path.split('/').all(literal) {
        return Err("path must be literal segments of letters, digits, '_', '-' or '.'".into());
    }
    let acl = s("acl").unwrap_or_default().to_string();
    if acl.trim().is_empty() {
        return Err("acl is required (a sub-route is never public)".into());
    }
    Ok(SubRoute { method, path, acl })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn routes_are_checked() {
        let r =
            parse_route(&json!({"method": "get", "path": "/sender_id/", "acl": "a.{user_uuid}"}))
                .unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "sender_id");
        assert_eq!(r.acl_for("u"), "a.u");
        assert!(parse_route(&json!({"method": "TRACE", "path": "x", "acl": "a"})).is_err());
        assert!(parse_route(&json!({"method": "GET", "path": "{x}", "acl": "a"})).is_err());
        assert!(parse_route(&json!({"method": "GET", "path": "a//b", "acl": "a"})).is_err());
        assert!(parse_route(&json!({"method": "GET", "path": "x", "acl": ""})).is_err());
        assert!(parse_route(&json!({"method": "GET", "path": "x"})).is_err());
    }
}
