//! Listings on some thousands of rows (issue 20): a listing that recurses from the top tenant
//! takes no tenant condition, one from another tenant a list of its subtree, searches use
//! trigram indexes, and counts are skipped when they equal `total`. Each answer is compared with
//! what the statements before those changes give (the subtree as `= ANY` of a recursive CTE,
//! searches as `ILIKE` with a correlated `EXISTS`), computed here with SQL: same rows, same
//! order, same `total` and `filtered`. Not a timing test.

use std::collections::BTreeSet;

use wazo_auth_tests::serde_json::Value;
use wazo_auth_tests::*;

const TENANTS: i32 = 2000;
const USERS: i32 = 3000;

/// Tenants in chains 10 deep under the top tenant, users (some in the top tenant) with
/// addresses, policies (own, shared, config-managed), groups, sessions with tokens (one
/// session with two tokens, one without any, ties on `created_at`) and refresh tokens.
fn seed(db: &str) {
    sql(
        db,
        &format!(
            "INSERT INTO auth_tenant (uuid, name, slug, parent_uuid)
             SELECT md5('lt' || i)::uuid::text, 'Tenant ' || (i * 7 % {TENANTS}), 'lt' || i,
                    CASE WHEN i % 10 = 0 THEN (SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid)
                         ELSE md5('lt' || (i - 1))::uuid::text END
             FROM generate_series(0, {TENANTS} - 1) AS i ORDER BY i;
             INSERT INTO auth_tenant_domain (tenant_uuid, name)
             SELECT md5('lt' || i)::uuid::text, 'd' || i || '.quokka.example'
             FROM generate_series(0, {TENANTS} - 1, 37) AS i;
             INSERT INTO auth_user (uuid, username, firstname, lastname, tenant_uuid)
             SELECT md5('lu' || i)::uuid::text, 'user-' || (i * 13 % {USERS}),
                    CASE WHEN i % 89 = 0 THEN 'AZEBRAx' || i ELSE 'First' || (i % 50) END,
                    'Last' || (i % 7),
                    CASE WHEN i % 50 = 0 THEN (SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid)
                         ELSE md5('lt' || (i % {TENANTS}))::uuid::text END
             FROM generate_series(0, {USERS} - 1) AS i;
             INSERT INTO auth_email (address, main, user_uuid)
             SELECT CASE WHEN i % 97 = 0 THEN 'foozebrabar' || i || '@ex.org'
                         ELSE 'mail' || i || '@x' || (i % 13) || '.org' END,
                    true, md5('lu' || i)::uuid::text
             FROM generate_series(0, {USERS} - 1) AS i;
             INSERT INTO auth_policy (uuid, name, slug, tenant_uuid, shared, config_managed, acl)
             SELECT md5('lp' || i)::uuid::text, 'policy ' || (i * 11 % 997), 'lp' || i,
                    md5('lt' || (i * 3 % {TENANTS}))::uuid::text, i % 9 = 0, i % 31 = 0,
                    ARRAY['a.' || i]
             FROM generate_series(0, 1499) AS i;
             INSERT INTO auth_user_policy (user_uuid, policy_uuid)
             SELECT md5('lu' || i)::uuid::text, md5('lp' || (i * 7 % 1500))::uuid::text
             FROM generate_series(0, {USERS} - 1) AS i
             UNION
             SELECT md5('lu' || i)::uuid::text, md5('lp' || (i % 1500))::uuid::text
             FROM generate_series(0, {USERS} - 1, 3) AS i;
             INSERT INTO auth_group (uuid, name, slug, tenant_uuid)
             SELECT md5('lg' || i)::uuid::text, 'group ' || (i * 17 % 499), 'lg' || i,
                    md5('lt' || i)::uuid::text
             FROM generate_series(0, {TENANTS} - 1) AS i;
             INSERT INTO auth_session (uuid, tenant_uuid, mobile, created_at)
             SELECT md5('ls' || i)::uuid::text, md5('lt' || (i * 3 % {TENANTS}))::uuid::text,
                    i % 5 = 0, timestamptz '2026-01-01' + (i / 3) * interval '1 second'
             FROM generate_series(0, 2999) AS i;
             INSERT INTO auth_token (token_hash, auth_id, issued_t, expire_t, session_uuid, acl)
             SELECT sha256(convert_to('lk' || i, 'UTF8')), md5('lu' || (i % {USERS}))::uuid::text,
                    0, extract(epoch FROM now()) + 3600, md5('ls' || (i % 3000))::uuid::text,
                    ARRAY[]::text[]
             FROM generate_series(0, 2999) AS i WHERE i <> 17
             UNION ALL
             SELECT sha256(convert_to('lk-extra', 'UTF8')), 'not-a-uuid', 0,
                    extract(epoch FROM now()) + 3600,
                    md5('ls' || 42)::uuid::text, ARRAY[]::text[];
             INSERT INTO auth_refresh_token (token_hash, key_id, client_id, user_uuid, created_at)
             SELECT sha256(convert_to('lr' || i, 'UTF8')), 'k',
                    CASE WHEN i < {USERS} THEN 'client-' ELSE 'other-' END || (i % 4),
                    md5('lu' || (i % {USERS}))::uuid::text,
                    timestamptz '2026-01-01' + (i / 2) * interval '1 second'
             FROM generate_series(0, 3999) AS i;
             ANALYZE"
        ),
    );
}

