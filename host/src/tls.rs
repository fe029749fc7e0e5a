//! The optional TLS listener: `rest_api.certificate` and `rest_api.private_key`.
//!
//! Both files are PEM. The certificate file holds the server's certificate first, then any
//! intermediate certificates; the key file holds one private key, PKCS#8 (`BEGIN PRIVATE KEY`),
//! PKCS#1 (`BEGIN RSA PRIVATE KEY`) or SEC1 (`BEGIN EC PRIVATE KEY`): RSA, ECDSA P-256/P-384
//! or Ed25519. Everything is read and checked once, at startup; any problem is an error naming
//! the configuration key and the file. Key material is never part of a message.
//!
//! rustls with the `ring` provider, its default protocol versions (TLS 1.2 and 1.3) and cipher
//! suites.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

const CERTIFICATE_KEY: &str = "rest_api.certificate";
const PRIVATE_KEY_KEY: &str = "rest_api.private_key";

/// Reads and checks the certificate chain and the private key; returns the server
/// configuration of the listener. Warns when the key file is readable by group or others.
pub fn load_server_config(
    certificate: &str,
    private_key: &str,
) -> Result<rustls::ServerConfig, String> {
    let cert_error = |reason: String| format!("{CERTIFICATE_KEY} ({certificate}): {reason}");
    let key_error = |reason: String| format!("{PRIVATE_KEY_KEY} ({private_key}): {reason}");

    let cert_pem = read_file(Path::new(certificate)).map_err(cert_error)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(describe_pem_error(&e)))?;
    if chain.is_empty() {
        return Err(cert_error(
            "no certificate found (expected PEM \"BEGIN CERTIFICATE\" blocks, the server's \
             certificate first)"
                .into(),
        ));
    }

    warn_if_key_readable_by_others(Path::new(private_key));
    let key_pem = read_file(Path::new(private_key)).map_err(key_error)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound => key_error(
            "no private key found (expected a PEM PKCS#8 \"BEGIN PRIVATE KEY\", PKCS#1 \
             \"BEGIN RSA PRIVATE KEY\" or SEC1 \"BEGIN EC PRIVATE KEY\" block; encrypted keys \
             are not supported)"
                .into(),
        ),
        e => key_error(describe_pem_error(&e)),
    })?;
    drop(key_pem);

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // Parse the key first, so that an unusable key is reported as such (and not as a mismatch).
    let signing_key = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| {
            key_error(format!(
                "unsupported or invalid private key (RSA, ECDSA P-256/P-384 or Ed25519 \
                 expected): {e}"
            ))
        })?;
    let certified = rustls::sign::CertifiedKey::new(chain.clone(), signing_key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(key_error(format!(
                "does not match the certificate of {CERTIFICATE_KEY} ({certificate}) (the \
                 server's certificate must come first in that file)"
            )));
        }
        Err(e) => return Err(cert_error(format!("invalid certificate: {e}"))),
    }

    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up failed: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| key_error(format!("TLS set-up failed: {e}")))
}

fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read the file: {e}"))
}

/// A PEM error in words, without the file's content (the pem crate's own messages may quote
/// lines of it).
fn describe_pem_error(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { .. } => "malformed PEM: a block has no END line".into(),
        pem::Error::IllegalSectionStart { .. } => "malformed PEM: invalid BEGIN line".into(),
        pem::Error::Base64Decode(_) => "malformed PEM: invalid base64 content".into(),
        pem::Error::Io(e) => format!("cannot read the file: {e}"),
        pem::Error::NoItemsFound => "no PEM block of the expected kind".into(),
        pem::Error::SectionTooLarge => "malformed PEM: a block is too large".into(),
        _ => "malformed PEM".into(),
    }
}

/// The private key should be readable by the server's user only: warn (do not refuse) when
/// group or others may read it.
fn warn_if_key_readable_by_others(path: &Path) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // A file that cannot be read is reported by the caller.
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    if let Some(warning) = key_mode_warning(meta.permissions().mode()) {
        log::warn!(
            "{PRIVATE_KEY_KEY} ({}): {warning} (owner uid {}); restrict it to the server's \
             user, e.g. chmod 600",
            path.display(),
            meta.uid()
        );
    }
}

