//! Black-box tests of the plugin host: loading, refusal, faults, timeouts, ABI compatibility.
//! Every plugin here is a real `.so` loaded by the real `wazo-auth` binary.

use std::time::{Duration, Instant};

use wazo_auth_tests::serde_json::{json, Value};
use wazo_auth_tests::*;

fn enable(names: &[&str]) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("example_static".into(), json!(true));
    for n in names {
        m.insert((*n).into(), json!(true));
    }
    json!({ "enabled_backend_plugins": m })
}

fn alice_works(s: &Server) {
    let r = s.login(
        "alice",
        "alice-secret",
        json!({"backend": "example_static"}),
    );
    assert_eq!(r.status, 200, "server no longer serves logins: {}", r.body);
}

fn assert_auth_failed(r: &Resp) {
    assert_eq!(r.status, 401, "{}", r.body);
    let body = r.json();
    assert_eq!(body["reason"], json!(["Authentication Failed"]));
    assert_eq!(body["status_code"], 401);
}

/// Log lines mentioning `needle` at ERROR level.
fn error_lines(log: &str, needle: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("(ERROR)") && l.contains(needle))
        .map(String::from)
        .collect()
}

#[test]
fn example_backend_issues_a_token_and_startup_table_lists_plugins() {
    let s = ServerBuilder::new().start();
    let r = s.login(
        "alice",
        "alice-secret",
        json!({"backend": "example_static"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let data = &r.json()["data"];
    assert_eq!(data["auth_id"], "alice");
    let token = data["token"].as_str().unwrap();
    assert_eq!(
        s.request("HEAD", &format!("/0.1/token/{token}"), &[], None)
            .status,
        204
    );
    let log = s.log();
    assert!(log.contains("name"), "{log}");
    let row = log
        .lines()
        .find(|l| l.starts_with("example_static"))
        .unwrap_or_else(|| panic!("no table row for example_static:\n{log}"));
    assert!(row.contains("wazo_auth.backends"), "{row}");
    assert!(row.contains("libwazo_auth_example_backend.so"), "{row}");
    assert!(row.contains("1.3.0"), "{row}");
    assert!(row.trim_end().ends_with("loaded"), "{row}");
}

#[test]
fn panic_in_verify_password_answers_401_and_server_keeps_serving() {
    let s = ServerBuilder::new()
        .plugin(workspace_plugin(PANIC_VERIFY))
        .config(enable(&["panic_verify"]))
        .start();
    for _ in 0..3 {
        let r = s.login("anyone", "pw", json!({"backend": "panic_verify"}));
        assert_auth_failed(&r);
    }
    alice_works(&s);
    let log = s.log();
    let errors = error_lines(&log, "panic_verify");
    assert!(
        errors
            .iter()
            .any(|l| l.contains("verify_password") && l.contains("panicked")),
        "no error naming the plugin and the panic:\n{log}"
    );
}

#[test]
fn panic_at_load_is_refused_and_server_starts() {
    let s = ServerBuilder::new()
        .plugin(workspace_plugin(PANIC_LOAD))
        .config(enable(&["panic_load"]))
        .start();
    alice_works(&s);
    let log = s.log();
    let errors = error_lines(&log, "libwazo_auth_test_panic_load.so");
    assert_eq!(errors.len(), 1, "expected exactly one error line:\n{log}");
    assert!(errors[0].contains("panicked"), "{}", errors[0]);
    let row = log.lines().find(|l| l.starts_with("panic_load")).unwrap();
    assert!(row.contains("refused: load failed"), "{row}");
    // Like the original, an enabled backend whose load failed is still listed.
    let names = s.get("/0.1/backends").json()["data"].clone();
    assert_eq!(names, json!(["example_static", "panic_load"]));
    // It is never used for a login.
    let r = s.login("x", "y", json!({"backend": "panic_load"}));
    assert_auth_failed(&r);
}

#[test]
fn hung_plugin_call_times_out_while_other_requests_are_served() {
    let s = ServerBuilder::new()
        .plugin(workspace_plugin(SLOW))
        .config(enable(&["slow"]))
        .config(json!({
            "plugin_call_timeout": 1.0,
            "plugin_config": {"slow": {"sleep_seconds": 30}},
        }))
        .start();
    std::thread::scope(|scope| {
        let hung: Vec<_> = (0..3)
            .map(|_| {
                scope.spawn(|| {
                    let started = Instant::now();
                    let r = s.login("x", "y", json!({"backend": "slow"}));
                    (r, started.elapsed())
                })
            })
            .collect();
        // While those calls hang inside the plugin, other logins and checks are served.
        std::thread::sleep(Duration::from_millis(200));
        let token = s.alice_token(json!({}));
        assert_eq!(s.get(&format!("/0.1/token/{token}")).status, 200);
        for h in hung {
            let (r, elapsed) = h.join().unwrap();
            assert_auth_failed(&r);
            assert!(
                elapsed < Duration::from_secs(15),
                "the hung call was not cut off: {elapsed:?}"
            );
        }
    });
    let log = s.log();
    assert!(
        error_lines(&log, "slow")
            .iter()
            .any(|l| l.contains("timed out")),
        "{log}"
    );
    alice_works(&s);
}

#[test]
fn incompatible_plugin_is_refused_with_one_line() {
    let so = external_plugin("tests/plugins/incompatible", "wazo_auth_test_incompatible");
    let s = ServerBuilder::new()
        .plugin(so)
        .config(enable(&["compat_v1_0"]))
        .start();
    alice_works(&s);
    let log = s.log();
    let errors = error_lines(&log, "libwazo_auth_test_incompatible.so");
    assert_eq!(errors.len(), 1, "expected one summarised line:\n{log}");
    assert!(errors[0].contains("incompatible"), "{}", errors[0]);
    assert!(
        errors[0].len() < 400,
        "the refusal line is not a summary: {}",
        errors[0]
    );
    // The backend it declares is not usable.
    let r = s.login("old", "pw-old", json!({"backend": "compat_v1_0"}));
    assert_auth_failed(&r);
}

#[test]
fn plugin_built_against_frozen_1_0_loads_in_newer_host() {
    let so = external_plugin("tests/plugins/compat-v1_0", "wazo_auth_test_compat_v1_0");
    let s = ServerBuilder::new()
        .plugin(so)
        .config(enable(&["compat_v1_0"]))
        .start();
    let row = s
        .log()
        .lines()
        .find(|l| l.starts_with("compat_v1_0"))
        .map(String::from)
        .unwrap_or_else(|| panic!("no row:\n{}", s.log()));
    assert!(row.contains("1.0.0"), "{row}");
    assert!(row.trim_end().ends_with("loaded"), "{row}");
    let r = s.login("old", "pw-old", json!({"backend": "compat_v1_0"}));
    assert_eq!(r.status, 200, "{}", r.body);
    let data = r.json()["data"].clone();
    assert_eq!(data["auth_id"], "old");
    assert_eq!(data["acl"], json!(["old.plugin.#"]));
    assert_eq!(data["metadata"]["built_against"], "1.0");
    assert_auth_failed(&s.login("old", "wrong", json!({"backend": "compat_v1_0"})));
    // `status` was added in 1.1: for this plugin the host runs the default, which is healthy.
    assert_eq!(s.request("HEAD", "/0.1/status", &[], None).status, 200);
    // Its host-services log call (1.0 method) reached the server log, tagged.
    assert!(s.log().contains("plugin::compat_v1_0"), "{}", s.log());
}

#[test]
fn one_library_several_backends_args_logging_and_duplicates() {
    let s = ServerBuilder::new()
        .plugin(workspace_plugin(MULTI))
        .config(enable(&["multi_a", "multi_b"]))
        .start();
    let log = s.log();
    // The library also declares "example_static", already declared by the example (sorted
    // first): refused, the example keeps working.
    let dup = error_lines(&log, "libwazo_auth_test_multi_backend.so");
    assert_eq!(dup.len(), 1, "{log}");
    assert!(dup[0].contains("already declared"), "{}", dup[0]);
    alice_works(&s);

    let r = s.login("a", "pw-a", json!({"backend": "multi_a"}));
    assert_eq!(r.status, 200, "{}", r.body);
    let data = r.json()["data"].clone();
    assert_eq!(
        data["metadata"]["from_verify"], "a",
        "args did not carry over"
    );
    assert_eq!(
        data["acl"],
        json!(["multi.a.#", "users.me.read", "!multi.a.secret"])
    );
    let token = data["token"].as_str().unwrap().to_string();
    assert_eq!(
        s.request(
            "HEAD",
            &format!("/0.1/token/{token}?scope=multi.a.b"),
            &[],
            None
        )
        .status,
        204
    );
    assert_eq!(
        s.request(
            "HEAD",
            &format!("/0.1/token/{token}?scope=multi.a.secret"),
            &[],
            None
        )
        .status,
        403
    );
    assert_auth_failed(&s.login("a", "pw-a", json!({"backend": "multi_b"})));
    // Plugin log records are bridged into the host log, tagged with the plugin name.
    s.wait_log(Duration::from_secs(5), |l| {
        l.lines()
            .any(|x| x.contains("plugin::multi_a") && x.contains("MULTI-A-LOG-MARKER"))
    });
    // multi_b reports a failing status.
    assert_eq!(s.request("HEAD", "/0.1/status", &[], None).status, 503);
    assert_eq!(
        s.get("/0.1/backends").json()["data"],
        json!(["example_static", "multi_a", "multi_b"])
    );
}

#[test]
fn disabled_plugins_are_never_called() {
    let s = ServerBuilder::new()
        .plugin(workspace_plugin(PANIC_LOAD))
        .plugin(workspace_plugin(PANIC_VERIFY))
        .start();
    let r = s.login("x", "y", json!({"backend": "panic_verify"}));
    assert_auth_failed(&r);
    let log = s.log();
    assert!(
        !log.contains("panicked"),
        "a disabled plugin was called:\n{log}"
    );
    for name in ["panic_load", "panic_verify"] {
        let row = log.lines().find(|l| l.starts_with(name)).unwrap();
        assert!(row.trim_end().ends_with("disabled"), "{row}");
    }
    assert_eq!(
        s.get("/0.1/backends").json()["data"],
        json!(["example_static"])
    );
}

#[test]
fn files_that_are_not_plugins_are_skipped() {
    let dir = scratch_dir("notplugins");
    let garbage = dir.join("garbage.so");
    std::fs::write(&garbage, b"this is not an ELF file").unwrap();
    // A real shared library that is not a wazo-auth plugin.
    let libm = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
    ]
    .iter()
    .find(|p| std::path::Path::new(p).exists())
    .expect("libm");
    let foreign = dir.join("foreign.so");
    std::fs::copy(libm, &foreign).unwrap();
    let s = ServerBuilder::new().plugin(garbage).plugin(foreign).start();
    alice_works(&s);
    let log = s.log();
    let g = error_lines(&log, "garbage.so");
    assert_eq!(g.len(), 1, "{log}");
    assert!(g[0].contains("cannot be opened"), "{}", g[0]);
    let f = error_lines(&log, "foreign.so");
    assert_eq!(f.len(), 1, "{log}");
    assert!(f[0].contains("not a wazo-auth plugin"), "{}", f[0]);
}

#[test]
fn world_writable_plugin_dir_is_refused_unless_allowed() {
    let s = ServerBuilder::new().plugin_dir_mode(0o777).start();
    let log = s.log();
    assert!(
        error_lines(&log, "writable by users other than its owner").len() == 1,
        "{log}"
    );
    assert_auth_failed(&s.login(
        "alice",
        "alice-secret",
        json!({"backend": "example_static"}),
    ));
    assert_eq!(s.get("/0.1/backends").json()["data"], json!([]));
    drop(s);

    let s = ServerBuilder::new()
        .plugin_dir_mode(0o777)
        .config(json!({"allow_insecure_plugin_dir": true}))
        .start();
    alice_works(&s);
}

#[test]
fn group_writable_plugin_file_is_refused() {
    let s = ServerBuilder::new().plugin_file_mode(0o775).start();
    let log = s.log();
    let lines = error_lines(&log, "libwazo_auth_example_backend.so");
    assert_eq!(lines.len(), 1, "{log}");
    assert!(lines[0].contains("writable"), "{}", lines[0]);
    assert_auth_failed(&s.login(
        "alice",
        "alice-secret",
        json!({"backend": "example_static"}),
    ));
}

#[test]
fn unknown_config_key_stops_startup_with_a_clear_message() {
    let err = ServerBuilder::new()
        .config(json!({"rest_api": {"prot": 1}}))
        .try_start()
        .err()
        .expect("the server must refuse to start");
    assert!(err.contains("rest_api.prot"), "{err}");
    let err = ServerBuilder::new()
        .config(json!({"default_token_lifetime": "long"}))
        .try_start()
        .err()
        .expect("the server must refuse to start");
    assert!(err.contains("default_token_lifetime"), "{err}");
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let mut s = ServerBuilder::new().start();
    alice_works(&s);
    let code = s.stop();
    assert_eq!(code, Some(0), "log:\n{}", s.log());
    assert!(s.log().contains("HTTP server stopped"), "{}", s.log());
}

/// During the drain after SIGTERM (`rest_api.shutdown_drain`), SIGINT or SIGQUIT stops the
/// server at once, as they do outside it; a second SIGTERM ends the drain.
#[test]
fn sigint_or_sigquit_during_the_drain_stops_at_once() {
    for (signal, said) in [
        (libc::SIGINT, "SIGINT received; stopping now"),
        (libc::SIGQUIT, "SIGQUIT received; stopping now"),
        (libc::SIGTERM, "second SIGTERM: the drain ends now"),
    ] {
        let mut s = ServerBuilder::new()
            .config(json!({"rest_api": {"shutdown_drain": 60}}))
            .start();
        alice_works(&s);
        unsafe {
            libc::kill(s.pid() as i32, libc::SIGTERM);
        }
        s.wait_log(Duration::from_secs(10), |log| {
            log.contains("draining for 60.0s")
        });
        unsafe {
            libc::kill(s.pid() as i32, signal);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while s.is_running() {
            assert!(
                Instant::now() < deadline,
                "still running 10 s after {said:?}:\n{}",
                s.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(s.log().contains(said), "{}", s.log());
        assert!(s.log().contains("HTTP server stopped"), "{}", s.log());
    }
}

#[test]
fn plugins_of_several_api_versions_load_together_in_any_order() {
    // The 1.0 plugin sorts first, then 1.2 plugins: each library is checked against the
    // layout of its own version, independently of the others.
    let dir = scratch_dir("mixed");
    let first = dir.join("aaa-compat-v1_0.so");
    std::fs::copy(
        external_plugin("tests/plugins/compat-v1_0", "wazo_auth_test_compat_v1_0"),
        &first,
    )
    .unwrap();
    let s = ServerBuilder::new()
        .plugin(first)
        .plugin(workspace_plugin(MULTI))
        .config(enable(&["compat_v1_0", "multi_a"]))
        .start();
    assert_eq!(
        s.login("old", "pw-old", json!({"backend": "compat_v1_0"}))
            .status,
        200,
        "{}",
        s.log()
    );
    assert_eq!(
        s.login("a", "pw-a", json!({"backend": "multi_a"})).status,
        200
    );
    alice_works(&s);
}

#[test]
fn plugin_built_against_frozen_1_1_loads_in_newer_host() {
    let so = external_plugin("tests/plugins/compat-v1_1", "wazo_auth_test_compat_v1_1");
    let s = ServerBuilder::new()
        .plugin(so)
        .config(enable(&["compat_v1_1"]))
        .start();
    let row = s
        .log()
        .lines()
        .find(|l| l.starts_with("compat_v1_1"))
        .map(String::from)
        .unwrap_or_else(|| panic!("no row:\n{}", s.log()));
    assert!(row.contains("1.1.0"), "{row}");
    assert!(row.trim_end().ends_with("loaded"), "{row}");
    let r = s.login("old", "pw-old", json!({"backend": "compat_v1_1"}));
    assert_eq!(r.status, 200, "{}", r.body);
    let data = r.json()["data"].clone();
    assert_eq!(data["auth_id"], "old");
    assert_eq!(data["acl"], json!(["old.plugin.#"]));
    assert_eq!(data["metadata"]["built_against"], "1.1");
    assert_auth_failed(&s.login("old", "wrong", json!({"backend": "compat_v1_1"})));
    // Its own 1.1 `status` (the default of its copy of the trait) answers healthy.
    assert_eq!(s.request("HEAD", "/0.1/status", &[], None).status, 200);
    assert!(s.log().contains("plugin::compat_v1_1"), "{}", s.log());
}

#[test]
fn plugins_built_against_1_2_load_and_work_in_newer_host() {
    let so = external_plugin("tests/plugins/compat-v1_2", "wazo_auth_test_compat_v1_2");
    let s = ServerBuilder::new()
        .with_wazo_user()
        .plugin(so)
        .config(enable(&["compat_v1_2"]))
        .config(json!({"enabled_external_auth_plugins": {"compat12": true}}))
        .start();
    for name in ["compat_v1_2", "compat12"] {
        let row = s
            .log()
            .lines()
            .find(|l| l.starts_with(name))
            .map(String::from)
            .unwrap_or_else(|| panic!("no row for {name}:\n{}", s.log()));
        assert!(row.contains("1.2.0"), "{row}");
        assert!(row.trim_end().ends_with("loaded"), "{row}");
    }
    let admin = s.admin_token();
    let u = s.create_user(&admin, "twelve", "pw-twelve", None);
    // The backend, through the 1.2 user services.
    let r = s.login("twelve", "pw-twelve", json!({"backend": "compat_v1_2"}));
    assert_eq!(r.status, 200, "{}", r.body);
    let data = r.json()["data"].clone();
    assert_eq!(data["auth_id"], json!(u));
    assert_eq!(data["acl"], json!(["compat12.#"]));
    assert_eq!(data["metadata"]["built_against"], "1.2");
    assert_auth_failed(&s.login("twelve", "wrong", json!({"backend": "compat_v1_2"})));
    assert_eq!(s.request("HEAD", "/0.1/status", &[], None).status, 200);
    // The external-auth plugin, through the 1.2 store services.
    let path = format!("/0.1/users/{u}/external/compat12");
    let stored = json!({"shown": 1, "hidden": "secret"});
    let r = s.call("POST", &path, &admin, None, Some(&stored));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(s.call("GET", &path, &admin, None, None).json(), stored);
    let list = s.call(
        "GET",
        &format!("/0.1/users/{u}/external"),
        &admin,
        None,
        None,
    );
    let item = list.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "compat12")
        .cloned()
        .unwrap_or_else(|| panic!("{}", list.body));
    assert_eq!(item["data"], json!({"shown": 1}));
    assert_eq!(item["plugin_info"], json!({"built_against": "1.2"}));
    // PUT is not implemented by this plugin: the 1.2 default answers 405.
    assert_eq!(
        s.call("PUT", &path, &admin, None, Some(&stored)).status,
        405
    );
    assert_eq!(s.call("DELETE", &path, &admin, None, None).status, 204);
    assert_eq!(s.call("GET", &path, &admin, None, None).status, 404);
    assert!(s.log().contains("plugin::compat_v1_2"), "{}", s.log());
}

#[test]
fn a_backend_with_only_the_required_methods_logs_users_in() {
    let s = ServerBuilder::new()
        .plugin(workspace_plugin(MULTI))
        .config(enable(&["multi_minimal"]))
        .config(json!({"uuid": "5a2bd5d0-1234-4321-8888-0123456789ab"}))
        .start();
    let r = s.login("m", "pw-m", json!({"backend": "multi_minimal"}));
    assert_eq!(r.status, 200, "{}", r.body);
    let data = r.json()["data"].clone();
    // The default get_metadata: the login is the identity; get_xivo_uuid falls back to the
    // host's uuid.
    assert_eq!(data["auth_id"], "m");
    assert_eq!(data["metadata"]["username"], "m");
    assert_eq!(
        data["metadata"]["xivo_uuid"],
        "5a2bd5d0-1234-4321-8888-0123456789ab"
    );
    assert_eq!(data["xivo_uuid"], "5a2bd5d0-1234-4321-8888-0123456789ab");
    assert_eq!(data["acl"], json!([]));
    assert_auth_failed(&s.login("m", "wrong", json!({"backend": "multi_minimal"})));
}

#[test]
fn a_plugin_built_with_panic_abort_is_refused_at_build_and_at_load() {
    // At build time: the export macro stops the build with one clear error.
    let out = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--quiet", "--features", "macro", "--manifest-path"])
        .arg(workspace_root().join("tests/plugins/aborting/Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir().join("external"))
        .output()
        .expect("run cargo");
    assert!(!out.status.success(), "an aborting plugin built");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("wazo-auth plugins must be built with panic = \"unwind\""),
        "{stderr}"
    );
    // At load time: a library built by hand (no macro) with panic = "abort" is refused in one
    // line, and the server keeps serving.
    let so = external_plugin("tests/plugins/aborting", "wazo_auth_test_aborting");
    let s = ServerBuilder::new()
        .plugin(so)
        .config(enable(&["aborting"]))
        .start();
    let log = s.log();
    let errors = error_lines(&log, "libwazo_auth_test_aborting.so");
    assert_eq!(errors.len(), 1, "{log}");
    assert!(errors[0].contains("panic = \"abort\""), "{}", errors[0]);
    alice_works(&s);
    assert_auth_failed(&s.login("x", "pw-x", json!({"backend": "aborting"})));
}

#[test]
fn the_plugin_api_crate_builds_alone_outside_the_repository() {
    // What an author does: copy plugin-api/ somewhere else and build it there (no workspace
    // inheritance, every dependency its own).
    fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                copy_tree(&e.path(), &to.join(e.file_name()));
            } else {
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    }
    let dir =
        std::env::temp_dir().join(format!("wazo-auth-plugin-api-alone-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let copy = dir.join("plugin-api");
    let src = workspace_root().join("plugin-api");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(src.join("Cargo.toml"), copy.join("Cargo.toml")).unwrap();
    copy_tree(&src.join("src"), &copy.join("src"));
    // Versions pinned as in this repository, so the build works offline.
    std::fs::copy(workspace_root().join("Cargo.lock"), copy.join("Cargo.lock")).unwrap();
    let manifest = std::fs::read_to_string(copy.join("Cargo.toml")).unwrap();
    assert!(!manifest.contains(".workspace"), "{manifest}");
    let out = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--offline", "--quiet", "--manifest-path"])
        .arg(copy.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir().join("external"))
        .output()
        .expect("run cargo");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
