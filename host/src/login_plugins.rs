//! The plugins that take part in a login besides its backend (plugin-api 1.3):
//!
//! - **metadata plugins**, by purpose: `enabled_metadata_plugins` and `purpose_metadata_mapping`
//!   as the original. The default metadata of each purpose (the original's `default_user`,
//!   `default_internal`, `default_external_api`) is what the backend itself returns; the plugins
//!   mapped to the login's purpose add keys to it, in their order. With the default
//!   configuration nothing is mapped: no call, no query, the metadata is the backend's.
//!   `user_admin_status` is built in.
//! - **the IdP chain**: the enabled and loaded IdP plugins ordered by
//!   `idp_plugins.<name>.priority` (default 100), between the built-in `refresh_token` member
//!   (a refresh-token login, always first) and the built-in `native` one (the request's
//!   `backend`, else `wazo_user`; the only one when no IdP plugin is loaded).
//!
//! Every plugin call goes through [`Loaded::call`](crate::plugins::Loaded::call): a panic, an
//! error or a time-out fails the login closed (401), logged with the plugin's name and file.

use std::collections::BTreeMap;
use std::sync::Arc;

use abi_stable::std_types::RStr;
use serde_json::{Map, Value};

use crate::plugins::{CallError, LoadedIdp, LoadedMetadata, PluginRegistry};

/// The purposes of wazo-auth users.
pub const PURPOSES: [&str; 3] = ["user", "internal", "external_api"];

/// Metadata keys that say whom a token belongs to: metadata plugins cannot change them.
const IDENTITY_KEYS: [&str; 3] = ["auth_id", "uuid", "tenant_uuid"];

/// `enabled_metadata_plugins` as `name -> enabled`.
pub fn enabled_metadata(config: &Value) -> BTreeMap<String, bool> {
    bool_map(config)
}

/// `idp_plugins` as `name -> enabled` (the `enabled` key, false when absent).
pub fn enabled_idps(config: &Value) -> BTreeMap<String, bool> {
    config
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let on = v.get("enabled").and_then(Value::as_bool).unwrap_or(false);
                    (k.clone(), on)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn bool_map(v: &Value) -> BTreeMap<String, bool> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_bool().unwrap_or(false)))
                .collect()
        })
        .unwrap_or_default()
}

/// One member of a purpose's metadata.
pub enum MetadataMember {
    /// `user_admin_status`: `admin` is whether the user holds the policy
    /// `wazo_default_admin_policy` or belongs to the group `wazo_default_admin_group`.
    UserAdminStatus,
    Plugin(Arc<LoadedMetadata>),
}

impl MetadataMember {
    fn name(&self) -> &str {
        match self {
            MetadataMember::UserAdminStatus => "user_admin_status",
            MetadataMember::Plugin(p) => &p.name,
        }
    }
}

/// The login plugins of this process, decided at startup.
#[derive(Default)]
pub struct LoginPlugins {
    /// Purpose -> the metadata members mapped to it (purposes without any are absent).
    metadata: BTreeMap<String, Vec<MetadataMember>>,
    /// The IdP plugins, by priority.
    idps: Vec<Arc<LoadedIdp>>,
}

impl LoginPlugins {
    /// Builds the purpose mapping and the IdP chain from the configuration and the loaded
    /// plugins; what cannot be used is logged (as the original: a warning, and it is skipped).
    pub fn build(
        enabled_metadata_plugins: &Value,
        purpose_metadata_mapping: &Value,
        idp_plugins: &Value,
        registry: &PluginRegistry,
    ) -> LoginPlugins {
        LoginPlugins {
            metadata: metadata_mapping(
                &enabled_metadata(enabled_metadata_plugins),
                purpose_metadata_mapping,
                registry,
            ),
            idps: idp_chain(idp_plugins, registry),
        }
    }

    /// The IdP plugins of the chain, by priority.
    pub fn idps(&self) -> &[Arc<LoadedIdp>] {
        &self.idps
    }

    /// The metadata members mapped to `purpose` (empty for the default configuration).
    pub fn metadata_for(&self, purpose: &str) -> &[MetadataMember] {
        self.metadata.get(purpose).map_or(&[], Vec::as_slice)
    }

