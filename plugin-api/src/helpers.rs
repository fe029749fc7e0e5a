//! Typed helpers for plugin authors (since 1.3): build token metadata with [`Metadata`], read what
//! the host put into `args` with [`ArgsExt`]. Both are plain Rust on top of the JSON objects that
//! cross the ABI, so they work with any 1.x host.

use serde_json::Value;

use crate::{Args, User};

/// Builds the metadata a backend returns from `get_metadata` (see docs/plugins.md, "Metadata:
/// what the host reads"):
///
/// ```
/// use wazo_auth_plugin_api::Metadata;
///
/// let m = Metadata::new("a7f1c3e2-0000-4000-8000-000000000001")
///     .tenant("b5b7ad2a-0000-4000-8000-000000000002")
///     .purpose("user")
///     .field("username", "alice")
///     .into_args();
/// assert_eq!(m["auth_id"], "a7f1c3e2-0000-4000-8000-000000000001");
/// assert_eq!(m["purpose"], "user");
/// ```
///
/// Setting a key twice keeps the last value.
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata {
    map: Args,
}

impl Metadata {
    /// Metadata with its required `auth_id`: the token's identity (the user uuid for wazo-auth
    /// users; also what the ACL word `me` stands for).
    pub fn new(auth_id: impl Into<String>) -> Metadata {
        let mut map = Args::new();
        map.insert("auth_id".into(), Value::String(auth_id.into()));
        Metadata { map }
    }

    /// The metadata of the original's default metadata plugins for a wazo-auth user:
    /// `uuid`, `tenant_uuid`, `auth_id` (= uuid), `pbx_user_uuid` (= uuid for purpose `user`,
    /// else `null`), `xivo_uuid` and `purpose`.
    pub fn for_user(user: &User, xivo_uuid: Option<String>) -> Metadata {
        let mut map = Args::new();
        map.insert("uuid".into(), user.uuid.clone().into());
        map.insert("tenant_uuid".into(), user.tenant_uuid.clone().into());
        map.insert("auth_id".into(), user.uuid.clone().into());
        let pbx = if user.purpose == "user" {
            Value::from(user.uuid.clone())
        } else {
            Value::Null
        };
        map.insert("pbx_user_uuid".into(), pbx);
        map.insert(
            "xivo_uuid".into(),
            xivo_uuid.map_or(Value::Null, Value::from),
        );
        map.insert("purpose".into(), user.purpose.clone().into());
        Metadata { map }
    }

    /// `tenant_uuid`: the tenant of the token's session, and the reference of `?tenant=` checks.
    pub fn tenant(self, tenant_uuid: impl Into<String>) -> Metadata {
        self.field("tenant_uuid", tenant_uuid.into())
    }

    /// `uuid`: the wazo-auth user the token belongs to (needed for offline access).
    pub fn user_uuid(self, uuid: impl Into<String>) -> Metadata {
        self.field("uuid", uuid.into())
    }

    /// `purpose`: `user`, `internal` or `external_api`.
    pub fn purpose(self, purpose: impl Into<String>) -> Metadata {
        self.field("purpose", purpose.into())
    }

    /// `pbx_user_uuid` (returned as `xivo_user_uuid`); `None` writes `null`.
    pub fn pbx_user_uuid(self, uuid: Option<String>) -> Metadata {
        self.field("pbx_user_uuid", uuid.map_or(Value::Null, Value::from))
    }

    /// `xivo_uuid`; `None` writes `null` (the host then uses its own `uuid` setting).
    pub fn xivo_uuid(self, uuid: Option<String>) -> Metadata {
        self.field("xivo_uuid", uuid.map_or(Value::Null, Value::from))
    }

    /// Any other key, kept and returned to clients as it is.
    pub fn field(mut self, key: impl Into<String>, value: impl Into<Value>) -> Metadata {
        self.map.insert(key.into(), value.into());
        self
    }

    /// The JSON object to return from `get_metadata`.
    pub fn into_args(self) -> Args {
        self.map
    }
}

impl From<Metadata> for Args {
    fn from(m: Metadata) -> Args {
        m.map
    }
}

