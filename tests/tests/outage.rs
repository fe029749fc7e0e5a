//! Database outage (docs/reliability.md, "Database outage"): while PostgreSQL is stopped every
//! request that needs the database answers 503 with a JSON error within `db_timeout` (plus a
//! margin), never 500 and never hangs; `HEAD /0.1/status` reports it; token checks fail closed
//! (the cache is bypassed once its listener connection is lost); once PostgreSQL is back the
//! same server process serves again and nothing written before the outage is lost.
//!
//! This binary stops and restarts the PostgreSQL cluster it shares with every test it holds:
//! keep every outage test in this file, and let them take [`SERIAL`] (the harness runs the tests
//! of a binary on several threads).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use wazo_auth_tests::serde_json::{json, Value};
use wazo_auth_tests::*;

/// Held by every test of this binary: the cluster is stopped and restarted under their feet.
static SERIAL: Mutex<()> = Mutex::new(());

/// The `db_timeout` of the server under test, in seconds.
const DB_TIMEOUT: f64 = 2.0;
/// How long any request may take during the outage: `db_timeout` plus a margin.
const ANSWER_WITHIN: Duration = Duration::from_millis(3000);
/// How long the server may take to serve again once PostgreSQL is back.
const RECOVER_WITHIN: Duration = Duration::from_secs(10);
/// What a password login through a backend plugin (`wazo_user`) answers during the outage: the
/// plugin reports the host service's failure as an `UNAVAILABLE` plugin error, answered 503.
const PASSWORD_LOGIN_STATUSES: &[u16] = &[503];
const UNAVAILABLE: &str = "The authentication database is unavailable; try again later";

/// Sends a request and measures it.
fn timed(f: impl FnOnce() -> Resp) -> (Resp, Duration) {
    let start = Instant::now();
    let r = f();
    (r, start.elapsed())
}

fn check_token(s: &Server, token: &str) -> Resp {
    s.request("GET", &format!("/0.1/token/{token}"), &[], None)
}

fn head_status(s: &Server) -> u16 {
    s.request("HEAD", "/0.1/status", &[], None).status
}

/// A 503 with the storage error body, answered within [`ANSWER_WITHIN`].
fn assert_unavailable(what: &str, (r, took): (Resp, Duration)) -> Duration {
    assert_eq!(
        r.status, 503,
        "{what} during the outage: {} {}",
        r.status, r.body
    );
    assert!(
        took < ANSWER_WITHIN,
        "{what} took {took:?} during the outage (db_timeout {DB_TIMEOUT} s)"
    );
    let body: Value = r.json();
    assert_eq!(body["message"], UNAVAILABLE, "{what}: {}", r.body);
    took
}