fn key_mode_warning(mode: u32) -> Option<String> {
    (mode & 0o044 != 0).then(|| {
        format!(
            "the private key file is readable by users other than its owner (mode {:o})",
            mode & 0o7777
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    struct Dir(PathBuf);

    impl Dir {
        fn new() -> Dir {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let dir =
                std::env::temp_dir().join(format!("wazo-auth-tls-unit-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Dir(dir)
        }

        fn write(&self, name: &str, content: &str) -> String {
            use std::os::unix::fs::PermissionsExt;
            let path = self.0.join(name);
            std::fs::write(&path, content).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            path.display().to_string()
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn self_signed() -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        (c.cert.pem(), c.key_pair.serialize_pem())
    }

    fn error(cert: &str, key: &str) -> String {
        match load_server_config(cert, key) {
            Ok(_) => panic!("accepted {cert} / {key}"),
            Err(e) => e,
        }
    }

    #[test]
    fn tls_accepts_a_matching_pair_and_a_chain() {
        let dir = Dir::new();
        let (cert, key) = self_signed();
        let c = dir.write("cert.pem", &cert);
        let k = dir.write("key.pem", &key);
        load_server_config(&c, &k).unwrap();

        // leaf + CA in one file, key and certificate in one file
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &ca, &ca_key)
            .unwrap();
        let both = dir.write(
            "both.pem",
            &format!("{}{}{}", leaf.pem(), ca.pem(), leaf_key.serialize_pem()),
        );
        load_server_config(&both, &both).unwrap();
    }

    #[test]
    fn tls_errors_name_the_key_the_file_and_the_reason() {
        let dir = Dir::new();
        let (cert, key) = self_signed();
        let (_, other_key) = self_signed();
        let c = dir.write("cert.pem", &cert);
        let k = dir.write("key.pem", &key);
        let other = dir.write("other.pem", &other_key);
        let empty = dir.write("empty.pem", "");
        let garbage = dir.write(
            "garbage.pem",
            "-----BEGIN PRIVATE KEY-----\n!!!not base64!!!\n-----END PRIVATE KEY-----\n",
        );
        let missing = dir.0.join("missing.pem").display().to_string();

        let e = error(&c, &missing);
        assert!(
            e.starts_with(&format!(
                "rest_api.private_key ({missing}): cannot read the file: "
            )),
            "{e}"
        );
        let e = error(&missing, &k);
        assert!(
            e.starts_with(&format!(
                "rest_api.certificate ({missing}): cannot read the file: "
            )),
            "{e}"
        );
        let e = error(&k, &k);
        assert!(
            e.starts_with(&format!("rest_api.certificate ({k}): no certificate found")),
            "{e}"
        );
        let e = error(&c, &c);
        assert!(
            e.starts_with(&format!("rest_api.private_key ({c}): no private key found")),
            "{e}"
        );
        let e = error(&c, &empty);
        assert!(e.contains("no private key found"), "{e}");
        let encrypted = dir.write(
            "encrypted.pem",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        );
        let e = error(&c, &encrypted);
        assert!(e.contains("encrypted keys are not supported"), "{e}");
        let e = error(&c, &garbage);
        assert!(
            e.starts_with(&format!("rest_api.private_key ({garbage}): malformed PEM")),
            "{e}"
        );
        assert!(!e.contains("not base64"), "{e}");
        let e = error(&c, &other);
        assert_eq!(
            e,
            format!(
                "rest_api.private_key ({other}): does not match the certificate of \
                 rest_api.certificate ({c}) (the server's certificate must come first in that \
                 file)"
            )
        );
        assert!(!e.contains("PRIVATE KEY"));
        for e in [error(&c, &missing), error(&c, &other), error(&k, &k)] {
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn tls_key_mode_warning() {
        assert_eq!(key_mode_warning(0o100600), None);
        assert_eq!(key_mode_warning(0o100400), None);
        assert!(key_mode_warning(0o100640).unwrap().contains("mode 640"));
        assert!(key_mode_warning(0o100604).is_some());
    }
}
