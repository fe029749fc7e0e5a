//! `bar`: the example external-auth plugin of the developer's guide.
//!
//! It serves `/0.1/users/{user_uuid}/external/bar`:
//! - `POST` stores the JSON body for the user (a real plugin would start an OAuth flow with the
//!   external service here, and store the tokens it gets back);
//! - `GET` returns what is stored;
//! - `PUT` replaces the stored `scope`;
//! - `DELETE` removes the stored data.
//!
//! The "safe model" exposes only `scope` in `GET /0.1/users/{user_uuid}/external`, so stored
//! secrets never leak through listings, and `plugin_info` tells user interfaces which ACL the
//! feature needs. All data goes through the host's encrypted store, which only ever gives this
//! plugin the `bar` auth type's data.

use wazo_auth_plugin_api::serde_json::{json, Value};
use wazo_auth_plugin_api::{
    export_plugins, serde_json, ErrorKind, ExternalAuth, ExternalRequest, Host, PluginError, Reply,
};

pub struct Bar {
    host: Host,
}

impl ExternalAuth for Bar {
    const SAFE_FIELDS: &'static [&'static str] = &["scope"];

    fn plugin_info() -> Value {
        json!({"required_acl": ["view-all-contacts", "list-email-addresses"]})
    }

    fn load(host: &Host, _config: serde_json::Value) -> Result<Self, PluginError> {
        log::info!("bar external auth plugin loaded");
        Ok(Bar { host: host.clone() })
    }

    fn create(&self, req: &ExternalRequest) -> Result<Reply, PluginError> {
        if !req.body.is_object() {
            return Err(PluginError::invalid_input("the body must be a JSON object"));
        }
        self.host.external_create(&req.user_uuid, &req.body)?;
        Ok(Reply::json(200, req.body.clone()))
    }

    fn get(&self, req: &ExternalRequest) -> Result<Reply, PluginError> {
        match self.host.external_get(&req.user_uuid)? {
            Some(data) => Ok(Reply::json(200, data)),
            None => Err(PluginError::not_found("no bar data for this user")),
        }
    }

    fn update(&self, req: &ExternalRequest) -> Result<Reply, PluginError> {
        let scope = req
            .body
            .get("scope")
            .cloned()
            .ok_or_else(|| PluginError::new(ErrorKind::INVALID_INPUT, "scope is required"))?;
        let mut data = self
            .host
            .external_get(&req.user_uuid)?
            .ok_or_else(|| PluginError::not_found("no bar data for this user"))?;
        data["scope"] = scope;
        self.host.external_update(&req.user_uuid, &data)?;
        Ok(Reply::json(200, data))
    }

    fn delete(&self, req: &ExternalRequest) -> Result<Reply, PluginError> {
        self.host.external_delete(&req.user_uuid)?;
        Ok(Reply::no_content())
    }
}

export_plugins! { external_auths: ["bar" => Bar] }
