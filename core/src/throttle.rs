//! Failed-login throttling (brute force), per login and per client address, shared by every
//! server process through PostgreSQL. After `free` failures, each further failure blocks the key
//! for a delay that doubles from `base_delay` up to `max_delay` (growing delays, never a
//! permanent lock); a key left alone for `forget_after` starts again from zero, and a successful
//! login clears its login key. Records untouched for `forget_after` and no longer blocking are
//! purged (`Storage::purge_throttle`), so the table holds only current attempts.
//!
//! Attempted logins are stored as an HMAC-SHA256 keyed with a secret derived from the keyring,
//! never in clear nor as a plain hash: users sometimes type their password in the login field,
//! and an unkeyed hash of it would be a fast offline guessing target.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::Result;
use crate::notify::{self, Notification};
use crate::sql::Db;
use crate::storage::Storage;

/// Settings of the throttle.
#[derive(Debug, Clone, PartialEq)]
pub struct ThrottleConfig {
    pub enabled: bool,
    /// Failures allowed per login before delays start.
    pub free_per_login: i32,
    /// Failures allowed per client address before delays start.
    pub free_per_address: i32,
    /// First delay, in seconds.
    pub base_delay: f64,
    /// Longest delay, in seconds.
    pub max_delay: f64,
    /// Seconds without failure after which a key starts again from zero.
    pub forget_after: f64,
    /// Client addresses never throttled by address (their logins still are).
    pub exempt_addresses: Vec<String>,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            enabled: true,
            free_per_login: 10,
            free_per_address: 50,
            base_delay: 1.0,
            max_delay: 300.0,
            forget_after: 900.0,
            exempt_addresses: vec!["127.0.0.1".into(), "::1".into()],
        }
    }
}

/// The keys of one login attempt, with how many free failures each allows. `address` is the
/// client address (possibly from `X-Forwarded-For`), `peer` the socket's: an address is only
/// exempt when both are, so a client cannot claim an exempt address in a forwarded header.
pub fn keys(
    cfg: &ThrottleConfig,
    login_key: &crate::keys::Key,
    login: Option<&str>,
    address: &str,
    peer: &str,
) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    if let Some(login) = login.filter(|l| !l.is_empty()) {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(login_key).expect("HMAC takes any key length");
        mac.update(login.to_lowercase().as_bytes());
        let digest = mac.finalize().into_bytes();
        out.push((format!("login:{}", hex::encode(digest)), cfg.free_per_login));
    }
    let exempt = |a: &str| cfg.exempt_addresses.iter().any(|e| e == a);
    let exempted = exempt(address) && exempt(peer);
    if !address.is_empty() && !exempted {
        out.push((format!("addr:{address}"), cfg.free_per_address));
    }
    out
}

/// What is known of one throttle key at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct KeyState {
    /// Seconds until the key's block ends, when it blocks now.
    pub wait: Option<f64>,
    /// The failures counted against the key's free ones (a record of unknown count counts 1;
    /// a record older than `forget_after` counts 0: its next failure starts again from one).
    pub failures: i32,
    /// Whether the key has a record at all (a successful login then clears it).
    pub known: bool,
}

/// A failure just recorded on a key.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub key: String,
    /// When the key now blocks, until when (epoch seconds).
    pub blocked_until: Option<f64>,
    /// The key's failure count, this one included.
    pub failures: i32,
}

