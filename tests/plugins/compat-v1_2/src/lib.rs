//! Plugins written against plugin-api 1.2.0 as released:
//! - backend `compat_v1_2`: authenticates wazo-auth users through the 1.2 host service
//!   `authenticate_user`, with metadata naming the ABI it was built against, and a `status`;
//! - external auth `compat12`: stores and returns the body through the 1.2 store services.

use wazo_auth_plugin_api::serde_json::{self, json, Value};
use wazo_auth_plugin_api::{
    export_plugins, Args, Backend, ExternalAuth, ExternalRequest, Host, PluginError, Reply, Status,
};

pub struct Compat {
    host: Host,
}

impl Backend for Compat {
    fn load(host: &Host, _config: Value) -> Result<Self, PluginError> {
        log::info!("backend built against plugin-api 1.2 loading");
        Ok(Compat { host: host.clone() })
    }

    fn verify_password(
        &self,
        login: &str,
        password: &str,
        args: &mut Args,
    ) -> Result<bool, PluginError> {
        let Some(user) = self.host.authenticate_user(login, password)? else {
            return Ok(false);
        };
        args.insert("compat_uuid".into(), user.uuid.into());
        args.insert("compat_tenant".into(), user.tenant_uuid.into());
        Ok(true)
    }

    fn get_metadata(&self, _login: &str, args: &Args) -> Result<Args, PluginError> {
        let mut m = Args::new();
        m.insert("auth_id".into(), args["compat_uuid"].clone());
        m.insert("uuid".into(), args["compat_uuid"].clone());
        m.insert("tenant_uuid".into(), args["compat_tenant"].clone());
        m.insert("built_against".into(), "1.2".into());
        Ok(m)
    }

    fn get_acl(&self, _login: &str, _args: &Args) -> Result<Vec<String>, PluginError> {
        Ok(vec!["compat12.#".into()])
    }

    fn status(&self) -> Result<Status, PluginError> {
        Ok(Status::Ok)
    }
}

pub struct Compat12 {
    host: Host,
}

impl ExternalAuth for Compat12 {
    const SAFE_FIELDS: &'static [&'static str] = &["shown"];

    fn plugin_info() -> Value {
        json!({"built_against": "1.2"})
    }

    fn load(host: &Host, _config: serde_json::Value) -> Result<Self, PluginError> {
        Ok(Compat12 { host: host.clone() })
    }

    fn create(&self, req: &ExternalRequest) -> Result<Reply, PluginError> {
        self.host.external_create(&req.user_uuid, &req.body)?;
        Ok(Reply::json(200, req.body.clone()))
    }

    fn get(&self, req: &ExternalRequest) -> Result<Reply, PluginError> {
        match self.host.external_get(&req.user_uuid)? {
            Some(data) => Ok(Reply::json(200, data)),
            None => Err(PluginError::not_found("no compat12 data for this user")),
        }
    }

    fn delete(&self, req: &ExternalRequest) -> Result<Reply, PluginError> {
        self.host.external_delete(&req.user_uuid)?;
        Ok(Reply::no_content())
    }
}

export_plugins! {
    backends: ["compat_v1_2" => Compat],
    external_auths: ["compat12" => Compat12],
}
