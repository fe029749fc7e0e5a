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

use indexmap::IndexMap;

use tokio::sync::Semaphore;

use crate::acl::{AclInterner, CompiledAcl};
use crate::error::Result;
use crate::notify::TokenHash;
use crate::storage::Storage;
use crate::tokens::{token_hash, Token};

const SHARDS: usize = 16;

/// A cached valid token.
pub struct CachedToken {
    pub token: Token,
    pub acl: Arc<CompiledAcl>,
    /// The HTTP layer's rendering of the token, computed once (a token never changes): the
    /// part after its ACL, whose JSON is shared by the tokens of the same ACL
    /// ([`crate::acl::AclProgram::acl_json`]).
    pub rendered: std::sync::OnceLock<bytes::Bytes>,
}

type Key = TokenHash;

struct Shard {
    /// Indexed, so that the entry to evict is found in O(1) ([`Shard::evict_one`]); removals
    /// swap the last entry into the hole (O(1), no order kept).
    positive: IndexMap<Key, Arc<CachedToken>>,
    negative: HashMap<Key, ()>,
    /// Where the next eviction looks (a clock hand over `positive`'s positions).
    hand: usize,
}

/// How many entries an eviction looks at for an expired one before evicting the one under the
/// hand.
const EVICTION_PROBES: usize = 4;

impl Shard {
    /// Makes room for one entry in O(1): removes an expired entry among the next
    /// [`EVICTION_PROBES`] under the hand, else the one under the hand (an arbitrary live one),
    /// and returns it (to be dropped once the lock is released).
    fn evict_one(&mut self, now: f64) -> Option<Arc<CachedToken>> {
        let len = self.positive.len();
        if len == 0 {
            return None;
        }
        let start = self.hand % len;
        let victim = (0..EVICTION_PROBES.min(len))
            .map(|i| (start + i) % len)
            .find(|&i| {
                self.positive
                    .get_index(i)
                    .is_some_and(|(_, e)| e.token.expire_t < now)
            })
            .unwrap_or(start);
        self.hand = start + 1;
        self.positive.swap_remove_index(victim).map(|(_, e)| e)
    }
}

