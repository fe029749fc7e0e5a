//! Per-tenant defaults (spec core §6.1, management §16): every tenant has a system-managed
//! all-users group `wazo-all-users-tenant-<uuid>` holding the enabled `all_users_policies`, and the
//! configured `tenant_default_groups` with their policies.

use crate::sql::Db;

use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::tenants;

/// The defaults taken from the configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TenantDefaults {
    /// Slugs of the policies every user of every tenant gets (through the all-users group).
    pub all_users_policies: Vec<String>,
    /// `tenant_default_groups`: group slug → (policy slug, associated?) pairs.
    pub default_groups: Vec<(String, Vec<(String, bool)>)>,
}

/// The slug (and name) of a tenant's all-users group.
pub fn all_users_group_slug(tenant_uuid: &str) -> String {
    format!("wazo-all-users-tenant-{tenant_uuid}")
}

/// Finds a policy usable by `tenant_uuid` by slug: one of its own, else a config-managed one,
/// else a shared one of an ancestor.
pub async fn find_policy_for_tenant<C: Db>(
    client: &C,
    tenant_uuid: &str,
    slug: &str,
) -> Result<Option<String>> {
    let row = client
        .fetch_opt(
            "WITH RECURSIVE up(uuid, parent_uuid, depth) AS (
                 SELECT uuid, parent_uuid, 0 FROM auth_tenant WHERE uuid = $1
                 UNION ALL
                 SELECT t.uuid, t.parent_uuid, up.depth + 1
                 FROM auth_tenant t JOIN up ON t.uuid = up.parent_uuid
                 WHERE up.uuid <> up.parent_uuid AND up.depth < 1000
             )
             SELECT p.uuid FROM auth_policy p
             WHERE lower(p.slug) = lower($2)
               AND (p.tenant_uuid = $1
                    OR p.config_managed
                    OR (p.shared AND p.tenant_uuid IN (SELECT uuid FROM up)))
             ORDER BY (p.tenant_uuid = $1) DESC, p.config_managed DESC
             LIMIT 1",
            &[&tenant_uuid, &slug],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Creates (if missing) the all-users group of `tenant_uuid` and its default groups, and syncs
/// their policy associations. Idempotent; runs inside the caller's transaction.
pub async fn apply_tenant_defaults<C: Db>(
    client: &C,
    tenant_uuid: &str,
    defaults: &TenantDefaults,
) -> Result<()> {
    let slug = all_users_group_slug(tenant_uuid);
    client
        .exec(
            "INSERT INTO auth_group (name, slug, tenant_uuid, system_managed)
             VALUES ($1::text, $1::text, $2, true)
             ON CONFLICT DO NOTHING",
            &[&slug, &tenant_uuid],
        )
        .await?;
    let group: String = client
        .fetch_one(
            "SELECT uuid FROM auth_group WHERE tenant_uuid = $1 AND lower(slug) = lower($2)",
            &[&tenant_uuid, &slug],
        )
        .await?
        .get(0);
    for policy_slug in &defaults.all_users_policies {
        if let Some(policy) = find_policy_for_tenant(client, tenant_uuid, policy_slug).await? {
            associate_group_policy(client, &group, &policy).await?;
        }
    }
    for (group_slug, policies) in &defaults.default_groups {
        client
            .exec(
                "INSERT INTO auth_group (name, slug, tenant_uuid, system_managed)
                 VALUES ($1::text, $1::text, $2, false)
                 ON CONFLICT DO NOTHING",
                &[group_slug, &tenant_uuid],
            )
            .await?;
        let Some(row) = client
            .fetch_opt(
                "SELECT uuid FROM auth_group WHERE tenant_uuid = $1 AND lower(slug) = lower($2)",
                &[&tenant_uuid, group_slug],
            )
            .await?
        else {
            continue;
        };
        let group: String = row.get(0);
        for (policy_slug, enabled) in policies {
            let Some(policy) = find_policy_for_tenant(client, tenant_uuid, policy_slug).await?
            else {
                continue;
            };
            if *enabled {
                associate_group_policy(client, &group, &policy).await?;
            } else {
                client
                    .exec(
                        "DELETE FROM auth_group_policy WHERE group_uuid = $1 AND policy_uuid = $2",
                        &[&group, &policy],
                    )
                    .await?;
            }
        }
    }
    Ok(())
}

/// The policy each tenant finds for each slug of `$1` (a `text[]`), as
/// [`find_policy_for_tenant`] finds it, for every tenant at once: a CTE `resolved(tenant_uuid,
/// slug, policy_uuid)` (`slug` lower-cased). Its own policy first, else a config-managed one, else
/// a shared one of an ancestor (the nearest, where the per-tenant query takes any). The shared
/// candidates are found downwards, from the tenants owning a shared policy of one of the slugs,
/// so that tenants without any cost nothing.
const RESOLVE_POLICIES: &str = "WITH RECURSIVE
     wanted(slug) AS (SELECT DISTINCT lower(s) FROM unnest($1::text[]) AS s),
     shared_down(tenant_uuid, policy_uuid, slug, depth) AS (
         SELECT p.tenant_uuid, p.uuid, w.slug, 0
         FROM auth_policy p JOIN wanted w ON lower(p.slug) = w.slug
         WHERE p.shared
         UNION ALL
         SELECT t.uuid, d.policy_uuid, d.slug, d.depth + 1
         FROM auth_tenant t JOIN shared_down d ON t.parent_uuid = d.tenant_uuid
         WHERE t.uuid <> t.parent_uuid AND d.depth < 1000
     ),
     candidates(tenant_uuid, slug, policy_uuid, rank, depth) AS (
         SELECT p.tenant_uuid, w.slug, p.uuid, 0, 0
         FROM auth_policy p JOIN wanted w ON lower(p.slug) = w.slug
         UNION ALL
         SELECT t.uuid, w.slug, p.uuid, 1, 0
         FROM auth_policy p JOIN wanted w ON lower(p.slug) = w.slug CROSS JOIN auth_tenant t
         WHERE p.config_managed
         UNION ALL
         SELECT tenant_uuid, slug, policy_uuid, 2, depth FROM shared_down
     ),
     resolved(tenant_uuid, slug, policy_uuid) AS (
         SELECT DISTINCT ON (tenant_uuid, slug) tenant_uuid, slug, policy_uuid
         FROM candidates
         ORDER BY tenant_uuid, slug, rank, depth, policy_uuid
     )";

/// [`apply_tenant_defaults`] for every tenant, in a number of statements that depends on the
/// configuration only (two, plus three per default group), not on the number of tenants. Same
/// rows as applying it tenant by tenant. Runs inside the caller's transaction.
pub async fn apply_all_tenant_defaults<C: Db>(client: &C, defaults: &TenantDefaults) -> Result<()> {
    client
        .exec(
            "INSERT INTO auth_group (name, slug, tenant_uuid, system_managed)
             SELECT 'wazo-all-users-tenant-' || uuid, 'wazo-all-users-tenant-' || uuid, uuid, true
             FROM auth_tenant
             ON CONFLICT DO NOTHING",
            &[],
        )
        .await?;
    if !defaults.all_users_policies.is_empty() {
        client
            .exec(
                &format!(
                    "{RESOLVE_POLICIES}
                     INSERT INTO auth_group_policy (group_uuid, policy_uuid)
                     SELECT g.uuid, r.policy_uuid
                     FROM resolved r JOIN auth_group g
                       ON g.tenant_uuid = r.tenant_uuid
                      AND lower(g.slug) = lower('wazo-all-users-tenant-' || r.tenant_uuid)
                     ON CONFLICT DO NOTHING"
                ),
                &[&defaults.all_users_policies],
            )
            .await?;
    }
    for (group_slug, policies) in &defaults.default_groups {
        client
            .exec(
                "INSERT INTO auth_group (name, slug, tenant_uuid, system_managed)
                 SELECT $1::text, $1::text, uuid, false FROM auth_tenant
                 ON CONFLICT DO NOTHING",
                &[group_slug],
            )
            .await?;
        // Applied one by one, a later line for a slug undoes an earlier one: only the last
        // line of each slug (slugs are matched without case) decides.
        let mut last: Vec<(String, bool)> = Vec::new();
        for (policy_slug, enabled) in policies {
            let slug = policy_slug.to_lowercase();
            last.retain(|(s, _)| *s != slug);
            last.push((slug, *enabled));
        }
        let of = |wanted: bool| -> Vec<String> {
            last.iter()
                .filter(|(_, enabled)| *enabled == wanted)
                .map(|(s, _)| s.clone())
                .collect()
        };
        let (enabled, disabled) = (of(true), of(false));
        if !enabled.is_empty() {
            client
                .exec(
                    &format!(
                        "{RESOLVE_POLICIES}
                         INSERT INTO auth_group_policy (group_uuid, policy_uuid)
                         SELECT g.uuid, r.policy_uuid
                         FROM resolved r JOIN auth_group g
                           ON g.tenant_uuid = r.tenant_uuid AND lower(g.slug) = lower($2)
                         ON CONFLICT DO NOTHING"
                    ),
                    &[&enabled, group_slug],
                )
                .await?;
        }
        if !disabled.is_empty() {
            client
                .exec(
                    &format!(
                        "{RESOLVE_POLICIES}
                         DELETE FROM auth_group_policy gp
                         USING resolved r, auth_group g
                         WHERE g.tenant_uuid = r.tenant_uuid AND lower(g.slug) = lower($2)
                           AND gp.group_uuid = g.uuid AND gp.policy_uuid = r.policy_uuid"
                    ),
                    &[&disabled, group_slug],
                )
                .await?;
        }
    }
    Ok(())
}

async fn associate_group_policy<C: Db>(client: &C, group: &str, policy: &str) -> Result<()> {
    client
        .exec(
            "INSERT INTO auth_group_policy (group_uuid, policy_uuid) VALUES ($1, $2)
             ON CONFLICT DO NOTHING",
            &[&group, &policy],
        )
        .await?;
    Ok(())
}

/// A configuration-managed policy of the top tenant (`default_policies`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredPolicy {
    pub slug: String,
    /// Without duplicates.
    pub acl: Vec<String>,
    pub description: String,
}

