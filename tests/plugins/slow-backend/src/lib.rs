//! Test plugin: a backend whose `verify_password` blocks for `sleep_seconds` (config, default
//! 30) before accepting any credentials. Used to prove that calls are time-bounded.

use std::time::Duration;

use wazo_auth_plugin_api::{export_plugins, serde_json, Args, Backend, Host, PluginError};

pub struct Slow {
    sleep: Duration,
}

impl Backend for Slow {
    fn load(_host: &Host, config: serde_json::Value) -> Result<Self, PluginError> {
        let secs = config
            .get("sleep_seconds")
            .and_then(|v| v.as_f64())
            .unwrap_or(30.0);
        Ok(Slow {
            sleep: Duration::from_secs_f64(secs),
        })
    }

    fn verify_password(
        &self,
        _login: &str,
        _password: &str,
        _args: &mut Args,
    ) -> Result<bool, PluginError> {
        std::thread::sleep(self.sleep);
        Ok(true)
    }

    fn get_metadata(&self, login: &str, _args: &Args) -> Result<Args, PluginError> {
        let mut m = Args::new();
        m.insert("auth_id".into(), login.into());
        Ok(m)
    }
}

export_plugins! { backends: ["slow" => Slow] }
