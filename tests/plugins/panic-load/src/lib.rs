//! Test plugin: a backend that panics while loading.

use wazo_auth_plugin_api::{export_plugins, serde_json, Args, Backend, Host, PluginError};

pub struct PanicLoad;

impl Backend for PanicLoad {
    fn load(_host: &Host, _config: serde_json::Value) -> Result<Self, PluginError> {
        panic!("test plugin panic in load");
    }

    fn verify_password(
        &self,
        _login: &str,
        _password: &str,
        _args: &mut Args,
    ) -> Result<bool, PluginError> {
        Ok(true)
    }
}

export_plugins! { backends: ["panic_load" => PanicLoad] }
