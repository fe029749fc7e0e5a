//! External authentication data (spec core §4): a user's data per enabled type and the
//! per-tenant configurations, kept encrypted by [`crate::external`]. The plugins themselves are
//! called by the host.

use serde_json::Value;

use super::Listing;
use crate::external::{self, StoreError, StoreResult, UserExternal};
use crate::ids::UserUuid;
use crate::keys::Keyring;
use crate::scope::Scope;
use crate::Storage;

/// Every enabled type (by name) with the data of a user of the scope for it, decrypted, if any;
/// `None` when the user is not in the scope (or does not exist).
pub async fn user_data(
    storage: &Storage,
    keyring: &Keyring,
    scope: &Scope,
    user: UserUuid,
) -> StoreResult<Option<Vec<UserExternal>>> {
    if !super::users::visible(storage, scope, user).await? {
        return Ok(None);
    }
    let client = storage.client().await?;
    Ok(Some(
        external::list_user_data(&client, keyring, &user.text()).await?,
    ))
}

/// Whether a user is in the scope: the plugin routes of `/users/{u}/external/{type}` call the
/// plugin only for such a user.
pub async fn user_visible(
    storage: &Storage,
    scope: &Scope,
    user: UserUuid,
) -> Result<bool, crate::Error> {
    super::users::visible(storage, scope, user).await
}

/// The configuration of `auth_type` for the scoping tenant.
pub async fn config(
    storage: &Storage,
    keyring: &Keyring,
    auth_type: &str,
    scope: &Scope,
) -> StoreResult<Value> {
    let client = storage.client().await?;
    external::get_config(&client, keyring, auth_type, scope.tenant()).await
}

/// Stores the configuration of `auth_type` for the scoping tenant (the type is created when
/// missing); `Conflict` when there is one already.
pub async fn create_config(
    storage: &Storage,
    keyring: &Keyring,
    auth_type: &str,
    scope: &Scope,
    data: &Value,
) -> StoreResult<()> {
    let client = storage.client().await?;
    external::create_config(&client, keyring, auth_type, scope.tenant(), data).await
}

/// Replaces the configuration of `auth_type` for the scoping tenant.
pub async fn update_config(
    storage: &Storage,
    keyring: &Keyring,
    auth_type: &str,
    scope: &Scope,
    data: &Value,
) -> StoreResult<()> {
    let client = storage.client().await?;
    external::update_config(&client, keyring, auth_type, scope.tenant(), data).await
}

/// Deletes the configuration of `auth_type` for the scoping tenant.
pub async fn delete_config(storage: &Storage, auth_type: &str, scope: &Scope) -> StoreResult<()> {
    let client = storage.client().await?;
    external::delete_config(&client, auth_type, scope.tenant()).await
}

/// The users of the scoping tenant (with its descendants when `recurse`) having data for the
/// enabled type `auth_type` (`UnknownType` when it is not enabled), with the counts of the list
/// answer (no filters: `filtered` is `total`).
pub async fn connected_users(
    storage: &Storage,
    auth_type: &str,
    scope: &Scope,
    recurse: bool,
    limit: Option<i64>,
    offset: i64,
) -> Result<Listing<String>, StoreError> {
    let tenants = scope.listed(recurse).await?;
    let client = storage.client().await?;
    let (total, items) =
        external::connected_users(&client, auth_type, tenants, limit, offset).await?;
    Ok(Listing {
        total,
        filtered: total,
        items,
    })
}
