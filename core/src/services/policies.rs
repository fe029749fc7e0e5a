//! Policies, their ACL, and their associations with users and groups (spec management §8, §9).
//!
//! Every request looks from a [`View`] built from its [`Scope`] ([`view`]: the scoping tenant,
//! alone or with its descendants; see `crate::policies` for what is visible from it). A policy is named by uuid or by slug
//! ([`PolicyRef`]); [`resolve`] turns the name into a [`Target`] once the scope is known.
//!
//! The escalation guard (spec management §1.2) is here: the caller's ACL must allow adding every
//! access a write grants ([`CompiledAcl::may_add_access`]) and removing every access it takes
//! away ([`CompiledAcl::may_remove_access`]).

use super::Listing;
use crate::acl::CompiledAcl;
use crate::ids::{GroupUuid, PolicyUuid, UserUuid};
use crate::policies::{self, ListQuery, NewPolicy, Policy, PolicyError, View};
use crate::scope::Scope;
use crate::{Error, Storage};

/// How a request names a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyRef {
    Uuid(PolicyUuid),
    /// Resolved in the scoping tenant only (see [`scope`]).
    Slug(String),
}

/// The policy a request acts on, once its scope is known.
#[derive(Debug, Clone)]
pub enum Target {
    /// Named by uuid: each use case looks it up as it needs to.
    Uuid(PolicyUuid),
    /// Named by slug, and found.
    Found(Policy),
}

impl Target {
    /// The policy's uuid, as stored.
    pub fn uuid(&self) -> String {
        match self {
            Target::Uuid(u) => u.text(),
            Target::Found(p) => p.uuid.clone(),
        }
    }
}

/// A policy write that the rules refuse.
#[derive(Debug)]
pub enum PolicyWriteError {
    /// The caller may not grant (or take away) this access: privilege escalation.
    Escalation(String),
    /// The policy (this uuid) is not visible, or gone.
    NotVisible(String),
    /// The policy (this uuid) is config-managed, or shared by a tenant outside the scope.
    ReadOnly(String),
    Policy(PolicyError),
}

impl From<PolicyError> for PolicyWriteError {
    fn from(e: PolicyError) -> Self {
        PolicyWriteError::Policy(e)
    }
}

impl From<Error> for PolicyWriteError {
    fn from(e: Error) -> Self {
        PolicyWriteError::Policy(PolicyError::Db(e))
    }
}

impl From<tokio_postgres::Error> for PolicyWriteError {
    fn from(e: tokio_postgres::Error) -> Self {
        PolicyWriteError::Policy(e.into())
    }
}

/// The caller may add every access of `acl`.
fn may_add<'a>(
    caller: &CompiledAcl,
    acl: impl IntoIterator<Item = &'a String>,
) -> Result<(), PolicyWriteError> {
    match acl.into_iter().find(|a| !caller.may_add_access(a)) {
        Some(a) => Err(PolicyWriteError::Escalation(a.clone())),
        None => Ok(()),
    }
}

/// The caller may remove every access of `acl`.
fn may_remove<'a>(
    caller: &CompiledAcl,
    acl: impl IntoIterator<Item = &'a String>,
) -> Result<(), PolicyWriteError> {
    match acl.into_iter().find(|a| !caller.may_remove_access(a)) {
        Some(a) => Err(PolicyWriteError::Escalation(a.clone())),
        None => Ok(()),
    }
}

/// The view of a request on policies: from its scoping tenant, alone or (`recurse`) with the
/// descendants (a scoping tenant that no longer exists sees from itself alone).
pub async fn view(scope: &Scope, recurse: bool) -> Result<View, Error> {
    let requested = scope.tenant().to_string();
    let mut tenants = vec![requested.clone()];
    if recurse {
        for t in scope.tenants().await? {
            if *t != requested {
                tenants.push(t.clone());
            }
        }
    }
    let every = scope.lists_every_tenant(recurse).await?;
    Ok(View {
        requested,
        tenants,
        every,
    })
}