/// Every page of a listing (`limit` rows at a time): `(total, filtered, ids)` with the ids
/// of the items in order (`key` of each item), checking that every page repeats the counts.
fn pages(
    s: &Server,
    token: &str,
    tenant: Option<&str>,
    path: &str,
    limit: usize,
    key: &dyn Fn(&Value) -> String,
) -> (i64, Option<i64>, Vec<String>) {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut ids = Vec::new();
    let mut counts = None;
    loop {
        let url = format!("{path}{sep}limit={limit}&offset={}", ids.len());
        let r = s.call("GET", &url, token, tenant, None);
        assert_eq!(r.status, 200, "{url}: {}", r.body);
        let b = r.json();
        let these = (b["total"].as_i64().unwrap(), b["filtered"].as_i64());
        if let Some(c) = counts {
            assert_eq!(c, these, "{url}: the counts changed between pages");
        }
        counts = Some(these);
        let items = b["items"].as_array().unwrap();
        ids.extend(items.iter().map(key));
        if items.len() < limit {
            break;
        }
    }
    let (total, filtered) = counts.unwrap();
    (total, filtered, ids)
}

fn uuid_of(v: &Value) -> String {
    v["uuid"].as_str().unwrap().to_string()
}

fn column(db: &str, q: &str) -> Vec<String> {
    sql(db, q)
        .into_iter()
        .map(|r| r[0].clone().unwrap_or_default())
        .collect()
}

fn count(db: &str, q: &str) -> i64 {
    column(db, q)[0].parse().unwrap()
}

/// The subtree of `tenant` as the statements before computed it (a recursive CTE), as an SQL
/// array.
fn subtree(tenant: &str) -> String {
    format!(
        "ARRAY(WITH RECURSIVE down(uuid) AS (
                   SELECT uuid FROM auth_tenant WHERE uuid = '{tenant}'
                   UNION SELECT t.uuid FROM auth_tenant t JOIN down d ON t.parent_uuid = d.uuid)
               SELECT uuid FROM down)"
    )
}

struct Fixture {
    s: Server,
    admin: String,
    top: String,
    /// The head of a chain of 10 tenants (under the top tenant) and a tenant in its middle.
    head: String,
    middle: String,
}

fn fixture() -> Fixture {
    let s = ServerBuilder::new().with_wazo_user().start();
    seed(&s.db);
    let admin = s.admin_token();
    let top = column(
        &s.db,
        "SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid",
    )[0]
    .clone();
    let head = column(&s.db, "SELECT md5('lt' || 130)::uuid::text")[0].clone();
    let middle = column(&s.db, "SELECT md5('lt' || 134)::uuid::text")[0].clone();
    Fixture {
        s,
        admin,
        top,
        head,
        middle,
    }
}

/// The scopes each listing is checked from: the top tenant (every tenant), a chain head (10
/// tenants) and a tenant in the middle of a chain, as `(Wazo-Tenant, its uuid)`.
fn scopes(f: &Fixture) -> Vec<(Option<&str>, &str)> {
    vec![
        (None, f.top.as_str()),
        (Some(f.head.as_str()), f.head.as_str()),
        (Some(f.middle.as_str()), f.middle.as_str()),
    ]
}