/// Typed reads of the values the host puts into `args` (see docs/plugins.md, "`args`: what a
/// backend receives"), so that plugins do not pull keys out by hand. Each returns `None` (or an
/// empty list, or `false`) when the key is absent or of another type.
pub trait ArgsExt {
    /// `args["acl"]`, given to `get_acl` and `get_persistent_metadata`: the default user
    /// policy's ACL. Put it first in the ACL you return.
    fn default_acl(&self) -> Vec<String>;
    /// The login of the request (for a refresh-token login, the stored one).
    fn login(&self) -> Option<&str>;
    /// The backend the client asked for (or the one being called).
    fn backend(&self) -> Option<&str>;
    /// The installation uuid (the host's `uuid` setting), when set.
    fn xivo_uuid(&self) -> Option<&str>;
    /// `Wazo-Session-Type: mobile`.
    fn is_mobile(&self) -> bool;
    /// The client address.
    fn remote_addr(&self) -> Option<&str>;
    /// The `User-Agent` header.
    fn user_agent(&self) -> Option<&str>;
    /// `true` for `access_type: offline`.
    fn is_offline(&self) -> bool;
    /// The `tenant_id` body field (deprecated by the original), when present.
    fn tenant_id(&self) -> Option<&str>;
    /// The `domain_name` body field, when present.
    fn domain_name(&self) -> Option<&str>;
    /// Any string value, e.g. one your `verify_password` stored.
    fn str_arg(&self, key: &str) -> Option<&str>;
    /// Since 1.3, metadata plugins: the token metadata built so far (`args["token_metadata"]`):
    /// read `auth_id`, `uuid`, `tenant_uuid`, `purpose` there.
    fn token_metadata(&self) -> Option<&Args>;
}

impl ArgsExt for Args {
    fn default_acl(&self) -> Vec<String> {
        match self.get("acl") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn login(&self) -> Option<&str> {
        self.str_arg("login")
    }

    fn backend(&self) -> Option<&str> {
        self.str_arg("backend")
    }

    fn xivo_uuid(&self) -> Option<&str> {
        self.str_arg("xivo_uuid")
    }

    fn is_mobile(&self) -> bool {
        self.get("mobile").and_then(Value::as_bool).unwrap_or(false)
    }

    fn remote_addr(&self) -> Option<&str> {
        self.str_arg("remote_addr")
    }

    fn user_agent(&self) -> Option<&str> {
        self.str_arg("user_agent")
    }

    fn is_offline(&self) -> bool {
        self.str_arg("access_type") == Some("offline")
    }

    fn tenant_id(&self) -> Option<&str> {
        self.str_arg("tenant_id")
    }

    fn domain_name(&self) -> Option<&str> {
        self.str_arg("domain_name")
    }

    fn str_arg(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    fn token_metadata(&self) -> Option<&Args> {
        self.get("token_metadata").and_then(Value::as_object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_builder_sets_keys() {
        let m = Metadata::new("id")
            .tenant("t")
            .purpose("user")
            .pbx_user_uuid(None)
            .field("extra", 3)
            .into_args();
        assert_eq!(
            Value::Object(m),
            json!({"auth_id": "id", "tenant_uuid": "t", "purpose": "user", "pbx_user_uuid": null, "extra": 3})
        );
    }

    #[test]
    fn args_readers() {
        let args = json!({"acl": ["a", 1, "b"], "login": "l", "mobile": true, "access_type": "offline", "xivo_uuid": "x"});
        let args = args.as_object().cloned().unwrap_or_default();
        assert_eq!(args.default_acl(), vec!["a", "b"]);
        assert_eq!(args.login(), Some("l"));
        assert!(args.is_mobile());
        assert!(args.is_offline());
        assert_eq!(args.xivo_uuid(), Some("x"));
        assert_eq!(args.domain_name(), None);
        assert!(Args::new().default_acl().is_empty());
    }

    #[test]
    fn default_metadata_logs_in() {
        struct Minimal;
        impl crate::Backend for Minimal {
            fn load(
                _host: &crate::Host,
                _config: serde_json::Value,
            ) -> Result<Self, crate::PluginError> {
                Ok(Minimal)
            }
            fn verify_password(
                &self,
                _login: &str,
                _password: &str,
                _args: &mut Args,
            ) -> Result<bool, crate::PluginError> {
                Ok(true)
            }
        }
        use crate::Backend;
        let args = json!({"xivo_uuid": "host-uuid"});
        let m = Minimal
            .get_metadata("alice", args.as_object().unwrap_or(&Args::new()))
            .unwrap_or_default();
        assert_eq!(m["auth_id"], "alice");
        assert_eq!(m["xivo_uuid"], "host-uuid");
    }
}
