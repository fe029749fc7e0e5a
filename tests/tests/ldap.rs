//! LDAP logins (issue 19; spec core §1.3, §3.3): the `ldap_user` backend and the `ldap` member
//! of the IdP chain, against a private OpenLDAP directory (tests/src/slapd.rs).

use std::process::Command;

use wazo_auth_tests::slapd::{self, Slapd};

/// `ldapwhoami` as `dn` with `password` on `uri`, trusting `ca` (and StartTLS when `starttls`).
fn whoami(uri: &str, dn: &str, password: &str, ca: &std::path::Path, starttls: bool) -> bool {
    let mut cmd = Command::new("ldapwhoami");
    cmd.env("LDAPTLS_CACERT", ca)
        .env("LDAPTLS_REQCERT", "demand")
        .args(["-x", "-H", uri, "-D", dn, "-w", password]);
    if starttls {
        cmd.arg("-ZZ");
    }
    let out = cmd.output().expect("run ldapwhoami");
    if !out.status.success() {
        eprintln!(
            "ldapwhoami {uri} {dn}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out.status.success()
}

/// The harness itself: binds over `ldap://`, StartTLS and `ldaps://` with the directory's CA;
/// a wrong password, and TLS with another CA, fail.
#[test]
fn the_private_directory_serves_its_entries_over_plain_starttls_and_ldaps() {
    let d = Slapd::start();
    let plain = format!("ldap://127.0.0.1:{}", d.port);
    let ldaps = format!("ldaps://127.0.0.1:{}", d.ldaps_port);
    let alice = slapd::person("alice");
    let dn = format!("{},{}", alice.rdn, slapd::PEOPLE_DN);
    let ca = d.ca_file();
    assert!(
        whoami(&plain, &dn, alice.password, &ca, false),
        "{}",
        d.log()
    );
    assert!(
        whoami(&plain, &dn, alice.password, &ca, true),
        "{}",
        d.log()
    );
    assert!(
        whoami(&ldaps, &dn, alice.password, &ca, false),
        "{}",
        d.log()
    );
    assert!(!whoami(&plain, &dn, "wrong", &ca, false));
    assert!(!whoami(
        &ldaps,
        &dn,
        alice.password,
        &d.other_ca_file(),
        false
    ));
    assert!(!whoami(
        &plain,
        &dn,
        alice.password,
        &d.other_ca_file(),
        true
    ));
    let smith = slapd::person("smith");
    let dn = format!("{},{}", smith.rdn, slapd::PEOPLE_DN);
    assert!(
        whoami(&plain, &dn, smith.password, &ca, false),
        "{}",
        d.log()
    );
    assert!(whoami(
        &plain,
        slapd::SERVICE_DN,
        slapd::SERVICE_PASSWORD,
        &ca,
        false
    ));
}

// ------------------------------------------------------------------------------------------------
// Logins
// ------------------------------------------------------------------------------------------------

use std::time::{Duration, Instant};

use wazo_auth_tests::serde_json::{json, Value};
use wazo_auth_tests::*;

const DOMAIN: &str = "acme.test";

/// A server with the LDAP plugins, the tenant `acme` (domain `acme.test`) configured with the
/// directory `d`, and its users.
struct Fixture {
    s: Server,
    admin: String,
    acme: String,
    /// Wazo users of acme, by directory uid.
    users: std::collections::BTreeMap<&'static str, String>,
}

fn server(ca: &std::path::Path, extra: Value) -> Server {
    ServerBuilder::new()
        .with_wazo_user()
        .plugin(workspace_plugin(LDAP_USER))
        .config(json!({
            "enabled_backend_plugins": {"ldap_user": true},
            "idp_plugins": {"ldap": {"enabled": true, "priority": 2}},
            "plugin_config": {
                "ldap": {"ca_file": ca.to_str().unwrap(), "timeout": 1.0},
                "ldap_user": {"ca_file": ca.to_str().unwrap(), "timeout": 1.0},
            },
        }))
        .config(extra)
        .start()
}

/// The configuration of acme for the directory `d`: a service bind with search filters, or a
/// direct bind (`service` false); `security` `None`, `ldaps` or `tls`.
fn ldap_config(d: &Slapd, service: bool, security: Option<&str>) -> Value {
    let port = if security == Some("ldaps") {
        d.ldaps_port
    } else {
        d.port
    };
    let mut c = json!({
        "host": if security.is_some() { "localhost" } else { "127.0.0.1" },
        "port": port,
        "protocol_security": security,
        "user_base_dn": slapd::PEOPLE_DN,
        "user_login_attribute": "uid",
        "user_email_attribute": "mail",
    });
    if service {
        c["bind_dn"] = json!(slapd::SERVICE_DN);
        c["bind_password"] = json!(slapd::SERVICE_PASSWORD);
        c["search_filters"] =
            json!("(&({user_login_attribute}={username})(objectClass=inetOrgPerson))");
    }
    c
}

fn fixture(d: &Slapd, service: bool) -> Fixture {
    fixture_with(ldap_config(d, service, None), &d.ca_file())
}

fn fixture_with(config: Value, ca: &std::path::Path) -> Fixture {
    fixture_full(config, ca, json!({}))
}

fn fixture_full(config: Value, ca: &std::path::Path, extra: Value) -> Fixture {
    let s = server(ca, extra);
    let admin = s.admin_token();
    let r = s.call(
        "POST",
        "/0.1/tenants",
        &admin,
        None,
        Some(&json!({"name": "acme", "slug": "acme", "domain_names": [DOMAIN]})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let acme = r.json()["uuid"].as_str().unwrap().to_string();
    let r = s.call(
        "PUT",
        "/0.1/backends/ldap",
        &admin,
        Some(&acme),
        Some(&config),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let mut f = Fixture {
        s,
        admin,
        acme,
        users: Default::default(),
    };
    // alice: a confirmed e-mail; the others: their e-mail as username.
    let alice = f.user("alice-wazo", "ldap", Some("native-pw"));
    f.confirm_email(&alice, "alice@wazo.test");
    f.users.insert("alice", alice);
    for (uid, username) in [
        ("bob", "bob@wazo.test"),
        ("star*", "star@wazo.test"),
        ("smith", "smith@wazo.test"),
        ("dup", "dup1@wazo.test"),
    ] {
        let u = f.user(username, "ldap", None);
        f.users.insert(uid, u);
    }
    f
}

impl Fixture {
    fn user(&self, username: &str, method: &str, password: Option<&str>) -> String {
        let mut body = json!({"username": username, "authentication_method": method});
        if let Some(p) = password {
            body["password"] = json!(p);
        }
        let r = self.s.call(
            "POST",
            "/0.1/users",
            &self.admin,
            Some(&self.acme),
            Some(&body),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["uuid"].as_str().unwrap().to_string()
    }

    fn confirm_email(&self, user: &str, address: &str) {
        let r = self.s.call(
            "PUT",
            &format!("/0.1/admin/users/{user}/emails"),
            &self.admin,
            None,
            Some(&json!({"emails": [{"address": address, "main": true, "confirmed": true}]})),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }

    fn login(&self, login: &str, password: &str) -> Resp {
        self.s
            .login(login, password, json!({"domain_name": DOMAIN}))
    }

    /// Logs `uid` in with its directory password; asserts the token is its wazo user's.
    fn assert_logs_in(&self, uid: &str) -> Value {
        let p = slapd::person(uid);
        let r = self.login(uid, p.password);
        assert_eq!(r.status, 200, "{uid}: {}", r.body);
        let data = r.json()["data"].clone();
        assert_eq!(data["auth_id"], json!(self.users[uid]), "{uid}: {data}");
        assert_eq!(data["metadata"]["tenant_uuid"], json!(self.acme), "{uid}");
        data
    }

    fn assert_refused(&self, login: &str, password: &str) {
        let r = self.login(login, password);
        assert_eq!(r.status, 401, "{login:?}: {}", r.body);
        assert_eq!(
            r.json()["reason"],
            json!(["Authentication Failed"]),
            "{login:?}"
        );
    }
}

#[test]
fn a_service_bind_with_search_filters_logs_directory_users_in() {
    let d = Slapd::start();
    let f = fixture(&d, true);
    let data = f.assert_logs_in("alice");
    assert_eq!(data["metadata"]["username"], "alice@wazo.test");
    assert_eq!(data["metadata"]["purpose"], "user");
    assert_eq!(data["metadata"]["pbx_user_uuid"], json!(f.users["alice"]));
    // The directory's e-mail is compared without case.
    f.assert_logs_in("bob");
    // A wrong password, an unknown user, two entries matching.
    f.assert_refused("alice", "wrong");
    f.assert_refused("nobody", "whatever");
    f.assert_refused("dup", slapd::person("dup").password);
    // An entry whose e-mail no wazo user has.
    f.assert_refused("nomail", slapd::person("nomail").password);
    // An empty password never reaches the directory.
    f.assert_refused("alice", "");
    // The deprecated tenant_id: the tenant's uuid or slug.
    for id in [f.acme.as_str(), "acme"] {
        let r = f.s.login(
            "alice",
            slapd::person("alice").password,
            json!({ "tenant_id": id }),
        );
        assert_eq!(r.status, 200, "tenant_id {id}: {}", r.body);
    }
    // An unknown domain or tenant: no login (the original answers 404 for an unknown
    // tenant_id; see docs/compatibility.md).
    let r = f.s.login(
        "alice",
        slapd::person("alice").password,
        json!({"domain_name": "nowhere.test"}),
    );
    assert_eq!(r.status, 401, "{}", r.body);
    let r = f.s.login(
        "alice",
        slapd::person("alice").password,
        json!({"tenant_id": "nowhere"}),
    );
    assert_eq!(r.status, 401, "{}", r.body);
    // The bind password is never logged.
    assert!(!f.s.log().contains(slapd::SERVICE_PASSWORD));
    assert!(!f.s.log().contains(slapd::person("alice").password));
}

#[test]
fn a_direct_bind_logs_directory_users_in() {
    let d = Slapd::start();
    let f = fixture(&d, false);
    f.assert_logs_in("alice");
    f.assert_logs_in("bob");
    f.assert_refused("alice", "wrong");
    f.assert_refused("nobody", "whatever");
    f.assert_refused("nomail", slapd::person("nomail").password);
    // A DN with every special character, as the entry names it (login attribute cn).
    let mut c = ldap_config(&d, false, None);
    c["user_login_attribute"] = json!("cn");
    let r = f.s.call(
        "PUT",
        "/0.1/backends/ldap",
        &f.admin,
        Some(&f.acme),
        Some(&c),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let smith = slapd::person("smith");
    let r = f.login(smith.cn, smith.password);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["data"]["auth_id"], json!(f.users["smith"]));
}

/// Logins holding filter or DN syntax find no user, or exactly the user they name.
#[test]
fn injection_characters_never_change_the_filter_or_the_dn() {
    let d = Slapd::start();
    let attempts = [
        "*",
        "a*",
        "al*ce",
        "alice)(uid=*",
        "*)(|(uid=*",
        "alice)(|(objectClass=*)",
        "(uid=alice)",
        "alice\\",
        "\\2a",
        "alice\0",
        "alice,ou=people,dc=wazo,dc=test",
        "uid=alice",
        "alice+cn=x",
        "<alice>",
        "alice;",
        "\"alice\"",
        "alice=",
        "#alice",
    ];
    // Logins that the directory's matching rules take for alice's (spaces and case are
    // insignificant there): they find alice or nobody, never anyone else.
    let equivalents = [" alice", "alice ", "ALICE", " Alice "];
    for service in [true, false] {
        let f = fixture(&d, service);
        for login in attempts {
            for password in [slapd::person("alice").password, "*", "wrong"] {
                f.assert_refused(login, password);
            }
        }
        for login in equivalents {
            let r = f.login(login, slapd::person("alice").password);
            assert!(
                r.status == 401
                    || (r.status == 200 && r.json()["data"]["auth_id"] == json!(f.users["alice"])),
                "{login:?}: {}",
                r.body
            );
            f.assert_refused(login, "wrong");
        }
        // The entry whose uid holds `*` is found exactly, and only with its own password.
        f.assert_logs_in("star*");
        f.assert_refused("star*", slapd::person("alice").password);
        // A non-UTF-8 login (read as Latin-1 by the server) names nobody.
        let r = f.s.request(
            "POST",
            "/0.1/token",
            &[
                ("Authorization", &basic_bytes(b"al\xffice:alice-ldap-pw")),
                ("Content-Type", "application/json"),
            ],
            Some(json!({"domain_name": DOMAIN}).to_string().as_bytes()),
        );
        assert_eq!(r.status, 401, "{}", r.body);
    }
}

/// The method rules: an `ldap` user cannot log in natively; a `native` user does not log in
/// through the directory; a disabled user not at all.
#[test]
fn the_authentication_method_decides_the_way_in() {
    let d = Slapd::start();
    let f = fixture(&d, true);
    // alice has a wazo password too, but her method is ldap.
    let r = f.s.login("alice-wazo", "native-pw", json!({}));
    assert_eq!(r.status, 401, "{}", r.body);
    let r = f.s.login("alice@wazo.test", "native-pw", json!({}));
    assert_eq!(r.status, 401, "{}", r.body);
    f.assert_logs_in("alice");
    // Switched to native: the directory login is refused, the native one works.
    let alice = &f.users["alice"];
    let r = f.s.call(
        "PUT",
        &format!("/0.1/idp/native/users/{alice}"),
        &f.admin,
        None,
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    f.assert_refused("alice", slapd::person("alice").password);
    assert_eq!(f.s.login("alice-wazo", "native-pw", json!({})).status, 200);
    // Back to ldap through the tenant's default: `default` follows the tenant.
    let r = f.s.call(
        "PUT",
        &format!("/0.1/tenants/{}", f.acme),
        &f.admin,
        None,
        Some(&json!({"name": "acme", "domain_names": [DOMAIN], "default_authentication_method": "ldap"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = f.s.call(
        "PUT",
        &format!("/0.1/idp/default/users/{alice}"),
        &f.admin,
        None,
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    f.assert_logs_in("alice");
    // A disabled user.
    let bob = &f.users["bob"];
    let r = f.s.call(
        "PUT",
        &format!("/0.1/users/{bob}"),
        &f.admin,
        None,
        Some(&json!({"username": "bob@wazo.test", "enabled": false, "authentication_method": "ldap"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    f.assert_refused("bob", slapd::person("bob").password);
    // GET /idp lists ldap.
    let r = f.s.call("GET", "/0.1/idp", &f.admin, None, None);
    assert!(
        r.json()["items"]
            .as_array()
            .unwrap()
            .contains(&json!("ldap")),
        "{}",
        r.body
    );
}

#[test]
fn a_refresh_token_of_an_ldap_login_logs_in_again() {
    let d = Slapd::start();
    let f = fixture(&d, true);
    let r = f.s.login(
        "alice",
        slapd::person("alice").password,
        json!({"domain_name": DOMAIN, "access_type": "offline", "client_id": "ldap-client"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let refresh = r.json()["data"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = f.s.refresh_login(&refresh, "ldap-client");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["data"]["auth_id"], json!(f.users["alice"]));
    assert_eq!(r.json()["data"]["metadata"]["tenant_uuid"], json!(f.acme));
}

/// `ldaps` and StartTLS with the directory's CA; with another CA, no login.
#[test]
fn ldaps_and_starttls_verify_the_directory_certificate() {
    let d = Slapd::start();
    for security in ["ldaps", "tls"] {
        let f = fixture_with(ldap_config(&d, true, Some(security)), &d.ca_file());
        f.assert_logs_in("alice");
        f.assert_refused("alice", "wrong");
        drop(f);
        let f = fixture_with(ldap_config(&d, true, Some(security)), &d.other_ca_file());
        f.assert_refused("alice", slapd::person("alice").password);
        f.s.wait_log(Duration::from_secs(5), |l| {
            l.contains("invalid peer certificate")
        });
        // Another host name than the certificate's (the same directory).
        let mut c = ldap_config(&d, true, Some(security));
        c["host"] = json!(slapd::OTHER_ADDRESS);
        let f = fixture_with(c, &d.ca_file());
        f.assert_refused("alice", slapd::person("alice").password);
        f.s.wait_log(Duration::from_secs(5), |l| {
            l.contains("certificate not valid for name")
        });
    }
}

/// A stopped or hung directory: 401 within the time-out, and the other tenants' native logins
/// go on meanwhile.
#[test]
fn a_failing_directory_costs_a_bounded_time_and_nothing_else() {
    let mut d = Slapd::start();
    let f = fixture(&d, true);
    f.assert_logs_in("alice");
    f.s.create_user(&f.admin, "native-user", "native-pw", None);

    d.freeze();
    let started = Instant::now();
    f.assert_refused("alice", slapd::person("alice").password);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "a hung directory took {took:?}"
    );
    let started = Instant::now();
    assert_eq!(f.s.login("native-user", "native-pw", json!({})).status, 200);
    assert!(started.elapsed() < Duration::from_secs(2));
    d.thaw();
    f.assert_logs_in("alice");

    d.kill();
    let started = Instant::now();
    f.assert_refused("alice", slapd::person("alice").password);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(f.s.login("native-user", "native-pw", json!({})).status, 200);
    assert!(!f.s.log().contains(slapd::SERVICE_PASSWORD));
}

/// LDAP logins go through the login throttle, keyed by the login and the domain: the same
/// login natively, or in another domain, is another key.
#[test]
fn failed_ldap_logins_are_throttled_per_login_and_domain() {
    let d = Slapd::start();
    let f = fixture_full(
        ldap_config(&d, true, None),
        &d.ca_file(),
        json!({"login_throttle": {
            "enabled": true, "free_attempts_per_login": 2, "free_attempts_per_address": 100,
            "base_delay": 30.0, "max_delay": 60.0, "forget_after": 60, "exempt_addresses": []}}),
    );
    let r = f.s.call(
        "POST",
        "/0.1/tenants",
        &f.admin,
        None,
        Some(&json!({"name": "other", "domain_names": ["other.test"]})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // Two free failures, then a third that starts the block.
    f.assert_refused("alice", "wrong-1");
    f.assert_refused("alice", "wrong-2");
    f.assert_refused("alice", "wrong-3");
    let r = f.login("alice", slapd::person("alice").password);
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.header("Retry-After").is_some());
    // Another domain, the native login of the same name: other keys.
    let r =
        f.s.login("alice", "wrong", json!({"domain_name": "other.test"}));
    assert_eq!(r.status, 401, "{}", r.body);
    let r = f.s.login("alice", "wrong", json!({}));
    assert_eq!(r.status, 401, "{}", r.body);
    // Another login of the same domain.
    f.assert_logs_in("bob");
}

// ------------------------------------------------------------------------------------------------
// Connection reuse
// ------------------------------------------------------------------------------------------------

/// The connections slapd served, from its `stats` log: each one's operation lines (`BIND
/// dn="..." method=128`, `SRCH base="..." scope=2 ...`, `UNBIND`, ...), in order. A restart
/// starts a new series of connections (slapd numbers them from 1000 again).
fn directory_connections(log: &str) -> Vec<Vec<String>> {
    let mut conns: std::collections::BTreeMap<(usize, u64), Vec<String>> = Default::default();
    let mut run = 0;
    for line in log.lines() {
        if line.contains("slapd starting") {
            run += 1;
            continue;
        }
        let Some(at) = line.find(" conn=") else {
            continue;
        };
        let rest = &line[at + " conn=".len()..];
        let Some((id, rest)) = rest.split_once(' ') else {
            continue;
        };
        let Ok(id) = id.parse::<u64>() else {
            continue;
        };
        let entry = conns.entry((run, id)).or_default();
        if let Some(op) = rest.strip_prefix("op=") {
            if let Some((_, what)) = op.split_once(' ') {
                entry.push(what.to_string());
            }
        }
    }
    conns.into_values().collect()
}

fn is_service_bind(op: &str) -> bool {
    op.to_ascii_lowercase().starts_with(&format!(
        "bind dn=\"{}\" method=128",
        slapd::SERVICE_DN.to_ascii_lowercase()
    ))
}

fn is_user_bind(op: &str) -> bool {
    op.starts_with("BIND dn=\"")
        && op.contains("method=128")
        && op
            .to_ascii_lowercase()
            .contains(&format!("{}\"", slapd::PEOPLE_DN.to_ascii_lowercase()))
}

/// How many service binds the directory has seen.
fn service_binds(d: &Slapd) -> usize {
    directory_connections(&d.log())
        .iter()
        .flatten()
        .filter(|op| is_service_bind(op))
        .count()
}

/// No connection that saw a user bind ever saw the service bind or the service's subtree
/// search (before or after it): the user binds run on connections of their own.
fn assert_user_binds_are_never_on_service_connections(d: &Slapd) {
    let conns = directory_connections(&d.log());
    let mut user_conns = 0;
    for ops in &conns {
        if ops.iter().any(|op| is_user_bind(op)) {
            user_conns += 1;
            assert!(
                !ops.iter()
                    .any(|op| is_service_bind(op) || op.contains("scope=2")),
                "a user bind shared a connection with the service: {ops:#?}"
            );
        }
    }
    assert!(user_conns > 0, "no user bind in the log:\n{}", d.log());
}

/// With the pool (the default, idle connections kept 2 s here), successive logins share one
/// service connection; the user binds run on their own connections, so a user's bind never
/// stays for the next login: after alice logs in, bob with a wrong password is still refused and
/// the service search still finds the next users.
#[test]
fn service_binds_are_pooled_and_user_binds_never_are() {
    let d = Slapd::start();
    let f = fixture_full(
        ldap_config(&d, true, None),
        &d.ca_file(),
        json!({"plugin_config": {"ldap": {"pool_idle_timeout": 2.0}}}),
    );
    let logins = 8;
    for i in 0..logins / 4 {
        f.assert_logs_in("alice");
        f.assert_refused("bob", "wrong");
        f.assert_logs_in("bob");
        f.assert_refused(if i == 0 { "nobody" } else { "alice" }, "wrong");
    }
    let binds = service_binds(&d);
    assert!(
        (1..logins).contains(&binds),
        "{logins} logins made {binds} service binds:\n{}",
        d.log()
    );
    assert_user_binds_are_never_on_service_connections(&d);
    // Idle for longer than pool_idle_timeout: the next login binds a new connection.
    std::thread::sleep(Duration::from_millis(2500));
    f.assert_logs_in("alice");
    assert_eq!(service_binds(&d), binds + 1, "{}", d.log());
    f.assert_logs_in("bob");
    assert_eq!(service_binds(&d), binds + 1, "{}", d.log());
}

/// `pool_size: 0`: every login binds a connection of its own.
#[test]
fn a_pool_size_of_zero_binds_every_login_anew() {
    let d = Slapd::start();
    let f = fixture_full(
        ldap_config(&d, true, None),
        &d.ca_file(),
        json!({"plugin_config": {"ldap": {"pool_size": 0}}}),
    );
    f.assert_logs_in("alice");
    f.assert_refused("alice", "wrong");
    f.assert_logs_in("bob");
    assert_eq!(service_binds(&d), 3, "{}", d.log());
    assert_user_binds_are_never_on_service_connections(&d);
}

/// A directory restarted under pooled connections: the next login drops the dead connection
/// and succeeds on a new one.
#[test]
fn a_restarted_directory_does_not_break_the_next_login() {
    let mut d = Slapd::start();
    let f = fixture(&d, true);
    f.assert_logs_in("alice");
    f.assert_logs_in("bob");
    d.restart();
    f.assert_logs_in("alice");
    f.assert_refused("alice", "wrong");
    f.assert_logs_in("bob");
}

/// A pooled connection is never reused under another configuration: a changed bind password
/// takes effect on the next login, both ways.
#[test]
fn a_changed_bind_password_takes_effect_on_the_next_login() {
    let d = Slapd::start();
    let f = fixture(&d, true);
    f.assert_logs_in("alice");
    let put = |c: &Value| {
        let r = f.s.call(
            "PUT",
            "/0.1/backends/ldap",
            &f.admin,
            Some(&f.acme),
            Some(c),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    };
    let mut c = ldap_config(&d, true, None);
    c["bind_password"] = json!("not-the-service-secret");
    put(&c);
    f.assert_refused("alice", slapd::person("alice").password);
    f.s.wait_log(Duration::from_secs(5), |l| {
        l.contains("the service bind as") && l.contains("failed (49)")
    });
    put(&ldap_config(&d, true, None));
    f.assert_logs_in("alice");
    // Another bind DN (the same password) is another key too.
    let mut c = ldap_config(&d, true, None);
    c["bind_dn"] = json!(format!("cn=nobody,{}", slapd::BASE_DN));
    put(&c);
    f.assert_refused("alice", slapd::person("alice").password);
    assert!(!f.s.log().contains(slapd::SERVICE_PASSWORD));
}
