//! PostgreSQL failover (issue 20, part 4): a server on a primary with a synchronous standby,
//! named together in a multi-host `db_uri` with `target_session_attrs=read-write`. Under load,
//! the primary stops as a crash would and the standby is promoted: the server follows it
//! without a restart, and no login it acknowledged is lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use wazo_auth_tests::replication::Replicated;
use wazo_auth_tests::serde_json::json;
use wazo_auth_tests::*;

/// One login of the load: when it was sent, its status and, when acknowledged, its token.
struct Login {
    at: Instant,
    status: u16,
    token: Option<String>,
}

#[test]
fn the_server_follows_a_promoted_standby_and_loses_no_acknowledged_login() {
    let pair = Replicated::start("wazo_auth");
    let uri = pair.uri("wazo_auth");
    let s = ServerBuilder::new()
        .database(&uri)
        .config(json!({"db_timeout": 2}))
        .start();
    let before = s.alice_token(json!({"expiration": 3600}));

    let stop = AtomicBool::new(false);
    let logins: Mutex<Vec<Login>> = Mutex::new(Vec::new());
    let mut crashed_at = None;
    let mut promoted_at = None;
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let at = Instant::now();
                    let r = s.login(
                        "alice",
                        "alice-secret",
                        json!({"backend": "example_static", "expiration": 3600}),
                    );
                    let token = (r.status == 200)
                        .then(|| r.json()["data"]["token"].as_str().unwrap().to_string());
                    logins.lock().unwrap().push(Login {
                        at,
                        status: r.status,
                        token,
                    });
                    if r.status != 200 {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_secs(2));
        crashed_at = Some(Instant::now());
        pair.fail_over();
        promoted_at = Some(Instant::now());
        // Until logins have succeeded for two seconds in a row after the promotion (at most a
        // minute).
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let done = {
                let l = logins.lock().unwrap();
                let last_failure = l.iter().filter(|x| x.status != 200).map(|x| x.at).max();
                let recent_ok = l
                    .iter()
                    .filter(|x| x.status == 200 && x.at > promoted_at.unwrap())
                    .map(|x| x.at)
                    .max();
                matches!((last_failure, recent_ok), (lf, Some(ok)) if lf.is_none_or(|f| ok > f)
                    && ok.duration_since(lf.unwrap_or(ok).max(promoted_at.unwrap())) >= Duration::from_secs(2))
            };
            if done || Instant::now() > deadline {
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    let crashed_at = crashed_at.unwrap();
    let promoted_at = promoted_at.unwrap();
    let logins = logins.into_inner().unwrap();

    let failed: Vec<&Login> = logins.iter().filter(|l| l.status != 200).collect();
    for l in &failed {
        assert_eq!(l.status, 503, "a login refused with {} (not 503)", l.status);
    }
    let recovered = logins
        .iter()
        .filter(|l| l.status == 200 && l.at > promoted_at)
        .map(|l| l.at)
        .min()
        .expect("no login succeeded after the promotion");
    let last_failure = failed.iter().map(|l| l.at).max();
    println!(
        "failover: {} logins, {} refused (503), promotion took {:.2} s, logins served again {:.2} s after the crash{}",
        logins.len(),
        failed.len(),
        promoted_at.duration_since(crashed_at).as_secs_f64(),
        recovered.duration_since(crashed_at).as_secs_f64(),
        last_failure.map_or(String::new(), |f| format!(
            ", last refusal {:.2} s after it",
            f.saturating_duration_since(crashed_at).as_secs_f64()
        )),
    );
    assert!(
        recovered.duration_since(promoted_at) < Duration::from_secs(10),
        "the server took {:?} after the promotion to serve logins again",
        recovered.duration_since(promoted_at)
    );
    assert!(
        last_failure.is_none_or(|f| f < recovered + Duration::from_secs(3)),
        "logins still refused long after the server recovered"
    );

    // Every acknowledged login is on the promoted standby, the only server left.
    let acked: Vec<&str> = logins.iter().filter_map(|l| l.token.as_deref()).collect();
    let list = acked
        .iter()
        .map(|t| format!("sha256('{t}')"))
        .collect::<Vec<_>>()
        .join(", ");
    let found = sql(
        &uri,
        &format!("SELECT count(*) FROM auth_token WHERE token_hash IN ({list})"),
    );
    assert_eq!(
        found[0][0].as_deref(),
        Some(acked.len().to_string().as_str()),
        "acknowledged logins lost in the failover"
    );
    assert_eq!(
        sql(&uri, "SELECT pg_is_in_recovery()")[0][0].as_deref(),
        Some("f")
    );

    // The server works as before: the token from before the failover is still valid, and a
    // revocation reaches the cache (its listener follows the new primary too).
    assert_eq!(s.get(&format!("/0.1/token/{before}")).status, 200);
    let t = acked.last().unwrap();
    assert_eq!(s.get(&format!("/0.1/token/{t}")).status, 200);
    assert_eq!(
        s.request("DELETE", &format!("/0.1/token/{t}"), &[], None)
            .status,
        200
    );
    assert_eq!(s.get(&format!("/0.1/token/{t}")).status, 404);
}
