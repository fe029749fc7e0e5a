//! The token cache: revocations take effect at once on the node that handled them and within
//! 100 ms on every other node sharing the database, whatever revoked the token. The tenant tree
//! in memory: tenant changes reach the `?tenant=` checks the same way.

use std::time::{Duration, Instant};

use wazo_auth_tests::serde_json::json;
use wazo_auth_tests::*;

/// How long a listener may take to connect again (a 0.2 s pause, a connection, a first read):
/// under a second here, but a polling deadline of a few seconds is tight on a slow, loaded
/// machine, and a long one costs nothing when it passes.
const RECONNECTED_WITHIN: Duration = Duration::from_secs(30);

fn head(s: &Server, token: &str) -> u16 {
    s.request(
        "HEAD",
        &format!("/0.1/token/{token}?scope=anything"),
        &[],
        None,
    )
    .status
}

/// Polls until `s` answers 404 for `token`; returns how long it took.
fn revoked_within(s: &Server, token: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let status = head(s, token);
        if status == 404 {
            return start.elapsed();
        }
        assert_eq!(status, 204);
        assert!(start.elapsed() < limit, "still valid after {limit:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn pair() -> (Server, Server) {
    let a = ServerBuilder::new()
        .with_wazo_user()
        .config(json!({"default_user_policy": "everything",
                       "default_policies": {"everything": {"acl": ["#"]}}}))
        .start();
    let b = ServerBuilder::new()
        .with_wazo_user()
        .config(json!({"default_user_policy": "everything",
                       "default_policies": {"everything": {"acl": ["#"]}}}))
        .database(&a.db)
        .start();
    (a, b)
}

/// A token of `user`, cached on both nodes.
fn cached_token(a: &Server, b: &Server, user: &str) -> String {
    let t = a.user_token(user, "pw");
    for _ in 0..3 {
        assert_eq!(head(a, &t), 204);
        assert_eq!(head(b, &t), 204);
    }
    t
}

#[test]
fn every_kind_of_revocation_reaches_both_nodes() {
    let (a, b) = pair();
    let admin = a.admin_token();
    let limit = Duration::from_millis(100);

    // Token delete.
    let u = a.create_user(&admin, "cache-u", "pw", None);
    let t = cached_token(&a, &b, "cache-u");
    assert_eq!(
        a.request("DELETE", &format!("/0.1/token/{t}"), &[], None)
            .status,
        200
    );
    assert_eq!(head(&a, &t), 404, "not at once on the node that handled it");
    revoked_within(&b, &t, limit);

    // Session delete.
    let t = cached_token(&a, &b, "cache-u");
    let session = a.get(&format!("/0.1/token/{t}")).json()["data"]["session_uuid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        a.call(
            "DELETE",
            &format!("/0.1/sessions/{session}"),
            &admin,
            None,
            None
        )
        .status,
        204
    );
    assert_eq!(head(&a, &t), 404);
    revoked_within(&b, &t, limit);

    // User disabled (handled by node B this time).
    let t = cached_token(&a, &b, "cache-u");
    let r = b.call(
        "PUT",
        &format!("/0.1/users/{u}"),
        &admin,
        None,
        Some(&json!({"username": "cache-u", "enabled": false})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(head(&b, &t), 404);
    revoked_within(&a, &t, limit);
    let r = b.call(
        "PUT",
        &format!("/0.1/users/{u}"),
        &admin,
        None,
        Some(&json!({"username": "cache-u", "enabled": true})),
    );
    assert_eq!(r.status, 200);

    // Password change.
    let t = cached_token(&a, &b, "cache-u");
    let r = a.call(
        "PUT",
        &format!("/0.1/users/{u}/password"),
        &admin,
        None,
        Some(&json!({"old_password": "pw", "new_password": "pw"})),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(head(&a, &t), 404);
    revoked_within(&b, &t, limit);

    // Refresh-token delete revokes the tokens issued from it.
    let auth = basic("cache-u", "pw");
    let r = a.request(
        "POST",
        "/0.1/token",
        &[("Authorization", &auth)],
        Some(
            json!({"access_type": "offline", "client_id": "c"})
                .to_string()
                .as_bytes(),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let rt = r.json()["data"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = a.request(
        "POST",
        "/0.1/token",
        &[],
        Some(
            json!({"refresh_token": rt, "client_id": "c"})
                .to_string()
                .as_bytes(),
        ),
    );
    let t = r.json()["data"]["token"].as_str().unwrap().to_string();
    assert_eq!(head(&b, &t), 204);
    assert_eq!(
        a.call(
            "DELETE",
            &format!("/0.1/users/{u}/tokens/c"),
            &admin,
            None,
            None
        )
        .status,
        204
    );
    assert_eq!(head(&a, &t), 404);
    revoked_within(&b, &t, limit);

    // Tenant delete (cascades to its users' sessions).
    let sub = a.call(
        "POST",
        "/0.1/tenants",
        &admin,
        None,
        Some(&json!({"name": "doomed"})),
    );
    let sub = sub.json()["uuid"].as_str().unwrap().to_string();
    a.create_user(&admin, "cache-sub", "pw", Some(&sub));
    let t = cached_token(&a, &b, "cache-sub");
    assert_eq!(
        a.call("DELETE", &format!("/0.1/tenants/{sub}"), &admin, None, None)
            .status,
        204
    );
    assert_eq!(head(&a, &t), 404);
    revoked_within(&b, &t, limit);

    // Expiry is honoured to the second even when cached.
    let r = a.login("cache-u", "pw", json!({"expiration": 1}));
    let t = r.json()["data"]["token"].as_str().unwrap().to_string();
    assert_eq!(head(&b, &t), 204);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(head(&b, &t), 404);
    assert_eq!(head(&a, &t), 404);
}

#[test]
fn a_lost_listener_connection_never_serves_a_revoked_token() {
    let (a, b) = pair();
    a.admin_token();
    let admin = a.admin_token();
    a.create_user(&admin, "cut", "pw", None);
    let t = cached_token(&a, &b, "cut");
    // Cut every LISTEN connection (both nodes), then revoke while they reconnect.
    sql(&a.db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'wazo-auth-listener' AND datname = current_database()");
    assert_eq!(
        a.request("DELETE", &format!("/0.1/token/{t}"), &[], None)
            .status,
        200
    );
    assert_eq!(head(&b, &t), 404);
    assert_eq!(head(&a, &t), 404);
    b.wait_log(RECONNECTED_WITHIN, |l| {
        l.matches("listening for token revocations").count() >= 2
    });
    // And the cache works again after the reconnection.
    let t = cached_token(&a, &b, "cut");
    assert_eq!(
        a.request("DELETE", &format!("/0.1/token/{t}"), &[], None)
            .status,
        200
    );
    revoked_within(&b, &t, Duration::from_millis(100));
}

/// PostgreSQL backends stopped (SIGSTOP) until this is dropped (SIGCONT), also when the test
/// fails.
struct Stopped(Vec<i32>);

impl Drop for Stopped {
    fn drop(&mut self) {
        for pid in &self.0 {
            unsafe {
                libc::kill(*pid, libc::SIGCONT);
            }
        }
    }
}

/// Stops `pids` (SIGSTOP) at a moment when each is idle, waiting for its client: a backend
/// stopped inside a statement (the listeners' liveness checks run one every second) could hold
/// a lock that every other backend then waits for.
fn stop_while_idle(db: &str, pids: Vec<i32>) -> Stopped {
    let list = pids
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let deadline = Instant::now() + RECONNECTED_WITHIN;
    loop {
        let stopped = Stopped(pids.clone());
        for pid in &stopped.0 {
            assert_eq!(unsafe { libc::kill(*pid, libc::SIGSTOP) }, 0);
        }
        // What each reported last, before it stopped.
        let idle = sql(
            db,
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE pid IN ({list})
                 AND state = 'idle' AND wait_event = 'ClientRead'"
            ),
        );
        if idle[0][0].as_deref() == Some(&pids.len().to_string()) {
            return stopped;
        }
        drop(stopped);
        assert!(Instant::now() < deadline, "the listeners were never idle");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A listener connection that goes silent, with no reset (a network cut, a stalled backend),
/// is noticed by its liveness check: the node stops serving its cache and connects again, so a
/// token revoked on another node meanwhile is refused within seconds, not once the kernel gives
/// up on the connection.
#[test]
fn a_silent_listener_connection_is_noticed_and_replaced() {
    let (a, b) = pair();
    let admin = a.admin_token();
    a.create_user(&admin, "silent", "pw", None);
    let t = cached_token(&a, &b, "silent");
    let listeners: Vec<i32> = sql(
        &a.db,
        "SELECT pid FROM pg_stat_activity
         WHERE application_name = 'wazo-auth-listener' AND datname = current_database()",
    )
    .into_iter()
    .map(|r| r[0].as_deref().unwrap().parse().unwrap())
    .collect();
    assert_eq!(listeners.len(), 2, "one listener per node");
    // Both nodes' listening backends stop answering; their sockets stay open.
    let stopped = stop_while_idle(&a.db, listeners);
    assert_eq!(
        a.request("DELETE", &format!("/0.1/token/{t}"), &[], None)
            .status,
        200
    );
    assert_eq!(head(&a, &t), 404);
    // b handled nothing: only its liveness check (every second, bounded by db_timeout, 5 s
    // here) can tell it that its connection went silent.
    revoked_within(&b, &t, RECONNECTED_WITHIN);
    // Both nodes notice and listen again on a new connection while the old backends are still
    // stopped. (Resuming them earlier could answer a node's pending check just in time: that
    // node would then rightly keep its connection, as a CI run once saw for a.)
    for node in [&b, &a] {
        node.wait_log(RECONNECTED_WITHIN, |l| {
            l.contains("no answer to the liveness check")
                && l.matches("listening for token revocations").count() >= 2
        });
    }
    drop(stopped);
    // The new connections serve the caches and their revocations again.
    let t = cached_token(&a, &b, "silent");
    assert_eq!(
        a.request("DELETE", &format!("/0.1/token/{t}"), &[], None)
            .status,
        200
    );
    revoked_within(&b, &t, Duration::from_millis(100));
}

/// A local TCP port that takes no connection: its listening socket's accept queue is full, so
/// the kernel drops every new connection attempt, as with a host powered off or cut off. Keep
/// it alive as long as the port must stay silent.
struct SilentPort {
    port: u16,
    _listener: std::os::fd::OwnedFd,
    _queued: Vec<std::net::TcpStream>,
}

fn silent_port() -> SilentPort {
    use std::os::fd::FromRawFd;
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    assert!(fd >= 0, "socket");
    let listener = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    addr.sin_family = libc::AF_INET as libc::sa_family_t;
    addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    let bound = unsafe { libc::bind(fd, &addr as *const _ as *const libc::sockaddr, len) };
    assert_eq!(bound, 0, "bind");
    // A backlog of 0: one connection waits to be accepted (never), and the queue is full.
    assert_eq!(unsafe { libc::listen(fd, 0) }, 0, "listen");
    let mut len = len;
    let named =
        unsafe { libc::getsockname(fd, &mut addr as *mut _ as *mut libc::sockaddr, &mut len) };
    assert_eq!(named, 0, "getsockname");
    let port = u16::from_be(addr.sin_port);
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut queued = Vec::new();
    for _ in 0..3 {
        if let Ok(s) = std::net::TcpStream::connect_timeout(&target, Duration::from_millis(300)) {
            queued.push(s);
        }
    }
    // The port must really be silent here, or the test below would prove nothing.
    let attempt = std::net::TcpStream::connect_timeout(&target, Duration::from_millis(500));
    assert!(
        matches!(&attempt, Err(e) if e.kind() == std::io::ErrorKind::TimedOut),
        "a full accept queue should drop connection attempts: {attempt:?}"
    );
    SilentPort {
        port,
        _listener: listener,
        _queued: queued,
    }
}

/// A multi-host `db_listen_uri` whose first host is gone silent: the migrations' session and
/// the revocation listener pass over it to the next host, within each host's connection timeout
/// (`db_timeout` here), and the node then gets revocations as the others do.
#[test]
fn a_silent_first_host_of_the_listen_uri_is_passed_over() {
    let silent = silent_port();
    let a = ServerBuilder::new()
        .with_wazo_user()
        .config(json!({"default_user_policy": "everything",
                       "default_policies": {"everything": {"acl": ["#"]}}}))
        .start();
    // The test cluster's own host and port, after the silent one.
    let field = |name: &str| {
        a.db.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {}", a.db))
            .to_string()
    };
    let listen_uri = format!(
        "host=127.0.0.1,{} port={},{} user={} dbname={}",
        field("host"),
        silent.port,
        field("port"),
        field("user"),
        field("dbname")
    );
    let b = ServerBuilder::new()
        .with_wazo_user()
        .config(json!({"default_user_policy": "everything",
                       "default_policies": {"everything": {"acl": ["#"]}},
                       "db_listen_uri": listen_uri}))
        .database(&a.db)
        .start();
    b.wait_log(RECONNECTED_WITHIN, |l| {
        l.contains("listening for token revocations")
    });
    let admin = a.admin_token();
    a.create_user(&admin, "passed-over", "pw", None);
    let t = cached_token(&a, &b, "passed-over");
    assert_eq!(
        a.request("DELETE", &format!("/0.1/token/{t}"), &[], None)
            .status,
        200
    );
    revoked_within(&b, &t, Duration::from_millis(100));
    assert!(
        !b.log().contains("revocation listener failed"),
        "{}",
        b.log()
    );
}

/// The default user policy's ACL is cached by each node for logins; creating, changing or
/// deleting that policy reaches new logins at once on the node that handled it and within
/// 100 ms on the other.
#[test]
fn default_policy_changes_reach_new_logins_on_both_nodes() {
    let config = json!({"default_user_policy": "custom-default"});
    let a = ServerBuilder::new()
        .with_wazo_user()
        .config(config.clone())
        .start();
    let b = ServerBuilder::new()
        .with_wazo_user()
        .config(config)
        .database(&a.db)
        .start();
    let admin = a.admin_token();
    let acl_of = |s: &Server| -> Vec<String> {
        let r = s.login(
            "alice",
            "alice-secret",
            json!({"backend": "example_static"}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["data"]["acl"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let has = |acl: &[String], access: &str| acl.iter().any(|a| a == access);
    let settle = || std::thread::sleep(Duration::from_millis(100));

    // No such policy yet: nothing added (and the absence is cached on both nodes).
    for s in [&a, &b] {
        for _ in 0..2 {
            assert!(!has(&acl_of(s), "first.acl"));
        }
    }
    // Created through A.
    let r = a.call(
        "POST",
        "/0.1/policies",
        &admin,
        None,
        Some(&json!({"name": "custom-default", "acl": ["first.acl"]})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let uuid = r.json()["uuid"].as_str().unwrap().to_string();
    assert!(has(&acl_of(&a), "first.acl"), "not at once on A");
    settle();
    assert!(has(&acl_of(&b), "first.acl"), "not within 100 ms on B");

    // Changed through B.
    let r = b.call(
        "PUT",
        &format!("/0.1/policies/{uuid}"),
        &admin,
        None,
        Some(&json!({"name": "custom-default", "acl": ["second.acl"]})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let acl = acl_of(&b);
    assert!(
        has(&acl, "second.acl") && !has(&acl, "first.acl"),
        "{acl:?}"
    );
    settle();
    let acl = acl_of(&a);
    assert!(
        has(&acl, "second.acl") && !has(&acl, "first.acl"),
        "{acl:?}"
    );

    // An access added through A (its own route).
    let r = a.call(
        "PUT",
        &format!("/0.1/policies/{uuid}/acl/third.acl"),
        &admin,
        None,
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(has(&acl_of(&a), "third.acl"));
    settle();
    assert!(has(&acl_of(&b), "third.acl"));

    // Deleted through A.
    let r = a.call(
        "DELETE",
        &format!("/0.1/policies/{uuid}"),
        &admin,
        None,
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(!has(&acl_of(&a), "second.acl"));
    settle();
    assert!(!has(&acl_of(&b), "second.acl"));
}

/// `HEAD /0.1/token/{token}?tenant={tenant}`: 204 when `tenant` is in the token's tree, 403
/// when not.
fn head_tenant(s: &Server, token: &str, tenant: &str) -> u16 {
    s.request(
        "HEAD",
        &format!("/0.1/token/{token}?tenant={tenant}"),
        &[],
        None,
    )
    .status
}

/// Polls until `s` answers `want` to the check of `token` with `?tenant=tenant`; panics after
/// `limit` (a changing answer is only ever the previous one or `want`).
fn tenant_check_within(s: &Server, token: &str, tenant: &str, want: u16, limit: Duration) {
    let start = Instant::now();
    loop {
        let status = head_tenant(s, token, tenant);
        if status == want {
            return;
        }
        assert!([204, 403].contains(&status), "{status}");
        assert!(
            start.elapsed() < limit,
            "?tenant={tenant} still {status} after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn create_tenant(s: &Server, admin: &str, parent: Option<&str>, name: &str) -> String {
    let r = s.call(
        "POST",
        "/0.1/tenants",
        admin,
        parent,
        Some(&json!({ "name": name })),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["uuid"].as_str().unwrap().to_string()
}

fn move_tenant(s: &Server, admin: &str, tenant: &str, parent: &str) {
    let r = s.call(
        "PUT",
        &format!("/0.1/tenants/{tenant}/parent/{parent}"),
        admin,
        None,
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
}

/// The tenant tree each node keeps in memory for its scope decisions: a tenant created, moved or
/// deleted through node A is seen at once by A's `?tenant=` checks and within 100 ms by B's.
#[test]
fn tenant_changes_reach_tenant_checks_on_both_nodes() {
    let config = json!({"default_user_policy": "everything",
                        "default_policies": {"everything": {"acl": ["#"]}}});
    let a = ServerBuilder::new()
        .with_wazo_user()
        .config(config.clone())
        .start();
    let admin = a.admin_token();
    // master → {x → x1, y}; a user of x.
    let x = create_tenant(&a, &admin, None, "tree-x");
    let y = create_tenant(&a, &admin, None, "tree-y");
    let x1 = create_tenant(&a, &admin, Some(&x), "tree-x1");
    a.create_user(&admin, "tree-ux", "pw", Some(&x));
    let t = a.user_token("tree-ux", "pw");
    // B starts now: its first tree is read with x1 already under x.
    let b = ServerBuilder::new()
        .with_wazo_user()
        .config(config)
        .database(&a.db)
        .start();
    let limit = Duration::from_millis(100);
    for s in [&a, &b] {
        for _ in 0..3 {
            assert_eq!(head_tenant(s, &t, &x), 204);
            assert_eq!(head_tenant(s, &t, &x1), 204);
            assert_eq!(head_tenant(s, &t, &y), 403);
        }
    }

    // Moved out of x through A.
    move_tenant(&a, &admin, &x1, &y);
    assert_eq!(head_tenant(&a, &t, &x1), 403, "not at once on A");
    tenant_check_within(&b, &t, &x1, 403, limit);
    assert_eq!(head_tenant(&b, &t, &y), 403);

    // Moved back in, through B this time.
    move_tenant(&b, &admin, &x1, &x);
    assert_eq!(head_tenant(&b, &t, &x1), 204, "not at once on B");
    tenant_check_within(&a, &t, &x1, 204, limit);

    // Created under x through A, then checked on both.
    let x2 = create_tenant(&a, &admin, Some(&x), "tree-x2");
    assert_eq!(head_tenant(&a, &t, &x2), 204, "not at once on A");
    tenant_check_within(&b, &t, &x2, 204, limit);
    // Several checks on both: the trees now hold x2.
    for s in [&a, &b] {
        for _ in 0..3 {
            assert_eq!(head_tenant(s, &t, &x2), 204);
        }
    }
    // Deleted through A: unknown, so nobody's.
    let r = a.call("DELETE", &format!("/0.1/tenants/{x2}"), &admin, None, None);
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(head_tenant(&a, &t, &x2), 403, "not at once on A");
    tenant_check_within(&b, &t, &x2, 403, limit);

    // A tenant written with SQL (the trigger announces it to both nodes).
    let top = sql(
        &a.db,
        "SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid",
    )[0][0]
        .clone()
        .unwrap();
    sql(
        &a.db,
        &format!("UPDATE auth_tenant SET parent_uuid = '{top}' WHERE uuid = '{x1}'"),
    );
    tenant_check_within(&a, &t, &x1, 403, limit);
    tenant_check_within(&b, &t, &x1, 403, limit);

    // Scoped listings follow the tree as well: x's administrator lists x's tenants.
    let listed = |s: &Server| -> Vec<String> {
        let r = s.call("GET", "/0.1/tenants", &t, None, None);
        assert_eq!(r.status, 200, "{}", r.body);
        let mut uuids: Vec<String> = r.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["uuid"].as_str().unwrap().to_string())
            .collect();
        uuids.sort();
        uuids
    };
    let x3 = create_tenant(&a, &admin, Some(&x), "tree-x3");
    let mut want = vec![x.clone(), x3.clone()];
    want.sort();
    assert_eq!(listed(&a), want);
}

/// While the listener is down, nothing is decided from a tree that may be stale: each check
/// reads the table (here changed with SQL, which no node can know of but through the listener).
/// Once it is back, the tree is used and kept current again.
#[test]
fn tenant_checks_read_the_table_while_the_listener_is_down() {
    let a = ServerBuilder::new()
        .with_wazo_user()
        .config(json!({"default_user_policy": "everything",
                       "default_policies": {"everything": {"acl": ["#"]}}}))
        .start();
    let admin = a.admin_token();
    let x = create_tenant(&a, &admin, None, "down-x");
    let y = create_tenant(&a, &admin, None, "down-y");
    let x1 = create_tenant(&a, &admin, Some(&x), "down-x1");
    a.create_user(&admin, "down-ux", "pw", Some(&x));
    let t = a.user_token("down-ux", "pw");
    assert_eq!(head_tenant(&a, &t, &x1), 204);

    // The listener cannot start again: its first read after LISTEN fails.
    sql(
        &a.db,
        "ALTER TABLE auth_login_throttle RENAME TO auth_login_throttle_away;
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE application_name = 'wazo-auth-listener' AND datname = current_database()",
    );
    a.wait_log(RECONNECTED_WITHIN, |l| {
        l.contains("revocation listener failed")
    });
    let moves = [(&y, 403), (&x, 204), (&y, 403)];
    for (parent, want) in moves {
        sql(
            &a.db,
            &format!("UPDATE auth_tenant SET parent_uuid = '{parent}' WHERE uuid = '{x1}'"),
        );
        for _ in 0..3 {
            assert_eq!(head_tenant(&a, &t, &x1), want, "under {parent}");
        }
    }
    assert_eq!(head_tenant(&a, &t, &x), 204);
    assert_eq!(head_tenant(&a, &t, &y), 403);

    // Back: the listener starts again, and the tree follows the table through it.
    sql(
        &a.db,
        "ALTER TABLE auth_login_throttle_away RENAME TO auth_login_throttle",
    );
    a.wait_log(RECONNECTED_WITHIN, |l| {
        l.matches("listening for token revocations").count() >= 2
    });
    for _ in 0..3 {
        assert_eq!(head_tenant(&a, &t, &x1), 403);
    }
    sql(
        &a.db,
        &format!("UPDATE auth_tenant SET parent_uuid = '{x}' WHERE uuid = '{x1}'"),
    );
    tenant_check_within(&a, &t, &x1, 204, Duration::from_millis(100));
}

/// Misses that arrive together are read with one statement (`lookup_batch`): each check still
/// gets its own token, the same token asked twice at once is found twice, and unknown and
/// expired tokens are refused, on a node that has seen none of them.
#[test]
fn concurrent_misses_each_get_their_own_answer() {
    let users = json!({"plugin_config": {"example_static": {"users": [
        {"login": "alice", "password": "alice-pw", "acl": ["alice.#"]},
        {"login": "bob", "password": "bob-pw", "acl": ["bob.#"]},
    ]}}});
    let a = ServerBuilder::new().config(users.clone()).start();
    let b = ServerBuilder::new().config(users).database(&a.db).start();
    let login = |user: &str, expiration: u32| {
        let r = a.login(
            user,
            &format!("{user}-pw"),
            json!({"backend": "example_static", "expiration": expiration}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let data = r.json()["data"].clone();
        (data["token"].as_str().unwrap().to_string(), data)
    };
    let mut asked: Vec<(String, Option<wazo_auth_tests::serde_json::Value>)> = Vec::new();
    for i in 0..24 {
        let (token, data) = login(if i % 2 == 0 { "alice" } else { "bob" }, 600);
        asked.push((token.clone(), Some(data.clone())));
        if i % 3 == 0 {
            asked.push((token, Some(data)));
        }
    }
    let expired: Vec<String> = (0..4).map(|_| login("alice", 1).0).collect();
    std::thread::sleep(Duration::from_millis(2100));
    asked.extend(expired.into_iter().map(|t| (t, None)));
    asked.extend((0..4).map(|i| (format!("00000000-0000-4000-8000-00000000000{i}"), None)));

    let barrier = std::sync::Barrier::new(asked.len());
    std::thread::scope(|scope| {
        for (token, expected) in &asked {
            let (b, barrier) = (&b, &barrier);
            scope.spawn(move || {
                barrier.wait();
                let r = b.request("GET", &format!("/0.1/token/{token}"), &[], None);
                match expected {
                    Some(data) => {
                        assert_eq!(r.status, 200, "{token}: {}", r.body);
                        let got = r.json()["data"].clone();
                        for field in ["token", "auth_id", "session_uuid", "acl", "expires_at"] {
                            assert_eq!(got[field], data[field], "{token}: {field}");
                        }
                    }
                    None => assert_eq!(r.status, 404, "{token}: {}", r.body),
                }
            });
        }
    });
    // Now cached on b (the expired ones as such): the same answers.
    for (token, expected) in &asked {
        let r = b.request("GET", &format!("/0.1/token/{token}"), &[], None);
        assert_eq!(
            r.status,
            if expected.is_some() { 200 } else { 404 },
            "{token}"
        );
    }
}
