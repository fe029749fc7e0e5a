//! The server's secret keys: a small keyring file, one key per line (`<id> <base64 of 32
//! bytes>`), the first line being the primary key used for new secrets; older keys stay usable
//! for what they protected. Purpose-specific keys are derived with HMAC-SHA256, so one keyring
//! serves refresh tokens and encrypted data alike.
//!
//! The file is created with one random key, mode 0600, when it does not exist. Several server
//! processes sharing a database must share the file.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A 32-byte secret.
pub type Key = [u8; 32];

/// The loaded keyring.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<(String, Key)>,
    /// The primary key's `login-throttle` key, derived once (used on every login).
    throttle: Key,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Keyring").field("key_ids", &ids).finish()
    }
}

fn derive_from(key: &Key, purpose: &str) -> Key {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(b"wazo-auth key derivation\0");
    mac.update(purpose.as_bytes());
    mac.finalize().into_bytes().into()
}

/// The format version of sealed values.
const SEAL_VERSION: &str = "v1";

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl Keyring {
    /// Builds a keyring from `(id, key)` pairs, primary first.
    pub fn from_keys(keys: Vec<(String, Key)>) -> Result<Keyring, String> {
        if keys.is_empty() {
            return Err("the keyring has no key".into());
        }
        let throttle = derive_from(&keys[0].1, "login-throttle");
        Ok(Keyring { keys, throttle })
    }

    /// Parses the file format.
    pub fn parse(text: &str) -> Result<Keyring, String> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(id), Some(material), None) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(format!("line {}: expected `<id> <base64 key>`", n + 1));
            };
            if !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            {
                return Err(format!(
                    "line {}: a key id may only contain letters, digits, '-', '_' and '.'",
                    n + 1
                ));
            }
            let bytes = b64()
                .decode(material)
                .map_err(|_| format!("line {}: the key is not valid base64", n + 1))?;
            let key: Key = bytes
                .try_into()
                .map_err(|_| format!("line {}: a key must be 32 bytes", n + 1))?;
            if keys.iter().any(|(k, _): &(String, Key)| k == id) {
                return Err(format!("line {}: duplicate key id {id:?}", n + 1));
            }
            keys.push((id.to_string(), key));
        }
        Keyring::from_keys(keys).map_err(|e| format!("{e} (add a line `<id> <base64 key>`)"))
    }

    /// Loads `path`, creating it with one fresh key (mode 0600) when it does not exist. Refuses
    /// a file readable or writable by group or others.
    pub fn load_or_create(path: &Path) -> Result<Keyring, String> {
        if !path.exists() {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            let mut key = [0u8; 32];
            OsRng.fill_bytes(&mut key);
            let id = format!("k{}", chrono::Utc::now().format("%Y%m%d%H%M%S"));
            let text = format!(
                "# wazo-auth secret keys: `<id> <base64 32 bytes>` per line; the first is used for\n\
                 # new secrets. Add a new key at the top to rotate; keep old ones while data they\n\
                 # protected is still in use.\n{id} {}\n",
                b64().encode(key)
            );
            create_complete(path, text.as_bytes())?;
        }
        let meta = std::fs::metadata(path)
            .map_err(|e| format!("cannot read the key file {}: {e}", path.display()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(format!(
                "the key file {} is accessible by group or others; chmod 600 it",
                path.display()
            ));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the key file {}: {e}", path.display()))?;
        Keyring::parse(&text).map_err(|e| format!("key file {}: {e}", path.display()))
    }

    /// The id of the primary key.
    pub fn primary_id(&self) -> &str {
        &self.keys[0].0
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(id, _)| id.as_str())
    }

    /// A key for `purpose` derived from key `id` (None when the id is unknown).
    pub fn derive(&self, id: &str, purpose: &str) -> Option<Key> {
        let (_, key) = self.keys.iter().find(|(k, _)| k == id)?;
        Some(derive_from(key, purpose))
    }

    /// The key that hashes attempted logins in the login throttle (derived from the primary
    /// key: a new primary key starts the per-login counts afresh).
    pub fn login_throttle_key(&self) -> &Key {
        &self.throttle
    }

    /// Encrypts `plaintext` with ChaCha20-Poly1305 under the primary key's key for `purpose`;
    /// `aad` (associated data) binds the result to its row: opened with another `aad`, it fails.
    /// The result names the key (`v1:<key id>:<base64 of nonce and ciphertext>`), so that it
    /// stays readable after a new primary key is added.
    pub fn seal(&self, purpose: &str, aad: &str, plaintext: &str) -> Result<String, String> {
        let key_id = self.primary_id();
        let key = derive_from(&self.keys[0].1, purpose);
        let cipher = ChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&key));
        let mut nonce = [0u8; 12];
        OsRng.fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| "encryption failed".to_string())?;
        let mut blob = nonce.to_vec();
        blob.extend(ct);
        Ok(format!("{SEAL_VERSION}:{key_id}:{}", b64().encode(blob)))
    }

    /// Decrypts a value made by [`Keyring::seal`] for the same `purpose` and `aad`. Tampering,
    /// another row's value or an unknown key is an error (the reason, without secrets).
    pub fn open(&self, purpose: &str, aad: &str, stored: &str) -> Result<String, String> {
        let mut parts = stored.splitn(3, ':');
        let (Some(SEAL_VERSION), Some(key_id), Some(blob)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err("unknown format".into());
        };
        let key = self
            .derive(key_id, purpose)
            .ok_or_else(|| format!("key {key_id:?} is not in the keyring"))?;
        let blob = b64().decode(blob).map_err(|_| "bad encoding".to_string())?;
        if blob.len() < 12 + 16 {
            return Err("too short".into());
        }
        let (nonce, ct) = blob.split_at(12);
        let cipher = ChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&key));
        let plain = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| "authentication failed (altered or moved)".to_string())?;
        String::from_utf8(plain).map_err(|_| "not UTF-8".to_string())
    }

    /// HMAC-SHA256 of `data` with the key for `purpose` derived from key `id`.
    pub fn mac(&self, id: &str, purpose: &str, data: &[u8]) -> Option<[u8; 32]> {
        let key = self.derive(id, purpose)?;
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).ok()?;
        mac.update(data);
        Some(mac.finalize().into_bytes().into())
    }
}