/// Arbitrary but fixed key of the advisory lock that serialises [`apply_on_startup`] between
/// several servers starting together on one database.
const STARTUP_POLICIES_LOCK_KEY: i64 = 7_745_323_221;

/// `update_policy_on_startup` (spec core §6.1), in one transaction: (a) writes the configured
/// policies into the top tenant (config-managed), (b) dissociates from the all-users groups the
/// config-managed policies no longer listed in `defaults.all_users_policies`, (b, c) gives every
/// tenant its all-users group and default groups ([`apply_all_tenant_defaults`], set-based: the
/// same few statements whatever the number of tenants), (d) deletes the
/// config-managed policies no longer configured, unless still associated.
pub async fn apply_on_startup(
    storage: &Storage,
    policies: &[ConfiguredPolicy],
    defaults: &TenantDefaults,
) -> Result<()> {
    let mut client = storage.client().await?;
    let tx = client.transaction().await?;
    // One process at a time (several servers may start together on one database).
    tx.exec(
        "SELECT pg_advisory_xact_lock($1)",
        &[&STARTUP_POLICIES_LOCK_KEY],
    )
    .await?;
    let top = tenants::top_tenant(&tx)
        .await?
        .ok_or_else(|| Error::Corrupt("no top tenant".into()))?;

    // (a) default_policies: config-managed policies of the top tenant.
    for policy in policies {
        let updated = tx
            .exec(
                "UPDATE auth_policy SET acl = $3, description = $4, config_managed = true
                 WHERE tenant_uuid = $1 AND lower(slug) = lower($2)",
                &[&top, &policy.slug, &policy.acl, &policy.description],
            )
            .await?;
        if updated == 0 {
            tx.exec(
                "INSERT INTO auth_policy (name, slug, description, tenant_uuid, config_managed, acl)
                 VALUES ($2, $2, $4, $1, true, $3)",
                &[&top, &policy.slug, &policy.acl, &policy.description],
            )
            .await?;
        }
    }

    // (b) all-users policies: dissociate config-managed policies that are no longer listed.
    let listed: Vec<String> = defaults
        .all_users_policies
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    tx.exec(
        "DELETE FROM auth_group_policy gp USING auth_group g, auth_policy p
         WHERE gp.group_uuid = g.uuid AND gp.policy_uuid = p.uuid
           AND g.system_managed AND g.slug LIKE 'wazo-all-users-tenant-%'
           AND p.config_managed AND NOT (lower(p.slug) = ANY($1))",
        &[&listed],
    )
    .await?;
    // (b, c) every tenant gets its all-users group, the enabled all-users policies and the
    // default groups with their policies.
    apply_all_tenant_defaults(&tx, defaults).await?;

    // (d) config-managed policies no longer configured, unless still associated.
    let keep: Vec<String> = policies.iter().map(|p| p.slug.to_lowercase()).collect();
    tx.exec(
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
