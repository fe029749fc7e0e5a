//! What runs at startup before serving (spec core §6.1): the configuration-managed policies and
//! per-tenant defaults (`update_policy_on_startup`), and the bootstrap user.

use serde_json::Value;
use wazo_auth_core::defaults::{all_users_group_slug, apply_tenant_defaults};
use wazo_auth_core::password::{self, Scheme};
use wazo_auth_core::Storage;

use crate::config::Config;

/// Applies the startup steps that the configuration asks for.
pub async fn apply(cfg: &Config, storage: &Storage, scheme: Scheme) -> Result<(), String> {
    if cfg.update_policy_on_startup {
        update_policies(cfg, storage)
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

async fn update_policies(cfg: &Config, storage: &Storage) -> wazo_auth_core::Result<()> {
    let mut client = storage.client().await?;
    let tx = client.transaction().await?;
    // One process at a time (several servers may start together on one database).
    tx.execute("SELECT pg_advisory_xact_lock(7745323221)", &[])
        .await?;
    let top: String = tx
        .query_one(
            "SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid LIMIT 1",
            &[],
        )
        .await?
        .get(0);

    // (a) default_policies: config-managed policies of the top tenant.
    let defaults = &cfg.default_policies;
    for (slug, spec) in defaults {
        let acl: Vec<String> = spec
            .get("acl")
            .and_then(Value::as_array)
            .map(|a| {
                let mut out: Vec<String> = Vec::new();
                for s in a.iter().filter_map(Value::as_str) {
                    if !out.iter().any(|x| x == s) {
                        out.push(s.to_string());
                    }
                }
                out
            })
            .unwrap_or_default();
        let description = spec
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("Automatically created")
            .to_string();
        let updated = tx
            .execute(
                "UPDATE auth_policy SET acl = $3, description = $4, config_managed = true
                 WHERE tenant_uuid = $1 AND lower(slug) = lower($2)",
                &[&top, slug, &acl, &description],
            )
            .await?;
        if updated == 0 {
            tx.execute(
                "INSERT INTO auth_policy (name, slug, description, tenant_uuid, config_managed, acl)
                 VALUES ($2, $2, $4, $1, true, $3)",
                &[&top, slug, &acl, &description],
            )
            .await?;
        }
    }

    // (b) all-users policies: dissociate config-managed policies that are no longer listed.
    let td = cfg.tenant_defaults();
    tx.execute(
        "DELETE FROM auth_group_policy gp USING auth_group g, auth_policy p
         WHERE gp.group_uuid = g.uuid AND gp.policy_uuid = p.uuid
           AND g.system_managed AND g.slug LIKE 'wazo-all-users-tenant-%'
           AND p.config_managed AND NOT (lower(p.slug) = ANY($1))",
        &[&td
            .all_users_policies
            .iter()
            .map(|s| s.to_lowercase())
            .collect::<Vec<_>>()],
    )
    .await?;
    // (b, c) every tenant gets its all-users group, the enabled all-users policies and the
    // default groups with their policies.
    let tenants: Vec<String> = tx
        .query("SELECT uuid FROM auth_tenant ORDER BY uuid", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for t in &tenants {
        apply_tenant_defaults(&tx, t, &td).await?;
    }

    // (d) config-managed policies no longer configured, unless still associated.
    let keep: Vec<String> = defaults.keys().map(|k| k.to_lowercase()).collect();
    tx.execute(
        "DELETE FROM auth_policy p
         WHERE p.config_managed AND NOT (lower(p.slug) = ANY($1))
           AND NOT EXISTS (SELECT 1 FROM auth_user_policy up WHERE up.policy_uuid = p.uuid)
           AND NOT EXISTS (SELECT 1 FROM auth_group_policy gp WHERE gp.policy_uuid = p.uuid)",
        &[&keep],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Options of the initial user (the original's `wazo-auth-bootstrap initial-user`).
#[derive(Debug, Clone)]
pub struct BootstrapRequest {
    pub username: String,
    pub password: String,
    pub purpose: String,
    pub policy_slug: String,
}

/// Creates the initial user in the top tenant, with the given policy. Idempotent: when the user
/// already exists with this password nothing changes; with another password it is an error.
pub async fn bootstrap_user(
    storage: &Storage,
    req: &BootstrapRequest,
    scheme: Scheme,
) -> Result<String, String> {
    let db = |e: wazo_auth_core::Error| format!("bootstrap failed: {e}");
    if req.username.is_empty() || req.password.is_empty() {
        return Err("the bootstrap username and password must not be empty".into());
    }
    if !matches!(req.purpose.as_str(), "user" | "internal" | "external_api") {
        return Err(format!("invalid purpose {:?}", req.purpose));
    }
    let mut client = storage.client().await.map_err(db)?;
    let tx = client.transaction().await.map_err(|e| db(e.into()))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(lower($1), 0))",
        &[&req.username],
    )
    .await
    .map_err(|e| db(e.into()))?;
    let existing = tx
        .query_opt(
            "SELECT u.uuid, u.password_scheme, u.password_hash, u.password_salt
             FROM auth_user u WHERE lower(u.username) = lower($1)
             UNION ALL
             SELECT u.uuid, u.password_scheme, u.password_hash, u.password_salt
             FROM auth_user u JOIN auth_email e ON e.user_uuid = u.uuid
             WHERE lower(e.address) = lower($1)
             LIMIT 1",
            &[&req.username],
        )
        .await
        .map_err(|e| db(e.into()))?;
    if let Some(row) = existing {
        let uuid: String = row.get(0);
        let scheme_col: Option<String> = row.get(1);
        let stored =
            password::StoredPassword::from_columns(scheme_col.as_deref(), row.get(2), row.get(3));
        let pw = req.password.clone();
        let ok =
            tokio::task::spawn_blocking(move || password::verify(&pw, stored.as_ref(), scheme))
                .await
                .unwrap_or(false);
        return if ok {
            Ok(format!("already exists ({uuid}), unchanged"))
        } else {
            Err(format!(
                "a user named {:?} already exists with another password",
                req.username
            ))
        };
    }
    let top: String = tx
        .query_one(
            "SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid LIMIT 1",
            &[],
        )
        .await
        .map_err(|e| db(e.into()))?
        .get(0);
    let policy: String = tx
        .query_opt(
            "SELECT uuid FROM auth_policy WHERE lower(slug) = lower($1)
             ORDER BY (tenant_uuid = $2) DESC LIMIT 1",
            &[&req.policy_slug, &top],
        )
        .await
        .map_err(|e| db(e.into()))?
        .ok_or_else(|| format!("no policy with slug {:?}", req.policy_slug))?
        .get(0);
    let pw = req.password.clone();
    let stored = tokio::task::spawn_blocking(move || password::hash(&pw, scheme))
        .await
        .map_err(|e| format!("bootstrap failed: {e}"))?;
    let uuid: String = tx
        .query_one(
            "INSERT INTO auth_user (username, password_hash, password_salt, password_scheme,
                                    tenant_uuid, purpose, authentication_method, enabled)
             VALUES ($1, $2, $3, $4, $5, $6, 'native', true)
             RETURNING uuid",
            &[
                &req.username,
                &stored.hash,
                &stored.salt,
                &stored.scheme.as_str(),
                &top,
                &req.purpose,
            ],
        )
        .await
        .map_err(|e| db(e.into()))?
        .get(0);
    tx.execute(
        "INSERT INTO auth_user_group (group_uuid, user_uuid)
         SELECT uuid, $2 FROM auth_group WHERE tenant_uuid = $1 AND slug = $3
         ON CONFLICT DO NOTHING",
        &[&top, &uuid, &all_users_group_slug(&top)],
    )
    .await
    .map_err(|e| db(e.into()))?;
    tx.execute(
        "INSERT INTO auth_user_policy (user_uuid, policy_uuid) VALUES ($1, $2)
         ON CONFLICT DO NOTHING",
        &[&uuid, &policy],
    )
    .await
    .map_err(|e| db(e.into()))?;
    tx.commit().await.map_err(|e| db(e.into()))?;
    Ok(format!("created ({uuid})"))
}
