//! Black-box tests of the plugin-author mistakes of issue 18, host side: each one fails closed,
//! in one clear log line. Every plugin here is a real `.so` loaded by the real `wazo-auth`
//! binary; `tests/plugins/author-mistakes` holds the mistakes.

use std::path::Path;
use std::time::Duration;

use wazo_auth_tests::serde_json::{json, Value};
use wazo_auth_tests::*;

const AUTHOR_MISTAKES: &str = "wazo_auth_test_author_mistakes";
/// `UNKNOWN_TENANT` of the test plugin: no test database holds it.
const UNKNOWN_TENANT: &str = "0b2d4c8e-6f1a-4b3c-9d5e-7a8b9c0d1e2f";

fn enable(names: &[&str]) -> Value {
    let m: serde_json::Map<String, Value> = names
        .iter()
        .map(|n| ((*n).to_string(), json!(true)))
        .collect();
    json!({ "enabled_backend_plugins": m })
}

fn assert_auth_failed(r: &Resp) {
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.json()["reason"], json!(["Authentication Failed"]));
}

/// Log lines at `level` (`ERROR`, `WARN`, ...) holding every one of `needles`.
fn lines(log: &str, level: &str, needles: &[&str]) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(&format!("({level})")) && needles.iter().all(|n| l.contains(n)))
        .map(String::from)
        .collect()
}

fn head_status(s: &Server) -> u16 {
    s.request("HEAD", "/0.1/status", &[], None).status
}

