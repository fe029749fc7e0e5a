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
