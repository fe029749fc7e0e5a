//! Password hashing: compatible with the original (PBKDF2-HMAC-SHA512, 250 000 iterations, 64-byte
//! salt, lower-case hex digest) and argon2id, with the scheme stored next to the hash so that a
//! stronger scheme can be configured and applied by rehashing at the next successful login.
//!
//! These functions are CPU-heavy (tens to hundreds of milliseconds): never call them on an async
//! executor thread.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::Sha512;
use subtle::ConstantTimeEq;

/// PBKDF2 rounds of the original.
pub const PBKDF2_ITERATIONS: u32 = 250_000;
/// Salt length of the original, in bytes.
pub const PBKDF2_SALT_LEN: usize = 64;

/// A hashing scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// The original's PBKDF2-HMAC-SHA512 (250 000 rounds).
    Pbkdf2Sha512,
    /// argon2id with the `argon2` crate's default parameters (PHC string).
    Argon2id,
}

impl Scheme {
    /// Name stored in `auth_user.password_scheme`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Pbkdf2Sha512 => "pbkdf2_sha512",
            Scheme::Argon2id => "argon2id",
        }
    }

    pub fn parse(s: &str) -> Option<Scheme> {
        match s {
            "pbkdf2_sha512" => Some(Scheme::Pbkdf2Sha512),
            "argon2id" => Some(Scheme::Argon2id),
            _ => None,
        }
    }
}

/// A stored password. A NULL scheme (rows imported from the original) means PBKDF2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPassword {
    pub scheme: Scheme,
    pub hash: String,
    pub salt: Option<Vec<u8>>,
}

impl StoredPassword {
    /// Builds it from the three `auth_user` columns; `None` when no password is set.
    pub fn from_columns(
        scheme: Option<&str>,
        hash: Option<String>,
        salt: Option<Vec<u8>>,
    ) -> Option<StoredPassword> {
        let hash = hash?;
        let scheme = match scheme {
            None => Scheme::Pbkdf2Sha512,
            Some(s) => Scheme::parse(s)?,
        };
        if scheme == Scheme::Pbkdf2Sha512 && salt.is_none() {
            return None;
        }
        Some(StoredPassword { scheme, hash, salt })
    }
}

/// PBKDF2-HMAC-SHA512 hex digest, as the original computes it.
pub fn pbkdf2_hex(password: &str, salt: &[u8]) -> String {
    let mut out = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), salt, PBKDF2_ITERATIONS, &mut out);
    hex::encode(out)
}

/// Hashes a new password with `scheme` and a fresh random salt.
pub fn hash(password: &str, scheme: Scheme) -> StoredPassword {
    match scheme {
        Scheme::Pbkdf2Sha512 => {
            let mut salt = vec![0u8; PBKDF2_SALT_LEN];
            OsRng.fill_bytes(&mut salt);
            StoredPassword {
                scheme,
                hash: pbkdf2_hex(password, &salt),
                salt: Some(salt),
            }
        }
        Scheme::Argon2id => {
            let salt = SaltString::generate(&mut OsRng);
            let phc = Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                // Hashing with default parameters and a generated salt cannot fail; keep a
                // value that never verifies rather than panicking.
                .unwrap_or_else(|_| "!".to_string());
            StoredPassword {
                scheme,
                hash: phc,
                salt: None,
            }
        }
    }
}

/// Checks `password` against `stored`. With `None` (unknown user, no password) it performs the
/// same amount of work with the `dummy_scheme` and returns false, so that an unknown login costs
/// as much as a wrong password. Comparisons are constant-time.
///
/// A password holding NUL never verifies, after the same work: no password can be set holding
/// one (the API refuses it), and PBKDF2-HMAC cannot tell trailing NULs apart (HMAC pads its key
/// with zeros), so `pw\0` would otherwise verify as `pw`.
pub fn verify(password: &str, stored: Option<&StoredPassword>, dummy_scheme: Scheme) -> bool {
    if password.contains('\0') {
        let _ = hash(password, stored.map_or(dummy_scheme, |s| s.scheme));
        return false;
    }
    match stored {
        None => {
            let _ = hash(password, dummy_scheme);
            false
        }
        Some(s) => match s.scheme {
            Scheme::Pbkdf2Sha512 => {
                let Some(salt) = s.salt.as_deref() else {
                    let _ = hash(password, Scheme::Pbkdf2Sha512);
                    return false;
                };
                let computed = pbkdf2_hex(password, salt);
                let expected = s.hash.to_ascii_lowercase();
                computed.len() == expected.len()
                    && bool::from(computed.as_bytes().ct_eq(expected.as_bytes()))
            }
            Scheme::Argon2id => match PasswordHash::new(&s.hash) {
                Ok(parsed) => Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok(),
                Err(_) => {
                    let _ = hash(password, Scheme::Argon2id);
                    false
                }
            },
        },
    }
}

