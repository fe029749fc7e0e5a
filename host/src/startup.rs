//! What runs at startup before serving (spec core §6.1): the configuration-managed policies and
//! per-tenant defaults (`update_policy_on_startup`), and the bootstrap user. The work itself is
//! done by the core ([`defaults::apply_on_startup`], [`bootstrap::bootstrap_user`]).

use serde_json::{Map, Value};
use wazo_auth_core::defaults::{self, ConfiguredPolicy};
use wazo_auth_core::password::Scheme;
use wazo_auth_core::services::bootstrap;
use wazo_auth_core::Storage;

use crate::config::Config;

pub use wazo_auth_core::services::bootstrap::BootstrapRequest;

/// Applies the startup steps that the configuration asks for.
pub async fn apply(cfg: &Config, storage: &Storage, scheme: Scheme) -> Result<(), String> {
    if cfg.update_policy_on_startup {
        defaults::apply_on_startup(
            storage,
            &configured_policies(&cfg.default_policies),
            &cfg.tenant_defaults(),
        )
        .await
        .map_err(|e| format!("applying default policies failed: {e}"))?;
    }
    if cfg.bootstrap_user_on_startup {
        let (Some(username), Some(pw)) =
            (&cfg.bootstrap_user_username, &cfg.bootstrap_user_password)
        else {
            return Err("bootstrap_user_on_startup needs bootstrap_user_username and bootstrap_user_password".into());
        };
        let outcome = bootstrap_user(
            storage,
            &BootstrapRequest {
                username: username.clone(),
                password: pw.clone(),
                purpose: cfg.bootstrap_user_purpose.to_string(),
                policy_slug: cfg.bootstrap_user_policy_slug.clone(),
            },
            scheme,
        )
        .await?;
        log::info!("bootstrap user {username:?}: {outcome}");
    }
    Ok(())
}

/// The `default_policies` setting: slug → `{acl, description}` (ACL without duplicates, the
/// description "Automatically created" when missing).
fn configured_policies(setting: &Map<String, Value>) -> Vec<ConfiguredPolicy> {
    setting
        .iter()
        .map(|(slug, spec)| {
            let mut acl: Vec<String> = Vec::new();
            let entries = spec.get("acl").and_then(Value::as_array);
            for s in entries.into_iter().flatten().filter_map(Value::as_str) {
                if !acl.iter().any(|x| x == s) {
                    acl.push(s.to_string());
                }
            }
            let description = spec
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("Automatically created")
                .to_string();
            ConfiguredPolicy {
                slug: slug.clone(),
                acl,
                description,
            }
        })
        .collect()
}

/// Creates the initial user in the top tenant, with the given policy (see
/// [`bootstrap::bootstrap_user`]); the outcome as a sentence (`created (<uuid>)`, or
/// `already exists (<uuid>), unchanged`).
pub async fn bootstrap_user(
    storage: &Storage,
    req: &BootstrapRequest,
    scheme: Scheme,
) -> Result<String, String> {
    bootstrap::bootstrap_user(storage, req, scheme)
        .await
        .map(|outcome| outcome.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn configured_policies_from_the_setting() {
        assert!(configured_policies(&Map::new()).is_empty());
        let setting = json!({
            "a": {"acl": ["x", "y", "x", 3], "description": "A"},
            "b": {},
        });
        let got = configured_policies(setting.as_object().unwrap());
        assert_eq!(
            got,
            vec![
                ConfiguredPolicy {
                    slug: "a".into(),
                    acl: vec!["x".into(), "y".into()],
                    description: "A".into(),
                },
                ConfiguredPolicy {
                    slug: "b".into(),
                    acl: vec![],
                    description: "Automatically created".into(),
                },
            ]
        );
    }
}
