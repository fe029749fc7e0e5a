//! Startup and shutdown of the server on its embedded default: a private PostgreSQL cluster.

use std::path::Path;
use std::time::Duration;

use wazo_auth_tests::serde_json::json;
use wazo_auth_tests::*;

fn postmaster_running(data_dir: &Path) -> bool {
    let Ok(pid_file) = std::fs::read_to_string(data_dir.join("postmaster.pid")) else {
        return false;
    };
    let pid: i32 = pid_file
        .lines()
        .next()
        .unwrap_or("0")
        .trim()
        .parse()
        .unwrap_or(0);
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}

#[test]
fn managed_postgres_is_created_used_and_stopped() {
    let root = std::env::temp_dir().join(format!("wazo-auth-managed-{}", std::process::id()));
    let data_dir = root.join("pgdata");
    let mut s = ServerBuilder::new().managed_database(&data_dir).start();
    assert!(
        data_dir.join("PG_VERSION").exists(),
        "no cluster initialised"
    );
    assert!(postmaster_running(&data_dir));
    let t = s.alice_token(json!({}));
    assert_eq!(s.get(&format!("/0.1/token/{t}")).status, 200);
    assert_eq!(s.stop(), Some(0), "{}", s.log());
    assert!(
        !postmaster_running(&data_dir),
        "PostgreSQL still running after shutdown"
    );

    // A second start reuses the data: the token is still valid.
    let mut s = ServerBuilder::new().managed_database(&data_dir).start();
    assert_eq!(s.get(&format!("/0.1/token/{t}")).status, 200);
    assert_eq!(s.stop(), Some(0));
    std::thread::sleep(Duration::from_millis(100));
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn missing_postgres_binaries_give_an_actionable_error() {
    let empty = scratch_dir("nobin");
    let data_dir = scratch_dir("nodata").join("pg");
    let err = ServerBuilder::new()
        .managed_database(&data_dir)
        .config(json!({"managed_db": {"bin_dir": empty}}))
        .try_start()
        .err()
        .expect("must not start without PostgreSQL binaries");
    assert!(err.contains("db_uri"), "{err}");
    assert!(err.to_lowercase().contains("install"), "{err}");
}

#[test]
fn cors_as_the_original_and_can_be_disabled() {
    let s = ServerBuilder::new().start();
    let pre = s.request(
        "OPTIONS",
        "/0.1/token",
        &[
            ("Origin", "https://app.example.com"),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "authorization, wazo-session-type",
            ),
        ],
        None,
    );
    assert_eq!(pre.status, 200, "{pre:?}");
    // As Flask-CORS with the original's configuration: the origin, not `*` (issue 15).
    assert_eq!(
        pre.header("Access-Control-Allow-Origin"),
        Some("https://app.example.com")
    );
    let allowed = pre
        .header("Access-Control-Allow-Headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(allowed.contains("wazo-session-type"), "{allowed}");
    let r = s.request(
        "POST",
        "/0.1/token",
        &[
            ("Origin", "https://app.example.com"),
            ("Authorization", &basic("alice", "alice-secret")),
        ],
        Some(br#"{"backend": "example_static"}"#),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some("https://app.example.com")
    );
    let exposed = r
        .header("Access-Control-Expose-Headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(exposed.contains("wazo-sessions-revoked"), "{exposed}");
    drop(s);

    let s = ServerBuilder::new()
        .config(json!({"rest_api": {"cors": {"enabled": false}}}))
        .start();
    let r = s.request(
        "GET",
        "/0.1/backends",
        &[("Origin", "https://app.example.com")],
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Access-Control-Allow-Origin"), None);
}

/// The harness starts every server with `rest_api.port: 0`: the log line and
/// `rest_api.bound_address_file` give the port the system picked; the file goes on a clean stop.
#[test]
fn the_port_picked_by_the_system_is_reported() {
    let mut s = ServerBuilder::new().start();
    let addr = s.base.trim_start_matches("http://").to_string();
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    assert_ne!(port, 0);
    assert!(
        s.log().contains(&format!("listening on http://{addr}\n")),
        "{}",
        s.log()
    );
    let file = s.bound_address_file().to_path_buf();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), format!("{addr}\n"));
    assert_eq!(s.request("HEAD", "/0.1/status", &[], None).status, 200);
    assert_eq!(s.stop(), Some(0), "{}", s.log());
    assert!(!file.exists(), "{} left after a clean stop", file.display());

    // A file that cannot be written stops the server, naming the key and the file.
    let scratch = scratch_dir("bound");
    let missing = scratch.join("no-such-dir").join("address");
    let e = ServerBuilder::new()
        .config(json!({"rest_api": {"bound_address_file": missing}}))
        .try_start()
        .err()
        .expect("the server started without writing its address");
    assert!(e.contains("exited (exit status: 1)"), "{e}");
    assert!(
        e.contains(&format!(
            "rest_api.bound_address_file ({})",
            missing.display()
        )),
        "{e}"
    );
    std::fs::remove_dir_all(&scratch).unwrap();
}