/// The target of `by`: a uuid as is (looked up later), a slug looked up among the policies
/// visible from `scope` (`None`: no such policy).
pub async fn resolve(
    storage: &Storage,
    by: &PolicyRef,
    scope: &View,
) -> Result<Option<Target>, Error> {
    match by {
        PolicyRef::Uuid(u) => Ok(Some(Target::Uuid(*u))),
        PolicyRef::Slug(slug) => {
            let client = storage.client().await?;
            let found = policies::get_visible_by_slug(&client, slug, scope).await?;
            Ok(found.map(Target::Found))
        }
    }
}

/// The policy of `target` if visible from `scope`.
pub async fn get(storage: &Storage, target: Target, scope: &View) -> Result<Option<Policy>, Error> {
    match target {
        Target::Found(p) => Ok(Some(p)),
        Target::Uuid(u) => {
            let client = storage.client().await?;
            policies::get_visible(&client, &u.text(), scope).await
        }
    }
}

/// The visible policies matching `q`, and the number of visible policies.
pub async fn list(
    storage: &Storage,
    scope: &View,
    q: &ListQuery,
) -> Result<(Vec<Policy>, i64), Error> {
    let client = storage.client().await?;
    policies::list(&client, scope, q).await
}

/// A policy to create, as a client asks for it.
#[derive(Debug, Clone)]
pub struct PolicyCreation {
    pub name: String,
    /// Generated from the name when `None`.
    pub slug: Option<String>,
    pub description: Option<String>,
    pub acl: Vec<String>,
    pub shared: bool,
}

/// Creates a policy in the scoping tenant; the caller must be able to grant all of its ACL.
pub async fn create(
    storage: &Storage,
    caller: &CompiledAcl,
    scope: &Scope,
    new: PolicyCreation,
) -> Result<Policy, PolicyWriteError> {
    may_add(caller, &new.acl)?;
    let new = NewPolicy {
        tenant_uuid: scope.tenant().to_string(),
        name: new.name,
        slug: new.slug,
        description: new.description,
        acl: new.acl,
        shared: new.shared,
        config_managed: false,
    };
    let mut client = storage.client().await?;
    let tx = client.transaction().await?;
    let policy = policies::create(&tx, &new).await?;
    tx.commit().await?;
    Ok(policy)
}

/// Locks and re-reads, in `tx`, the policy `uuid` if visible from `scope`.
async fn lock_visible(
    tx: &deadpool_postgres::Transaction<'_>,
    uuid: &str,
    scope: &View,
) -> Result<Policy, PolicyWriteError> {
    let visible = match policies::find_for_update(tx, uuid).await? {
        Some(_) => policies::get_visible(tx, uuid, scope).await?,
        None => None,
    };
    visible.ok_or_else(|| PolicyWriteError::NotVisible(uuid.to_string()))
}

/// The writable part of a policy.
#[derive(Debug, Clone, Copy)]
pub struct PolicyChange<'a> {
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub acl: &'a [String],
}

/// Replaces name, description and ACL of a visible policy that is not read-only. The caller
/// must be able to grant the new ACL, and to remove what it drops.
pub async fn update(
    storage: &Storage,
    caller: &CompiledAcl,
    target: &Target,
    scope: &View,
    change: PolicyChange<'_>,
) -> Result<Policy, PolicyWriteError> {
    may_add(caller, change.acl)?;
    let uuid = target.uuid();
    let mut client = storage.client().await?;
    let tx = client.transaction().await?;
    let current = lock_visible(&tx, &uuid, scope).await?;
    may_remove(
        caller,
        current.acl.iter().filter(|a| !change.acl.contains(a)),
    )?;
    if current.is_read_only_for(&scope.tenants) {
        return Err(PolicyWriteError::ReadOnly(uuid));
    }
    let updated = policies::update(
        &tx,
        &uuid,
        &scope.tenants,
        change.name,
        change.description,
        change.acl,
    )
    .await?;
    tx.commit().await?;
    Ok(updated)
}

/// Deletes a visible policy that is not read-only; the caller must be able to remove its ACL.
pub async fn delete(
    storage: &Storage,
    caller: &CompiledAcl,
    target: &Target,
    scope: &View,
) -> Result<(), PolicyWriteError> {
    let uuid = target.uuid();
    let mut client = storage.client().await?;
    let tx = client.transaction().await?;
    let current = lock_visible(&tx, &uuid, scope).await?;
    may_remove(caller, &current.acl)?;
    if current.is_read_only_for(&scope.tenants) {
        return Err(PolicyWriteError::ReadOnly(uuid));
    }
    policies::delete(&tx, &uuid, &scope.tenants).await?;
    tx.commit().await?;
    Ok(())
}

