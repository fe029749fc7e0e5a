//! wazo-auth core: tokens, ACL matching, storage (PostgreSQL) and expiration. No HTTP here.

pub mod acl;
pub mod acl_cache;
pub mod defaults;
pub mod error;
pub mod password;
pub mod pg_cluster;
pub mod storage;
pub mod tokens;

pub use error::{Error, Result};
pub use storage::Storage;