/// Creates `path` holding `bytes` (mode 0600), complete from the moment it exists: written to
/// a temporary file beside it, then linked into place. Several processes starting together on
/// one shared key file then all read the same complete file: the first link wins, the others
/// find it there (`AlreadyExists`) and read it. On a file system without hard links, the file
/// is created in place (a process starting at that very moment may read it incomplete).
fn create_complete(path: &Path, bytes: &[u8]) -> Result<(), String> {
    // A new file at `target` with `bytes`; a file it created but could not fill is removed
    // (never left half-written for the next start to read).
    let write = |target: &Path| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(target)?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .inspect_err(|_| {
                let _ = std::fs::remove_file(target);
            })
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(
        ".{}-{:x}.tmp",
        std::process::id(),
        OsRng.next_u64()
    ));
    let tmp = std::path::PathBuf::from(tmp);
    write(&tmp).map_err(|e| format!("cannot write the key file {}: {e}", tmp.display()))?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    let created = match linked {
        // No hard links on this file system: written in place (create_new: another process
        // that created it first makes this AlreadyExists too).
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => write(path),
        other => other,
    };
    match created {
        Ok(()) => {
            log::info!("created a new secret key file {}", path.display());
            Ok(())
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!(
            "cannot create the key file {}: {e}",
            path.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Processes starting together on one new shared key file all get the same complete
    /// keyring (none reads it half-written or fails because another created it).
    #[test]
    fn created_once_by_concurrent_starts() {
        for round in 0..20 {
            let dir = std::env::temp_dir().join(format!(
                "wazo-auth-keys-{}-{round}-{:x}",
                std::process::id(),
                OsRng.next_u64()
            ));
            let path = dir.join("secret.keys");
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
            let rings: Vec<_> = (0..6)
                .map(|_| {
                    let (path, barrier) = (path.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        Keyring::load_or_create(&path)
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|t| t.join().unwrap().unwrap())
                .collect();
            let first = rings[0].derive(rings[0].primary_id(), "p").unwrap();
            for r in &rings {
                assert_eq!(r.derive(r.primary_id(), "p").unwrap(), first);
            }
            // Only the key file is left.
            let names: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, vec![std::ffi::OsString::from("secret.keys")]);
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn parse_and_derive() {
        let k1 = b64().encode([1u8; 32]);
        let k2 = b64().encode([2u8; 32]);
        let ring = Keyring::parse(&format!("# c\nnew {k2}\n\nold {k1}\n")).unwrap();
        assert_eq!(ring.primary_id(), "new");
        assert_eq!(ring.ids().collect::<Vec<_>>(), vec!["new", "old"]);
        let a = ring.derive("new", "x").unwrap();
        assert_ne!(a, ring.derive("new", "y").unwrap());
        assert_ne!(a, ring.derive("old", "x").unwrap());
        assert_eq!(a, ring.derive("new", "x").unwrap());
        assert!(ring.derive("missing", "x").is_none());
        assert!(!format!("{ring:?}").contains(&k1));
    }

    #[test]
    fn bad_files_are_refused() {
        assert!(Keyring::parse("").is_err());
        assert!(Keyring::parse("a notbase64!").is_err());
        assert!(Keyring::parse(&format!("a {}", b64().encode([0u8; 16]))).is_err());
        let k = b64().encode([0u8; 32]);
        assert!(Keyring::parse(&format!("a {k}\na {k}")).is_err());
        assert!(Keyring::parse(&format!("a {k} extra")).is_err());
        assert!(Keyring::parse(&format!("a:b {k}")).is_err());
    }

    #[test]
    fn created_file_is_private_and_stable() {
        let dir = std::env::temp_dir().join(format!("wazo-auth-keys-{}", std::process::id()));
        let path = dir.join("secret.keys");
        let _ = std::fs::remove_dir_all(&dir);
        let a = Keyring::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = Keyring::load_or_create(&path).unwrap();
        assert_eq!(a.derive(a.primary_id(), "p"), b.derive(b.primary_id(), "p"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(Keyring::load_or_create(&path).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
