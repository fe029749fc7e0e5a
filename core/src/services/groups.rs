//! Groups and memberships (spec management §7, §9). Every function takes the caller's
//! [`Scope`]; a group or user outside it is unknown.

use serde_json::Value;

use super::Listing;
use crate::groups::{self, Group, GroupError, GroupFilter, GroupScope, Page, UserFilter};
use crate::ids::{GroupUuid, UserUuid};
use crate::scope::Scope;
use crate::Storage;

/// A group-membership write that the rules refuse.
#[derive(Debug)]
pub enum MembershipError {
    /// The user is not visible (or does not exist).
    UnknownUser,
    /// The group is not visible (or does not exist).
    UnknownGroup,
    /// User and group belong to different tenants.
    MismatchingTenant {
        user_tenant: String,
        group_tenant: String,
    },
    /// The group is system-managed.
    Forbidden,
    Write(GroupError),
}

impl From<GroupError> for MembershipError {
    fn from(e: GroupError) -> Self {
        MembershipError::Write(e)
    }
}

impl From<crate::Error> for MembershipError {
    fn from(e: crate::Error) -> Self {
        MembershipError::Write(GroupError::Storage(e))
    }
}

/// A group write that the rules refuse.
#[derive(Debug)]
pub enum GroupWriteError {
    /// Not visible, or gone.
    Unknown,
    /// The group is system-managed.
    Forbidden,
    Write(GroupError),
}

impl From<GroupError> for GroupWriteError {
    fn from(e: GroupError) -> Self {
        GroupWriteError::Write(e)
    }
}

impl From<crate::Error> for GroupWriteError {
    fn from(e: crate::Error) -> Self {
        GroupWriteError::Write(GroupError::Storage(e))
    }
}

/// `GET /groups`: the groups of the scoping tenant (with its descendants when `recurse`)
/// matching `filter`, with the counts of the list answer.
pub async fn list(
    storage: &Storage,
    scope: &Scope,
    recurse: bool,
    filter: &GroupFilter,
    page: &Page,
) -> Result<Listing<Group>, GroupError> {
    let scope = GroupScope {
        tenants: scope.listing(recurse).await?.tenants().cloned(),
        member: None,
    };
    listing(storage, &scope, filter, page).await
}

/// `GET /users/{u}/groups`: the groups (in any tenant) of a user of the scope, with the counts
/// of the list answer; `None` when the user is not in the scope.
pub async fn user_groups(
    storage: &Storage,
    scope: &Scope,
    user: UserUuid,
    filter: &GroupFilter,
    page: &Page,
) -> Result<Option<Listing<Group>>, GroupError> {
    if !user_visible(storage, scope, user).await? {
        return Ok(None);
    }
    let scope = GroupScope {
        tenants: None,
        member: Some(user.to_string()),
    };
    Ok(Some(listing(storage, &scope, filter, page).await?))
}

async fn listing(
    storage: &Storage,
    scope: &GroupScope,
    filter: &GroupFilter,
    page: &Page,
) -> Result<Listing<Group>, GroupError> {
    let client = storage.client().await?;
    let total = groups::count(&client, scope, None).await?;
    // Without search or filters, `filtered` counts what `total` counts.
    let filtered = if *filter == GroupFilter::default() {
        total
    } else {
        groups::count(&client, scope, Some(filter)).await?
    };
    Ok(Listing {
        items: groups::list(&client, scope, filter, page).await?,
        total,
        filtered,
    })
}

/// Creates a group in the scoping tenant (the slug is generated when `None`).
pub async fn create(
    storage: &Storage,
    scope: &Scope,
    name: &str,
    slug: Option<&str>,
) -> Result<Group, GroupError> {
    let tenant = scope.tenant();
    let mut client = storage.client().await?;
    let tx = client.transaction().await.map_err(crate::Error::from)?;
    let group = groups::create(&tx, tenant, name, slug, false).await?;
    tx.commit().await.map_err(crate::Error::from)?;
    Ok(group)
}

/// A group of the scope.
pub async fn get(
    storage: &Storage,
    scope: &Scope,
    group: GroupUuid,
) -> Result<Option<Group>, GroupError> {
    let tenants = scope.tenants().await?;
    let client = storage.client().await?;
    groups::find_in_tenants(&client, &group.text(), tenants, false).await
}

/// Renames a visible group that is not system-managed (the slug never changes).
pub async fn rename(
    storage: &Storage,
    scope: &Scope,
    group: GroupUuid,
    name: &str,
) -> Result<Group, GroupWriteError> {
    let uuid = group.text();
    let tenants = scope.tenants().await?;
    let mut client = storage.client().await?;
    let tx = client.transaction().await.map_err(crate::Error::from)?;
    let found = groups::find_in_tenants(&tx, &uuid, tenants, true)
        .await?
        .ok_or(GroupWriteError::Unknown)?;
    if found.system_managed {
        return Err(GroupWriteError::Forbidden);
    }
    let renamed = groups::rename(&tx, &uuid, name, tenants)
        .await?
        .ok_or(GroupWriteError::Unknown)?;
    tx.commit().await.map_err(crate::Error::from)?;
    Ok(renamed)
}

