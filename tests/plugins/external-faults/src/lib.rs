//! Test plugin: external-auth plugins that misbehave.
//! - `panicky`: every handler (and the safe view) panics (create after storing the data);
//! - `sleepy`: every handler sleeps 30 s;
//! - `hostsvc` (well behaved): `PUT` runs the 1.3 host service named by the body's `op`
//!   (`authorized`, `tenant_config` of `tenant`, `domain` for `name`) and answers its result;
//! - `nosy`: tries to read another auth type's data (it cannot: the host binds its store to
//!   `nosy`), stores what it is given and its safe view leaks nothing.

use std::time::Duration;

use wazo_auth_plugin_api::serde_json::{json, Value};
use wazo_auth_plugin_api::{
    export_plugins, serde_json, ExternalAuth, ExternalRequest, Host, PluginError, Reply,
};

pub struct Panicky {
    host: Host,
}

impl ExternalAuth for Panicky {
    fn load(host: &Host, _config: serde_json::Value) -> Result<Self, PluginError> {
        Ok(Panicky { host: host.clone() })
    }
    /// Stores the data, then panics (so that listings must call the panicking safe view).
    fn create(&self, req: &ExternalRequest) -> Result<Reply, PluginError> {
        self.host.external_create(&req.user_uuid, &req.body)?;
        panic!("panicky create")
    }
    fn get(&self, _req: &ExternalRequest) -> Result<Reply, PluginError> {
        panic!("panicky get")
    }
    fn update(&self, _req: &ExternalRequest) -> Result<Reply, PluginError> {
        panic!("panicky update")
    }
    fn delete(&self, _req: &ExternalRequest) -> Result<Reply, PluginError> {
        panic!("panicky delete")
    }
    fn safe_view(&self, _data: &Value) -> Value {
        panic!("panicky safe_view")
    }
}

pub struct Sleepy;

fn nap() {
    std::thread::sleep(Duration::from_secs(30));
}

impl ExternalAuth for Sleepy {
    fn load(_host: &Host, _config: serde_json::Value) -> Result<Self, PluginError> {
        Ok(Sleepy)
    }
    fn create(&self, _req: &ExternalRequest) -> Result<Reply, PluginError> {
        nap();
        Ok(Reply::no_content())
    }
    fn get(&self, _req: &ExternalRequest) -> Result<Reply, PluginError> {
        nap();
        Ok(Reply::no_content())
    }
    fn update(&self, _req: &ExternalRequest) -> Result<Reply, PluginError> {
        nap();
        Ok(Reply::no_content())
    }
    fn delete(&self, _req: &ExternalRequest) -> Result<Reply, PluginError> {
        nap();
        Ok(Reply::no_content())
    }
}

pub struct Nosy {
    host: Host,
}

impl ExternalAuth for Nosy {
    fn plugin_info() -> Value {
        json!({"nosy": true})
    }
    fn load(host: &Host, _config: serde_json::Value) -> Result<Self, PluginError> {
        Ok(Nosy { host: host.clone() })
    }
    fn create(&self, req: &ExternalRequest) -> Result<Reply, PluginError> {
        self.host.external_create(&req.user_uuid, &req.body)?;
        Ok(Reply::json(201, req.body.clone()))
    }
    /// Answers what the store gives it for this user: only ever its own `nosy` data.
    fn get(&self, req: &ExternalRequest) -> Result<Reply, PluginError> {
        let config = self.host.external_config(&req.user_uuid)?;
        let data = self.host.external_get(&req.user_uuid)?;
        Ok(Reply::json(200, json!({"data": data, "config": config})))
    }
    fn delete(&self, req: &ExternalRequest) -> Result<Reply, PluginError> {
        self.host.external_delete(&req.user_uuid)?;
        Ok(Reply::no_content())
    }
}

pub struct HostSvc {
    host: Host,
}

impl ExternalAuth for HostSvc {
    fn load(host: &Host, _config: serde_json::Value) -> Result<Self, PluginError> {
        Ok(HostSvc { host: host.clone() })
    }
    fn create(&self, _req: &ExternalRequest) -> Result<Reply, PluginError> {
        Ok(Reply::no_content())
    }
    fn get(&self, _req: &ExternalRequest) -> Result<Reply, PluginError> {
        Ok(Reply::no_content())
    }
    fn update(&self, req: &ExternalRequest) -> Result<Reply, PluginError> {
        let arg = |k: &str| req.body.get(k).and_then(Value::as_str).unwrap_or_default();
        match arg("op") {
            "authorized" => {
                self.host.publish_authorized(&req.user_uuid)?;
                Ok(Reply::no_content())
            }
            "tenant_config" => {
                let config = self.host.external_tenant_config(arg("tenant"))?;
                Ok(Reply::json(200, json!({ "config": config })))
            }
            "domain" => {
                let tenant = self.host.tenant_by_domain_name(arg("name"))?;
                Ok(Reply::json(
                    200,
                    json!({ "tenant": tenant.map(|t| json!({"uuid": t.uuid, "slug": t.slug, "domain_names": t.domain_names})) }),
                ))
            }
            _ => Err(PluginError::invalid_input("unknown op")),
        }
    }
    fn delete(&self, _req: &ExternalRequest) -> Result<Reply, PluginError> {
        Ok(Reply::no_content())
    }
}

export_plugins! {
    external_auths: ["panicky" => Panicky, "sleepy" => Sleepy, "nosy" => Nosy, "hostsvc" => HostSvc],
}
