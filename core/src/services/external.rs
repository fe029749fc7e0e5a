//! External authentication data (spec core §4): a user's data per enabled type and the
//! per-tenant configurations, kept encrypted by [`crate::external`]. The plugins themselves are
//! called by the host.

use serde_json::Value;

use super::Listing;
use crate::external::{self, StoreError, StoreResult, UserExternal};
use crate::ids::UserUuid;
use crate::keys::Keyring;
use crate::Storage;

/// Every enabled type (by name) with the user's data for it, decrypted, if any.
pub async fn user_data(
    storage: &Storage,
    keyring: &Keyring,
    user: UserUuid,
) -> StoreResult<Vec<UserExternal>> {
    let client = storage.client().await?;
    external::list_user_data(&client, keyring, &user.text()).await
}

/// The configuration of `auth_type` for `tenant`.
pub async fn config(
    storage: &Storage,
    keyring: &Keyring,
    auth_type: &str,
    tenant: &str,
) -> StoreResult<Value> {
    let client = storage.client().await?;
    external::get_config(&client, keyring, auth_type, tenant).await
}

/// Stores the configuration of `auth_type` for `tenant` (the type is created when missing);
/// `Conflict` when there is one already.
pub async fn create_config(
    storage: &Storage,
    keyring: &Keyring,
    auth_type: &str,
    tenant: &str,
    data: &Value,
) -> StoreResult<()> {
    let client = storage.client().await?;
    external::create_config(&client, keyring, auth_type, tenant, data).await
}

/// Replaces the configuration of `auth_type` for `tenant`.
pub async fn update_config(
    storage: &Storage,
    keyring: &Keyring,
    auth_type: &str,
    tenant: &str,
    data: &Value,
) -> StoreResult<()> {
    let client = storage.client().await?;
    external::update_config(&client, keyring, auth_type, tenant, data).await
}

/// Deletes the configuration of `auth_type` for `tenant`.
pub async fn delete_config(storage: &Storage, auth_type: &str, tenant: &str) -> StoreResult<()> {
    let client = storage.client().await?;
    external::delete_config(&client, auth_type, tenant).await
}

/// The users of `tenants` having data for the enabled type `auth_type` (`UnknownType` when it
/// is not enabled), with the counts of the list answer (no filters: `filtered` is `total`).
pub async fn connected_users(
    storage: &Storage,
    auth_type: &str,
    tenants: &[String],
    limit: Option<i64>,
    offset: i64,
) -> Result<Listing<String>, StoreError> {
    let client = storage.client().await?;
    let (total, items) =
        external::connected_users(&client, auth_type, tenants, limit, offset).await?;
    Ok(Listing {
        total,
        filtered: total,
        items,
    })
}