#[test]
fn user_listings_match_the_statements_before() {
    let f = fixture();
    let db = &f.s.db;
    for (header, scope) in scopes(&f) {
        for (recurse, tenants) in [
            ("true", subtree(scope)),
            ("false", format!("ARRAY['{scope}']")),
        ] {
            for (search, pattern) in [
                (None, None),
                // In the middle of a first name (any case) or of an address only.
                (Some("zebra"), Some("%zebra%")),
                // Two words: `%w1%w2%`.
                (Some("ser-1 2"), Some("%ser-1%2%")),
                (Some("x3.or"), Some("%x3.or%")),
            ] {
                for (order, direction) in [("username", "asc"), ("lastname", "desc")] {
                    let mut path =
                        format!("/0.1/users?recurse={recurse}&order={order}&direction={direction}");
                    if let Some(w) = search {
                        path.push_str(&format!("&search={}", w.replace(' ', "%20")));
                    }
                    let got = pages(&f.s, &f.admin, header, &path, 100, &uuid_of);
                    let matching = match pattern {
                        None => "TRUE".to_string(),
                        Some(p) => format!(
                            "(u.firstname ILIKE '{p}' OR u.lastname ILIKE '{p}'
                              OR u.username ILIKE '{p}'
                              OR EXISTS (SELECT 1 FROM auth_email e
                                         WHERE e.user_uuid = u.uuid AND e.address ILIKE '{p}'))"
                        ),
                    };
                    let total = count(
                        db,
                        &format!(
                            "SELECT count(*) FROM auth_user u WHERE u.tenant_uuid = ANY({tenants})"
                        ),
                    );
                    let expected = column(
                        db,
                        &format!(
                            "SELECT u.uuid FROM auth_user u
                             WHERE u.tenant_uuid = ANY({tenants}) AND {matching}
                             ORDER BY u.{order} {direction}, u.uuid {direction}"
                        ),
                    );
                    let filtered = i64::try_from(expected.len()).unwrap();
                    assert_eq!(
                        (got.0, got.1, &got.2),
                        (total, Some(filtered), &expected),
                        "{path} from {scope}"
                    );
                }
            }
        }
    }
    // The search found users by a first name and by an address alone, in several tenants.
    let zebra = pages(
        &f.s,
        &f.admin,
        None,
        "/0.1/users?recurse=true&search=ZEBRA",
        100,
        &uuid_of,
    );
    assert!(zebra.2.len() > 40, "{zebra:?}");
    // From the top, the recursive listing is every user, and the sum of the listings of the
    // chain heads and the top tenant's own.
    assert_eq!(
        zebra.0,
        i64::from(USERS) + 1,
        "every user and the administrator"
    );
    let heads = column(
        db,
        "SELECT uuid FROM auth_tenant WHERE parent_uuid IN
             (SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid) AND uuid <> parent_uuid",
    );
    assert_eq!(heads.len(), (TENANTS / 10) as usize);
    let mut sum = 0;
    for head in &heads {
        let r = f.s.call(
            "GET",
            "/0.1/users?recurse=true&limit=1",
            &f.admin,
            Some(head),
            None,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        sum += r.json()["total"].as_i64().unwrap();
    }
    let own = f.s.call("GET", "/0.1/users?limit=1", &f.admin, None, None);
    sum += own.json()["total"].as_i64().unwrap();
    assert_eq!(sum, zebra.0);
}

