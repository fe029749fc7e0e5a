//! Tenants (spec management §6, §1.5, §1.6): the tree below the caller's scoping tenant. Every
//! function takes the caller's [`Scope`]; a tenant outside its subtree is unknown.
//! The storage rules (slug and uuid conflicts, children, cycles, the parent-move lock) are in
//! [`crate::tenants`]; the writes here run them in one transaction each.

use super::Listing;
use crate::defaults::{self, TenantDefaults};
use crate::error::Error;
use crate::events::{self, Event};
use crate::ids::TenantUuid;
use crate::policies;
use crate::scope::Scope;
use crate::tenants::{self, ListQuery, NewTenant, Tenant, TenantError, TenantFields};
use crate::Storage;

/// A tenant deletion that the rules refuse.
#[derive(Debug)]
pub enum DeleteError {
    /// The tenant is the caller's scoping tenant.
    OwnTenant,
    Tenant(TenantError),
}

impl From<TenantError> for DeleteError {
    fn from(e: TenantError) -> Self {
        DeleteError::Tenant(e)
    }
}

impl From<Error> for DeleteError {
    fn from(e: Error) -> Self {
        DeleteError::Tenant(TenantError::Storage(e))
    }
}

/// The tenants visible from `scope` (itself and all its descendants) matching `query`, with the
/// counts of the list answer.
pub async fn list(
    storage: &Storage,
    scope: &Scope,
    query: &ListQuery,
) -> Result<Listing<Tenant>, Error> {
    let listed = scope.listing(true).await?;
    let client = storage.client().await?;
    let found = tenants::list(&client, &listed, query).await?;
    Ok(Listing {
        total: found.total,
        filtered: found.filtered,
        items: found.items,
    })
}

/// Creates a child of `scope` with its address row, its domains, its all-users group and the
/// configured defaults, in one transaction. Returns the new tenant.
pub async fn create(
    storage: &Storage,
    scope: &Scope,
    new: &NewTenant,
    tenant_defaults: &TenantDefaults,
) -> Result<Tenant, TenantError> {
    let mut client = storage.client().await?;
    let tx = client.transaction().await?;
    let uuid = tenants::create(&tx, scope.tenant(), new).await?;
    contact_in_scope(&tx, scope, new.fields.contact.as_deref()).await?;
    defaults::apply_tenant_defaults(&tx, &uuid, tenant_defaults).await?;
    let tenant = tenants::get(&tx, &uuid)
        .await?
        .ok_or_else(|| Error::Corrupt(format!("created tenant {uuid} not found")))?;
    let added = Event::tenant_added(
        &tenant.uuid,
        tenant.name.as_deref(),
        &tenant.slug,
        &tenant.domain_names,
    );
    events::record(&tx, &[added]).await?;
    let committed = tx.commit().await;
    // Also when the commit's outcome is unknown (connection lost): dropping is always safe.
    storage.tenants_changed();
    committed?;
    Ok(tenant)
}

/// Refuses a contact user outside `scope` as an unknown one (the write's foreign key already
/// refused a user that does not exist; the transaction then rolls back): a tenant's contact names
/// a user the caller sees.
async fn contact_in_scope(
    tx: &deadpool_postgres::Transaction<'_>,
    scope: &Scope,
    contact: Option<&str>,
) -> Result<(), TenantError> {
    let Some(contact) = contact else {
        return Ok(());
    };
    match policies::user_tenant_in(tx, contact, scope.tenants().await?, false).await? {
        Some(_) => Ok(()),
        None => Err(TenantError::UnknownContact(contact.to_string())),
    }
}

/// A tenant visible from `scope`.
pub async fn get(
    storage: &Storage,
    scope: &Scope,
    tenant: TenantUuid,
) -> Result<Option<Tenant>, Error> {
    let client = storage.client().await?;
    tenants::get_visible(&client, scope.tenant(), &tenant.text()).await
}

/// Replaces every writable field of a tenant visible from `scope` (its domain names and address
/// included), in one transaction. Returns the updated tenant.
pub async fn update(
    storage: &Storage,
    scope: &Scope,
    tenant: TenantUuid,
    fields: &TenantFields,
) -> Result<Tenant, TenantError> {
    let uuid = tenant.text();
    let mut client = storage.client().await?;
    let tx = client.transaction().await?;
    tenants::update(&tx, scope.tenant(), &uuid, fields).await?;
    contact_in_scope(&tx, scope, fields.contact.as_deref()).await?;
    let updated = tenants::get(&tx, &uuid)
        .await?
        .ok_or_else(|| TenantError::NotFound(uuid.clone()))?;
    events::record(
        &tx,
        &[Event::tenant_updated(&uuid, updated.name.as_deref())],
    )
    .await?;
    tx.commit().await?;
    Ok(updated)
}

/// Deletes a tenant visible from `scope` that is not `scope` itself and has no children, with
/// everything it owns.
pub async fn delete(
    storage: &Storage,
    scope: &Scope,
    tenant: TenantUuid,
) -> Result<(), DeleteError> {
    let uuid = tenant.text();
    let scope = scope.tenant();
    if scope == uuid {
        return Err(DeleteError::OwnTenant);
    }
    let mut client = storage.client().await?;
    let tx = client.transaction().await.map_err(Error::from)?;
    tenants::delete(&tx, scope, &uuid).await?;
    events::record(&tx, &[Event::tenant_deleted(&uuid)]).await?;
    let committed = tx.commit().await;
    storage.tenants_changed();
    committed.map_err(Error::from)?;
    Ok(())
}

/// The domains of a tenant of the scope as `(name, uuid)`, sorted by name; `None` when the
/// tenant is not in the scope (or does not exist).
pub async fn domains(
    storage: &Storage,
    scope: &Scope,
    tenant: TenantUuid,
) -> Result<Option<Vec<(String, String)>>, Error> {
    if !scope.contains(&tenant.text()).await? {
        return Ok(None);
    }
    let client = storage.client().await?;
    tenants::domains(&client, &tenant.text()).await
}

/// Moves a tenant under `parent`; both must be visible from `scope`, and `parent` must not be
/// the tenant or one of its descendants. One transaction, under the parent-move lock.
pub async fn move_under(
    storage: &Storage,
    scope: &Scope,
    tenant: TenantUuid,
    parent: TenantUuid,
) -> Result<(), TenantError> {
    let mut client = storage.client().await?;
    let tx = client.transaction().await?;
    tenants::update_parent(&tx, scope.tenant(), &tenant.text(), &parent.text()).await?;
    let committed = tx.commit().await;
    storage.tenants_changed();
    committed?;
    Ok(())
}
