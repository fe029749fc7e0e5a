//! The optional TLS listener (`rest_api.certificate` / `rest_api.private_key`): HTTPS with
//! certificates and keys generated here (nothing is committed), plain HTTP refused on that port,
//! and clear startup errors for unusable files.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::CertificateDer;
use wazo_auth_tests::serde_json::{json, Value};
use wazo_auth_tests::*;

/// A scratch directory for generated certificates and keys, removed at the end of the test.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        Scratch(scratch_dir("tls"))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("WAZO_AUTH_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Writes `content` to `dir/name` with `mode`; returns the path.
fn write(dir: &Path, name: &str, content: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    set_mode(&path, mode);
    path
}

/// A self-signed certificate for 127.0.0.1 and localhost, signed with `key`.
fn self_signed(key: &KeyPair) -> rcgen::Certificate {
    CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .self_signed(key)
        .unwrap()
}

/// A client that trusts only `anchor`.
fn client_trusting(anchor: &CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(anchor.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

fn tls_config(cert: &Path, key: &Path) -> Value {
    json!({"rest_api": {"certificate": cert, "private_key": key}})
}

/// Logs alice in (example backend) and checks her token, over the server's scheme.
fn alice_logs_in_and_her_token_checks(s: &Server) {
    let token = s.alice_token(json!({}));
    let g = s.get(&format!("/0.1/token/{token}"));
    assert_eq!(g.status, 200, "{}", g.body);
    assert_eq!(g.json()["data"]["auth_id"], "alice");
    let h = s.request("HEAD", &format!("/0.1/token/{token}"), &[], None);
    assert_eq!(h.status, 204);
}

#[test]
fn https_login_and_token_check_with_a_certificate_chain() {
    let scratch = Scratch::new();
    let dir = scratch.0.as_path();
    // root CA -> intermediate CA -> server certificate (ECDSA P-256, PKCS#8 keys). The client
    // trusts the root only: the server must send the intermediate from the chain file.
    let ca = |params: &mut CertificateParams| {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    };
    let root_key = KeyPair::generate().unwrap();
    let mut root_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca(&mut root_params);
    let root = root_params.self_signed(&root_key).unwrap();
    let intermediate_key = KeyPair::generate().unwrap();
    let mut intermediate_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca(&mut intermediate_params);
    let intermediate = intermediate_params
        .signed_by(&intermediate_key, &root, &root_key)
        .unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&server_key, &intermediate, &intermediate_key)
        .unwrap();

    let chain = write(
        dir,
        "chain.pem",
        &format!("{}{}", server_cert.pem(), intermediate.pem()),
        0o644,
    );
    // Readable by others: a warning, not a refusal.
    let key = write(dir, "key.pem", &server_key.serialize_pem(), 0o644);
    let s = ServerBuilder::new()
        .with_wazo_user()
        .config(tls_config(&chain, &key))
        .https(client_trusting(root.der()))
        .start();
    assert!(s.base.starts_with("https://"), "{}", s.base);
    assert!(
        s.log().contains("listening on https://127.0.0.1:"),
        "{}",
        s.log()
    );
    assert!(
        s.log().contains(&format!(
            "rest_api.private_key ({}): the private key file is readable by users other than \
             its owner (mode 644)",
            key.display()
        )),
        "{}",
        s.log()
    );

    // The administrator logs in over HTTPS; the token checks over HTTPS.
    let token = s.admin_token();
    let g = s.get(&format!("/0.1/token/{token}"));
    assert_eq!(g.status, 200, "{}", g.body);
    assert_eq!(g.json()["data"]["token"], token.as_str());
    let check = s.call(
        "POST",
        &format!("/0.1/token/{token}/scopes/check"),
        &token,
        None,
        Some(&json!({"scopes": ["auth.tenants.read"]})),
    );
    assert_eq!(check.status, 200, "{}", check.body);
    assert_eq!(check.json()["scopes"]["auth.tenants.read"], true);
    alice_logs_in_and_her_token_checks(&s);

    // A client that does not trust the root refuses the server.
    let stranger = KeyPair::generate().unwrap();
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .tls_config(client_trusting(self_signed(&stranger).der()))
        .build();
    match agent.get(&s.url("/0.1/status")).call() {
        Err(ureq::Error::Transport(_)) => {}
        other => panic!("an untrusted server certificate was accepted: {other:?}"),
    }
    assert!(!s.log().contains("PRIVATE KEY"), "{}", s.log());
}

#[test]
fn plain_http_on_the_tls_port_gets_no_api_answer() {
    let scratch = Scratch::new();
    let dir = scratch.0.as_path();
    let key = KeyPair::generate().unwrap();
    let cert = self_signed(&key);
    let cert_path = write(dir, "cert.pem", &cert.pem(), 0o644);
    let key_path = write(dir, "key.pem", &key.serialize_pem(), 0o600);
    let s = ServerBuilder::new()
        .config(tls_config(&cert_path, &key_path))
        .https(client_trusting(cert.der()))
        .start();
    assert!(!s.log().contains("readable by users other"), "{}", s.log());
    let plain_url = s.url("/0.1/token").replacen("https://", "http://", 1);

    // An HTTP client: a transport error or an error status, never a token.
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let answer = agent
        .post(&plain_url)
        .set("Authorization", &basic("alice", "alice-secret"))
        .set("Content-Type", "application/json")
        .send_string(r#"{"backend": "example_static"}"#);
    match answer {
        Err(ureq::Error::Transport(_)) => {}
        Err(ureq::Error::Status(status, _)) => assert_ne!(status, 200),
        Ok(r) => panic!(
            "plain HTTP got an API answer: {} {:?}",
            r.status(),
            r.into_string()
        ),
    }

    // The same request byte for byte on a raw connection: nothing that looks like HTTP comes back.
    let port: u16 = s.base.rsplit(':').next().unwrap().parse().unwrap();
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let timeout = Some(Duration::from_secs(10));
    conn.set_read_timeout(timeout).unwrap();
    let body = r#"{"backend": "example_static"}"#;
    let request = format!(
        "POST /0.1/token HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        basic("alice", "alice-secret"),
        body.len()
    );
    let _ = conn.write_all(request.as_bytes());
    let mut received = Vec::new();
    let _ = conn.read_to_end(&mut received);
    assert!(
        !received.starts_with(b"HTTP/"),
        "an HTTP answer on the TLS port: {:?}",
        String::from_utf8_lossy(&received)
    );
    assert!(!String::from_utf8_lossy(&received).contains("token"));

    // The server still serves HTTPS.
    alice_logs_in_and_her_token_checks(&s);
}

#[test]
fn sec1_ec_key_and_pkcs1_rsa_key_work() {
    use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
    use rsa::pkcs1::EncodeRsaPrivateKey;

    let scratch = Scratch::new();
    let dir = scratch.0.as_path();

    // ECDSA P-256 key written as SEC1 ("BEGIN EC PRIVATE KEY").
    let key = KeyPair::generate().unwrap();
    let cert = self_signed(&key);
    let sec1 = p256::SecretKey::from_pkcs8_der(key.serialized_der())
        .unwrap()
        .to_sec1_pem(LineEnding::LF)
        .unwrap();
    assert!(sec1.starts_with("-----BEGIN EC PRIVATE KEY-----"));
    let cert_path = write(dir, "ec-cert.pem", &cert.pem(), 0o644);
    let key_path = write(dir, "ec-key.pem", &sec1, 0o600);
    let s = ServerBuilder::new()
        .config(tls_config(&cert_path, &key_path))
        .https(client_trusting(cert.der()))
        .start();
    alice_logs_in_and_her_token_checks(&s);
    drop(s);

    // RSA 2048 key written as PKCS#1 ("BEGIN RSA PRIVATE KEY"); rcgen signs the certificate
    // with the same key read as PKCS#8.
    let rsa_key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    let pkcs1 = rsa_key.to_pkcs1_pem(LineEnding::LF).unwrap();
    assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let pkcs8 = rsa_key.to_pkcs8_pem(LineEnding::LF).unwrap();
    let key = KeyPair::from_pem_and_sign_algo(&pkcs8, &rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = self_signed(&key);
    let cert_path = write(dir, "rsa-cert.pem", &cert.pem(), 0o644);
    let key_path = write(dir, "rsa-key.pem", &pkcs1, 0o600);
    let s = ServerBuilder::new()
        .config(tls_config(&cert_path, &key_path))
        .https(client_trusting(cert.der()))
        .start();
    alice_logs_in_and_her_token_checks(&s);
}

#[test]
fn unusable_tls_files_stop_the_startup_with_a_clear_error() {
    let scratch = Scratch::new();
    let dir = scratch.0.as_path();
    let key = KeyPair::generate().unwrap();
    let cert = self_signed(&key);
    let other_key = KeyPair::generate().unwrap();
    let cert_path = write(dir, "cert.pem", &cert.pem(), 0o644);
    let key_path = write(dir, "key.pem", &key.serialize_pem(), 0o600);
    let other_key_path = write(dir, "other-key.pem", &other_key.serialize_pem(), 0o600);
    let missing = dir.join("missing-key.pem");

    let fails = |cert: &Path, key: &Path| -> String {
        match ServerBuilder::new()
            .config(tls_config(cert, key))
            .try_start()
        {
            Ok(_) => panic!("started with {} / {}", cert.display(), key.display()),
            Err(log) => {
                assert!(log.contains("exited (exit status: 1)"), "{log}");
                assert!(!log.contains("PRIVATE KEY-----"), "key material: {log}");
                // Nothing was started before the check.
                assert!(!log.contains("plugins in"), "{log}");
                log
            }
        }
    };

    let log = fails(&cert_path, &missing);
    assert!(
        log.contains(&format!(
            "wazo-auth: rest_api.private_key ({}): cannot read the file: No such file or directory",
            missing.display()
        )),
        "{log}"
    );

    let log = fails(&cert_path, &other_key_path);
    assert!(
        log.contains(&format!(
            "wazo-auth: rest_api.private_key ({}): does not match the certificate of \
             rest_api.certificate ({})",
            other_key_path.display(),
            cert_path.display()
        )),
        "{log}"
    );

    // The files swapped: no certificate in the certificate file.
    let log = fails(&key_path, &cert_path);
    assert!(
        log.contains(&format!(
            "wazo-auth: rest_api.certificate ({}): no certificate found",
            key_path.display()
        )),
        "{log}"
    );

    // No private key in the key file.
    let log = fails(&cert_path, &cert_path);
    assert!(
        log.contains(&format!(
            "wazo-auth: rest_api.private_key ({}): no private key found",
            cert_path.display()
        )),
        "{log}"
    );
}