/// Adds `access` to a visible policy that is not read-only (already there: a conflict).
pub async fn add_access(
    storage: &Storage,
    caller: &CompiledAcl,
    target: &Target,
    scope: &View,
    access: &str,
) -> Result<(), PolicyWriteError> {
    edit_access(storage, caller, target, scope, access, true).await
}

/// Removes `access` from a visible policy that is not read-only (absent: nothing happens).
pub async fn remove_access(
    storage: &Storage,
    caller: &CompiledAcl,
    target: &Target,
    scope: &View,
    access: &str,
) -> Result<(), PolicyWriteError> {
    edit_access(storage, caller, target, scope, access, false).await
}

async fn edit_access(
    storage: &Storage,
    caller: &CompiledAcl,
    target: &Target,
    scope: &View,
    access: &str,
    add: bool,
) -> Result<(), PolicyWriteError> {
    let allowed = if add {
        caller.may_add_access(access)
    } else {
        caller.may_remove_access(access)
    };
    if !allowed {
        return Err(PolicyWriteError::Escalation(access.to_string()));
    }
    let uuid = target.uuid();
    let mut client = storage.client().await?;
    let tx = client.transaction().await?;
    let current = lock_visible(&tx, &uuid, scope).await?;
    if current.is_read_only_for(&scope.tenants) {
        return Err(PolicyWriteError::ReadOnly(uuid));
    }
    if add {
        policies::add_access(&tx, &uuid, access).await?;
    } else {
        policies::remove_access(&tx, &uuid, access).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The policies attached to a user of the scope, with the counts of the list answer; `None`
/// when the user is not in the scope (or does not exist).
pub async fn user_policies(
    storage: &Storage,
    scope: &Scope,
    user: UserUuid,
    q: &ListQuery,
) -> Result<Option<Listing<Policy>>, Error> {
    let user = user.text();
    // The user's tenant, then the scope (the tenant tree): no list of tenants is sent.
    let in_scope = match storage.user_tenant(&user).await? {
        Some(tenant) => scope.contains(&tenant).await?,
        None => false,
    };
    if !in_scope {
        return Ok(None);
    }
    let client = storage.client().await?;
    let (items, total, filtered) = policies::list_user_policies(&client, &user, q).await?;
    Ok(Some(Listing {
        total,
        filtered,
        items,
    }))
}

/// Attaches a policy to a user, within the caller's scope (idempotent):
/// 1. the policy must be visible from `view` (the request's view; 404 policy);
/// 2. the user must be in the scope (404 user);
/// 3. the policy must be visible from the user's own tenant: owned there, config-managed, or
///    shared by the tenant, one of its ancestors or the top tenant (404 policy), so that no
///    grant crosses a tenant boundary;
/// 4. the caller must be able to grant the policy's ACL (escalation).
///
/// One transaction; the user row is locked against deletion (`FOR KEY SHARE`).
pub async fn add_user_policy(
    storage: &Storage,
    caller: &CompiledAcl,
    scope: &Scope,
    user: UserUuid,
    target: &Target,
    view: &View,
) -> Result<(), PolicyWriteError> {
    let (user, uuid) = (user.text(), target.uuid());
    let tenants = scope.tenants().await?;
    let mut client = storage.client().await?;
    let tx = client.transaction().await?;
    let policy = policies::get_visible(&tx, &uuid, view)
        .await?
        .ok_or_else(|| PolicyWriteError::NotVisible(uuid.clone()))?;
    let user_tenant = policies::user_tenant_in(&tx, &user, tenants, true)
        .await?
        .ok_or_else(|| PolicyError::UnknownUser(user.clone()))?;
    if policies::get_visible(&tx, &uuid, &View::of_tenant(&user_tenant))
        .await?
        .is_none()
    {
        return Err(PolicyWriteError::NotVisible(uuid));
    }
    may_add(caller, &policy.acl)?;
    policies::add_user_policy(&tx, &user, &uuid).await?;
    tx.commit().await?;
    Ok(())
}

/// Detaches a policy from a user, within the caller's scope (idempotent): the policy visible
/// from `view` (404 policy) → the user in the scope (404 user) → the policy visible from the
/// user's own tenant, or attached to the user (an association made before this rule, or before
/// a tenant move, can always be removed; 404 policy) → the caller able to remove the policy's
/// ACL (escalation) → removed. One transaction.
pub async fn remove_user_policy(
    storage: &Storage,
    caller: &CompiledAcl,
    scope: &Scope,
    user: UserUuid,
    target: &Target,
    view: &View,
) -> Result<(), PolicyWriteError> {
    let (user, uuid) = (user.text(), target.uuid());
    let tenants = scope.tenants().await?;
    let mut client = storage.client().await?;
    let tx = client.transaction().await?;
    let policy = policies::get_visible(&tx, &uuid, view)
        .await?
        .ok_or_else(|| PolicyWriteError::NotVisible(uuid.clone()))?;
    let user_tenant = policies::user_tenant_in(&tx, &user, tenants, true)
        .await?
        .ok_or_else(|| PolicyError::UnknownUser(user.clone()))?;
    let from_user = policies::get_visible(&tx, &uuid, &View::of_tenant(&user_tenant)).await?;
    if from_user.is_none() && !policies::user_has_policy(&tx, &user, &uuid).await? {
        return Err(PolicyWriteError::NotVisible(uuid));
    }
    may_remove(caller, &policy.acl)?;
    policies::remove_user_policy(&tx, &user, &uuid).await?;
    tx.commit().await?;
    Ok(())
}

/// Whether a group is in the scope.
pub async fn group_visible(
    storage: &Storage,
    scope: &Scope,
    group: GroupUuid,
) -> Result<bool, Error> {
    let tenants = scope.tenants().await?;
    let client = storage.client().await?;
    policies::group_in_tenants(&client, &group.text(), tenants).await
}

/// The policies of a group of `scope` visible from it, with the counts of the list answer (both
/// counting every policy of the group, as the original); `None` when the group is not in
/// `scope`.
pub async fn group_policies(
    storage: &Storage,
    group: GroupUuid,
    scope: &View,
    q: &ListQuery,
) -> Result<Option<Listing<Policy>>, Error> {
    let group = group.text();
    let client = storage.client().await?;
    if !policies::group_in_tenants(&client, &group, &scope.tenants).await? {
        return Ok(None);
    }
    let (items, total, filtered) = policies::list_group_policies(&client, &group, scope, q).await?;
    Ok(Some(Listing {
        total,
        filtered,
        items,
    }))
}

/// Attaches a policy visible from `scope` to a group visible from it; the caller must be able to
/// grant the policy's ACL. Idempotent.
pub async fn add_group_policy(
    storage: &Storage,
    caller: &CompiledAcl,
    group: GroupUuid,
    target: &Target,
    scope: &View,
) -> Result<(), PolicyWriteError> {
    edit_group_policy(storage, caller, group, target, scope, true).await
}

/// Detaches a policy visible from `scope` from a group visible from it; the caller must be able
/// to remove the policy's ACL. Idempotent.
pub async fn remove_group_policy(
    storage: &Storage,
    caller: &CompiledAcl,
    group: GroupUuid,
    target: &Target,
    scope: &View,
) -> Result<(), PolicyWriteError> {
    edit_group_policy(storage, caller, group, target, scope, false).await
}

async fn edit_group_policy(
    storage: &Storage,
    caller: &CompiledAcl,
    group: GroupUuid,
    target: &Target,
    scope: &View,
    add: bool,
) -> Result<(), PolicyWriteError> {
    let (group, uuid) = (group.text(), target.uuid());
    let mut client = storage.client().await?;
    let tx = client.transaction().await?;
    if !policies::group_in_tenants(&tx, &group, &scope.tenants).await? {
        return Err(PolicyError::UnknownGroup(group).into());
    }
    let policy = policies::get_visible(&tx, &uuid, scope)
        .await?
        .ok_or_else(|| PolicyWriteError::NotVisible(uuid.clone()))?;
    if add {
        may_add(caller, &policy.acl)?;
        policies::add_group_policy(&tx, &group, &uuid).await?;
    } else {
        may_remove(caller, &policy.acl)?;
        policies::remove_group_policy(&tx, &group, &uuid).await?;
    }
    tx.commit().await?;
    Ok(())
}
