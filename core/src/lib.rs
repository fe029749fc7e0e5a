//! wazo-auth core: tokens, ACL matching, storage (PostgreSQL) and expiration. No HTTP here.

pub mod acl;
pub mod cache;
pub mod cleanup;
pub mod defaults;
pub mod emails;
pub mod error;
pub mod events;
pub mod external;
pub mod groups;
pub mod idp;
pub mod ids;
pub mod import;
pub mod keys;
pub mod ldap;
mod login_batch;
mod lookup_batch;
pub mod lull;
pub mod notify;
pub mod outbox;
pub mod password;
pub mod policies;
pub mod refresh_tokens;
pub mod reset;
pub mod scope;
pub mod services;
pub mod sessions;
pub mod sql;
pub mod storage;
pub mod tally;
pub mod tenants;
pub mod throttle;
pub mod tokens;
pub mod users;

pub use error::{Error, Result};
pub use storage::Storage;
/// The managed development PostgreSQL (crate `wazo-auth-pg-cluster`), at its former path.
pub use wazo_auth_pg_cluster as pg_cluster;
