//! Expiration and the purge when several server processes share one database.

use std::time::{Duration, Instant};

use wazo_auth_tests::serde_json::json;
use wazo_auth_tests::*;

fn count(db: &str, table: &str) -> i64 {
    sql(db, &format!("SELECT count(*) FROM {table}"))[0][0]
        .as_deref()
        .unwrap()
        .parse()
        .unwrap()
}

/// `n` sessions of the top tenant, each with a token that expired an hour ago, inserted with SQL
/// (`prefix` names them).
fn seed_expired_sessions(db: &str, prefix: &str, n: u32) {
    sql(
        db,
        &format!(
            "INSERT INTO auth_session (uuid, tenant_uuid)
             SELECT md5('{prefix}-' || i)::uuid::text,
                    (SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid)
             FROM generate_series(1, {n}) AS i;
             INSERT INTO auth_token (token_hash, auth_id, issued_t, expire_t, metadata,
                                     session_uuid, acl)
             SELECT sha256(convert_to('{prefix}-' || i, 'UTF8')), 'someone', 0,
                    extract(epoch FROM now()) - 3600, '{{}}', md5('{prefix}-' || i)::uuid::text,
                    '{{}}'
             FROM generate_series(1, {n}) AS i"
        ),
    );
}

/// Sum of "purged N expired sessions" lines in a server log.
fn purged(log: &str) -> i64 {
    log.lines()
        .filter_map(|l| {
            let rest = l.split("purged ").nth(1)?;
            rest.split_whitespace().next()?.parse::<i64>().ok()
        })
        .sum()
}

#[test]
fn two_servers_share_the_purge_without_double_work_or_lost_rows() {
    let purge = json!({"token_cleanup_interval": 0.2, "token_cleanup_batch_size": 7});
    let a = ServerBuilder::new().config(purge.clone()).start();
    let b = ServerBuilder::new().config(purge).database(&a.db).start();
    // Short-lived tokens on both servers, plus long-lived ones that must survive. The short ones
    // live 5 s so that all 44 are still there to be counted below on a slow machine: the logins
    // take about 0.3 s here, and the purge runs every 0.2 s (1 s was too close).
    let mut keep = Vec::new();
    for i in 0..40 {
        let s = if i % 2 == 0 { &a } else { &b };
        s.alice_token(json!({"expiration": 5}));
        if i % 10 == 0 {
            keep.push(s.alice_token(json!({"expiration": 3600})));
        }
    }
    assert_eq!(count(&a.db, "auth_token"), 44);
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&a.db, "auth_token") > 4 {
        assert!(Instant::now() < deadline, "expired tokens were not purged");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        count(&a.db, "auth_session"),
        4,
        "sessions of purged tokens remain"
    );
    // Each expired session was deleted by exactly one of the two processes (after two more
    // purge rounds of each, so that every report is in the logs).
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(purged(&a.log()) + purged(&b.log()), 40);
    for t in keep {
        assert_eq!(a.get(&format!("/0.1/token/{t}")).status, 200);
        assert_eq!(b.get(&format!("/0.1/token/{t}")).status, 200);
    }
}

#[test]
fn a_token_deleted_on_one_server_is_refused_by_the_other() {
    let a = ServerBuilder::new().start();
    let b = ServerBuilder::new().database(&a.db).start();
    let t = a.alice_token(json!({}));
    assert_eq!(
        b.request("HEAD", &format!("/0.1/token/{t}?scope=confd.x"), &[], None)
            .status,
        204
    );
    assert_eq!(
        a.request("DELETE", &format!("/0.1/token/{t}"), &[], None)
            .status,
        200
    );
    assert_eq!(
        b.request("HEAD", &format!("/0.1/token/{t}?scope=confd.x"), &[], None)
            .status,
        404
    );
}

#[test]
fn purge_can_be_disabled() {
    let s = ServerBuilder::new()
        .config(json!({"token_cleanup_interval": 0}))
        .start();
    let t = s.alice_token(json!({"expiration": 1}));
    std::thread::sleep(Duration::from_millis(2500));
    // Refused at once although it is still in the database.
    assert_eq!(s.get(&format!("/0.1/token/{t}")).status, 404);
    assert_eq!(count(&s.db, "auth_token"), 1);
}