impl Storage {
    /// The state of each of `keys` (in their order), from the records.
    pub async fn throttle_keys(
        &self,
        keys: &[(String, i32)],
        forget_after: f64,
    ) -> Result<Vec<KeyState>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
        let client = self.client().await?;
        let stmt = "SELECT key, extract(epoch FROM blocked_until - now())::float8,
                        CASE WHEN updated_at < now() - make_interval(secs => $2) THEN 0
                             ELSE failures END
                 FROM auth_login_throttle WHERE key = ANY($1)";
        let rows = client.fetch_cached(stmt, &[&names, &forget_after]).await?;
        let mut out = vec![KeyState::default(); keys.len()];
        for row in rows {
            let key: String = row.get(0);
            let found = names.iter().position(|k| *k == key);
            if let Some(state) = found.and_then(|i| out.get_mut(i)) {
                *state = KeyState {
                    wait: row.get::<_, Option<f64>>(1).filter(|s| *s > 0.0),
                    failures: row.get(2),
                    known: true,
                };
            }
        }
        Ok(out)
    }

    /// Records a failed login for `keys`; returns each key's new count and blocked-until time.
    pub async fn throttle_failure(
        &self,
        cfg: &ThrottleConfig,
        keys: &[(String, i32)],
    ) -> Result<Vec<Failure>> {
        let client = self.client().await?;
        let stmt = "INSERT INTO auth_login_throttle AS t (key, failures, blocked_until, updated_at)
                 VALUES ($1, 1, CASE WHEN $2 < 1 THEN now() + make_interval(secs => $3) END, now())
                 ON CONFLICT (key) DO UPDATE SET
                     failures = CASE WHEN t.updated_at < now() - make_interval(secs => $5)
                                     THEN 1 ELSE t.failures + 1 END,
                     updated_at = now(),
                     blocked_until = CASE
                         WHEN (CASE WHEN t.updated_at < now() - make_interval(secs => $5)
                                    THEN 1 ELSE t.failures + 1 END) > $2
                         THEN now() + make_interval(secs => least($4,
                             $3 * power(2, (CASE WHEN t.updated_at < now() - make_interval(secs => $5)
                                                 THEN 1 ELSE t.failures + 1 END) - $2 - 1)))
                         ELSE NULL END
                 RETURNING extract(epoch FROM blocked_until)::float8, failures";
        let mut out = Vec::with_capacity(keys.len());
        for (key, free) in keys {
            let row = client
                .fetch_one_cached(
                    stmt,
                    &[
                        key,
                        free,
                        &cfg.base_delay,
                        &cfg.max_delay,
                        &cfg.forget_after,
                    ],
                )
                .await?;
            let until: Option<f64> = row.get(0);
            let failures: i32 = row.get(1);
            // Every process keeps a view of the throttle from these notifications.
            Notification::ThrottleFailed {
                key: key.clone(),
                blocked_until: until,
            }
            .send(&client)
            .await?;
            out.push(Failure {
                key: key.clone(),
                blocked_until: until,
                failures,
            });
        }
        Ok(out)
    }

    /// Deletes up to `batch` records that no longer block and were last touched more than
    /// `forget_after` seconds ago (a later failure would start from zero anyway), telling every
    /// process to drop them from its view. Returns how many were deleted.
    pub async fn purge_throttle_batch(&self, forget_after: f64, batch: i64) -> Result<usize> {
        let client = self.client().await?;
        let rows = client
            .fetch(
                "WITH gone AS (
                     DELETE FROM auth_login_throttle WHERE key IN (
                         SELECT key FROM auth_login_throttle
                         WHERE updated_at < now() - make_interval(secs => $1)
                           AND (blocked_until IS NULL OR blocked_until < now())
                         LIMIT $2
                         FOR UPDATE SKIP LOCKED)
                     RETURNING key)
                 SELECT pg_notify($3, $4::text || key) FROM gone",
                &[
                    &forget_after,
                    &batch,
                    &notify::THROTTLE_CHANNEL,
                    &notify::THROTTLE_CLEARED_PREFIX,
                ],
            )
            .await?;
        Ok(rows.len())
    }

    /// Runs `purge_throttle_batch` until a batch comes back smaller than `batch`.
    pub async fn purge_throttle(&self, forget_after: f64, batch: i64) -> Result<usize> {
        let mut total = 0;
        loop {
            let removed = self.purge_throttle_batch(forget_after, batch).await?;
            total += removed;
            if (removed as i64) < batch {
                return Ok(total);
            }
        }
    }

    /// A successful login clears its login key (not the address: a guesser may also own an
    /// account).
    pub async fn throttle_success(&self, keys: &[(String, i32)]) -> Result<()> {
        let logins: Vec<&str> = keys
            .iter()
            .filter(|(k, _)| k.starts_with("login:"))
            .map(|(k, _)| k.as_str())
            .collect();
        if logins.is_empty() {
            return Ok(());
        }
        let client = self.client().await?;
        let stmt = "DELETE FROM auth_login_throttle WHERE key = ANY($1)";
        client.exec_cached(stmt, &[&logins]).await?;
        for key in logins {
            Notification::ThrottleCleared {
                key: key.to_string(),
            }
            .send(&client)
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hash_logins_and_exempt_loopback() {
        let cfg = ThrottleConfig::default();
        let key = [7u8; 32];
        let k = keys(&cfg, &key, Some("Alice"), "10.1.2.3", "127.0.0.1");
        assert_eq!(k.len(), 2);
        assert!(k[0].0.starts_with("login:"));
        assert!(!k[0].0.contains("lice"), "logins are not kept in clear");
        assert_eq!(k[0].0, keys(&cfg, &key, Some("ALICE"), "x", "x")[0].0);
        assert_eq!(k[1], ("addr:10.1.2.3".to_string(), 50));
        assert_eq!(
            keys(&cfg, &key, Some("a"), "127.0.0.1", "127.0.0.1").len(),
            1
        );
        assert!(keys(&cfg, &key, None, "127.0.0.1", "::1").is_empty());
        // A forwarded "127.0.0.1" from a remote peer is not exempt.
        assert_eq!(keys(&cfg, &key, None, "127.0.0.1", "10.9.9.9").len(), 1);
    }

    #[test]
    fn login_keys_are_keyed_not_plain_hashes() {
        use sha2::Digest;
        let cfg = ThrottleConfig::default();
        let a = keys(&cfg, &[1u8; 32], Some("alice"), "", "")[0].0.clone();
        let b = keys(&cfg, &[2u8; 32], Some("alice"), "", "")[0].0.clone();
        assert_ne!(a, b, "the key changes the stored hash");
        let plain = format!("login:{}", hex::encode(Sha256::digest(b"alice")));
        assert_ne!(a, plain, "not an unkeyed SHA-256 anyone can recompute");
        assert_eq!(a.len(), "login:".len() + 64);
    }
}
