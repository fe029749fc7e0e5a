//! `example_code`: an example IdP plugin (plugin-api 1.3). NOT FOR PRODUCTION: its codes are
//! static and stored in clear in the configuration.
//!
//! It stands for the authentication method `example_code`: the wazo-auth users assigned to it
//! (`PUT /0.1/idp/example_code/users/{user_uuid}`) log in with their username and the code the
//! configuration gives them, instead of their password. The `wazo_user` backend then builds
//! their token (metadata and ACL) as for any wazo-auth user.
//!
//! ```yaml
//! idp_plugins:
//!   example_code: {enabled: true, priority: 10}
//! plugin_config:
//!   example_code:
//!     codes: {alice: "424242"}
//! ```

use wazo_auth_plugin_api::serde_json::{self, Value};
use wazo_auth_plugin_api::{
    export_plugins, log, Args, ArgsExt, Authenticated, Host, Idp, PluginError,
};

pub struct CodeIdp {
    host: Host,
    codes: serde_json::Map<String, Value>,
}

/// The authentication method of this IdP.
const METHOD: &str = "example_code";

impl Idp for CodeIdp {
    fn load(host: &Host, config: Value) -> Result<Self, PluginError> {
        match config.get("codes") {
            Some(Value::Object(codes)) => Ok(CodeIdp {
                host: host.clone(),
                codes: codes.clone(),
            }),
            _ => Err(PluginError::config(
                "plugin_config.example_code.codes must map usernames to codes",
            )),
        }
    }

    fn authentication_method(&self) -> String {
        METHOD.into()
    }

    /// Basic credentials of a user it has a code for and who is assigned to this method: the
    /// first IdP of the chain that says yes decides, so the others (a native user with a code
    /// in the configuration, say) must go on down the chain, finally to `native`.
    fn can_authenticate(&self, args: &Args) -> bool {
        let Some(login) = args.login() else {
            return false;
        };
        if args.str_arg("password").is_none() || !self.codes.contains_key(login) {
            return false;
        }
        match self.host.find_user(login) {
            Ok(Some(user)) => user.effective_authentication_method() == METHOD,
            Ok(None) => false,
            Err(e) => {
                log::warn!("cannot look {login:?} up: {e}");
                false
            }
        }
    }

    fn verify_auth(&self, args: &mut Args) -> Result<Option<Authenticated>, PluginError> {
        let login = args.login().unwrap_or_default().to_string();
        let expected = self.codes.get(&login).and_then(Value::as_str);
        if expected.is_none() || expected != args.str_arg("password") {
            return Ok(None);
        }
        Ok(Some(Authenticated::new("wazo_user", login)))
    }
}

export_plugins! { idps: ["example_code" => CodeIdp] }