#[test]
fn policy_group_and_tenant_listings_match_the_statements_before() {
    let f = fixture();
    let db = &f.s.db;
    for (header, scope) in scopes(&f) {
        let tenants = subtree(scope);
        // Policies (recursive): own ones of the subtree, config-managed ones, and those shared
        // by the scoping tenant, an ancestor or the top tenant; `read_only` as before.
        let shared_owners = format!(
            "(WITH RECURSIVE up(uuid, parent_uuid) AS (
                  SELECT uuid, parent_uuid FROM auth_tenant WHERE uuid = '{scope}'
                  UNION SELECT t.uuid, t.parent_uuid FROM auth_tenant t
                        JOIN up ON t.uuid = up.parent_uuid WHERE up.uuid <> up.parent_uuid)
              SELECT uuid FROM up)"
        );
        let visible = format!(
            "(p.tenant_uuid = ANY({tenants}) OR p.config_managed
              OR (p.shared AND p.tenant_uuid IN {shared_owners}))"
        );
        let total = count(
            db,
            &format!("SELECT count(*) FROM auth_policy p WHERE {visible}"),
        );
        for (filter, condition) in [
            ("", "TRUE".to_string()),
            (
                "&read_only=true",
                format!("(p.config_managed OR (p.shared AND NOT p.tenant_uuid = ANY({tenants})))"),
            ),
            (
                "&read_only=false",
                format!("(p.tenant_uuid = ANY({tenants}) AND NOT p.config_managed)"),
            ),
            ("&search=licy%2099", "p.name ILIKE '%licy%99%'".to_string()),
        ] {
            let path = format!("/0.1/policies?recurse=true{filter}");
            let got = pages(&f.s, &f.admin, header, &path, 100, &uuid_of);
            let expected = column(
                db,
                &format!(
                    "SELECT p.uuid FROM auth_policy p WHERE {visible} AND {condition}
                     ORDER BY p.name, p.uuid"
                ),
            );
            assert_eq!((got.0, &got.2), (total, &expected), "{path} from {scope}");
        }

        // Groups (recursive), by name then uuid, both directions.
        let total = count(
            db,
            &format!("SELECT count(*) FROM auth_group g WHERE g.tenant_uuid = ANY({tenants})"),
        );
        for (filter, condition, direction) in [
            ("", "TRUE", "asc"),
            ("&direction=desc", "TRUE", "desc"),
            ("&search=oup%201", "g.name ILIKE '%oup%1%'", "asc"),
        ] {
            let path = format!("/0.1/groups?recurse=true{filter}");
            let got = pages(&f.s, &f.admin, header, &path, 100, &uuid_of);
            let expected = column(
                db,
                &format!(
                    "SELECT g.uuid FROM auth_group g
                     WHERE g.tenant_uuid = ANY({tenants}) AND {condition}
                     ORDER BY g.name {direction}, g.uuid {direction}"
                ),
            );
            let filtered = i64::try_from(expected.len()).unwrap();
            assert_eq!(
                (got.0, got.1, &got.2),
                (total, Some(filtered), &expected),
                "{path} from {scope}"
            );
        }

        // Tenants (always the whole subtree), by name or slug; searched in a domain name.
        let total = count(db, &format!("SELECT cardinality({tenants})"));
        for (filter, condition, order) in [
            ("", "TRUE", "name"),
            (
                "?order=slug&direction=desc",
                "TRUE",
                "slug DESC, t.uuid DESC",
            ),
            (
                "?search=quokka",
                "(t.name ILIKE '%quokka%' OR t.slug ILIKE '%quokka%'
                  OR EXISTS (SELECT 1 FROM auth_tenant_domain d
                             WHERE d.tenant_uuid = t.uuid AND d.name ILIKE '%quokka%'))",
                "name",
            ),
            ("?search=nant%2013", "t.name ILIKE '%nant%13%'", "name"),
        ] {
            let path = format!("/0.1/tenants{filter}");
            let got = pages(&f.s, &f.admin, header, &path, 100, &uuid_of);
            let order = if order == "name" {
                "t.name, t.uuid"
            } else {
                "t.slug DESC, t.uuid DESC"
            };
            let expected = column(
                db,
                &format!(
                    "SELECT t.uuid FROM auth_tenant t
                     WHERE t.uuid = ANY({tenants}) AND {condition} ORDER BY {order}"
                ),
            );
            let filtered = i64::try_from(expected.len()).unwrap();
            assert_eq!(
                (got.0, got.1, &got.2),
                (total, Some(filtered), &expected),
                "{path} from {scope}"
            );
        }
    }
    let all =
        f.s.call("GET", "/0.1/tenants?limit=1", &f.admin, None, None);
    assert_eq!(all.json()["total"], Value::from(TENANTS + 1));
}

