//! The token cache: the hot path of every Wazo request is a token check, answered from memory.
//!
//! - Positive entries: tokens found in the database, with their compiled ACL, until they expire
//!   (checked to the second on every hit) or are revoked.
//! - Negative entries: ids looked up and not found. Token ids are 122 random bits and are only
//!   handed out after their row is committed, so an id that was unknown can only become valid if
//!   someone guessed it before it was issued: negative entries never need invalidation. They are
//!   bounded, and look-ups of ids that are not cached go through a small concurrency limit, so
//!   floods of random ids cannot monopolise the database.
//! - Revocation: a database trigger announces every deleted or changed token
//!   (`NOTIFY wazo_auth_revoked`); every process listens and drops the entry. When the listening
//!   connection is lost, the whole cache is dropped (and dropped again once listening resumes).
//!   A request that may have revoked tokens waits, before answering, until this process has seen
//!   its own notifications ([`TokenCache::sync`]), so revocation takes effect at once locally.
//! - Policy ACLs read at login (the default user policy): cached by name until a trigger on
//!   `auth_policy` announces a change (`policies` on the same channel, migration V7), with the
//!   same rules: dropped when listening stops, not cached when a change arrived during the read.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{oneshot, Semaphore};
use tokio_postgres::AsyncMessage;

use crate::acl::CompiledAcl;
use crate::error::Result;
use crate::storage::Storage;
use crate::tokens::{token_hash, Token};

/// The notification channel of the revocation trigger.
pub const CHANNEL: &str = "wazo_auth_revoked";
/// The notification channel of the login throttle (see `crate::throttle`).
pub const THROTTLE_CHANNEL: &str = "wazo_auth_throttle";
const THROTTLE_VIEW_MAX: usize = 100_000;
/// The payload of the policy trigger (migration V7).
const POLICIES_CHANGED: &str = "policies";
/// The most policy ACLs kept (they are looked up by the configured names only).
const POLICY_ACLS_MAX: usize = 256;

/// What this process knows of the shared login throttle, kept current by notifications:
/// blocked keys (until when, epoch seconds) and keys with a failure record.
#[derive(Default)]
struct ThrottleView {
    blocked: HashMap<String, f64>,
    failed: std::collections::HashSet<String>,
}
const SHARDS: usize = 16;

/// A cached valid token.
pub struct CachedToken {
    pub token: Token,
    pub acl: Arc<CompiledAcl>,
    /// The HTTP layer's rendering of the token, computed once (a token never changes) and
    /// shared by every answer (a reference count, not a copy).
    pub rendered: std::sync::OnceLock<bytes::Bytes>,
}

type Key = [u8; 32];

struct Shard {
    positive: HashMap<Key, Arc<CachedToken>>,
    negative: HashMap<Key, ()>,
}

/// The cache shared by a process's workers.
pub struct TokenCache {
    shards: Vec<Mutex<Shard>>,
    capacity_per_shard: usize,
    negative_per_shard: usize,
    lookups: Semaphore,
    pending_syncs: Mutex<HashMap<String, oneshot::Sender<()>>>,
    throttle: Mutex<ThrottleView>,
    listening: std::sync::atomic::AtomicBool,
    /// Bumped by every revocation received and every clear: an entry read from the database is
    /// only cached if no revocation arrived meanwhile.
    epoch: AtomicU64,
    /// Policy ACLs by policy name, and their own epoch (bumped by every policy change and clear).
    policy_acls: Mutex<HashMap<String, Arc<Vec<String>>>>,
    policy_epoch: AtomicU64,
    stats_hits: AtomicU64,
    stats_misses: AtomicU64,
}

fn key_of(token: &uuid::Uuid) -> Key {
    let h = token_hash(token);
    let mut k = [0u8; 32];
    k.copy_from_slice(&h);
    k
}