/// Valid tokens and unknown ids, shared by a process's workers.
pub struct TokenCache {
    shards: Vec<Mutex<Shard>>,
    capacity_per_shard: usize,
    negative_per_shard: usize,
    lookups: Semaphore,
    /// The compiled ACLs, shared by the tokens holding the same ACL.
    acls: AclInterner,
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
                        positive: IndexMap::new(),
                        negative: HashMap::new(),
                        hand: 0,
                    })
                })
                .collect(),
            capacity_per_shard: per,
            negative_per_shard: per,
            lookups: Semaphore::new(max_concurrent_lookups.max(1)),
            acls: AclInterner::default(),
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
        // Read the row whatever its expiry, so that an expired token is cached as such; with
        // the other misses in flight (one statement for all).
        let found = storage.lookup_token(id).await?;
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
        let entry = self.admit(key, token, listening, epoch, now);
        if entry.token.expire_t >= now {
            Ok(Some(entry))
        } else {
            Ok(None)
        }
    }

    /// Compiles the ACL of `token`, read from the database at `epoch`, and caches it when it
    /// may be.
    fn admit(
        &self,
        key: Key,
        mut token: Token,
        listening: bool,
        epoch: u64,
        now: f64,
    ) -> Arc<CachedToken> {
        let acl = Arc::new(
            self.acls
                .compile(&token.acl, &token.auth_id, &token.session_uuid),
        );
        // The entries themselves are shared too.
        token.acl = acl.program().acl().clone();
        let entry = Arc::new(CachedToken {
            token,
            acl,
            rendered: std::sync::OnceLock::new(),
        });
        // Only cache while revocations are being received, and only if none arrived since the
        // read (it could be this token's: caching it now would resurrect it).
        // The epoch is compared under the shard's lock: a revocation bumps it before taking that
        // lock to drop the entry, so it either is seen here or removes what is inserted here.
        // Evicted entries are freed after the lock is released.
        let mut evicted = Vec::new();
        if listening {
            let mut shard = self.shard(&key);
            if self.is_live() && self.epoch.load(Ordering::Acquire) == epoch {
                while shard.positive.len() >= self.capacity_per_shard
                    && !shard.positive.contains_key(&key)
                {
                    evicted.extend(shard.evict_one(now));
                }
                shard.positive.insert(key, entry.clone());
            }
        }
        drop(evicted);
        entry
    }

    /// A revocation was received: the token of this hash is dropped, and no read under way
    /// caches what it found.
    pub fn revoke(&self, hash: &TokenHash) {
        // Bumped before taking the shard's lock (see `get`).
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.shard(hash).positive.swap_remove(hash);
    }

    /// Drops one token.
    pub fn forget(&self, id: &uuid::Uuid) {
        let key = key_of(id);
        self.shard(&key).positive.swap_remove(&key);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn token(i: usize, acls: usize, users: usize, now: f64) -> Token {
        let k = i % acls;
        let user = format!("{:08x}-0000-4000-8000-{:012x}", i % users, i % users);
        let mut metadata = serde_json::Map::new();
        metadata.insert("auth_id".into(), user.clone().into());
        metadata.insert("uuid".into(), user.clone().into());
        metadata.insert("purpose".into(), "user".into());
        metadata.insert(
            "tenant_uuid".into(),
            format!("{:08x}-1111-4000-8000-000000000000", k).into(),
        );
        Token {
            token: uuid::Uuid::new_v4(),
            auth_id: user,
            pbx_user_uuid: None,
            xivo_uuid: None,
            issued_t: now,
            expire_t: now + 3600.0,
            metadata: metadata.into(),
            session_uuid: uuid::Uuid::new_v4().to_string(),
            user_agent: "wazo-bench/1.0".into(),
            remote_addr: "10.0.0.1".into(),
            // A user-like ACL: literal, wildcard, `me` and `my_session` entries; `k` makes the
            // K distinct ACLs.
            acl: vec![
                format!("confd.tenants.{k}.#"),
                "confd.users.me.read".into(),
                "confd.users.me.funckeys.*.*".into(),
                "calld.users.me.#".into(),
                "chatd.users.me.#".into(),
                "auth.users.me.#".into(),
                "auth.sessions.my_session.read".into(),
                "dird.directories.favorites.#".into(),
                "websocketd".into(),
                "!auth.users.me.password.edit".into(),
            ]
            .into(),
            refresh_token_uuid: None,
        }
    }

    fn rss_bytes() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        let pages: u64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        pages * 4096
    }

    fn p99(mut v: Vec<std::time::Duration>) -> std::time::Duration {
        v.sort_unstable();
        v[(v.len() * 99 / 100).min(v.len() - 1)]
    }

    /// Not a timed assertion: prints the RSS per cached token and the insert p99 with a cache
    /// that is not full and with a full one. Run alone (RSS is the process's):
    /// `TOKENS=100000 ACLS=300 USERS=10000 cargo test -p wazo-auth-core --lib
    ///  cache::tokens::tests::memory_and_eviction -- --ignored --exact --nocapture`
    #[test]
    #[ignore]
    fn memory_and_eviction() {
        let env = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        let n = env("TOKENS", 100_000);
        let acls = env("ACLS", 300);
        let users = env("USERS", 10_000);
        let render = env("RENDER", 1) == 1;
        let now = 1_000_000.0;
        let cache = TokenCache::new(n, 16);
        cache.start();
        let before = rss_bytes();
        let mut admit = |i: usize| {
            let t = token(i, acls, users, now);
            let key = key_of(&t.token);
            let required = format!("auth.users.{}.read", t.auth_id);
            let started = Instant::now();
            let entry = cache.admit(key, t, true, cache.epoch.load(Ordering::Acquire), now);
            let took = started.elapsed();
            // A check: what a real miss does next.
            assert!(entry.acl.matches(&required));
            assert!(!entry.acl.matches("auth.users.someone-else.read"));
            if render {
                // The GET path's rendering, about the size of the real one: what follows the
                // ACL, kept with the token; the ACL's JSON, shared.
                let _ = entry.acl.program().acl_json();
                let body = serde_json::json!({"data": {
                    "auth_id": entry.token.auth_id,
                    "metadata": entry.token.metadata, "session_uuid": entry.token.session_uuid,
                    "token": entry.token.token, "user_agent": entry.token.user_agent,
                    "remote_addr": entry.token.remote_addr,
                    "expires_at": "2026-12-06T10:00:00.000000",
                    "utc_expires_at": "2026-12-06T10:00:00.000000",
                    "issued_at": "2026-12-06T10:00:00.000000",
                    "utc_issued_at": "2026-12-06T10:00:00.000000",
                    "xivo_user_uuid": null, "xivo_uuid": null}});
                let _ = entry
                    .rendered
                    .set(bytes::Bytes::copy_from_slice(body.to_string().as_bytes()));
            }
            took
        };
        let fill: Vec<_> = (0..n).map(&mut admit).collect();
        // Not full: the inserts between a quarter and three quarters of the capacity (no shard
        // is full yet, and the first compilations of the K ACLs are behind).
        let not_full = fill[n / 4..3 * n / 4].to_vec();
        let filled = rss_bytes();
        let cached = cache.len();
        let full: Vec<_> = (n..2 * n).map(&mut admit).collect();
        let after_churn = rss_bytes();
        println!(
            "programs={} tokens={n} acls={acls} users={users} render={render} cached={cached} \
             rss_before={:.1}MB rss_full={:.1}MB rss_after_churn={:.1}MB \
             per_token={:.0}B insert_p99_not_full={:?} insert_p99_full={:?} ratio={:.2}",
            cache.acls.live(),
            before as f64 / 1e6,
            filled as f64 / 1e6,
            after_churn as f64 / 1e6,
            (filled.saturating_sub(before)) as f64 / cached.max(1) as f64,
            p99(not_full.clone()),
            p99(full.clone()),
            p99(full).as_secs_f64() / p99(not_full).as_secs_f64(),
        );
        assert!(cache.len() <= n);
    }

    #[test]
    fn bounded_evicting_expired_first_and_sharing_acls() {
        let now = 1_000_000.0;
        let cache = TokenCache::new(SHARDS * 4, 4);
        cache.start();
        let epoch = || cache.epoch.load(Ordering::Acquire);
        let mut kept = Vec::new();
        for i in 0..SHARDS * 40 {
            let mut t = token(i, 3, 5, now);
            if i % 2 == 0 {
                t.expire_t = now - 1.0;
            }
            let key = key_of(&t.token);
            let entry = cache.admit(key, t, true, epoch(), now);
            assert!(cache.len() <= SHARDS * 4);
            if i % 2 == 1 {
                kept.push(entry);
            }
        }
        // Only 3 distinct ACLs: 3 programs, shared by every entry holding one.
        assert_eq!(cache.acls.live(), 3);
        let program = |i: usize| kept[i].acl.program().clone();
        assert!(Arc::ptr_eq(&program(0), &program(3)));
        assert!(!Arc::ptr_eq(&program(0), &program(1)));
        // Each token's own values are still used.
        for entry in &kept {
            let t = &entry.token;
            assert!(entry.acl.matches(&format!("auth.users.{}.read", t.auth_id)));
            assert!(entry
                .acl
                .matches(&format!("auth.sessions.{}.read", t.session_uuid)));
            assert!(!entry.acl.matches("auth.sessions.other.read"));
            assert!(!entry
                .acl
                .matches(&format!("auth.users.{}.password.update", t.auth_id)));
        }
        // Expired entries go first: most of what is left is live.
        let live = cache
            .shards
            .iter()
            .flat_map(|s| {
                let s = s.lock().unwrap();
                s.positive
                    .values()
                    .map(|e| e.token.expire_t >= now)
                    .collect::<Vec<_>>()
            })
            .filter(|l| *l)
            .count();
        assert!(live * 4 >= cache.len() * 3, "{live} of {}", cache.len());
        // Revocations remove in O(1) and leave the rest.
        let before = cache.len();
        let victim = cache
            .shards
            .iter()
            .find_map(|s| s.lock().unwrap().positive.keys().next().copied())
            .unwrap();
        cache.revoke(&victim);
        assert_eq!(cache.len(), before - 1);
        // A revocation during a read: nothing cached.
        let t = token(7, 3, 5, now);
        let key = key_of(&t.token);
        let stale = epoch();
        cache.revoke(&key);
        cache.admit(key, t, true, stale, now);
        assert!(!cache.shard(&key).positive.contains_key(&key));
    }
}
