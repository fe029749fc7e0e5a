//! The LDAP configuration of the scoping tenant (`/backends/ldap`, spec management §13), and the
//! configuration a login binds with.

use crate::keys::Keyring;
use crate::ldap::{self, LdapConfig, LdapConfigChange};
use crate::scope::Scope;
use crate::{Error, Storage};

/// The configuration of the scoping tenant, if any.
pub async fn get(storage: &Storage, scope: &Scope) -> Result<Option<LdapConfig>, Error> {
    let client = storage.client().await?;
    ldap::get(&client, scope.tenant()).await
}

/// Creates or updates the configuration of the scoping tenant; returns it as stored.
pub async fn put(
    storage: &Storage,
    keyring: &Keyring,
    scope: &Scope,
    change: &LdapConfigChange,
) -> Result<LdapConfig, Error> {
    let client = storage.client().await?;
    ldap::upsert(&client, keyring, scope.tenant(), change).await
}

/// Deletes the configuration of the scoping tenant (nothing when there is none).
pub async fn delete(storage: &Storage, scope: &Scope) -> Result<(), Error> {
    let client = storage.client().await?;
    ldap::delete(&client, scope.tenant()).await
}

/// The configuration of `tenant_uuid` with its bind password opened, for an LDAP login (not on
/// behalf of a caller: the login chose the tenant).
pub async fn login_config(
    storage: &Storage,
    keyring: &Keyring,
    tenant_uuid: &str,
) -> Result<Option<(LdapConfig, Option<String>)>, Error> {
    let client = storage.client().await?;
    ldap::get_with_password(&client, keyring, tenant_uuid).await
}