impl TokenCache {
    /// A cache of at most `capacity` valid tokens and as many unknown ids; at most
    /// `max_concurrent_lookups` database look-ups of uncached ids at once.
    pub fn new(capacity: usize, max_concurrent_lookups: usize) -> TokenCache {
        let per = (capacity / SHARDS).max(1);
        TokenCache {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        positive: HashMap::new(),
                        negative: HashMap::new(),
                    })
                })
                .collect(),
            capacity_per_shard: per,
            negative_per_shard: per,
            lookups: Semaphore::new(max_concurrent_lookups.max(1)),
            pending_syncs: Mutex::new(HashMap::new()),
            throttle: Mutex::new(ThrottleView::default()),
            listening: std::sync::atomic::AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            policy_acls: Mutex::new(HashMap::new()),
            policy_epoch: AtomicU64::new(0),
            stats_hits: AtomicU64::new(0),
            stats_misses: AtomicU64::new(0),
        }
    }

    fn shard(&self, key: &Key) -> std::sync::MutexGuard<'_, Shard> {
        // The lock only guards map operations; a poisoned lock holds a consistent map.
        self.shards[usize::from(key[0]) % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Whether revocations from other processes are being received (when not, the cache is not
    /// used: every check goes to the database).
    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }

    /// The valid token `id` at `now` (from memory when possible).
    pub async fn get(
        &self,
        storage: &Storage,
        id: &uuid::Uuid,
        now: f64,
    ) -> Result<Option<Arc<CachedToken>>> {
        let key = key_of(id);
        let listening = self.is_listening();
        if listening {
            let shard = self.shard(&key);
            if let Some(entry) = shard.positive.get(&key) {
                if entry.token.expire_t >= now {
                    self.stats_hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(Some(entry.clone()));
                }
                return Ok(None);
            }
            if shard.negative.contains_key(&key) {
                self.stats_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(None);
            }
        }
        self.stats_misses.fetch_add(1, Ordering::Relaxed);
        let _permit = self.lookups.acquire().await.ok();
        let epoch = self.epoch.load(Ordering::Acquire);
        // Read the row whatever its expiry, so that an expired token is cached as such.
        let found = storage.get_valid_token(id, f64::MIN).await?;
        let Some(token) = found else {
            if listening {
                let mut shard = self.shard(&key);
                if shard.negative.len() >= self.negative_per_shard {
                    shard.negative.clear();
                }
                shard.negative.insert(key, ());
            }
            return Ok(None);
        };
        let acl = Arc::new(CompiledAcl::compile(
            &token.acl,
            &token.auth_id,
            &token.session_uuid,
        ));
        let entry = Arc::new(CachedToken {
            token,
            acl,
            rendered: std::sync::OnceLock::new(),
        });
        // Only cache while revocations are being received, and only if none arrived since the
        // read (it could be this token's: caching it now would resurrect it).
        // The epoch is compared under the shard's lock: a revocation bumps it before taking that
        // lock to drop the entry, so it either is seen here or removes what is inserted here.
        if listening {
            let mut shard = self.shard(&key);
            if self.is_listening() && self.epoch.load(Ordering::Acquire) == epoch {
                if shard.positive.len() >= self.capacity_per_shard {
                    evict_some(&mut shard.positive, now);
                }
                shard.positive.insert(key, entry.clone());
            }
        }
        if entry.token.expire_t >= now {
            Ok(Some(entry))
        } else {
            Ok(None)
        }
    }

    /// Drops one token (by the hex of its hash, as notified).
    pub fn forget_hex(&self, hex_hash: &str) {
        let Ok(bytes) = hex::decode(hex_hash) else {
            return;
        };
        let Ok(key) = <Key>::try_from(bytes.as_slice()) else {
            return;
        };
        self.shard(&key).positive.remove(&key);
    }

    /// Drops one token.
    pub fn forget(&self, id: &uuid::Uuid) {
        let key = key_of(id);
        self.shard(&key).positive.remove(&key);
    }

    /// Drops every positive entry and every policy ACL.
    pub fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for s in &self.shards {
            s.lock().unwrap_or_else(|p| p.into_inner()).positive.clear();
        }
        self.forget_policies();
    }

    fn forget_policies(&self) {
        self.policy_epoch.fetch_add(1, Ordering::AcqRel);
        self.policy_acls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// The ACL of the policy named `name` (empty when there is none), as
    /// [`crate::policies::acl_of_policy_named`] reads it; from memory while policy changes are
    /// being received.
    pub async fn policy_acl(&self, storage: &Storage, name: &str) -> Result<Arc<Vec<String>>> {
        let listening = self.is_listening();
        if listening {
            if let Some(acl) = self
                .policy_acls
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(name)
            {
                return Ok(acl.clone());
            }
        }
        let epoch = self.policy_epoch.load(Ordering::Acquire);
        let acl = {
            let client = storage.client().await?;
            Arc::new(crate::policies::acl_of_policy_named(&client, name).await?)
        };
        // As for tokens: a change that arrived during the read may not be in it (compared under
        // the lock that `forget_policies` takes after bumping the epoch).
        if listening {
            let mut acls = self.policy_acls.lock().unwrap_or_else(|p| p.into_inner());
            if self.is_listening() && self.policy_epoch.load(Ordering::Acquire) == epoch {
                if acls.len() >= POLICY_ACLS_MAX {
                    acls.clear();
                }
                acls.insert(name.to_string(), acl.clone());
            }
        }
        Ok(acl)
    }

    /// Number of cached valid tokens.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).positive.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `(hits, misses)` since start.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.stats_hits.load(Ordering::Relaxed),
            self.stats_misses.load(Ordering::Relaxed),
        )
    }

    /// Waits until this process has received every revocation committed before the call (a
    /// marker notification round trip). Falls back to dropping the whole cache when the marker
    /// does not come back within `timeout`.
    pub async fn sync(&self, storage: &Storage, timeout: Duration) {
        if !self.is_listening() {
            return;
        }
        let marker = format!("sync:{}", uuid::Uuid::new_v4());
        let (tx, rx) = oneshot::channel();
        self.pending_syncs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(marker.clone(), tx);
        let sent = match storage.client().await {
            Ok(c) => c
                .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &marker])
                .await
                .is_ok(),
            Err(_) => false,
        };
        let arrived = sent
            && tokio::time::timeout(timeout, rx)
                .await
                .is_ok_and(|r| r.is_ok());
        if !arrived {
            self.pending_syncs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&marker);
            log::warn!("revocation sync did not complete; dropping the token cache");
            self.clear();
        }
    }

    /// The local view of the throttle, when notifications are being received: `(seconds to
    /// wait if any key is blocked, whether any key has a failure record)`. `None` when not
    /// listening (ask the database).
    pub fn throttle_state(&self, keys: &[(String, i32)], now: f64) -> Option<(Option<f64>, bool)> {
        if !self.is_listening() {
            return None;
        }
        let view = self.throttle.lock().unwrap_or_else(|p| p.into_inner());
        let mut wait: Option<f64> = None;
        let mut known = false;
        for (k, _) in keys {
            known |= view.failed.contains(k);
            if let Some(until) = view.blocked.get(k) {
                if *until > now {
                    wait = Some(wait.map_or(until - now, |w| w.max(until - now)));
                }
            }
        }
        Some((wait, known))
    }

    /// Records this process's own throttle changes at once (the notifications follow).
    pub fn note_throttle_failures(&self, results: &[(String, Option<f64>)]) {
        for (key, until) in results {
            let payload = format!(
                "fail|{key}|{}",
                until.map(|u| u.to_string()).unwrap_or_default()
            );
            self.on_throttle_notification(&payload);
        }
    }

    /// Forgets login keys cleared by a successful login.
    pub fn note_throttle_cleared(&self, keys: &[(String, i32)]) {
        for (key, _) in keys.iter().filter(|(k, _)| k.starts_with("login:")) {
            self.on_throttle_notification(&format!("clear|{key}"));
        }
    }

    fn on_throttle_notification(&self, payload: &str) {
        // `fail|<key>|<blocked until epoch or empty>` or `clear|<key>`.
        let mut parts = payload.splitn(3, '|');
        let mut view = self.throttle.lock().unwrap_or_else(|p| p.into_inner());
        match (parts.next(), parts.next(), parts.next()) {
            (Some("fail"), Some(key), until) => {
                if view.failed.len() >= THROTTLE_VIEW_MAX {
                    // Full: forget the keys that no longer block (a later failure starts them
                    // again), never one that still does (a flood of logins must not lift a
                    // block).
                    let now = crate::tokens::now();
                    let ThrottleView { failed, blocked } = &mut *view;
                    blocked.retain(|_, until| *until > now);
                    failed.retain(|k| blocked.contains_key(k));
                }
                view.failed.insert(key.to_string());
                if let Some(until) = until.and_then(|u| u.parse::<f64>().ok()) {
                    view.blocked.insert(key.to_string(), until);
                }
            }
            (Some("clear"), Some(key), _) => {
                view.failed.remove(key);
                view.blocked.remove(key);
            }
            _ => {}
        }
    }

    fn on_notification(&self, payload: &str) {
        if payload.starts_with("sync:") {
            if let Some(tx) = self
                .pending_syncs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(payload)
            {
                let _ = tx.send(());
            }
        } else if payload == POLICIES_CHANGED {
            self.forget_policies();
        } else {
            self.epoch.fetch_add(1, Ordering::AcqRel);
            self.forget_hex(payload);
        }
    }

    /// Listens for revocations until the process ends, reconnecting as needed. Run it as a
    /// background task.
    pub async fn listen(self: Arc<Self>, db_uri: String) {
        loop {
            match self.listen_once(&db_uri).await {
                Ok(()) => log::warn!("revocation listener connection closed; reconnecting"),
                Err(e) => log::warn!("revocation listener failed ({e}); reconnecting"),
            }
            self.listening.store(false, Ordering::Release);
            self.clear();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn listen_once(&self, db_uri: &str) -> std::result::Result<(), String> {
        let mut config: tokio_postgres::Config = db_uri.parse().map_err(|e| format!("{e}"))?;
        config.connect_timeout(Duration::from_secs(5));
        // Named, so that operators (and tests) can tell it from the pooled connections.
        config.application_name("wazo-auth-listener");
        let (client, mut connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| e.to_string())?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(n)) => {
                        if tx
                            .send((n.channel().to_string(), n.payload().to_string()))
                            .is_err()
                        {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        client
            .batch_execute(&format!("LISTEN {CHANNEL}; LISTEN {THROTTLE_CHANNEL}"))
            .await
            .map_err(|e| e.to_string())?;
        // The throttle records made before listening started.
        let rows = client
            .query(
                "SELECT key, extract(epoch FROM blocked_until)::float8 FROM auth_login_throttle
                 ORDER BY updated_at DESC LIMIT 100000",
                &[],
            )
            .await
            .map_err(|e| e.to_string())?;
        {
            let mut view = self.throttle.lock().unwrap_or_else(|p| p.into_inner());
            *view = ThrottleView::default();
            for r in rows {
                let key: String = r.get(0);
                if let Some(until) = r.get::<_, Option<f64>>(1) {
                    view.blocked.insert(key.clone(), until);
                }
                view.failed.insert(key);
            }
        }
        // Anything cached before LISTEN took effect may have missed a revocation.
        self.clear();
        self.listening.store(true, Ordering::Release);
        log::info!("listening for token revocations");
        while let Some((channel, payload)) = rx.recv().await {
            if channel == THROTTLE_CHANNEL {
                self.on_throttle_notification(&payload);
            } else {
                self.on_notification(&payload);
            }
        }
        driver.abort();
        drop(client);
        Ok(())
    }
}

/// Makes room: drops expired entries, else an arbitrary quarter of the shard.
fn evict_some(map: &mut HashMap<Key, Arc<CachedToken>>, now: f64) {
    let before = map.len();
    map.retain(|_, e| e.token.expire_t >= now);
    if map.len() * 4 > before * 3 {
        let drop: Vec<Key> = map.keys().take(map.len() / 4 + 1).copied().collect();
        for k in drop {
            map.remove(&k);
        }
    }
}