/// A random string of `len` characters from `[0-9a-zA-Z]` (OS CSPRNG, unbiased).
pub fn random_alphanumeric(len: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        OsRng.fill_bytes(&mut buf);
        for &b in &buf {
            // 248 = 4 * 62: values above are rejected to keep every character equally likely.
            if b < 248 && out.len() < len {
                out.push(ALPHABET[usize::from(b) % 62] as char);
            }
        }
    }
    out
}

/// Whether a password stored with `stored` should be rehashed into `configured` after a
/// successful login.
pub fn needs_rehash(stored: &StoredPassword, configured: Scheme) -> bool {
    stored.scheme != configured
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbkdf2_matches_the_originals_vectors() {
        let salt: Vec<u8> = (0u8..64).collect();
        assert_eq!(
            pbkdf2_hex("secret", &salt),
            "b640077187de88c62a80c9aaeac5322f7786c473126922f665b782ee65d1768498db295b28c75bd5359f7475368f0d8b97f21ac993bbb6dff2297adeb7f9e203"
        );
        assert_eq!(
            pbkdf2_hex("pépéç€", &[0u8; 64]),
            "867212270a1155082f43b9f47f04e5c6c6d7d28ff887e4228e78cc8adb12db30de9073a8994a586fa11cbbe5cc7e9594088a42bec915517c217b26528eed5707"
        );
    }

    #[test]
    fn rows_of_the_original_verify() {
        let salt: Vec<u8> = (0u8..64).collect();
        let stored = StoredPassword::from_columns(
            None,
            Some("b640077187de88c62a80c9aaeac5322f7786c473126922f665b782ee65d1768498db295b28c75bd5359f7475368f0d8b97f21ac993bbb6dff2297adeb7f9e203".into()),
            Some(salt),
        )
        .unwrap();
        assert!(verify("secret", Some(&stored), Scheme::Pbkdf2Sha512));
        assert!(!verify("Secret", Some(&stored), Scheme::Pbkdf2Sha512));
        assert!(!verify("", Some(&stored), Scheme::Pbkdf2Sha512));
    }

    #[test]
    fn both_schemes_round_trip() {
        for scheme in [Scheme::Pbkdf2Sha512, Scheme::Argon2id] {
            let stored = hash("correct horse", scheme);
            assert_eq!(stored.scheme, scheme);
            assert!(verify("correct horse", Some(&stored), scheme));
            assert!(!verify("wrong horse", Some(&stored), scheme));
            let again = hash("correct horse", scheme);
            assert_ne!(stored.hash, again.hash, "salts must differ");
        }
        let p = hash("x", Scheme::Pbkdf2Sha512);
        assert_eq!(p.salt.as_ref().unwrap().len(), 64);
        assert_eq!(p.hash.len(), 128);
        assert!(p
            .hash
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert!(hash("x", Scheme::Argon2id).hash.starts_with("$argon2id$"));
    }

    #[test]
    fn a_password_holding_nul_never_verifies() {
        for scheme in [Scheme::Pbkdf2Sha512, Scheme::Argon2id] {
            let stored = hash("pw", scheme);
            assert!(verify("pw", Some(&stored), scheme));
            for bad in ["pw\0", "pw\0\0", "\0pw"] {
                assert!(!verify(bad, Some(&stored), scheme), "{scheme:?} {bad:?}");
            }
        }
        // Why: HMAC pads its key with zeros, so PBKDF2 alone cannot tell them apart.
        let salt = [7u8; 64];
        assert_eq!(pbkdf2_hex("pw", &salt), pbkdf2_hex("pw\0", &salt));
    }

    #[test]
    fn unknown_users_and_broken_rows_never_verify() {
        assert!(!verify("anything", None, Scheme::Pbkdf2Sha512));
        assert!(
            StoredPassword::from_columns(Some("pbkdf2_sha512"), Some("ab".into()), None).is_none()
        );
        assert!(StoredPassword::from_columns(Some("rot13"), Some("ab".into()), None).is_none());
        let broken = StoredPassword {
            scheme: Scheme::Argon2id,
            hash: "not a phc string".into(),
            salt: None,
        };
        assert!(!verify("x", Some(&broken), Scheme::Argon2id));
    }

    #[test]
    fn random_passwords() {
        let a = random_alphanumeric(28);
        assert_eq!(a.len(), 28);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, random_alphanumeric(28));
    }

    #[test]
    fn rehash_only_when_the_scheme_differs() {
        let p = hash("x", Scheme::Pbkdf2Sha512);
        assert!(!needs_rehash(&p, Scheme::Pbkdf2Sha512));
        assert!(needs_rehash(&p, Scheme::Argon2id));
    }
}
