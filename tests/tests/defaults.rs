//! The per-tenant defaults applied at startup (`update_policy_on_startup`): the set-based
//! statements give the same rows as applying the defaults tenant by tenant, and a start on
//! thousands of tenants does not take one round trip per tenant.

use std::time::Instant;

use serde_json::json;
use wazo_auth_core::defaults::{self, TenantDefaults};
use wazo_auth_core::Storage;
use wazo_auth_tests::*;

/// `n` tenants in chains 10 deep under the top tenant (tenant `i`'s parent is `i - 1`, or the
/// top for every tenth), with own, config-managed and shared policies whose slugs differ in
/// case, and some groups and associations that already exist. Deterministic uuids.
fn seed(db: &str, n: i32) {
    sql(
        db,
        &format!(
            "INSERT INTO auth_tenant (uuid, name, slug, parent_uuid)
             SELECT md5('t' || i)::uuid::text, 't' || i, 't' || i,
                    CASE WHEN i % 10 = 0 THEN (SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid)
                         ELSE md5('t' || (i - 1))::uuid::text END
             FROM generate_series(0, {last}) AS i ORDER BY i;
             INSERT INTO auth_policy (uuid, name, slug, tenant_uuid, config_managed, shared, acl)
             SELECT md5('cfg' || s)::uuid::text, s, s, uuid, true, false, ARRAY['x']
             FROM auth_tenant, unnest(ARRAY['cfg-a', 'cfg-b']) AS s WHERE uuid = parent_uuid;
             -- Shared from every other chain head: one shared candidate per tenant below it.
             INSERT INTO auth_policy (uuid, name, slug, tenant_uuid, shared, acl)
             SELECT md5('sh' || i)::uuid::text, 'shared-x', 'Shared-X', md5('t' || i)::uuid::text,
                    true, ARRAY['y']
             FROM generate_series(0, {last}, 20) AS i;
             -- Own policies, one of them named as a config-managed one (own wins).
             INSERT INTO auth_policy (uuid, name, slug, tenant_uuid, acl)
             SELECT md5('own' || i)::uuid::text, 'own-y', 'own-y', md5('t' || i)::uuid::text, '{{}}'
             FROM generate_series(0, {last}, 3) AS i;
             INSERT INTO auth_policy (uuid, name, slug, tenant_uuid, acl)
             SELECT md5('owncfg' || i)::uuid::text, 'CFG-A', 'CFG-A', md5('t' || i)::uuid::text, '{{}}'
             FROM generate_series(0, {last}, 7) AS i;
             -- A default group that exists with another case, associated with a policy the
             -- defaults disable.
             INSERT INTO auth_group (uuid, name, slug, tenant_uuid)
             SELECT md5('team' || i)::uuid::text, 'Team', 'Team', md5('t' || i)::uuid::text
             FROM generate_series(0, {last}, 4) AS i;
             INSERT INTO auth_group_policy (group_uuid, policy_uuid)
             SELECT md5('team' || i)::uuid::text, md5('own' || i)::uuid::text
             FROM generate_series(0, {last}, 12) AS i;",
            last = n - 1
        ),
    );
}

fn tenant_defaults() -> TenantDefaults {
    TenantDefaults {
        all_users_policies: vec!["cfg-a".into(), "SHARED-x".into(), "missing".into()],
        default_groups: vec![
            (
                "team".into(),
                vec![
                    ("own-y".into(), false),
                    ("cfg-b".into(), true),
                    ("shared-x".into(), true),
                ],
            ),
            (
                "Second".into(),
                vec![
                    ("CFG-A".into(), true),
                    ("cfg-a".into(), false),
                    ("own-y".into(), true),
                    ("cfg-b".into(), false),
                    ("Cfg-B".into(), true),
                ],
            ),
        ],
    }
}

/// Every group and association, by natural keys (tenant, group slug, policy uuid: group uuids
/// are random).
type Rows = Vec<Vec<Option<String>>>;

fn snapshot(db: &str) -> (Rows, Rows) {
    let groups = sql(
        db,
        "SELECT tenant_uuid, name, slug, system_managed::text FROM auth_group
         ORDER BY tenant_uuid, slug",
    );
    let associations = sql(
        db,
        "SELECT g.tenant_uuid, g.slug, gp.policy_uuid
         FROM auth_group_policy gp JOIN auth_group g ON g.uuid = gp.group_uuid
         ORDER BY 1, 2, 3",
    );
    (groups, associations)
}

