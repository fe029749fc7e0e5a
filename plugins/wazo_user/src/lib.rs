//! The `wazo_user` backend (group `wazo_auth.backends`): authenticates the users stored by
//! wazo-auth itself, through the host's user services (plugin-api 1.2).
//!
//! - `verify_password`: the user must be enabled and authenticate natively (its method, or its
//!   tenant's when it is `default`, is `native`); the password check is the host's (constant work
//!   for unknown logins, hash upgrade on success). The user found is handed to the later calls of
//!   the login through `args["wazo_user"]`.
//! - `get_metadata`: `{uuid, tenant_uuid, auth_id (= uuid), pbx_user_uuid (= uuid for purpose
//!   user, else null), xivo_uuid, purpose}` as the original's default metadata plugins.
//! - `get_acl`: the default user policy's ACL (`args["acl"]`), then the user's group policies,
//!   then the user's own policies.

use wazo_auth_plugin_api::serde_json::{self, json, Value};
use wazo_auth_plugin_api::{export_plugins, Args, Backend, Host, PluginError, User};

pub struct WazoUser {
    host: Host,
}

const ARGS_KEY: &str = "wazo_user";

fn user_to_args(u: &User) -> Value {
    json!({
        "uuid": u.uuid,
        "tenant_uuid": u.tenant_uuid,
        "purpose": u.purpose,
    })
}

impl WazoUser {
    /// The user of this login: from `args` when `verify_password` ran, else looked up (refresh
    /// token logins do not verify a password).
    fn user_of(&self, login: &str, args: &Args) -> Result<(String, String, String), PluginError> {
        if let Some(u) = args.get(ARGS_KEY) {
            let s = |k: &str| u.get(k).and_then(Value::as_str).map(String::from);
            if let (Some(uuid), Some(tenant), Some(purpose)) =
                (s("uuid"), s("tenant_uuid"), s("purpose"))
            {
                return Ok((uuid, tenant, purpose));
            }
        }
        let user = self
            .host
            .find_user(login)?
            .ok_or_else(|| PluginError::failed("no enabled user with this login"))?;
        Ok((user.uuid, user.tenant_uuid, user.purpose))
    }
}

impl Backend for WazoUser {
    fn load(host: &Host, _config: serde_json::Value) -> Result<Self, PluginError> {
        Ok(WazoUser { host: host.clone() })
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
        if user.effective_authentication_method() != "native" {
            log::info!(
                "user {} cannot log in with a password: authentication method {}",
                user.uuid,
                user.effective_authentication_method()
            );
            return Ok(false);
        }
        args.insert(ARGS_KEY.into(), user_to_args(&user));
        Ok(true)
    }

    fn get_metadata(&self, login: &str, args: &Args) -> Result<Args, PluginError> {
        let (uuid, tenant_uuid, purpose) = self.user_of(login, args)?;
        let mut m = Args::new();
        m.insert("uuid".into(), uuid.clone().into());
        m.insert("tenant_uuid".into(), tenant_uuid.into());
        m.insert("auth_id".into(), uuid.clone().into());
        m.insert(
            "pbx_user_uuid".into(),
            if purpose == "user" {
                uuid.into()
            } else {
                Value::Null
            },
        );
        m.insert(
            "xivo_uuid".into(),
            self.get_xivo_uuid(args).map_or(Value::Null, Value::from),
        );
        m.insert("purpose".into(), purpose.into());
        Ok(m)
    }

    fn get_acl(&self, login: &str, args: &Args) -> Result<Vec<String>, PluginError> {
        let (uuid, _, _) = self.user_of(login, args)?;
        let mut acl: Vec<String> = match args.get("acl") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        };
        acl.extend(self.host.user_acl(&uuid)?);
        Ok(acl)
    }

    fn get_xivo_uuid(&self, args: &Args) -> Option<String> {
        // The host passes its configured uuid (XIVO_UUID) in args.
        args.get("xivo_uuid")
            .and_then(Value::as_str)
            .map(String::from)
            .or_else(|| std::env::var("XIVO_UUID").ok())
    }
}

export_plugins! { backends: ["wazo_user" => WazoUser] }