/// Deletes a visible group that is not system-managed.
pub async fn delete(
    storage: &Storage,
    scope: &Scope,
    group: GroupUuid,
) -> Result<(), GroupWriteError> {
    let uuid = group.text();
    let tenants = scope.tenants().await?;
    let mut client = storage.client().await?;
    let tx = client.transaction().await.map_err(crate::Error::from)?;
    let found = groups::find_in_tenants(&tx, &uuid, tenants, true)
        .await?
        .ok_or(GroupWriteError::Unknown)?;
    if found.system_managed {
        return Err(GroupWriteError::Forbidden);
    }
    if !groups::delete(&tx, &uuid).await? {
        return Err(GroupWriteError::Unknown);
    }
    tx.commit().await.map_err(crate::Error::from)?;
    Ok(())
}

/// The members of a group of the scope (in whatever tenant they are), with the counts of the
/// list answer; `None` when the group is not in the scope (or does not exist).
pub async fn members(
    storage: &Storage,
    scope: &Scope,
    group: GroupUuid,
    filter: &UserFilter,
    page: &Page,
) -> Result<Option<Listing<Value>>, GroupError> {
    let uuid = group.text();
    let tenants = scope.tenants().await?;
    let client = storage.client().await?;
    if groups::find_in_tenants(&client, &uuid, tenants, false)
        .await?
        .is_none()
    {
        return Ok(None);
    }
    Ok(Some(Listing {
        items: groups::list_members(&client, &uuid, filter, page).await?,
        total: groups::count_members(&client, &uuid, None).await?,
        filtered: groups::count_members(&client, &uuid, Some(filter)).await?,
    }))
}

/// Adds a visible user to a visible group of the same tenant that is not system-managed
/// (already a member is fine). Returns the group.
pub async fn add_member(
    storage: &Storage,
    scope: &Scope,
    group: GroupUuid,
    user: UserUuid,
) -> Result<Group, MembershipError> {
    let (group_uuid, user_uuid) = (group.text(), user.text());
    let tenants = scope.tenants().await?;
    let mut client = storage.client().await?;
    let tx = client.transaction().await.map_err(crate::Error::from)?;
    let user_tenant = groups::user_tenant(&tx, &user_uuid, Some(tenants))
        .await?
        .ok_or(MembershipError::UnknownUser)?;
    let found = groups::find_in_tenants(&tx, &group_uuid, tenants, false)
        .await?
        .ok_or(MembershipError::UnknownGroup)?;
    if user_tenant != found.tenant_uuid {
        return Err(MembershipError::MismatchingTenant {
            user_tenant,
            group_tenant: found.tenant_uuid,
        });
    }
    if found.system_managed {
        return Err(MembershipError::Forbidden);
    }
    groups::add_user(&tx, &group_uuid, &user_uuid).await?;
    tx.commit().await.map_err(crate::Error::from)?;
    Ok(found)
}

/// Removes a user from a visible group that is not system-managed. When nothing was removed, a
/// user outside the scope (or unknown) is `UnknownUser` (a member is always in its group's
/// tenant, so in the scope).
pub async fn remove_member(
    storage: &Storage,
    scope: &Scope,
    group: GroupUuid,
    user: UserUuid,
) -> Result<(), MembershipError> {
    let (group_uuid, user_uuid) = (group.text(), user.text());
    let tenants = scope.tenants().await?;
    let mut client = storage.client().await?;
    let tx = client.transaction().await.map_err(crate::Error::from)?;
    let found = groups::find_in_tenants(&tx, &group_uuid, tenants, false)
        .await?
        .ok_or(MembershipError::UnknownGroup)?;
    if found.system_managed {
        return Err(MembershipError::Forbidden);
    }
    let removed = groups::remove_user(&tx, &group_uuid, &user_uuid).await?;
    if !removed
        && groups::user_tenant(&tx, &user_uuid, Some(tenants))
            .await?
            .is_none()
    {
        return Err(MembershipError::UnknownUser);
    }
    tx.commit().await.map_err(crate::Error::from)?;
    Ok(())
}

/// Whether a user is in the scope (exists in one of its tenants).
pub async fn user_visible(
    storage: &Storage,
    scope: &Scope,
    user: UserUuid,
) -> Result<bool, GroupError> {
    let tenants = scope.tenants().await?;
    let client = storage.client().await?;
    Ok(groups::user_tenant(&client, &user.text(), Some(tenants))
        .await?
        .is_some())
}
