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
//!   ([`crate::notify::Notification::TokenRevoked`]); every process listens and drops the entry.
//!   The cache is only used while it is live, that is while those notifications are being
//!   received (see [`super::Caches`]); it is emptied when it stops and again when it starts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use crate::acl::CompiledAcl;
use crate::error::Result;
use crate::notify::TokenHash;
use crate::storage::Storage;
use crate::tokens::{token_hash, Token};

const SHARDS: usize = 16;

/// A cached valid token.
pub struct CachedToken {
    pub token: Token,
    pub acl: Arc<CompiledAcl>,
    /// The HTTP layer's rendering of the token, computed once (a token never changes) and
    /// shared by every answer (a reference count, not a copy).
    pub rendered: std::sync::OnceLock<bytes::Bytes>,
}

type Key = TokenHash;

struct Shard {
    positive: HashMap<Key, Arc<CachedToken>>,
    negative: HashMap<Key, ()>,
}

/// Valid tokens and unknown ids, shared by a process's workers.
pub struct TokenCache {
    shards: Vec<Mutex<Shard>>,
    capacity_per_shard: usize,
    negative_per_shard: usize,
    lookups: Semaphore,
    /// Whether revocations are being received (when not, every check goes to the database).
    live: AtomicBool,
    /// Bumped by every revocation received and every clear: an entry read from the database is
    /// only cached if no revocation arrived meanwhile.
    epoch: AtomicU64,
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
    /// `max_concurrent_lookups` database look-ups of uncached ids at once. Not live until
    /// [`TokenCache::start`].
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
            live: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
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

    /// Whether revocations are being received (when not, the cache is not used).
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Revocations are received from now on: drops anything cached before (it may have missed
    /// one), then serves from memory.
    pub fn start(&self) {
        self.clear();
        self.live.store(true, Ordering::Release);
    }

    /// Revocations may be missed from now on: stops serving from memory and drops everything.
    pub fn stop(&self) {
        self.live.store(false, Ordering::Release);
        self.clear();
    }

    /// The valid token `id` at `now` (from memory when possible).
    pub async fn get(
        &self,
        storage: &Storage,
        id: &uuid::Uuid,
        now: f64,
    ) -> Result<Option<Arc<CachedToken>>> {
        let key = key_of(id);
        let listening = self.is_live();
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
            if self.is_live() && self.epoch.load(Ordering::Acquire) == epoch {
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

    /// A revocation was received: the token of this hash is dropped, and no read under way
    /// caches what it found.
    pub fn revoke(&self, hash: &TokenHash) {
        // Bumped before taking the shard's lock (see `get`).
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.shard(hash).positive.remove(hash);
    }

    /// Drops one token.
    pub fn forget(&self, id: &uuid::Uuid) {
        let key = key_of(id);
        self.shard(&key).positive.remove(&key);
    }

    /// Drops every positive entry.
    pub fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for s in &self.shards {
            s.lock().unwrap_or_else(|p| p.into_inner()).positive.clear();
        }
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