/// Polls `f` until it answers `want`, for at most `limit`; every other answer must be one of
/// `allowed`. Returns how long it took.
fn until_status(
    what: &str,
    limit: Duration,
    want: u16,
    allowed: &[u16],
    f: impl Fn() -> u16,
) -> Duration {
    let start = Instant::now();
    loop {
        let status = f();
        if status == want {
            return start.elapsed();
        }
        assert!(
            allowed.contains(&status),
            "{what}: unexpected {status} after {:?}",
            start.elapsed()
        );
        assert!(
            start.elapsed() < limit,
            "{what}: still {status} after {limit:?} (want {want})"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn database_outage_answers_503_then_recovers_without_restart() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut s = ServerBuilder::new()
        .with_wazo_user()
        .config(json!({"db_timeout": DB_TIMEOUT}))
        .start();

    // ---- before the outage: a user, tokens, a refresh token ----
    let admin = s.admin_token();
    let r = s.call(
        "POST",
        "/0.1/users",
        &admin,
        None,
        Some(&json!({"username": "outage-u", "password": "pw"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let user_uuid = r.json()["uuid"].as_str().unwrap().to_string();
    let user_token = s.user_token("outage-u", "pw");
    let doomed_token = s.user_token("outage-u", "pw");
    let r = s.login(
        "outage-u",
        "pw",
        json!({"access_type": "offline", "client_id": "outage-app"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let refresh_token = r.json()["data"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    for t in [&admin, &user_token, &doomed_token] {
        // Twice: the second check is served from the cache.
        assert_eq!(check_token(&s, t).status, 200);
        assert_eq!(check_token(&s, t).status, 200);
    }
    assert_eq!(head_status(&s), 200);

    // ---- the outage ----
    let stopped_at = Instant::now();
    stop_cluster();
    eprintln!("cluster stopped in {:?}", stopped_at.elapsed());

    // Token checks fail closed: once the revocation listener has lost its connection (at once
    // with a server that closes connections as it stops) the cache is bypassed and a check
    // needs the database. A 200 is only allowed before the listener noticed.
    let to_503 = until_status("token check", ANSWER_WITHIN, 503, &[200], || {
        let (r, took) = timed(|| check_token(&s, &user_token));
        assert!(took < ANSWER_WITHIN, "token check took {took:?}");
        r.status
    });
    eprintln!("token checks answer 503 {to_503:?} after the stop");
    let took = assert_unavailable("token check", timed(|| check_token(&s, &user_token)));
    eprintln!("token check: 503 in {took:?}");
    let (r, took) = timed(|| s.request("HEAD", &format!("/0.1/token/{admin}"), &[], None));
    assert_eq!(r.status, 503, "HEAD token check during the outage");
    assert!(took < ANSWER_WITHIN, "HEAD token check took {took:?}");
    eprintln!("HEAD token check: 503 in {took:?}");
    let (r, took) = timed(|| s.request("DELETE", &format!("/0.1/token/{doomed_token}"), &[], None));
    assert_unavailable("DELETE /token", (r, took));

    let (r, took) = timed(|| s.login(ADMIN.0, ADMIN.1, json!({})));
    assert!(
        PASSWORD_LOGIN_STATUSES.contains(&r.status),
        "password login during the outage: {} {}",
        r.status,
        r.body
    );
    assert!(took < ANSWER_WITHIN, "password login took {took:?}");
    eprintln!("password login: {} in {took:?}", r.status);
    let took = assert_unavailable(
        "refresh-token login",
        timed(|| s.refresh_login(&refresh_token, "outage-app")),
    );
    eprintln!("refresh-token login: 503 in {took:?}");
    let took = assert_unavailable(
        "GET /users",
        timed(|| s.call("GET", "/0.1/users", &admin, None, None)),
    );
    eprintln!("GET /users: 503 in {took:?}");
    let took = assert_unavailable(
        "POST /users",
        timed(|| {
            s.call(
                "POST",
                "/0.1/users",
                &admin,
                None,
                Some(&json!({"username": "during-outage", "password": "pw"})),
            )
        }),
    );
    eprintln!("POST /users: 503 in {took:?}");

    let (status, took) = {
        let start = Instant::now();
        let status = head_status(&s);
        (status, start.elapsed())
    };
    assert_eq!(status, 503, "HEAD /status during the outage");
    assert!(took < ANSWER_WITHIN, "HEAD /status took {took:?}");
    eprintln!("HEAD /status: 503 in {took:?}");
    assert_eq!(s.get("/0.1/status").status, 405);

    // Many requests at once: more than the pools hold, none waits longer than the timeout.
    let start = Instant::now();
    let statuses: Vec<(usize, u16, Duration)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..24)
            .map(|i| {
                let (s, admin, user_token, refresh_token) =
                    (&s, &admin, &user_token, &refresh_token);
                scope.spawn(move || {
                    let (r, took) = timed(|| match i % 4 {
                        0 => check_token(s, user_token),
                        1 => s.call("GET", "/0.1/users", admin, None, None),
                        2 => s.refresh_login(refresh_token, "outage-app"),
                        _ => s.login("outage-u", "pw", json!({})),
                    });
                    (i, r.status, took)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, status, took) in &statuses {
        if i % 4 == 3 {
            assert!(
                PASSWORD_LOGIN_STATUSES.contains(status),
                "concurrent password login during the outage: {status}"
            );
        } else {
            assert_eq!(*status, 503, "concurrent request during the outage");
        }
        assert!(*took < ANSWER_WITHIN, "concurrent request took {took:?}");
    }
    eprintln!(
        "24 concurrent requests answered in {:?}: {:?}",
        start.elapsed(),
        statuses.iter().map(|(_, s, _)| *s).collect::<Vec<_>>()
    );

    assert!(s.is_running(), "the server exited during the outage");

    // ---- the database comes back ----
    let started_at = Instant::now();
    start_cluster();
    eprintln!("cluster started in {:?}", started_at.elapsed());
    let recovered = until_status("HEAD /status", RECOVER_WITHIN, 200, &[503], || {
        head_status(&s)
    });
    eprintln!("HEAD /status: 200 {recovered:?} after the restart");
    let recovered = until_status("token check", RECOVER_WITHIN, 200, &[503], || {
        check_token(&s, &user_token).status
    });
    eprintln!("token checks: 200 {recovered:?} after the restart");

    // Nothing written before the outage is lost.
    for t in [&admin, &user_token, &doomed_token] {
        let r = check_token(&s, t);
        assert_eq!(r.status, 200, "token lost in the outage: {}", r.body);
    }
    let r = s.call(
        "GET",
        &format!("/0.1/users/{user_uuid}"),
        &admin,
        None,
        None,
    );
    assert_eq!(r.status, 200, "user lost in the outage: {}", r.body);
    assert_eq!(r.json()["username"], "outage-u");
    let r = s.call("GET", "/0.1/users", &admin, None, None);
    assert_eq!(r.status, 200, "{}", r.body);
    let users = r.json();
    let names: Vec<&str> = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["username"].as_str())
        .collect();
    assert!(names.contains(&"outage-u"), "{names:?}");
    assert!(!names.contains(&"during-outage"), "{names:?}");
    let r = s.refresh_login(&refresh_token, "outage-app");
    assert_eq!(
        r.status, 200,
        "refresh token lost in the outage: {}",
        r.body
    );
    let r = s.call(
        "GET",
        &format!("/0.1/users/{user_uuid}/tokens"),
        &admin,
        None,
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["total"], 1, "{}", r.body);

    // New logins and writes work.
    let fresh = s.user_token("outage-u", "pw");
    assert_eq!(check_token(&s, &fresh).status, 200);
    let r = s.call(
        "POST",
        "/0.1/users",
        &admin,
        None,
        Some(&json!({"username": "after-outage", "password": "pw"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    s.user_token("after-outage", "pw");

    // Revocation works again: through the API...
    assert_eq!(check_token(&s, &doomed_token).status, 200);
    let r = s.request("DELETE", &format!("/0.1/token/{doomed_token}"), &[], None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(check_token(&s, &doomed_token).status, 404);
    // ... and through the database (the notification of the revocation listener, which has
    // reconnected by itself).
    s.wait_log(RECOVER_WITHIN, |log| {
        log.matches("listening for token revocations").count() >= 2
    });
    let session = check_token(&s, &fresh).json()["data"]["session_uuid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(check_token(&s, &fresh).status, 200);
    sql(
        &s.db,
        &format!("DELETE FROM auth_token WHERE session_uuid = '{session}'"),
    );
    until_status(
        "token deleted in the database",
        // A notification: milliseconds; 10 s leaves room for a loaded machine (2 s was tight
        // for a polling deadline, and costs nothing more when it passes).
        Duration::from_secs(10),
        404,
        &[200],
        || check_token(&s, &fresh).status,
    );

    // No 500, no panic, still the same process.
    assert!(s.is_running(), "the server exited");
    let log = s.log();
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
}

/// A password login during the outage answers 503, not 401 (the credentials were not wrong).
#[test]
fn password_login_during_outage_answers_503() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let s = ServerBuilder::new()
        .with_wazo_user()
        .config(json!({"db_timeout": DB_TIMEOUT}))
        .start();
    s.admin_token();
    stop_cluster();
    let outcome = timed(|| s.login(ADMIN.0, ADMIN.1, json!({})));
    start_cluster();
    assert_unavailable("password login", outcome);
}

/// Thaws the cluster when dropped, also when the test fails.
struct Thaw;

impl Drop for Thaw {
    fn drop(&mut self) {
        thaw_cluster();
    }
}

/// A frozen database (the server process stalls: connections stay open, nothing answers)
/// must not hang requests either: 503 within `db_timeout` plus a margin.
#[test]
fn frozen_database_answers_503_within_the_timeout() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut s = ServerBuilder::new()
        .with_wazo_user()
        .config(json!({"db_timeout": DB_TIMEOUT}))
        .start();
    let admin = s.admin_token();
    let r = s.login(
        ADMIN.0,
        ADMIN.1,
        json!({"access_type": "offline", "client_id": "frozen-app"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let refresh_token = r.json()["data"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    // Warm every worker's pool.
    for _ in 0..20 {
        assert_eq!(s.call("GET", "/0.1/users", &admin, None, None).status, 200);
    }
    let unknown = "00000000-0000-4000-8000-000000000000";
    // The stall hits an idle server: pooled connections unused for a second are checked before
    // use. (A request already waiting on the database when it stalls, or one handed a
    // connection used in the last second, waits until the database resumes: see
    // docs/reliability.md.)
    std::thread::sleep(Duration::from_millis(1500));
    let thaw = Thaw;
    freeze_cluster();

    let (status, took) = {
        let start = Instant::now();
        (head_status(&s), start.elapsed())
    };
    eprintln!("frozen: HEAD /status {status} in {took:?}");
    assert_eq!(status, 503);
    assert!(took < ANSWER_WITHIN, "HEAD /status took {took:?}");
    let took = assert_unavailable(
        "refresh-token login",
        timed(|| s.refresh_login(&refresh_token, "frozen-app")),
    );
    eprintln!("frozen: refresh-token login 503 in {took:?}");
    // An uncached token needs the database.
    let (r, took) = timed(|| check_token(&s, unknown));
    eprintln!("frozen: unknown token check {} in {took:?}", r.status);
    assert_unavailable("unknown token check", (r, took));
    let start = Instant::now();
    let statuses: Vec<(u16, Duration)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let (s, refresh_token) = (&s, &refresh_token);
                scope.spawn(move || {
                    let (r, took) = timed(|| s.refresh_login(refresh_token, "frozen-app"));
                    (r.status, took)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    eprintln!(
        "frozen: 16 concurrent logins in {:?}: {statuses:?}",
        start.elapsed()
    );
    for (status, took) in &statuses {
        assert_eq!(*status, 503);
        assert!(*took < ANSWER_WITHIN, "took {took:?}");
    }

    drop(thaw);
    let recovered = until_status("HEAD /status", RECOVER_WITHIN, 200, &[503], || {
        head_status(&s)
    });
    eprintln!("thawed: HEAD /status 200 after {recovered:?}");
    let r = s.refresh_login(&refresh_token, "frozen-app");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(s.is_running());
    assert!(!s.log().contains("panicked"));
}
