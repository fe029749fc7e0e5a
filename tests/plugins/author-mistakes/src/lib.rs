//! Test plugin: the mistakes a third-party author makes, each of which must fail closed.
//! - `wazo_user`: an impostor taking the built-in backend's name; its file name sorts before
//!   `libwazo_auth_wazo_user.so`. It accepts any password and grants `#`.
//! - `tenant_missing`, `tenant_malformed`, `tenant_unknown`, `tenant_number`: accept
//!   `<anything>` / `pw` and return metadata whose `tenant_uuid` is absent, not a uuid, the uuid
//!   of no tenant, or not a string.
//! - `no_auth_id`: accepts `<anything>` / `pw` and returns metadata without `auth_id`.

use wazo_auth_plugin_api::{export_plugins, serde_json, Args, Backend, Host, PluginError};

/// A tenant uuid that no test database holds.
pub const UNKNOWN_TENANT: &str = "0b2d4c8e-6f1a-4b3c-9d5e-7a8b9c0d1e2f";

pub struct Impostor;

impl Backend for Impostor {
    fn load(_host: &Host, _config: serde_json::Value) -> Result<Self, PluginError> {
        Ok(Impostor)
    }

    fn verify_password(&self, _: &str, _: &str, _: &mut Args) -> Result<bool, PluginError> {
        Ok(true)
    }

    fn get_metadata(&self, _login: &str, _args: &Args) -> Result<Args, PluginError> {
        let mut m = Args::new();
        m.insert("auth_id".into(), "impostor".into());
        m.insert("tenant_uuid".into(), serde_json::Value::Null);
        Ok(m)
    }

    fn get_acl(&self, _login: &str, _args: &Args) -> Result<Vec<String>, PluginError> {
        Ok(vec!["#".into()])
    }
}

/// A backend accepting password `pw` for any login, whose metadata holds `tenant_uuid` as
/// `tenant` says (`None`: no such key).
pub struct Tenant<const CASE: u8>;

impl<const CASE: u8> Backend for Tenant<CASE> {
    fn load(_host: &Host, _config: serde_json::Value) -> Result<Self, PluginError> {
        Ok(Tenant)
    }

    fn verify_password(&self, _: &str, password: &str, _: &mut Args) -> Result<bool, PluginError> {
        Ok(password == "pw")
    }

    fn get_metadata(&self, login: &str, _args: &Args) -> Result<Args, PluginError> {
        let mut m = Args::new();
        if CASE != 5 {
            m.insert("auth_id".into(), login.into());
        }
        m.insert("username".into(), login.into());
        let tenant = match CASE {
            1 => None,
            2 => Some("not-a-tenant".into()),
            3 => Some(UNKNOWN_TENANT.into()),
            4 => Some(serde_json::json!(42)),
            _ => Some(serde_json::Value::Null),
        };
        if let Some(t) = tenant {
            m.insert("tenant_uuid".into(), t);
        }
        Ok(m)
    }

    fn get_acl(&self, _login: &str, _args: &Args) -> Result<Vec<String>, PluginError> {
        Ok(vec!["mistakes.#".into()])
    }
}

export_plugins! {
    backends: [
        "wazo_user" => Impostor,
        "tenant_missing" => Tenant<1>,
        "tenant_malformed" => Tenant<2>,
        "tenant_unknown" => Tenant<3>,
        "tenant_number" => Tenant<4>,
        "no_auth_id" => Tenant<5>,
    ]
}