/// The revocation trigger (migrations V5 and V13) announces the deletion of a live token, and of
/// one that expired less than a minute ago, but not that of a token long expired (which every
/// cache refuses by itself): a purge of millions of old tokens costs no notifications.
#[test]
fn deleting_long_expired_tokens_is_not_announced() {
    let s = ServerBuilder::new()
        .config(json!({"token_cleanup_interval": 0}))
        .start();
    // Three sessions with one token each: live, expired 10 s ago, expired an hour ago.
    let insert = |name: &str, expiry: &str| {
        format!(
            "INSERT INTO auth_session (uuid, tenant_uuid)
             SELECT md5('{name}')::uuid::text, uuid FROM auth_tenant WHERE uuid = parent_uuid;
             INSERT INTO auth_token (token_hash, auth_id, issued_t, expire_t, metadata,
                                     session_uuid, acl)
             VALUES (sha256('{name}'), 'someone', 0, extract(epoch FROM now()) {expiry}, '{{}}',
                     md5('{name}')::uuid::text, '{{}}');"
        )
    };
    sql(
        &s.db,
        &[
            insert("live", "+ 3600"),
            insert("recent", "- 10"),
            insert("old", "- 3600"),
        ]
        .concat(),
    );
    let hex = |name: &str| {
        sql(&s.db, &format!("SELECT encode(sha256('{name}'), 'hex')"))[0][0]
            .clone()
            .unwrap()
    };
    let announced: Vec<String> = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let (client, mut connection) =
                tokio_postgres::connect(&s.db, tokio_postgres::NoTls).await.unwrap();
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let driver = tokio::spawn(async move {
                while let Some(Ok(m)) =
                    std::future::poll_fn(|cx| connection.poll_message(cx)).await
                {
                    if let tokio_postgres::AsyncMessage::Notification(n) = m {
                        let _ = tx.send(n.payload().to_string());
                    }
                }
            });
            client.batch_execute("LISTEN wazo_auth_revoked").await.unwrap();
            client
                .batch_execute("DELETE FROM auth_session WHERE uuid IN (md5('live')::uuid::text, md5('recent')::uuid::text, md5('old')::uuid::text)")
                .await
                .unwrap();
            let mut got = Vec::new();
            while let Ok(Some(p)) =
                tokio::time::timeout(Duration::from_millis(500), rx.recv()).await
            {
                got.push(p);
            }
            driver.abort();
            got
        });
    let mut want = vec![hex("live"), hex("recent")];
    want.sort();
    let mut got: Vec<String> = announced.into_iter().filter(|p| p.len() == 64).collect();
    got.sort();
    assert_eq!(
        got, want,
        "the old token's deletion is not announced, the others are"
    );
}

/// The cleanup turn's transaction stays open for the whole run, but holds no snapshot: a held
/// snapshot kept back the xmin horizon, so that neither vacuum nor the purge's own index scans
/// could skip the rows already purged, and every batch read them all again (the purge slowed
/// down as it went: 5,500 sessions/s for 50 k, 1,000/s for 500 k).
#[test]
fn the_cleanup_turn_holds_back_no_snapshot_during_a_purge() {
    let db = fresh_database();
    seed_expired_sessions(&db, "held", 60000);
    // The first cleanup run purges the 60,000 sessions 100 at a time.
    let s = ServerBuilder::new()
        .database(&db)
        .config(json!({"token_cleanup_interval": 0.5, "token_cleanup_batch_size": 100}))
        .start();
    let count = |q: &str| sql(&db, q)[0][0].clone().unwrap().parse::<i64>().unwrap();
    let (mut turn_seen, mut holding) = (0, Vec::new());
    let deadline = Instant::now() + Duration::from_secs(120);
    while count("SELECT count(*) FROM auth_token") > 0 {
        assert!(Instant::now() < deadline, "the purge did not end");
        // The turn: a connection of the server idle in a transaction open for a while.
        for row in sql(
            &db,
            "SELECT backend_xmin IS NOT NULL FROM pg_stat_activity
             WHERE application_name = 'wazo-auth' AND state = 'idle in transaction'
               AND now() - xact_start > interval '300 milliseconds'",
        ) {
            turn_seen += 1;
            if row[0].as_deref() == Some("t") {
                holding.push(turn_seen);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        turn_seen > 0,
        "the cleanup turn was never seen: the test saw nothing"
    );
    assert!(
        holding.is_empty(),
        "the turn held a snapshot in {} of {turn_seen} samples",
        holding.len()
    );
    drop(s);
}

/// `token_cleanup_max_rate` caps the purge: a backlog goes out at that many sessions per second,
/// over several runs (each purges for at most 80 % of the interval), and all of it is purged in
/// the end, each session by one run.
#[test]
fn a_capped_purge_keeps_to_its_rate_and_purges_the_whole_backlog() {
    let db = fresh_database();
    seed_expired_sessions(&db, "capped", 200);
    // 100 sessions per second: batches of 10, each followed by a rest to 0.1 s. Without the cap
    // the first run purges the 200 in two batches.
    let s = ServerBuilder::new()
        .database(&db)
        .config(json!({"token_cleanup_interval": 0.5, "token_cleanup_max_rate": 100}))
        .start();
    let left = || count(&db, "auth_token");
    let deadline = Instant::now() + Duration::from_secs(60);
    while left() == 200 {
        assert!(Instant::now() < deadline, "the purge never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    let first = Instant::now();
    while left() > 0 {
        assert!(Instant::now() < deadline, "the purge did not end");
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = first.elapsed();
    // 190 or more sessions after the first batch, at 100 per second at most.
    assert!(
        took >= Duration::from_millis(1500),
        "200 sessions purged in {took:?}: faster than 100 per second"
    );
    assert_eq!(count(&db, "auth_session"), 0);
    std::thread::sleep(Duration::from_millis(1200));
    let log = s.log();
    assert_eq!(purged(&log), 200, "each session purged once: {log}");
    assert!(
        log.contains("the next run goes on with the rest"),
        "a run stopped at 80 % of the interval and left the rest to the next: {log}"
    );
}
