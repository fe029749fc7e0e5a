//! Password reset (spec management §4): the anonymous request that mails a token
//! ([`find_target`], then [`issue_token`]), and the reset with that token ([`reset`]).

use std::fmt;

use uuid::Uuid;

use crate::error::Error;
use crate::ids::UserUuid;
use crate::password::{self, Scheme};
use crate::reset::{self, ResetLookup};
use crate::scope::Scope;
use crate::sql::Db;
use crate::storage::Storage;
use crate::tokens;
use crate::users::{self, User};

/// The ACL of the token of a reset mail.
pub fn reset_acl(user: &str) -> String {
    format!("auth.users.password.reset.{user}.create")
}

/// Whether a user's password is managed outside (its method, or its tenant's default for
/// `default`, is `ldap` or `saml`).
async fn managed_externally<C: Db>(client: &C, user: &User) -> Result<bool, Error> {
    let tenant_default = reset::tenant_default_method(client, &user.tenant_uuid)
        .await?
        .unwrap_or_default();
    let method = users::effective_method(&user.authentication_method, &tenant_default);
    Ok(users::is_external_method(method))
}

/// Whom a reset mail goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetTarget {
    pub user_uuid: String,
    pub username: Option<String>,
    pub tenant_uuid: String,
    /// The address asked for, else the main confirmed one, else any confirmed one.
    pub address: String,
}

/// `GET /users/password/reset`, first step: the user the request names and the address to mail;
/// `None` (nothing to send) when there is no such user, its password is managed externally, or
/// it has no address to mail.
pub async fn find_target(
    storage: &Storage,
    lookup: &ResetLookup,
) -> Result<Option<ResetTarget>, Error> {
    let client = storage.client().await?;
    let Some(uuid) = reset::find_user(&client, lookup).await? else {
        return Ok(None);
    };
    let Some(user) = users::get_user(&client, &uuid).await? else {
        return Ok(None);
    };
    if managed_externally(&client, &user).await? {
        log::info!("no password reset mail for user {uuid}: its password is managed externally");
        return Ok(None);
    }
    let address = match lookup {
        ResetLookup::Email(address) => Some(address.clone()),
        _ => user
            .emails
            .iter()
            .find(|e| e.main && e.confirmed)
            .or_else(|| user.emails.iter().find(|e| e.confirmed))
            .map(|e| e.address.clone()),
    };
    let Some(address) = address else {
        log::info!("no password reset mail for user {uuid}: no confirmed address");
        return Ok(None);
    };
    Ok(Some(ResetTarget {
        user_uuid: user.uuid,
        username: user.username,
        tenant_uuid: user.tenant_uuid,
        address,
    }))
}

/// Second step: the token of the reset mail (ACL [`reset_acl`], valid `lifetime` seconds).
pub async fn issue_token(
    storage: &Storage,
    target: &ResetTarget,
    lifetime: i64,
) -> Result<Uuid, Error> {
    let client = storage.client().await?;
    tokens::insert_mail_token(
        &client,
        &reset_acl(&target.user_uuid),
        lifetime,
        &target.tenant_uuid,
    )
    .await
}

/// Why a password was not reset.
#[derive(Debug)]
pub enum ResetError {
    /// No such user in the scope.
    UnknownUser,
    /// The user has no login (no username, no confirmed main address).
    NoLogin,
    /// Its password is managed by `ldap` or `saml`.
    ManagedExternally,
    Hashing(String),
    Storage(Error),
}

impl fmt::Display for ResetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResetError::UnknownUser => f.write_str("unknown user"),
            ResetError::NoLogin => f.write_str("the user has no login"),
            ResetError::ManagedExternally => f.write_str("the password is managed externally"),
            ResetError::Hashing(e) => write!(f, "password hashing failed: {e}"),
            ResetError::Storage(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ResetError {}

impl From<Error> for ResetError {
    fn from(e: Error) -> Self {
        ResetError::Storage(e)
    }
}

impl From<tokio_postgres::Error> for ResetError {
    fn from(e: tokio_postgres::Error) -> Self {
        ResetError::Storage(e.into())
    }
}

/// `POST /users/password/reset`: sets the password of a user of the scope (a new one, checked
/// as the original: a login, not managed externally), or removes it (`None`, without those
/// checks, as the original); then deletes the user's sessions with their events, in the same
/// transaction. Returns how many sessions ended.
pub async fn reset(
    storage: &Storage,
    scope: &Scope,
    user: UserUuid,
    new_password: Option<String>,
    scheme: Scheme,
) -> Result<usize, ResetError> {
    let uuid = user.text();
    let stored = {
        let client = storage.client().await?;
        let Some(found) = users::get_user(&client, &uuid).await? else {
            return Err(ResetError::UnknownUser);
        };
        if !scope.contains(&found.tenant_uuid).await? {
            return Err(ResetError::UnknownUser);
        }
        match new_password {
            None => None,
            Some(new_password) => {
                if found.login().is_none() {
                    log::warn!("user {uuid} has no login (username or main confirmed e-mail)");
                    return Err(ResetError::NoLogin);
                }
                if managed_externally(&client, &found).await? {
                    return Err(ResetError::ManagedExternally);
                }
                let hashed =
                    tokio::task::spawn_blocking(move || password::hash(&new_password, scheme))
                        .await
                        .map_err(|e| ResetError::Hashing(e.to_string()))?;
                Some(hashed)
            }
        }
    };
    let mut client = storage.client().await?;
    let tx = client.transaction().await?;
    match &stored {
        Some(hashed) => users::set_password(&tx, &uuid, hashed).await?,
        None => reset::clear_password(&tx, &uuid).await?,
    }
    let sessions = users::delete_user_sessions(&tx, &uuid).await?;
    tx.commit().await?;
    Ok(sessions.len())
}