/// Mistake 1: a file declaring `wazo_user` sorts before the built-in file and used to take every
/// login, administrators' included. Built-in names are reserved for the built-in file.
#[test]
fn a_third_party_file_never_takes_a_built_in_name() {
    let s = ServerBuilder::new()
        .with_wazo_user()
        .plugin(workspace_plugin(AUTHOR_MISTAKES))
        .start();
    // The impostor accepts any password: it must not be the one answering.
    assert_auth_failed(&s.login(ADMIN.0, "not the password", json!({})));
    assert_auth_failed(&s.login("nobody", "x", json!({"backend": "wazo_user"})));
    let r = s.login(ADMIN.0, ADMIN.1, json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_ne!(r.json()["data"]["auth_id"], "impostor");
    let log = s.log();
    let refused = lines(
        &log,
        "ERROR",
        &[
            "libwazo_auth_test_author_mistakes.so",
            "libwazo_auth_wazo_user.so",
            "\"wazo_user\"",
            "built-in",
        ],
    );
    assert_eq!(refused.len(), 1, "one line naming both files:\n{log}");
    assert!(refused[0].contains("export_plugins!"), "{}", refused[0]);
    let row = log
        .lines()
        .find(|l| l.starts_with("wazo_user") && l.contains("author_mistakes"))
        .unwrap_or_else(|| panic!("no table row for the impostor:\n{log}"));
    assert!(row.contains("refused:"), "{row}");
    drop(s);

    // Without the built-in file, the name is still not the impostor's.
    let s = ServerBuilder::new()
        .plugin(workspace_plugin(AUTHOR_MISTAKES))
        .config(enable(&["wazo_user"]))
        .start();
    assert_auth_failed(&s.login("anyone", "anything", json!({"backend": "wazo_user"})));
    assert_auth_failed(&s.login("anyone", "anything", json!({})));
    let log = s.log();
    assert_eq!(
        lines(
            &log,
            "ERROR",
            &["libwazo_auth_wazo_user.so", "not installed"]
        )
        .len(),
        1,
        "{log}"
    );
}

/// Mistake 2: a login naming a backend that is enabled but failed to load used to get a token of
/// the default backend. It is refused, and the failure shows in the table and the status.
#[test]
fn a_backend_that_failed_to_load_is_never_replaced_and_degrades_the_status() {
    let s = ServerBuilder::new()
        .with_wazo_user()
        .plugin(workspace_plugin(PANIC_LOAD))
        .config(enable(&["panic_load"]))
        .start();
    // Good credentials of the default backend: still no token through a backend that is down.
    assert_auth_failed(&s.login(ADMIN.0, ADMIN.1, json!({"backend": "panic_load"})));
    let log = s.log();
    let refusal = lines(&log, "WARN", &["POST /token", "\"panic_load\"", "failed"]);
    assert_eq!(refusal.len(), 1, "{log}");
    assert!(
        refusal[0].contains("test plugin panic in load"),
        "{}",
        refusal[0]
    );
    // Logins that name no backend, or a loaded one, still work.
    assert_eq!(s.login(ADMIN.0, ADMIN.1, json!({})).status, 200);
    assert_eq!(
        s.login(
            "alice",
            "alice-secret",
            json!({"backend": "example_static"})
        )
        .status,
        200
    );
    // Still listed, as the original does.
    assert_eq!(
        s.get("/0.1/backends").json()["data"],
        json!(["example_static", "panic_load", "wazo_user"])
    );
    // The startup table says which failed.
    assert!(
        log.lines()
            .any(|l| l.starts_with("enabled backends that failed to load: panic_load")),
        "{log}"
    );
    // Degraded, with the documented detail in the log.
    assert_eq!(head_status(&s), 503);
    s.wait_log(Duration::from_secs(5), |l| {
        l.contains("status: backend \"panic_load\" failed to load at startup: load failed:")
    });
}

/// Mistake 2: no backend loaded at all used to answer 200.
#[test]
fn the_status_is_degraded_when_no_backend_is_loaded() {
    let healthy = ServerBuilder::new().start();
    assert_eq!(head_status(&healthy), 200);
    drop(healthy);
    let s = ServerBuilder::new()
        .config(json!({"enabled_backend_plugins": {"example_static": false}}))
        .start();
    assert_eq!(head_status(&s), 503);
    let log = s.log();
    assert!(
        log.lines().any(|l| l.starts_with("no backend is loaded")),
        "{log}"
    );
    s.wait_log(Duration::from_secs(5), |l| {
        l.contains("status: no backend is loaded")
    });
}

/// Mistake 5: `tenant_uuid` from a backend never widens access. Absent: the token belongs to no
/// tenant and passes no tenant check (it used to pass every one). Not a uuid, not a string, or no
/// such tenant: the login is refused (it used to give a session in the top tenant).
#[test]
fn tenant_uuid_from_a_backend_fails_closed() {
    let s = ServerBuilder::new()
        .with_wazo_user()
        .plugin(workspace_plugin(AUTHOR_MISTAKES))
        .config(enable(&[
            "tenant_missing",
            "tenant_malformed",
            "tenant_unknown",
            "tenant_number",
        ]))
        .start();
    let admin = s.admin_token();
    let r = s.call(
        "POST",
        "/0.1/tenants",
        &admin,
        None,
        Some(&json!({"name": "mistakes-sub"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let sub = r.json()["uuid"].as_str().unwrap().to_string();
    let top = sql(
        &s.db,
        "SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid",
    )[0][0]
        .clone()
        .unwrap();
    let tenant_check = |token: &str, tenant: &str| {
        s.request(
            "HEAD",
            &format!("/0.1/token/{token}?tenant={tenant}"),
            &[],
            None,
        )
        .status
    };

    // Control: `null` is the top tenant, which sees its sub-tenant (the example backend).
    let alice = s.alice_token(json!({}));
    assert_eq!(tenant_check(&alice, &sub), 204);

    // Absent.
    let r = s.login("someone", "pw", json!({"backend": "tenant_missing"}));
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.json()["data"]["token"].as_str().unwrap().to_string();
    assert_eq!(tenant_check(&token, &sub), 403);
    assert_eq!(tenant_check(&token, &top), 403);
    let r = s.request(
        "POST",
        &format!("/0.1/token/{token}/scopes/check"),
        &[("Content-Type", "application/json")],
        Some(
            json!({"scopes": ["mistakes.x"], "tenant_uuid": sub})
                .to_string()
                .as_bytes(),
        ),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    // Without a tenant, the token itself stays valid.
    assert_eq!(
        s.request("HEAD", &format!("/0.1/token/{token}"), &[], None)
            .status,
        204
    );

    // Malformed, not a string, unknown: refused.
    for backend in ["tenant_malformed", "tenant_number", "tenant_unknown"] {
        assert_auth_failed(&s.login("someone", "pw", json!({ "backend": backend })));
        // Repeated: still refused, and the warning is not repeated (rate-limited).
        assert_auth_failed(&s.login("someone", "pw", json!({ "backend": backend })));
    }
    let log = s.log();
    for (backend, says) in [
        (
            "tenant_missing",
            "no tenant_uuid: the token belongs to no tenant",
        ),
        ("tenant_malformed", "not a hyphenated uuid"),
        ("tenant_number", "not a string"),
        ("tenant_unknown", "names no existing tenant"),
    ] {
        let found = lines(&log, "WARN", &[&format!("backend {backend} ("), says]);
        assert_eq!(found.len(), 1, "one warning for {backend}:\n{log}");
        assert!(
            found[0].contains("put the uuid of the user's tenant"),
            "{}",
            found[0]
        );
    }
    assert!(log.contains(UNKNOWN_TENANT), "{log}");
    // No session was created for the refused logins.
    let sessions = sql(
        &s.db,
        "SELECT count(*) FROM auth_token WHERE auth_id = 'someone'",
    );
    assert_eq!(sessions[0][0].as_deref(), Some("1"));
}

/// Mistake 6: a refused directory or file says which enabled backends it leaves missing.
#[test]
fn refused_files_and_directories_name_the_backends_they_leave_missing() {
    let s = ServerBuilder::new().plugin_file_mode(0o775).start();
    let log = s.log();
    let missing = lines(
        &log,
        "WARN",
        &[
            "backend \"example_static\" is enabled",
            "refused file",
            "libwazo_auth_example_backend.so",
        ],
    );
    assert_eq!(missing.len(), 1, "{log}");
    drop(s);

    // A built-in file that is refused: it is known to declare the name.
    let s = ServerBuilder::new()
        .with_wazo_user()
        .plugin_file_mode(0o775)
        .start();
    let log = s.log();
    assert_eq!(
        lines(
            &log,
            "WARN",
            &[
                "backend \"wazo_user\" is enabled but missing: it is declared by a refused file",
                "libwazo_auth_wazo_user.so"
            ]
        )
        .len(),
        1,
        "{log}"
    );
    drop(s);

    let s = ServerBuilder::new().plugin_dir_mode(0o777).start();
    let log = s.log();
    let line = lines(&log, "ERROR", &["no plugin loaded"]);
    assert_eq!(line.len(), 1, "{log}");
    assert!(
        line[0].contains("the enabled backends example_static are missing"),
        "{}",
        line[0]
    );
}

/// Mistake 8: messages say what to do.
#[test]
fn plugin_failures_are_logged_with_what_to_do() {
    let s = ServerBuilder::new()
        .plugin(workspace_plugin(PANIC_VERIFY))
        .plugin(workspace_plugin(AUTHOR_MISTAKES))
        .config(enable(&["panic_verify", "no_auth_id"]))
        .start();
    assert_auth_failed(&s.login("x", "y", json!({"backend": "panic_verify"})));
    assert_auth_failed(&s.login("x", "pw", json!({"backend": "no_auth_id"})));
    let log = s.log();
    let panic = lines(&log, "ERROR", &["panic_verify", "verify_password"]);
    assert_eq!(panic.len(), 1, "{log}");
    assert!(
        panic[0].contains("panicked: test plugin panic in verify_password"),
        "{}",
        panic[0]
    );
    assert!(!panic[0].contains("plugin panicked"), "{}", panic[0]);
    assert!(panic[0].contains("fix the plugin"), "{}", panic[0]);
    let auth_id = lines(&log, "ERROR", &["no_auth_id", "get_metadata"]);
    assert_eq!(auth_id.len(), 1, "{log}");
    assert!(
        auth_id[0].contains("returned no string auth_id: override Backend::get_metadata"),
        "{}",
        auth_id[0]
    );
}

fn postmaster_pid(data_dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let pid: i32 = text.lines().next()?.trim().parse().ok()?;
    (pid > 0 && unsafe { libc::kill(pid, 0) } == 0).then_some(pid)
}

/// Stops a cluster left running by a failed test.
struct ClusterGuard<'a>(&'a Path);

impl Drop for ClusterGuard<'_> {
    fn drop(&mut self) {
        if let Some(pid) = postmaster_pid(self.0) {
            unsafe {
                libc::kill(pid, libc::SIGQUIT);
            }
        }
    }
}

/// Mistake 3b: a server killed without stopping its managed PostgreSQL (as a plugin built with
/// `panic = "abort"` does) leaves it running; the next server adopts it and stops it at exit,
/// while a cluster whose starter is still running is left to that one.
#[test]
fn a_cluster_left_running_by_a_killed_server_is_stopped_by_the_next_one() {
    let data_dir = scratch_dir("orphan").join("pgdata");
    let _guard = ClusterGuard(&data_dir);
    let mut first = ServerBuilder::new().managed_database(&data_dir).start();
    let postmaster = postmaster_pid(&data_dir).expect("the first server started PostgreSQL");
    unsafe {
        libc::kill(first.pid() as i32, libc::SIGKILL);
    }
    first.stop();
    assert_eq!(
        postmaster_pid(&data_dir),
        Some(postmaster),
        "the killed server's PostgreSQL should still run"
    );

    let mut second = ServerBuilder::new().managed_database(&data_dir).start();
    assert!(second.log().contains("which is gone"), "{}", second.log());
    assert_eq!(
        postmaster_pid(&data_dir),
        Some(postmaster),
        "reused, not restarted"
    );
    // While it runs, another server reusing the cluster leaves it running at its exit.
    let mut third = ServerBuilder::new().managed_database(&data_dir).start();
    assert!(third.log().contains("still running"), "{}", third.log());
    let t = third.alice_token(json!({}));
    assert_eq!(third.get(&format!("/0.1/token/{t}")).status, 200);
    assert_eq!(third.stop(), Some(0), "{}", third.log());
    assert_eq!(postmaster_pid(&data_dir), Some(postmaster));
    let t = second.alice_token(json!({}));
    assert_eq!(second.get(&format!("/0.1/token/{t}")).status, 200);

    assert_eq!(second.stop(), Some(0), "{}", second.log());
    assert_eq!(
        postmaster_pid(&data_dir),
        None,
        "the adopted PostgreSQL is still running after a graceful stop:\n{}",
        second.log()
    );
}

/// An enabled external auth that no installed file declares (a built-in one not installed in
/// `plugin_dir`, say) is named at startup, with what to do, instead of being silently absent.
#[test]
fn an_enabled_external_auth_that_no_file_declares_is_named() {
    let s = ServerBuilder::new()
        .config(json!({"enabled_external_auth_plugins": {"mobile": true}}))
        .start();
    let log = s.log();
    let found = lines(
        &log,
        "WARN",
        &[
            "external auth \"mobile\" is enabled but no plugin file in",
            "enabled_external_auth_plugins.mobile: false",
        ],
    );
    assert_eq!(found.len(), 1, "{log}");
    // Only the enabled one is named.
    assert!(
        !log.contains("external auth \"google\" is enabled"),
        "{log}"
    );
    let r = s.request(
        "GET",
        &format!("/0.1/users/{}/external/mobile", uuid::Uuid::new_v4()),
        &[],
        None,
    );
    assert_eq!(r.status, 404, "{r:?}");
    drop(s);

    // Installed and loaded: no warning.
    let s = ServerBuilder::new().with_mobile().start();
    assert!(!s.log().contains("is enabled but"), "{}", s.log());
}
