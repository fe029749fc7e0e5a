//! Compiled ACLs, kept per token so that each token's ACL is compiled once rather than re-parsed
//! on every check. A token's ACL is frozen at login, so an entry never goes stale; entries of
//! deleted or expired tokens are simply never asked for again and are evicted when the cache is
//! full.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::acl::CompiledAcl;
use crate::tokens::Token;

/// A bounded map from token hash to its compiled ACL.
pub struct AclCache {
    capacity: usize,
    map: Mutex<HashMap<Vec<u8>, Arc<CompiledAcl>>>,
}

impl AclCache {
    pub fn new(capacity: usize) -> AclCache {
        AclCache {
            capacity: capacity.max(1),
            map: Mutex::new(HashMap::new()),
        }
    }

    /// The compiled ACL of `token`, compiling it on first use.
    pub fn get(&self, token: &Token) -> Arc<CompiledAcl> {
        let key = crate::tokens::token_hash(&token.token);
        if let Some(found) = self.lock().get(&key) {
            return found.clone();
        }
        let compiled = Arc::new(CompiledAcl::compile(
            &token.acl,
            &token.auth_id,
            &token.session_uuid,
        ));
        let mut map = self.lock();
        if map.len() >= self.capacity {
            // Simple and bounded: drop everything; hot tokens are recompiled on their next use.
            map.clear();
        }
        map.insert(key, compiled.clone());
        compiled
    }

    /// Forgets a token (after it is deleted).
    pub fn forget(&self, token: &uuid::Uuid) {
        self.lock().remove(&crate::tokens::token_hash(token));
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Arc<CompiledAcl>>> {
        // A panic while holding the lock cannot leave the map inconsistent (single inserts and
        // clears), so a poisoned lock is safe to reuse.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}
