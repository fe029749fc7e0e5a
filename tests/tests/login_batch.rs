//! Group commit of plain logins (core/src/login_batch.rs), against a real PostgreSQL: logins
//! created concurrently on one storage, or on storages sharing a writer, are written together,
//! each comes back readable with exactly its own data, and one row the database refuses fails
//! only its own login. Also the grouped reads of the cache's misses (core/src/lookup_batch.rs).

use wazo_auth_core::keys::Keyring;
use wazo_auth_core::tokens::NewToken;
use wazo_auth_core::Storage;
use wazo_auth_tests::serde_json::{json, Map, Value};
use wazo_auth_tests::*;

fn new_token(n: usize, metadata: Map<String, Value>) -> NewToken {
    let now = wazo_auth_core::tokens::now();
    NewToken {
        auth_id: format!("user-{n}"),
        pbx_user_uuid: n.is_multiple_of(2).then(|| format!("pbx-{n}")),
        xivo_uuid: None,
        issued_t: now,
        expire_t: now + 600.0 + n as f64,
        metadata,
        user_agent: format!("agent {n}"),
        remote_addr: "10.0.0.1".into(),
        acl: (0..n % 4).map(|i| format!("acl.{n}.{i}")).collect(),
        mobile: n.is_multiple_of(3),
        tenant_uuid: None,
        session_limit: None,
        offline: None,
        refresh_token_uuid: None,
    }
}

/// A fresh database, a current-thread runtime, and a storage of 4 connections on them.
fn fresh_storage() -> (String, tokio::runtime::Runtime, Storage) {
    let db = fresh_database();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let storage = rt.block_on(async { Storage::new(&db, 4).unwrap() });
    (db, rt, storage)
}

#[test]
fn concurrent_logins_are_grouped_and_a_bad_row_fails_alone() {
    let (db, rt, storage) = fresh_storage();
    // Round 1: 64 good logins at once. Round 2: 16 more, one of which the database refuses.
    assert_eq!(rt.block_on(logins(&storage, 0..64, None)), 64);
    let transactions: usize = sql(&db, "SELECT count(DISTINCT xmin::text) FROM auth_token")[0][0]
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    // Rows written by one statement share their transaction id.
    assert!(
        transactions < 64,
        "no login was grouped ({transactions} transactions)"
    );
    assert_eq!(rt.block_on(logins(&storage, 64..80, Some(70))), 15);
    let count = |q: &str| sql(&db, q)[0][0].clone().unwrap();
    assert_eq!(count("SELECT count(*) FROM auth_token"), "79");
    assert_eq!(count("SELECT count(*) FROM auth_session"), "79");
    assert_eq!(
        count("SELECT count(*) FROM auth_session WHERE mobile"),
        (0..80usize)
            .filter(|&n| n.is_multiple_of(3) && n != 70)
            .count()
            .to_string()
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM auth_session s JOIN auth_tenant t ON t.uuid = s.tenant_uuid
             WHERE t.uuid = t.parent_uuid"
        ),
        "79",
        "sessions without a tenant belong to the top tenant"
    );
}

/// The server gives each worker its own storage (its own pool) but one login writer for all:
/// logins arriving through different storages are grouped together.
#[test]
fn storages_sharing_a_writer_group_their_logins_together() {
    let db = fresh_database();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (a, b) = rt.block_on(async {
        let a = Storage::new(&db, 2).unwrap();
        let b = Storage::new(&db, 2).unwrap().share_batchers(&a);
        (a, b)
    });
    let keyring = Keyring::from_keys(vec![("k".into(), [3u8; 32])]).unwrap();
    let futures = (0..64usize).map(|n| {
        let storage = if n.is_multiple_of(2) {
            a.clone()
        } else {
            b.clone()
        };
        let keyring = keyring.clone();
        let mut metadata = Map::new();
        metadata.insert("n".into(), json!(n));
        async move { storage.create_token(new_token(n, metadata), &keyring).await }
    });
    for result in rt.block_on(futures_join_all(futures)) {
        result.expect("login");
    }
    let mixed = &sql(
        &db,
        "SELECT count(*) FROM (SELECT xmin::text FROM auth_token GROUP BY 1
             HAVING bool_or((metadata->>'n')::int % 2 = 0)
                AND bool_or((metadata->>'n')::int % 2 = 1)) g",
    )[0][0];
    assert_ne!(
        mixed.as_deref(),
        Some("0"),
        "no statement wrote logins of both storages"
    );
    assert_eq!(
        sql(&db, "SELECT count(*) FROM auth_token")[0][0].as_deref(),
        Some("64")
    );
}

