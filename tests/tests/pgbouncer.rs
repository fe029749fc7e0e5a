//! PgBouncer in transaction pooling mode in front of the servers (issue 20, part 3): Debian's
//! PgBouncer 1.18 does not track named prepared statements, so the servers' statements must not
//! need them (core/src/sql.rs), and LISTEN and the session advisory locks take the direct
//! `db_listen_uri`. Two servers share a pool of two server connections; many logins and token
//! checks at once (each check a cache miss on the other server) all succeed, and a revocation
//! on one server reaches the other's cache through its listener.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wazo_auth_tests::pgbouncer::PgBouncer;
use wazo_auth_tests::serde_json::json;
use wazo_auth_tests::*;

const USERS: usize = 12;
const THREADS: usize = 12;
const ROUNDS: usize = 8;

#[test]
fn logins_and_checks_through_a_transaction_pool_of_two_connections() {
    let bouncer = PgBouncer::start(2);
    let db = fresh_database();
    let pg_log_start = postgres_log_len();
    let start = || {
        ServerBuilder::new()
            .with_wazo_user()
            .through(&bouncer, &db)
            // Debug builds hash passwords slowly, and the logins queue for the two cores.
            .config(json!({"plugin_call_timeout": 20.0}))
            .start()
    };
    let a = Arc::new(start());
    let b = Arc::new(start());
    let admin = a.admin_token();
    let mut users = Vec::new();
    for i in 0..USERS {
        let login = format!("user{i}");
        let uuid = a.create_user(&admin, &login, "pass-word", None);
        users.push((login, uuid));
    }
    let users = Arc::new(users);

    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (a, b, users, admin) = (a.clone(), b.clone(), users.clone(), admin.clone());
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                for round in 0..ROUNDS {
                    let (login, uuid) = &users[(t + round) % users.len()];
                    // Logins alternate between the servers; each token is then checked on the
                    // other one, whose cache does not hold it (a database read).
                    let (here, there) = if (t + round) % 2 == 0 {
                        (&a, &b)
                    } else {
                        (&b, &a)
                    };
                    let r = here.login(login, "pass-word", json!({"expiration": 600}));
                    if r.status != 200 {
                        failures.extend(not_200(format!("login {login}"), r));
                        continue;
                    }
                    let token = r.json()["data"]["token"].as_str().unwrap().to_string();
                    failures.extend(not_200(
                        format!("GET token of {login}"),
                        there.get(&format!("/0.1/token/{token}")),
                    ));
                    failures.extend(not_200(
                        format!("GET token of {login} with ?tenant="),
                        there.get(&format!(
                            "/0.1/token/{token}?tenant={}",
                            r.json()["data"]["metadata"]["tenant_uuid"]
                                .as_str()
                                .unwrap()
                        )),
                    ));
                    failures.extend(not_200(
                        format!("GET /users/{uuid}"),
                        there.call("GET", &format!("/0.1/users/{uuid}"), &admin, None, None),
                    ));
                    failures.extend(not_200(
                        format!("GET /users/{uuid}/policies"),
                        here.call(
                            "GET",
                            &format!("/0.1/users/{uuid}/policies"),
                            &admin,
                            None,
                            None,
                        ),
                    ));
                    failures.extend(not_200(
                        "GET /users?search=".into(),
                        there.call("GET", "/0.1/users?search=user&limit=5", &admin, None, None),
                    ));
                    failures.extend(not_200(
                        format!("DELETE token of {login}"),
                        here.call("DELETE", &format!("/0.1/token/{token}"), &token, None, None),
                    ));
                    // The other server cached the token: it learns of the revocation by its
                    // listener, on its direct connection (`db_listen_uri`).
                    let deadline = Instant::now() + Duration::from_secs(2);
                    loop {
                        let status = there.get(&format!("/0.1/token/{token}")).status;
                        if status == 404 {
                            break;
                        }
                        if Instant::now() > deadline {
                            failures.push(format!("revoked token of {login} still {status}"));
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
                failures
            })
        })
        .collect();
    let failures: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("worker"))
        .collect();
    assert!(
        failures.is_empty(),
        "{} failed requests, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );

    // No statement relied on a named prepared statement: neither PostgreSQL nor the servers
    // saw one missing or duplicated.
    let pg_log = postgres_log();
    let pg_log = pg_log.get(pg_log_start..).unwrap_or_default();
    assert!(!pg_log.contains("prepared statement"), "{pg_log}");
    for server in [&a, &b] {
        let log = server.log();
        assert!(!log.contains("prepared statement"), "{log}");
    }

    // The statements shared (at most) two server connections in transaction mode.
    let dbname = db
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("dbname="))
        .unwrap()
        .to_string();
    let pools = bouncer.pools(&dbname);
    assert!(!pools.is_empty(), "no PgBouncer pool for {dbname}");
    let server_connections: u32 = pools
        .iter()
        .flat_map(|p| {
            ["sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login"]
                .iter()
                .filter_map(|k| p.get(*k)?.parse::<u32>().ok())
        })
        .sum();
    assert!(
        server_connections <= 2,
        "{server_connections} server connections: {pools:?}"
    );
    for p in &pools {
        assert_eq!(p.get("pool_mode").map(String::as_str), Some("transaction"));
    }
}

/// The failure `what` if the answer is not a 200.
fn not_200(what: String, r: Resp) -> Option<String> {
    (r.status != 200).then(|| format!("{what}: {} {}", r.status, r.body))
}

/// The failure the servers avoid, seen through the same PgBouncer: a statement prepared by name
/// in one transaction is missing in the next, run on another server connection.
#[test]
#[allow(clippy::disallowed_methods)]
fn a_named_prepared_statement_does_not_survive_this_pooler() {
    let bouncer = PgBouncer::start(2);
    let uri = bouncer.uri(&fresh_database());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let error = rt.block_on(async {
        let connect = || async {
            let (client, connection) = tokio_postgres::connect(&uri, tokio_postgres::NoTls)
                .await
                .expect("connect through PgBouncer");
            tokio::spawn(connection);
            client
        };
        let (first, mut second) = (connect().await, connect().await);
        // Prepared on the server connection PgBouncer hands out first...
        let statement = first.prepare("SELECT 1").await.expect("prepare");
        // ... which the other client then holds (PgBouncer reuses the last released one)...
        let holding = second.transaction().await.expect("BEGIN");
        holding
            .simple_query("SELECT 1")
            .await
            .expect("in the transaction");
        // ... so that the statement runs on the other server connection.
        let outcome = first.query(&statement, &[]).await;
        holding.rollback().await.expect("ROLLBACK");
        outcome.expect_err("the statement ran on a server connection that lacks it")
    });
    assert!(
        error.to_string().contains("does not exist")
            || format!("{error:?}").contains("does not exist"),
        "{error:?}"
    );
}