    /// One line per purpose with members, for the startup log.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .metadata
            .iter()
            .map(|(p, m)| {
                let names: Vec<&str> = m.iter().map(MetadataMember::name).collect();
                format!("{p}: {}", names.join(", "))
            })
            .collect();
        let chain: Vec<String> = self
            .idps
            .iter()
            .map(|i| format!("{} ({})", i.plugin.name, i.authentication_method))
            .collect();
        parts.push(format!(
            "IdP chain: refresh_token, {}native",
            chain.iter().map(|c| format!("{c}, ")).collect::<String>()
        ));
        parts.join("; ")
    }
}

fn metadata_mapping(
    enabled: &BTreeMap<String, bool>,
    mapping: &Value,
    registry: &PluginRegistry,
) -> BTreeMap<String, Vec<MetadataMember>> {
    let is_enabled = |name: &str| enabled.get(name).copied().unwrap_or(false);
    for (purpose, default) in [
        ("user", "default_user"),
        ("internal", "default_internal"),
        ("external_api", "default_external_api"),
    ] {
        if !is_enabled(default) {
            log::warn!(
                "enabled_metadata_plugins: {default} is disabled, but the default metadata of \
                 purpose {purpose} is built into the backends: it stays as it is"
            );
        }
    }
    let mut out: BTreeMap<String, Vec<MetadataMember>> = BTreeMap::new();
    let Some(mapping) = mapping.as_object() else {
        return out;
    };
    for (purpose, names) in mapping {
        if !PURPOSES.contains(&purpose.as_str()) {
            log::warn!("purpose_metadata_mapping: undefined purpose {purpose:?}; ignored");
            continue;
        }
        let names: Vec<&str> = names
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut members: Vec<MetadataMember> = Vec::new();
        for name in names {
            if name.starts_with("default_") && is_default_name(name) {
                // The purpose's default metadata: already the backend's.
                continue;
            }
            if members.iter().any(|m| m.name() == name) {
                continue;
            }
            let member = if !is_enabled(name) {
                None
            } else if name == "user_admin_status" {
                Some(MetadataMember::UserAdminStatus)
            } else {
                registry.metadata_plugin(name).map(MetadataMember::Plugin)
            };
            match member {
                Some(m) => members.push(m),
                None => log::warn!(
                    "purpose_metadata_mapping: purpose {purpose} names the metadata plugin \
                     {name:?}, which is not enabled and loaded; ignored"
                ),
            }
        }
        if !members.is_empty() {
            out.insert(purpose.clone(), members);
        }
    }
    out
}

fn is_default_name(name: &str) -> bool {
    matches!(
        name,
        "default_user" | "default_internal" | "default_external_api"
    )
}

fn idp_chain(idp_plugins: &Value, registry: &PluginRegistry) -> Vec<Arc<LoadedIdp>> {
    let mut enabled: Vec<(i64, String)> = idp_plugins
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, v)| v.get("enabled").and_then(Value::as_bool).unwrap_or(false))
                .map(|(k, v)| {
                    let priority = v.get("priority").and_then(Value::as_i64).unwrap_or(100);
                    (priority, k.clone())
                })
                .collect()
        })
        .unwrap_or_default();
    enabled.sort();
    enabled
        .into_iter()
        .filter_map(|(_, name)| registry.idp(&name))
        .collect()
}

/// Why a login plugin produced no usable answer.
pub struct PluginFailure {
    /// `<group> <name> (<file>): <method>`.
    pub context: String,
    pub error: CallError,
}

impl PluginFailure {
    fn new(kind: &str, name: &str, file: &std::path::Path, method: &str, error: CallError) -> Self {
        PluginFailure {
            context: format!("{kind} {name} ({}): {method}", file.display()),
            error,
        }
    }
}

fn object(text: &str) -> Result<Map<String, Value>, CallError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(CallError::Plugin(
            wazo_auth_plugin_api::PluginError::failed(
                "returned something that is not a JSON object",
            ),
        )),
    }
}

