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