#[test]
fn set_based_defaults_make_the_same_rows_as_tenant_by_tenant() {
    const TENANTS: i32 = 400;
    let (by_tenant, set_based) = (fresh_database(), fresh_database());
    seed(&by_tenant, TENANTS);
    seed(&set_based, TENANTS);
    let defaults = tenant_defaults();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let took = rt.block_on(async {
        let storage = Storage::new(&by_tenant, 1).unwrap();
        let mut client = storage.client().await.unwrap();
        let tx = client.transaction().await.unwrap();
        let tenants = tx
            .query("SELECT uuid FROM auth_tenant ORDER BY uuid", &[])
            .await
            .unwrap();
        let started = Instant::now();
        for t in &tenants {
            defaults::apply_tenant_defaults(&tx, t.get(0), &defaults)
                .await
                .unwrap();
        }
        let by_tenant = started.elapsed();
        tx.commit().await.unwrap();

        let storage = Storage::new(&set_based, 1).unwrap();
        let mut client = storage.client().await.unwrap();
        let tx = client.transaction().await.unwrap();
        let started = Instant::now();
        defaults::apply_all_tenant_defaults(&tx, &defaults)
            .await
            .unwrap();
        let set_based = started.elapsed();
        tx.commit().await.unwrap();
        (by_tenant, set_based)
    });
    println!(
        "{} tenants: tenant by tenant {:?}, set-based {:?}",
        TENANTS + 1,
        took.0,
        took.1
    );
    let expected = snapshot(&by_tenant);
    assert_eq!(snapshot(&set_based), expected);
    // What the seed and the defaults make, so that the comparison is not between two empty
    // sets: an all-users group per tenant, `team` in every tenant (some found as `Team`),
    // `Second` in every tenant, and associations from each kind of policy.
    let (groups, associations) = expected;
    let tenants = TENANTS as usize + 1;
    assert_eq!(groups.len(), 3 * tenants);
    let count = |policy_like: &str| {
        let uuids = sql(
            &by_tenant,
            &format!("SELECT uuid FROM auth_policy WHERE name LIKE '{policy_like}'"),
        );
        associations
            .iter()
            .filter(|a| uuids.iter().any(|u| u[0] == a[2]))
            .count()
    };
    assert!(count("cfg-%") > tenants, "config-managed");
    assert!(count("CFG-A") > 0, "own over config-managed");
    assert!(count("shared-x") > tenants / 2, "shared by an ancestor");
    assert!(count("own-y") > 0, "own");
    // `own-y` was disabled in `team`: the seeded associations are gone.
    assert!(!associations
        .iter()
        .any(|a| a[1].as_deref() == Some("Team") && count_is_own(&by_tenant, &a[2])));
    // Applying again changes nothing.
    rt.block_on(async {
        let storage = Storage::new(&set_based, 1).unwrap();
        let mut client = storage.client().await.unwrap();
        let tx = client.transaction().await.unwrap();
        defaults::apply_all_tenant_defaults(&tx, &defaults)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    });
    assert_eq!(snapshot(&set_based), snapshot(&by_tenant));
}

fn count_is_own(db: &str, policy: &Option<String>) -> bool {
    let Some(policy) = policy else { return false };
    !sql(
        db,
        &format!("SELECT 1 FROM auth_policy WHERE uuid = '{policy}' AND name = 'own-y'"),
    )
    .is_empty()
}

/// Not a timed assertion: the time from launch to the first answer of a server starting on
/// `TENANTS` tenants (default 10,000: 1,000 chains 10 deep) with all-users policies and a
/// default group to apply. For a before/after figure, point `WAZO_AUTH_SERVER_BINARY` at the
/// other build. `cargo test -p wazo-auth-tests --test defaults cold_start -- --ignored
/// --nocapture`
#[test]
#[ignore]
fn cold_start_on_many_tenants() {
    let tenants: i32 = std::env::var("TENANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let db = fresh_database();
    let started = Instant::now();
    seed(&db, tenants);
    println!("seeded {tenants} tenants in {:?}", started.elapsed());
    let config = json!({
        "default_policies": {"cfg-a": {"acl": ["x"]}, "cfg-b": {"acl": ["x"]}},
        "all_users_policies": {"cfg-a": true, "shared-x": true},
        "tenant_default_groups": {"team": {"policies": {"cfg-b": true, "own-y": false}}},
    });
    for run in ["first start", "second start"] {
        let launched = Instant::now();
        let server = ServerBuilder::new()
            .database(&db)
            .config(config.clone())
            .start();
        println!("{run}: launch to first answer {:?}", launched.elapsed());
        drop(server);
    }
    let groups = sql(&db, "SELECT count(*) FROM auth_group");
    // Each tenant's all-users group and `team`.
    assert_eq!(
        groups[0][0].as_deref(),
        Some(&*(2 * (tenants + 1)).to_string())
    );
}
