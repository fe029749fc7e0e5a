//! The default-policy cache: the ACL of the policies read at every login (the default user
//! policy, by name), kept in memory until a trigger on `auth_policy` announces a change
//! ([`crate::notify::Notification::PoliciesChanged`], migration V7). The same rules as the token
//! cache: only used while live (changes being received), emptied when it stops and starts, and
//! a read during which a change arrived is not kept.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::Result;
use crate::storage::Storage;

/// The most policy ACLs kept (they are looked up by the configured names only).
const POLICY_ACLS_MAX: usize = 256;

/// Policy ACLs by policy name.
#[derive(Default)]
pub struct PolicyCache {
    acls: Mutex<HashMap<String, Arc<Vec<String>>>>,
    /// Whether policy changes are being received.
    live: AtomicBool,
    /// Bumped by every policy change and every clear.
    epoch: AtomicU64,
}

impl PolicyCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Vec<String>>>> {
        // Only map operations run under this lock: a poisoned lock holds a consistent map.
        self.acls.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether policy changes are being received (when not, the cache is not used).
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Changes are received from now on: drops anything cached before, then serves from memory.
    pub fn start(&self) {
        self.invalidate();
        self.live.store(true, Ordering::Release);
    }

    /// Changes may be missed from now on: stops serving from memory and drops everything.
    pub fn stop(&self) {
        self.live.store(false, Ordering::Release);
        self.invalidate();
    }

    /// Some policy changed: drops every ACL, and no read under way keeps what it found.
    pub fn invalidate(&self) {
        // Bumped before taking the lock (see `acl`).
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.lock().clear();
    }

    /// The ACL of the policy named `name` (empty when there is none), as
    /// [`crate::policies::acl_of_policy_named`] reads it; from memory while policy changes are
    /// being received.
    pub async fn acl(&self, storage: &Storage, name: &str) -> Result<Arc<Vec<String>>> {
        let listening = self.is_live();
        if listening {
            if let Some(acl) = self.lock().get(name) {
                return Ok(acl.clone());
            }
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let acl = {
            let client = storage.client().await?;
            Arc::new(crate::policies::acl_of_policy_named(&client, name).await?)
        };
        // As for tokens: a change that arrived during the read may not be in it (compared under
        // the lock that `invalidate` takes after bumping the epoch).
        if listening {
            let mut acls = self.lock();
            if self.is_live() && self.epoch.load(Ordering::Acquire) == epoch {
                if acls.len() >= POLICY_ACLS_MAX {
                    acls.clear();
                }
                acls.insert(name.to_string(), acl.clone());
            }
        }
        Ok(acl)
    }
}