#[test]
fn session_token_and_user_policy_listings_match_the_statements_before() {
    let f = fixture();
    let db = &f.s.db;
    // The administrator's own login added a session and a token: counted like the others.
    for (header, scope) in scopes(&f) {
        let tenants = subtree(scope);
        for (recurse, tenants) in [
            ("true", tenants.clone()),
            ("false", format!("ARRAY['{scope}']")),
        ] {
            // Sessions: one item per (session, token) pair, by creation then uuid (ties).
            let path = format!("/0.1/sessions?recurse={recurse}");
            let got = pages(&f.s, &f.admin, header, &path, 100, &uuid_of);
            let expected = column(
                db,
                &format!(
                    "SELECT s.uuid FROM auth_session s JOIN auth_token t ON t.session_uuid = s.uuid
                     WHERE s.tenant_uuid = ANY({tenants}) ORDER BY s.created_at, s.uuid"
                ),
            );
            let n = i64::try_from(expected.len()).unwrap();
            assert_eq!(
                (got.0, got.1, &got.2),
                (n, Some(n), &expected),
                "{path} from {scope}"
            );

            // Refresh tokens, by creation then uuid, and filtered by client.
            let key = |v: &Value| format!("{}|{}", v["user_uuid"], v["client_id"]).replace('"', "");
            for (filter, condition) in [
                ("", "TRUE"),
                ("&client_id=client-2", "r.client_id = 'client-2'"),
            ] {
                let path = format!("/0.1/tokens?recurse={recurse}{filter}");
                let got = pages(&f.s, &f.admin, header, &path, 100, &key);
                let total = count(
                    db,
                    &format!(
                        "SELECT count(*) FROM auth_refresh_token r JOIN auth_user u
                         ON u.uuid = r.user_uuid WHERE u.tenant_uuid = ANY({tenants})"
                    ),
                );
                let expected = column(
                    db,
                    &format!(
                        "SELECT r.user_uuid || '|' || r.client_id FROM auth_refresh_token r
                         JOIN auth_user u ON u.uuid = r.user_uuid
                         WHERE u.tenant_uuid = ANY({tenants}) AND {condition}
                         ORDER BY r.created_at, r.uuid"
                    ),
                );
                let filtered = i64::try_from(expected.len()).unwrap();
                assert_eq!(
                    (got.0, got.1, &got.2),
                    (total, Some(filtered), &expected),
                    "{path} from {scope}"
                );
            }
        }
    }
    // From the top, every (session, token) pair: the session without a token is not listed,
    // the one with two tokens is listed twice.
    let all = pages(
        &f.s,
        &f.admin,
        None,
        "/0.1/sessions?recurse=true",
        500,
        &uuid_of,
    );
    assert_eq!(all.0, count(db, "SELECT count(*) FROM auth_token"));
    let listed: BTreeSet<&String> = all.2.iter().collect();
    let s17 = column(db, "SELECT md5('ls' || 17)::uuid::text")[0].clone();
    let s42 = column(db, "SELECT md5('ls' || 42)::uuid::text")[0].clone();
    assert!(!listed.contains(&s17));
    assert_eq!(all.2.iter().filter(|s| **s == s42).count(), 2);

    // A user's policies: visible from the top and from its chain, not from another chain.
    let user = column(db, "SELECT md5('lu' || 132)::uuid::text")[0].clone();
    let expected = column(
        db,
        &format!(
            "SELECT p.uuid FROM auth_policy p JOIN auth_user_policy a ON a.policy_uuid = p.uuid
             WHERE a.user_uuid = '{user}' ORDER BY p.name, p.uuid"
        ),
    );
    assert!(expected.len() >= 2, "{expected:?}");
    let path = format!("/0.1/users/{user}/policies");
    for header in [None, Some(f.head.as_str())] {
        let got = pages(&f.s, &f.admin, header, &path, 1, &uuid_of);
        let n = i64::try_from(expected.len()).unwrap();
        assert_eq!(
            (got.0, got.1, &got.2),
            (n, Some(n), &expected),
            "{header:?}"
        );
    }
    let other = column(db, "SELECT md5('lt' || 140)::uuid::text")[0].clone();
    let r = f.s.call("GET", &path, &f.admin, Some(&other), None);
    assert_eq!(r.status, 404, "{}", r.body);
}