/// Merges `extra` into `into`, keeping the identity keys of `into`.
fn merge_keeping_identity(plugin: &str, into: &mut Map<String, Value>, extra: Map<String, Value>) {
    for (k, v) in extra {
        if IDENTITY_KEYS.contains(&k.as_str()) && into.get(&k) != Some(&v) {
            log::warn!(
                "metadata plugin {plugin}: tried to change {k} of a token; kept the backend's"
            );
            continue;
        }
        into.insert(k, v);
    }
}

/// Runs the metadata members of the login's purpose (from the backend's `metadata`), merging
/// their keys into `metadata`, and, for an offline login (`persistent` given), their persistent
/// metadata into `persistent`.
pub async fn apply_metadata(
    state: &crate::http::AppState,
    login: &str,
    args: &Map<String, Value>,
    metadata: &mut Map<String, Value>,
    mut persistent: Option<&mut Map<String, Value>>,
) -> Result<(), PluginFailure> {
    let purpose = metadata
        .get("purpose")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let members = state.login_plugins.metadata_for(&purpose);
    if members.is_empty() {
        return Ok(());
    }
    let timeout = state.settings.plugin_call_timeout;
    for member in members {
        match member {
            MetadataMember::UserAdminStatus => {
                let auth_id = metadata
                    .get("auth_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let admin = async {
                    let client = state.storage.client().await?;
                    wazo_auth_core::users::has_admin_status(&client, &auth_id).await
                }
                .await
                .map_err(|e| PluginFailure {
                    context: "metadata user_admin_status (built in)".into(),
                    error: CallError::Plugin(wazo_auth_plugin_api::PluginError::unavailable(
                        format!("the user database failed: {e}"),
                    )),
                })?;
                metadata.insert("admin".into(), Value::Bool(admin));
            }
            MetadataMember::Plugin(plugin) => {
                let mut call_args = args.clone();
                call_args.insert("token_metadata".into(), Value::Object(metadata.clone()));
                let args_text = Value::Object(call_args).to_string();
                let login_text = login.to_string();
                let offline = persistent.is_some();
                let outcome = plugin
                    .call(timeout, move |p| {
                        let login = RStr::from_str(&login_text);
                        let args = RStr::from_str(&args_text);
                        let token = match p.get_token_metadata(login, args) {
                            abi_stable::std_types::RResult::ROk(t) => t,
                            abi_stable::std_types::RResult::RErr(e) => {
                                return abi_stable::std_types::RResult::RErr(e)
                            }
                        };
                        if !offline {
                            return abi_stable::std_types::RResult::ROk((token, None));
                        }
                        p.get_persistent_metadata(login, args)
                            .map(|persistent| (token, Some(persistent)))
                    })
                    .await;
                let fail = |method: &str, e| {
                    PluginFailure::new("metadata plugin", &plugin.name, &plugin.file, method, e)
                };
                let (token, more) = outcome.map_err(|e| fail("a metadata call", e))?;
                let token = object(token.as_str()).map_err(|e| fail("get_token_metadata", e))?;
                merge_keeping_identity(&plugin.name, metadata, token);
                if let (Some(p), Some(more)) = (persistent.as_deref_mut(), more) {
                    let more =
                        object(more.as_str()).map_err(|e| fail("get_persistent_metadata", e))?;
                    p.extend(more);
                }
            }
        }
    }
    Ok(())
}

/// What the IdP chain decided for a login.
pub struct IdpVerified {
    /// The IdP plugin that verified it.
    pub idp: Arc<LoadedIdp>,
    pub backend: String,
    pub login: String,
    /// The `args` it handed back (the password removed).
    pub args: Map<String, Value>,
}

/// The IdP chain's answer.
pub enum IdpDecision {
    /// No IdP plugin handles the request: the built-in `native` member does (today's path).
    Native,
    /// An IdP plugin verified the request.
    Verified(IdpVerified),
    /// An IdP plugin handled the request and refused the credentials.
    Rejected { idp: String },
}

