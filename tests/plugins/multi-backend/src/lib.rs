//! Test plugin: one library declaring several backends.
//! - `multi_a`: accepts `a` / `pw-a`, logs through the `log` crate (bridged to the host), hands
//!   a value from `verify_password` to `get_metadata` through `args`, and adds to the ACL.
//! - `multi_b`: accepts nothing and reports a failing status.
//! - `multi_minimal`: only the required methods (`load`, `verify_password`: accepts `m` /
//!   `pw-m`); everything else is the trait's defaults (plugin-api 1.3 default `get_metadata`).
//! - `example_static`: a name already declared by the example plugin (sorted earlier), so the
//!   host must refuse this one.

use wazo_auth_plugin_api::{export_plugins, serde_json, Args, Backend, Host, PluginError, Status};

pub struct MultiA;

impl Backend for MultiA {
    fn load(host: &Host, _config: serde_json::Value) -> Result<Self, PluginError> {
        log::info!("multi_a loaded as {}", host.plugin_name());
        Ok(MultiA)
    }

    fn verify_password(
        &self,
        login: &str,
        password: &str,
        args: &mut Args,
    ) -> Result<bool, PluginError> {
        log::warn!("MULTI-A-LOG-MARKER verify_password called");
        args.insert("multi_a_checked".into(), serde_json::Value::from(login));
        Ok(login == "a" && password == "pw-a")
    }

    fn get_metadata(&self, login: &str, args: &Args) -> Result<Args, PluginError> {
        let mut m = Args::new();
        m.insert("auth_id".into(), login.into());
        m.insert("xivo_uuid".into(), serde_json::Value::Null);
        // Proves that values set in verify_password reach later calls.
        m.insert(
            "from_verify".into(),
            args.get("multi_a_checked").cloned().unwrap_or_default(),
        );
        Ok(m)
    }

    fn get_acl(&self, _login: &str, _args: &Args) -> Result<Vec<String>, PluginError> {
        Ok(vec![
            "multi.a.#".into(),
            "users.me.read".into(),
            "!multi.a.secret".into(),
        ])
    }
}

pub struct MultiB;

impl Backend for MultiB {
    fn load(_host: &Host, _config: serde_json::Value) -> Result<Self, PluginError> {
        Ok(MultiB)
    }

    fn verify_password(
        &self,
        _login: &str,
        _password: &str,
        _args: &mut Args,
    ) -> Result<bool, PluginError> {
        Ok(false)
    }

    fn status(&self) -> Result<Status, PluginError> {
        Ok(Status::Fail("multi_b is never healthy".into()))
    }
}

export_plugins! {
    backends: [
        "multi_a" => MultiA,
        "multi_b" => MultiB,
        "multi_minimal" => Minimal,
        "example_static" => MultiB,
    ]
}

/// Only what docs/plugins.md calls required.
pub struct Minimal;

impl Backend for Minimal {
    fn load(_host: &Host, _config: serde_json::Value) -> Result<Self, PluginError> {
        Ok(Minimal)
    }

    fn verify_password(
        &self,
        login: &str,
        password: &str,
        _args: &mut Args,
    ) -> Result<bool, PluginError> {
        Ok(login == "m" && password == "pw-m")
    }
}