/// Grouped reads of the tokens the cache misses (core/src/lookup_batch.rs): misses asked
/// together (2 to 141 at once: groups of most sizes up to the largest statement's 64, and
/// several groups past it) each get exactly their own token, whatever the group's padding;
/// unknown tokens and a token asked twice included.
#[test]
fn concurrent_lookups_of_every_group_size_each_get_their_own_token() {
    let (_db, rt, storage) = fresh_storage();
    let keyring = Keyring::from_keys(vec![("k".into(), [3u8; 32])]).unwrap();
    let created: Vec<(usize, wazo_auth_core::tokens::Token)> = rt
        .block_on(futures_join_all((0..140usize).map(|n| {
            let (storage, keyring) = (storage.clone(), keyring.clone());
            async move {
                let mut metadata = Map::new();
                metadata.insert("n".into(), json!(n));
                let created = storage.create_token(new_token(n, metadata), &keyring).await;
                (n, created.expect("login").token)
            }
        })))
        .into_iter()
        .collect();
    let unknown =
        |i: usize| uuid::Uuid::parse_str(&format!("00000000-0000-4000-8000-{i:012}")).unwrap();
    for size in [
        1usize, 2, 3, 5, 7, 8, 9, 17, 31, 33, 63, 64, 65, 100, 129, 140,
    ] {
        // `size` look-ups at once: the known tokens 0..size (one in seven replaced by an
        // unknown one), and the first token a second time.
        let mut asked: Vec<(uuid::Uuid, Option<usize>)> = (0..size)
            .map(|i| {
                if i % 7 == 6 {
                    (unknown(i), None)
                } else {
                    (created[i].1.token, Some(created[i].0))
                }
            })
            .collect();
        asked.push((created[0].1.token, Some(created[0].0)));
        let answers = rt.block_on(futures_join_all(asked.clone().into_iter().map(|(t, _)| {
            let storage = storage.clone();
            async move { storage.lookup_token(&t).await }
        })));
        for ((token, expected), answer) in asked.iter().zip(answers) {
            let found = answer.unwrap_or_else(|e| panic!("size {size}: {token}: {e}"));
            match expected {
                None => assert!(found.is_none(), "size {size}: {token} is unknown"),
                Some(n) => {
                    let found = found.unwrap_or_else(|| panic!("size {size}: {token} not found"));
                    assert_eq!(found.auth_id, format!("user-{n}"), "size {size}");
                    assert_eq!(found.metadata.get("n"), Some(json!(n)), "size {size}");
                    assert_eq!(found.acl[..], new_token(*n, Map::new()).acl[..]);
                    assert_eq!(found.session_uuid, created[*n].1.session_uuid);
                }
            }
        }
    }
}

/// Creates the logins `range` at once on `storage` (login `bad` with metadata the database
/// refuses), checks each, and returns how many succeeded.
async fn logins(storage: &Storage, range: std::ops::Range<usize>, bad: Option<usize>) -> usize {
    let keyring = Keyring::from_keys(vec![("k".into(), [3u8; 32])]).unwrap();
    let futures = range.map(|n| {
        let mut metadata = Map::new();
        metadata.insert("n".into(), json!(n));
        if Some(n) == bad {
            // jsonb refuses the NUL character: the database rejects this row.
            metadata.insert("evil".into(), json!("a\u{0}b"));
        }
        let storage = storage.clone();
        let keyring = keyring.clone();
        async move {
            (
                n,
                storage.create_token(new_token(n, metadata), &keyring).await,
            )
        }
    });
    let results = futures_join_all(futures).await;
    let mut ok = 0;
    for (n, result) in results {
        if Some(n) == bad {
            assert!(result.is_err(), "the bad row must fail");
            continue;
        }
        let created = result.unwrap_or_else(|e| panic!("login {n} failed: {e}"));
        ok += 1;
        let token = storage
            .get_valid_token(&created.token.token, wazo_auth_core::tokens::now())
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("token of login {n} not found"));
        assert_eq!(token.auth_id, format!("user-{n}"));
        assert_eq!(token.metadata.get("n"), Some(json!(n)));
        assert_eq!(token.acl[..], new_token(n, Map::new()).acl[..]);
        assert_eq!(token.user_agent, format!("agent {n}"));
        assert_eq!(
            token.pbx_user_uuid,
            n.is_multiple_of(2).then(|| format!("pbx-{n}"))
        );
        assert_eq!(token.session_uuid, created.token.session_uuid);
    }
    ok
}

/// Runs futures concurrently on the current task (no extra dependency).
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + 'static,
    F::Output: 'static,
{
    let local = tokio::task::LocalSet::new();
    let handles: Vec<_> = futures.map(|f| local.spawn_local(f)).collect();
    local
        .run_until(async move {
            let mut out = Vec::with_capacity(handles.len());
            for h in handles {
                out.push(h.await.unwrap());
            }
            out
        })
        .await
}
