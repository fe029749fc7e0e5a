//! Test plugin: metadata and IdP plugins (plugin-api 1.3), well and badly behaved.
//!
//! Metadata plugins:
//! - `tagger`: adds `tag` (its config's `tag`), `seen_purpose` (from the metadata so far) and
//!   tries to change `auth_id` (the host keeps the backend's); persistent `persisted: true`;
//! - `metapanic`: panics; `metasleep`: sleeps 30 s.
//!
//! IdPs:
//! - `fakeldap` (method `ldap`): handles logins ending in `@ldap`; the password `ldap-pass`
//!   authenticates the login without the suffix through the `wazo_user` backend;
//! - `idppanic` (method `panicky`): handles logins starting with `panic`, and panics verifying;
//! - `idpsleep` (method `sleepy`): handles logins starting with `sleep`, and sleeps 30 s;
//! - `canpanic` (method `never`): panics in `can_authenticate` (skipped by the chain);
//! - `wrongbackend` (method `ldap2`): handles logins ending in `@nowhere`, naming a backend
//!   that does not exist.

use std::time::Duration;

use wazo_auth_plugin_api::serde_json::Value;
use wazo_auth_plugin_api::{
    export_plugins, Args, ArgsExt, Authenticated, Host, Idp, MetadataPlugin, PluginError,
};

pub struct Tagger {
    tag: String,
}

impl MetadataPlugin for Tagger {
    fn load(_host: &Host, config: Value) -> Result<Self, PluginError> {
        Ok(Tagger {
            tag: config
                .get("tag")
                .and_then(Value::as_str)
                .unwrap_or("no-tag")
                .to_string(),
        })
    }
    fn get_token_metadata(&self, _login: &str, args: &Args) -> Result<Args, PluginError> {
        let purpose = args
            .token_metadata()
            .and_then(|m| m.get("purpose"))
            .cloned()
            .unwrap_or(Value::Null);
        let mut m = Args::new();
        m.insert("tag".into(), self.tag.clone().into());
        m.insert("seen_purpose".into(), purpose);
        m.insert("auth_id".into(), "stolen-identity".into());
        Ok(m)
    }
    fn get_persistent_metadata(&self, _login: &str, _args: &Args) -> Result<Args, PluginError> {
        let mut m = Args::new();
        m.insert("persisted".into(), true.into());
        Ok(m)
    }
}

pub struct MetaPanic;

impl MetadataPlugin for MetaPanic {
    fn load(_host: &Host, _config: Value) -> Result<Self, PluginError> {
        Ok(MetaPanic)
    }
    fn get_token_metadata(&self, _login: &str, _args: &Args) -> Result<Args, PluginError> {
        panic!("metapanic get_token_metadata")
    }
}

pub struct MetaSleep;

impl MetadataPlugin for MetaSleep {
    fn load(_host: &Host, _config: Value) -> Result<Self, PluginError> {
        Ok(MetaSleep)
    }
    fn get_token_metadata(&self, _login: &str, _args: &Args) -> Result<Args, PluginError> {
        std::thread::sleep(Duration::from_secs(30));
        Ok(Args::new())
    }
}

pub struct FakeLdap;

impl Idp for FakeLdap {
    fn load(_host: &Host, _config: Value) -> Result<Self, PluginError> {
        Ok(FakeLdap)
    }
    fn authentication_method(&self) -> String {
        "ldap".into()
    }
    fn can_authenticate(&self, args: &Args) -> bool {
        args.login().is_some_and(|l| l.ends_with("@ldap"))
    }
    fn verify_auth(&self, args: &mut Args) -> Result<Option<Authenticated>, PluginError> {
        let login = args.login().unwrap_or_default().trim_end_matches("@ldap");
        let login = login.to_string();
        if args.str_arg("password") != Some("ldap-pass") {
            return Ok(None);
        }
        args.insert("fakeldap_was_here".into(), true.into());
        Ok(Some(Authenticated::new("wazo_user", login)))
    }
}

pub struct IdpPanic;

impl Idp for IdpPanic {
    fn load(_host: &Host, _config: Value) -> Result<Self, PluginError> {
        Ok(IdpPanic)
    }
    fn authentication_method(&self) -> String {
        "panicky".into()
    }
    fn can_authenticate(&self, args: &Args) -> bool {
        args.login().is_some_and(|l| l.starts_with("panic"))
    }
    fn verify_auth(&self, _args: &mut Args) -> Result<Option<Authenticated>, PluginError> {
        panic!("idppanic verify_auth")
    }
}

pub struct IdpSleep;

impl Idp for IdpSleep {
    fn load(_host: &Host, _config: Value) -> Result<Self, PluginError> {
        Ok(IdpSleep)
    }
    fn authentication_method(&self) -> String {
        "sleepy".into()
    }
    fn can_authenticate(&self, args: &Args) -> bool {
        args.login().is_some_and(|l| l.starts_with("sleep"))
    }
    fn verify_auth(&self, _args: &mut Args) -> Result<Option<Authenticated>, PluginError> {
        std::thread::sleep(Duration::from_secs(30));
        Ok(None)
    }
}

pub struct CanPanic;

impl Idp for CanPanic {
    fn load(_host: &Host, _config: Value) -> Result<Self, PluginError> {
        Ok(CanPanic)
    }
    fn authentication_method(&self) -> String {
        "never".into()
    }
    fn can_authenticate(&self, _args: &Args) -> bool {
        panic!("canpanic can_authenticate")
    }
    fn verify_auth(&self, _args: &mut Args) -> Result<Option<Authenticated>, PluginError> {
        Ok(None)
    }
}

pub struct WrongBackend;

impl Idp for WrongBackend {
    fn load(_host: &Host, _config: Value) -> Result<Self, PluginError> {
        Ok(WrongBackend)
    }
    fn authentication_method(&self) -> String {
        "ldap2".into()
    }
    fn can_authenticate(&self, args: &Args) -> bool {
        args.login().is_some_and(|l| l.ends_with("@nowhere"))
    }
    fn verify_auth(&self, args: &mut Args) -> Result<Option<Authenticated>, PluginError> {
        let login = args
            .login()
            .unwrap_or_default()
            .trim_end_matches("@nowhere");
        Ok(Some(Authenticated::new("no_such_backend", login)))
    }
}

export_plugins! {
    metadata_plugins: ["tagger" => Tagger, "metapanic" => MetaPanic, "metasleep" => MetaSleep],
    idps: [
        "fakeldap" => FakeLdap,
        "idppanic" => IdpPanic,
        "idpsleep" => IdpSleep,
        "canpanic" => CanPanic,
        "wrongbackend" => WrongBackend,
    ],
}
