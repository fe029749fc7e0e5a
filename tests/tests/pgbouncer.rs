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

/// Held by each test: the statement that fails on purpose in
/// [`a_named_prepared_statement_does_not_survive_this_pooler`] must not show in the PostgreSQL
/// log (shared by the binary) that the other test reads.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

const USERS: usize = 12;
const THREADS: usize = 12;
const ROUNDS: usize = 8;

#[test]
fn logins_and_checks_through_a_transaction_pool_of_two_connections() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
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
                    // listener, on its direct connection (`db_listen_uri`): milliseconds, but
                    // the machine is loaded by this test's own threads (10 s costs nothing).
                    let deadline = Instant::now() + Duration::from_secs(10);
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
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
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

/// What running statements unnamed costs against statements prepared once per connection (the
/// `prepare_cached` the server used before), on the hot statements of a cache-miss check and a
/// login: per statement, the client's wall time and the PostgreSQL backend's CPU time (from
/// /proc), directly and through PgBouncer. Ignored (a measurement, printed; see
/// docs/scaling.md): `cargo test -p wazo-auth-tests --test pgbouncer -- --ignored --nocapture`.
#[test]
#[ignore]
#[allow(clippy::disallowed_methods)]
fn statement_cost() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    use wazo_auth_core::sql::Db;
    const TOKEN: &str = wazo_auth_core::tokens::VALID_TOKEN_SQL;
    const USER_ACL: &str = wazo_auth_core::policies::USER_ACL_SQL;
    const LOGIN_USER: &str = wazo_auth_core::users::LOGIN_USER_SQL;
    const N: u32 = 3000;
    const ROUNDS: usize = 5;

    let db = fresh_database();
    let (admin_uuid, admin_login) = {
        let server = ServerBuilder::new().with_wazo_user().database(&db).start();
        let token = server.admin_token();
        let r = server.get(&format!("/0.1/token/{token}"));
        (
            r.json()["data"]["auth_id"].as_str().unwrap().to_string(),
            ADMIN.0.to_string(),
        )
    };
    // 100k live tokens, so that the lookups are index lookups in a table of some size.
    sql(
        &db,
        "INSERT INTO auth_session (uuid, tenant_uuid)
             SELECT 's' || g, (SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid LIMIT 1)
             FROM generate_series(1, 100000) g;
         INSERT INTO auth_token (token_hash, auth_id, issued_t, expire_t, session_uuid, acl)
             SELECT sha256(('t' || g)::bytea), 'user-' || g, 0, 4e9, 's' || g,
                    ARRAY['confd.#', 'auth.users.me.#']
             FROM generate_series(1, 100000) g;
         ANALYZE",
    );
    let bouncer = PgBouncer::start(2);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let connect = |uri: String| async move {
            let (client, connection) = tokio_postgres::connect(&uri, tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(connection);
            client
        };
        let direct = connect(db.clone()).await;
        let pooled = connect(bouncer.uri(&db)).await;
        let backend: i32 = direct
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        let cpu_us = || {
            let stat = std::fs::read_to_string(format!("/proc/{backend}/stat")).unwrap();
            let after = &stat[stat.rfind(')').unwrap() + 2..];
            let f: Vec<u64> = after
                .split_whitespace()
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            // utime and stime (fields 14 and 15), in clock ticks.
            let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
            (f[11] + f[12]) as f64 * 1e6 / ticks
        };
        let hashes: Vec<Vec<u8>> = direct
            .query(
                "SELECT token_hash FROM auth_token ORDER BY random() LIMIT $1",
                &[&i64::from(N)],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let token_params = |i: usize| (hashes[i % hashes.len()].clone(), 1.0e9_f64);
        for (name, sql_text) in [
            ("token lookup (cache miss)", TOKEN),
            ("user's ACL (login)", USER_ACL),
            ("user by login (login)", LOGIN_USER),
        ] {
            let prepared = direct.prepare(sql_text).await.unwrap();
            let mut named = Vec::new();
            let mut unnamed = Vec::new();
            let mut unnamed_pooled = Vec::new();
            let mut named_cpu = Vec::new();
            let mut unnamed_cpu = Vec::new();
            for _ in 0..ROUNDS {
                for mode in 0..3 {
                    let (t0, c0) = (Instant::now(), cpu_us());
                    for i in 0..N as usize {
                        let (hash, now) = token_params(i);
                        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                            if sql_text == TOKEN {
                                vec![&hash, &now]
                            } else if sql_text == USER_ACL {
                                vec![&admin_uuid]
                            } else {
                                vec![&admin_login]
                            };
                        match mode {
                            0 => drop(direct.query(&prepared, &params).await.unwrap()),
                            1 => drop(direct.fetch(sql_text, &params).await.unwrap()),
                            _ => drop(pooled.fetch(sql_text, &params).await.unwrap()),
                        }
                    }
                    let wall = t0.elapsed().as_secs_f64() * 1e6 / f64::from(N);
                    let cpu = (cpu_us() - c0) / f64::from(N);
                    match mode {
                        0 => {
                            named.push(wall);
                            named_cpu.push(cpu);
                        }
                        1 => {
                            unnamed.push(wall);
                            unnamed_cpu.push(cpu);
                        }
                        _ => unnamed_pooled.push(wall),
                    }
                }
            }
            let median = |v: &mut Vec<f64>| {
                v.sort_by(|a, b| a.partial_cmp(b).unwrap());
                v[v.len() / 2]
            };
            println!(
                "{name}: prepared once {:.1} µs (backend CPU {:.1} µs), unnamed {:.1} µs \
                 (backend CPU {:.1} µs), unnamed through PgBouncer {:.1} µs",
                median(&mut named),
                median(&mut named_cpu),
                median(&mut unnamed),
                median(&mut unnamed_cpu),
                median(&mut unnamed_pooled)
            );
        }
    });
}
