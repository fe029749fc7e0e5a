//! Test plugin: a backend whose `verify_password` panics (and whose `get_metadata` would too).

use wazo_auth_plugin_api::{export_plugins, serde_json, Args, Backend, Host, PluginError};

pub struct PanicVerify;

impl Backend for PanicVerify {
    fn load(_host: &Host, _config: serde_json::Value) -> Result<Self, PluginError> {
        Ok(PanicVerify)
    }

    fn verify_password(
        &self,
        _login: &str,
        _password: &str,
        _args: &mut Args,
    ) -> Result<bool, PluginError> {
        panic!("test plugin panic in verify_password");
    }
}

export_plugins! { backends: ["panic_verify" => PanicVerify] }
