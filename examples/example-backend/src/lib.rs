//! Example wazo-auth backend plugin: users and passwords come from the plugin's configuration.
//!
//! **Not for production**: passwords sit in clear in the configuration file. It exists to show
//! how a backend is written, built, installed and enabled (see docs/plugins.md), like the
//! original's public `wazo-auth-example-backend`.
//!
//! Configuration (`plugin_config.example_static` in the wazo-auth configuration):
//!
//! ```yaml
//! plugin_config:
//!   example_static:
//!     users:
//!       - login: alice
//!         password: alice-secret
//!         acl: ["confd.users.me.read"]
//!         uuid: 7c5d0b8e-...        # optional; defaults to the login
//!         tenant_uuid: null          # optional; null = the top tenant
//!         purpose: user              # optional
//! ```

use std::collections::HashMap;

use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use wazo_auth_plugin_api::{export_plugins, serde_json, Args, Backend, Host, PluginError};

struct StaticUser {
    password_digest: [u8; 32],
    acl: Vec<String>,
    uuid: Option<String>,
    tenant_uuid: Option<String>,
    purpose: String,
}

/// The example backend.
pub struct StaticUsers {
    users: HashMap<String, StaticUser>,
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

fn string_list(v: Option<&Value>) -> Result<Vec<String>, PluginError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(String::from)
                    .ok_or_else(|| PluginError::config("acl entries must be strings"))
            })
            .collect(),
        Some(_) => Err(PluginError::config("acl must be a list of strings")),
    }
}

impl Backend for StaticUsers {
    fn load(host: &Host, config: Value) -> Result<Self, PluginError> {
        let mut users = HashMap::new();
        let list = match config.get("users") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(l)) => l.clone(),
            Some(_) => return Err(PluginError::config("users must be a list")),
        };
        for entry in list {
            let field = |k: &str| entry.get(k).and_then(Value::as_str).map(String::from);
            let login = field("login").ok_or_else(|| PluginError::config("a user has no login"))?;
            let password = field("password")
                .ok_or_else(|| PluginError::config(format!("user {login:?} has no password")))?;
            users.insert(
                login,
                StaticUser {
                    password_digest: digest(&password),
                    acl: string_list(entry.get("acl"))?,
                    uuid: field("uuid"),
                    tenant_uuid: field("tenant_uuid"),
                    purpose: field("purpose").unwrap_or_else(|| "user".into()),
                },
            );
        }
        log::info!(
            "example backend {:?} loaded with {} user(s); NOT FOR PRODUCTION",
            host.plugin_name(),
            users.len()
        );
        Ok(StaticUsers { users })
    }

    fn verify_password(
        &self,
        login: &str,
        password: &str,
        _args: &mut Args,
    ) -> Result<bool, PluginError> {
        let given = digest(password);
        // Compare against a dummy digest for unknown logins so both paths cost the same.
        let (expected, known) = match self.users.get(login) {
            Some(u) => (u.password_digest, true),
            None => ([0u8; 32], false),
        };
        Ok(bool::from(given.ct_eq(&expected)) && known)
    }

    fn get_metadata(&self, login: &str, args: &Args) -> Result<Args, PluginError> {
        let user = self
            .users
            .get(login)
            .ok_or_else(|| PluginError::failed("unknown user"))?;
        let id = user.uuid.clone().unwrap_or_else(|| login.to_string());
        let mut m = Args::new();
        m.insert("auth_id".into(), id.clone().into());
        m.insert("uuid".into(), id.into());
        m.insert("username".into(), login.into());
        m.insert(
            "tenant_uuid".into(),
            user.tenant_uuid.clone().map_or(Value::Null, Value::from),
        );
        m.insert("pbx_user_uuid".into(), Value::Null);
        m.insert(
            "xivo_uuid".into(),
            self.get_xivo_uuid(args).map_or(Value::Null, Value::from),
        );
        m.insert("purpose".into(), user.purpose.clone().into());
        Ok(m)
    }

    fn get_acl(&self, login: &str, args: &Args) -> Result<Vec<String>, PluginError> {
        // The default user policy's ACL (args.acl), then the user's own entries.
        let mut acl = string_list(args.get("acl")).unwrap_or_default();
        if let Some(u) = self.users.get(login) {
            acl.extend(u.acl.iter().cloned());
        }
        Ok(acl)
    }
}

export_plugins! {
    backends: ["example_static" => StaticUsers],
}
