//! `wazo-auth bootstrap` against a running server: the initial user and `POST /users` share the
//! login-uniqueness rule (a username must not equal another user's username or e-mail address),
//! also when they run at the same time.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use wazo_auth_tests::serde_json::json;
use wazo_auth_tests::*;

const ROUNDS: u32 = 20;
const PASSWORD: &str = "b00tstrap-pw";

/// A configuration file for `wazo-auth bootstrap` on the server's database, in `dir`.
fn bootstrap_config(dir: &Path, db: &str) -> PathBuf {
    let config = dir.join("config.yml");
    // JSON is valid YAML.
    let body = json!({
        "db_uri": db,
        "secret_key_file": dir.join("secret.keys"),
        "db_connect_retry_timeout_seconds": 10,
    });
    std::fs::write(&config, body.to_string()).unwrap();
    config
}

fn bootstrap_command(config: &Path, username: &str) -> Command {
    let mut cmd = Command::new(server_binary());
    cmd.arg("-c")
        .arg(config)
        .args(["bootstrap", "--username", username, "--password", PASSWORD])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("RUST_LOG", "warn")
        .env("TZ", "UTC");
    cmd
}

fn describe(out: &Output) -> String {
    format!(
        "status {}; stdout {:?}; stderr {:?}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Users having `login` as username or as one of their e-mail addresses (any case).
fn users_with_login(db: &str, login: &str) -> Vec<String> {
    sql(
        db,
        &format!(
            "SELECT u.uuid FROM auth_user u
             WHERE lower(u.username) = lower('{login}')
                OR EXISTS (SELECT 1 FROM auth_email e
                           WHERE e.user_uuid = u.uuid AND lower(e.address) = lower('{login}'))
             ORDER BY u.uuid"
        ),
    )
    .into_iter()
    .map(|row| row[0].clone().unwrap_or_default())
    .collect()
}

/// A bootstrap whose username is `L` and a `POST /users` whose e-mail address is `L` (no unique
/// index spans the two tables: only the login lock keeps them apart), started together, many
/// times, the request sent at points spread over the bootstrap's run: exactly one of them
/// creates its user, the other is refused.
#[test]
fn bootstrap_and_post_users_never_make_two_users_with_one_login() {
    let s = ServerBuilder::new().with_wazo_user().start();
    let admin = s.admin_token();
    let dir = scratch_dir("bootstrap");
    let config = bootstrap_config(&dir, &s.db);

    // How long a bootstrap takes on this machine (start, connect, migrate, hash, write).
    let started = Instant::now();
    let out = bootstrap_command(&config, "warm-up@example.com")
        .output()
        .unwrap();
    let run_time = started.elapsed();
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(users_with_login(&s.db, "warm-up@example.com").len(), 1);

    let (mut bootstrap_first, mut request_first) = (0, 0);
    for round in 0..ROUNDS {
        let login = format!("racer{round}@example.com");
        let delay = run_time.mul_f64(f64::from(round) / f64::from(ROUNDS - 1));
        let child = bootstrap_command(&config, &login).spawn().unwrap();
        std::thread::sleep(delay);
        let r = s.call(
            "POST",
            "/0.1/users",
            &admin,
            None,
            Some(&json!({"email_address": login})),
        );
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let users = users_with_login(&s.db, &login);
        assert_eq!(
            users.len(),
            1,
            "round {round} (request after {delay:?}): users {users:?}; POST /users answered {} {}; \
             bootstrap: {}",
            r.status,
            r.body,
            describe(&out)
        );
        match r.status {
            // The request won: the bootstrap finds a user with that login and another password.
            200 => {
                request_first += 1;
                assert!(!out.status.success(), "round {round}: {}", describe(&out));
                assert!(
                    stderr.contains("already exists with another password"),
                    "round {round}: {}",
                    describe(&out)
                );
                assert_eq!(r.json()["uuid"].as_str(), Some(users[0].as_str()));
            }
            // The bootstrap won: its user holds the login.
            409 => {
                bootstrap_first += 1;
                assert!(out.status.success(), "round {round}: {}", describe(&out));
                assert!(stdout.contains("created"), "round {round}: {stdout}");
                assert_eq!(
                    r.json()["details"]["email_address"]["constraint_id"],
                    "unique"
                );
                let uuid = sql(
                    &s.db,
                    &format!("SELECT uuid FROM auth_user WHERE username = '{login}'"),
                );
                assert_eq!(uuid.len(), 1, "round {round}");
                assert_eq!(uuid[0][0].as_deref(), Some(users[0].as_str()));
            }
            other => panic!("round {round}: POST /users answered {other}: {}", r.body),
        }
    }
    // Which side won each round depends on timing; either way, one user per login.
    eprintln!(
        "bootstrap run time {run_time:?}: the bootstrap won {bootstrap_first} round(s), \
         POST /users {request_first}"
    );
    if std::env::var_os("WAZO_AUTH_KEEP_TEST_DIRS").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
