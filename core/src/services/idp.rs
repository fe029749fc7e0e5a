//! Assigning users to an identity provider (spec management §12): a user's
//! `authentication_method`. The IdP type is checked by the caller against the registry
//! ([`crate::idp::IdpTypes`]); users outside the caller's scope are unknown.

use std::fmt;

use crate::error::Error;
use crate::idp;
use crate::ids::{self, UserUuid};
use crate::scope::Scope;
use crate::storage::Storage;
use crate::users;

/// Why an assignment was not made.
#[derive(Debug)]
pub enum IdpError {
    /// This user (as named by the request) is unknown, or outside the scope.
    UnknownUser(String),
    Storage(Error),
}

impl fmt::Display for IdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdpError::UnknownUser(u) => write!(f, "unknown user {u:?}"),
            IdpError::Storage(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for IdpError {}

impl From<Error> for IdpError {
    fn from(e: Error) -> Self {
        IdpError::Storage(e)
    }
}

impl From<tokio_postgres::Error> for IdpError {
    fn from(e: tokio_postgres::Error) -> Self {
        IdpError::Storage(e.into())
    }
}

/// `PUT /idp/{type}/users/{u}`: the user of the scope authenticates with `idp_type` (idempotent).
pub async fn assign(
    storage: &Storage,
    scope: &Scope,
    user: UserUuid,
    idp_type: &str,
) -> Result<(), IdpError> {
    let tenants = scope.tenants().await?;
    let client = storage.client().await?;
    let uuid = user.text();
    if idp::set_method(&client, std::slice::from_ref(&uuid), tenants, idp_type).await? == 0 {
        return Err(IdpError::UnknownUser(uuid));
    }
    Ok(())
}

/// `DELETE /idp/{type}/users/{u}`: a user of the scope authenticating with `idp_type` goes back
/// to `default`; any other method is left as it is.
pub async fn unassign(
    storage: &Storage,
    scope: &Scope,
    user: UserUuid,
    idp_type: &str,
) -> Result<(), IdpError> {
    let tenants = scope.tenants().await?;
    let client = storage.client().await?;
    let uuid = user.text();
    if idp::reset_method(&client, &uuid, tenants, idp_type).await?
        || users::user_in_tenants(&client, &uuid, tenants).await?
    {
        return Ok(());
    }
    Err(IdpError::UnknownUser(uuid))
}

/// `PUT /idp/{type}/users`: every user named (as the request names them) authenticates with
/// `idp_type`, in one transaction: the first one that is not a user of the scope (in the
/// request's order) is the error, and then no user changes.
pub async fn assign_many(
    storage: &Storage,
    scope: &Scope,
    named: &[String],
    idp_type: &str,
) -> Result<(), IdpError> {
    let tenants = scope.tenants().await?;
    let mut client = storage.client().await?;
    let tx = client.transaction().await?;
    let mut uuids = Vec::with_capacity(named.len());
    for name in named {
        let Some(uuid) = ids::parse_canonical(name).map(|u| u.hyphenated().to_string()) else {
            return Err(IdpError::UnknownUser(name.clone()));
        };
        if !users::user_in_tenants(&tx, &uuid, tenants).await? {
            return Err(IdpError::UnknownUser(name.clone()));
        }
        uuids.push(uuid);
    }
    idp::set_method(&tx, &uuids, tenants, idp_type).await?;
    tx.commit().await?;
    Ok(())
}
