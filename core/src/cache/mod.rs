//! A process's in-memory caches, each kept current by the notifications of every process
//! ([`crate::notify`]):
//!
//! - [`tokens`]: valid tokens and unknown token ids, for the token checks;
//! - [`policies`]: the ACL of the default user policy read at each login;
//! - [`throttle_view`]: the blocked and failed keys of the login throttle;
//! - [`tenants`]: the tenant tree, for every scope decision.
//!
//! Each is used only while notifications are being received; when the listening connection is
//! lost, they stop (emptied) until it is back. A request that may have revoked tokens waits,
//! before answering, until this process has seen its own notifications ([`Caches::sync`]), so
//! revocation takes effect at once locally.

pub mod policies;
pub mod tenants;
pub mod throttle_view;
pub mod tokens;

use std::sync::Arc;
use std::time::Duration;

pub use policies::PolicyCache;
pub use tenants::TenantTree;
pub use throttle_view::ThrottleView;
pub use tokens::{CachedToken, TokenCache};

use crate::error::Result;
use crate::notify::{Notification, Snapshot, SyncMarkers};
use crate::storage::Storage;

/// The caches shared by a process's workers, fed by one listener ([`Caches::listen`]).
pub struct Caches {
    pub tokens: TokenCache,
    pub policies: PolicyCache,
    pub throttle: ThrottleView,
    /// Shared with the process's storages ([`Storage::with_tenant_tree`]).
    pub tenants: Arc<TenantTree>,
    syncs: SyncMarkers,
}

impl Caches {
    /// At most `capacity` valid tokens and as many unknown ids; at most `max_concurrent_lookups`
    /// database look-ups of uncached token ids at once.
    pub fn new(capacity: usize, max_concurrent_lookups: usize) -> Caches {
        Caches {
            tokens: TokenCache::new(capacity, max_concurrent_lookups),
            policies: PolicyCache::default(),
            throttle: ThrottleView::default(),
            tenants: Arc::new(TenantTree::default()),
            syncs: SyncMarkers::default(),
        }
    }

    /// Listens for notifications until the process ends, reconnecting as needed. Run it as a
    /// background task.
    pub async fn listen(self: Arc<Self>, db_uri: String, timeout: Duration) {
        crate::notify::listen(self, db_uri, timeout).await
    }

    /// Whether revocations from other processes are being received (when not, the caches are
    /// not used: every check goes to the database).
    pub fn is_listening(&self) -> bool {
        self.tokens.is_live()
    }

    /// The valid token `id` at `now` ([`TokenCache::get`]).
    pub async fn get(
        &self,
        storage: &Storage,
        id: &uuid::Uuid,
        now: f64,
    ) -> Result<Option<Arc<CachedToken>>> {
        self.tokens.get(storage, id, now).await
    }

    /// Drops one token.
    pub fn forget(&self, id: &uuid::Uuid) {
        self.tokens.forget(id);
    }

    /// Drops every token, every policy ACL and the tenant tree.
    pub fn clear(&self) {
        self.tokens.clear();
        self.policies.invalidate();
        self.tenants.invalidate();
    }

    /// The ACL of the policy named `name` ([`PolicyCache::acl`]).
    pub async fn policy_acl(&self, storage: &Storage, name: &str) -> Result<Arc<Vec<String>>> {
        self.policies.acl(storage, name).await
    }

    /// Number of cached valid tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Token cache `(hits, misses)` since start.
    pub fn stats(&self) -> (u64, u64) {
        self.tokens.stats()
    }

    /// Waits until this process has received every revocation committed before the call (a
    /// marker notification round trip). Falls back to dropping the caches when the marker does
    /// not come back within `timeout`.
    pub async fn sync(&self, storage: &Storage, timeout: Duration) {
        if !self.is_listening() {
            return;
        }
        let (marker, rx) = self.syncs.register();
        let sent = match storage.client().await {
            Ok(client) => Notification::Sync(marker).send(&client).await.is_ok(),
            Err(_) => false,
        };
        let arrived = sent
            && tokio::time::timeout(timeout, rx)
                .await
                .is_ok_and(|r| r.is_ok());
        if !arrived {
            self.syncs.cancel(&marker);
            log::warn!("revocation sync did not complete; dropping the token cache");
            self.clear();
        }
    }

    /// The local view of the throttle ([`ThrottleView::state`]).
    pub fn throttle_state(&self, keys: &[(String, i32)], now: f64) -> Option<(Option<f64>, bool)> {
        self.throttle.state(keys, now)
    }

    /// The local view of each throttle key ([`ThrottleView::key_states`]).
    pub fn throttle_keys(
        &self,
        keys: &[(String, i32)],
        now: f64,
    ) -> Option<Vec<crate::throttle::KeyState>> {
        self.throttle.key_states(keys, now)
    }

    /// Records this process's own throttle failures at once (the notifications follow).
    pub fn note_throttle_failures(&self, results: &[crate::throttle::Failure]) {
        self.throttle.note_failures(results);
    }

    /// Forgets login keys cleared by a successful login.
    pub fn note_throttle_cleared(&self, keys: &[(String, i32)]) {
        self.throttle.note_cleared(keys);
    }
}

impl crate::notify::Receiver for Caches {
    fn listening(&self, snapshot: Snapshot) {
        self.throttle.start(snapshot.throttle);
        // Anything cached before LISTEN took effect may have missed a revocation.
        self.tokens.start();
        self.policies.start();
        self.tenants.start();
    }

    fn notified(&self, notification: Notification) {
        match notification {
            Notification::TokenRevoked(hash) => self.tokens.revoke(&hash),
            Notification::PoliciesChanged => self.policies.invalidate(),
            Notification::TenantsChanged => self.tenants.invalidate(),
            Notification::Sync(marker) => self.syncs.arrived(&marker),
            Notification::ThrottleFailed { key, blocked_until } => {
                self.throttle.failed(&key, blocked_until)
            }
            Notification::ThrottleCleared { key } => self.throttle.cleared(&key),
        }
    }

    fn stopped(&self) {
        self.tokens.stop();
        self.policies.stop();
        self.tenants.stop();
        self.throttle.stop();
    }
}