/// Asks the IdP plugins in priority order whether they handle the request (`args`); the first
/// that does verifies it. A failing `can_authenticate` is logged and skipped (as the original);
/// a failing `verify_auth` fails the login.
pub async fn run_chain(
    state: &crate::http::AppState,
    args: &Map<String, Value>,
) -> Result<IdpDecision, PluginFailure> {
    let timeout = state.settings.plugin_call_timeout;
    let args_text = Value::Object(args.clone()).to_string();
    for idp in state.login_plugins.idps() {
        let text = args_text.clone();
        let can = idp
            .plugin
            .call(timeout, move |p| p.can_authenticate(RStr::from_str(&text)))
            .await;
        match can {
            Ok(false) => continue,
            Ok(true) => {}
            Err(e) => {
                log::error!(
                    "IdP plugin {} ({}): can_authenticate failed: {e}; skipped",
                    idp.plugin.name,
                    idp.plugin.file.display()
                );
                continue;
            }
        }
        let text = args_text.clone();
        let fail = |method: &str, e| {
            PluginFailure::new("IdP plugin", &idp.plugin.name, &idp.plugin.file, method, e)
        };
        let outcome = idp
            .plugin
            .call(timeout, move |p| p.verify_auth(RStr::from_str(&text)))
            .await
            .map_err(|e| fail("verify_auth", e))?;
        if !outcome.accepted {
            return Ok(IdpDecision::Rejected {
                idp: idp.plugin.name.clone(),
            });
        }
        let mut args = object(outcome.args_json.as_str()).map_err(|e| fail("verify_auth", e))?;
        args.remove("password");
        return Ok(IdpDecision::Verified(IdpVerified {
            idp: idp.clone(),
            backend: outcome.backend.into_string(),
            login: outcome.login.into_string(),
            args,
        }));
    }
    Ok(IdpDecision::Native)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn identity_keys_are_kept() {
        let mut m = json!({"auth_id": "a", "uuid": "u", "purpose": "user"})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let extra = json!({"auth_id": "evil", "tenant_uuid": "t", "admin": true, "purpose": "x"})
            .as_object()
            .cloned()
            .unwrap_or_default();
        merge_keeping_identity("p", &mut m, extra);
        assert_eq!(
            Value::Object(m),
            json!({"auth_id": "a", "uuid": "u", "purpose": "x", "admin": true})
        );
    }

    #[test]
    fn idp_config_maps() {
        let c =
            json!({"saml": {"enabled": true, "priority": 1}, "ldap": {"enabled": false}, "x": {}});
        let e = enabled_idps(&c);
        assert_eq!(e.get("saml"), Some(&true));
        assert_eq!(e.get("ldap"), Some(&false));
        assert_eq!(e.get("x"), Some(&false));
        let m = enabled_metadata(&json!({"default_user": true, "user_admin_status": "yes"}));
        assert_eq!(m.get("default_user"), Some(&true));
        assert_eq!(m.get("user_admin_status"), Some(&false));
    }

    #[test]
    fn default_mapping_has_no_member() {
        let reg = PluginRegistry::default();
        let lp = LoginPlugins::build(
            &json!({"default_user": true, "default_internal": true, "default_external_api": true}),
            &json!({"user": [], "internal": [], "external_api": []}),
            &json!({"saml": {"enabled": true, "priority": 1}}),
            &reg,
        );
        for p in PURPOSES {
            assert!(lp.metadata_for(p).is_empty());
        }
        assert!(lp.idps().is_empty());
        let lp = LoginPlugins::build(
            &json!({"user_admin_status": true}),
            &json!({"user": ["default_user", "user_admin_status", "user_admin_status", "missing"], "bogus": ["user_admin_status"]}),
            &json!({}),
            &reg,
        );
        let names: Vec<&str> = lp.metadata_for("user").iter().map(|m| m.name()).collect();
        assert_eq!(names, ["user_admin_status"]);
        assert!(lp.metadata_for("internal").is_empty());
        // Mapped but not enabled: skipped.
        let lp = LoginPlugins::build(
            &json!({}),
            &json!({"user": ["user_admin_status"]}),
            &json!({}),
            &reg,
        );
        assert!(lp.metadata_for("user").is_empty());
    }
}
