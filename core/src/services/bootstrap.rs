//! The initial user (the original's `wazo-auth-bootstrap initial-user`; spec core §6.1): created
//! in the top tenant with one policy, through the same user creation as `POST /users`.

use std::fmt;

use crate::error::Error;
use crate::password::{self, Scheme};
use crate::policies::{self, PolicyError};
use crate::services::users::{create_user_in, hash_password, CreateUserError};
use crate::storage::Storage;
use crate::tenants;
use crate::users::{self, NewUser, PURPOSES};

/// Options of the initial user.
#[derive(Debug, Clone)]
pub struct BootstrapRequest {
    pub username: String,
    pub password: String,
    pub purpose: String,
    /// Slug of the policy given to the user (the top tenant's, else any tenant's).
    pub policy_slug: String,
}

/// What the bootstrap did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootstrapOutcome {
    /// The user was created: its uuid.
    Created(String),
    /// A user with this login and this password already exists: its uuid.
    Unchanged(String),
}

impl fmt::Display for BootstrapOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootstrapOutcome::Created(uuid) => write!(f, "created ({uuid})"),
            BootstrapOutcome::Unchanged(uuid) => write!(f, "already exists ({uuid}), unchanged"),
        }
    }
}

/// Why the bootstrap failed.
#[derive(Debug)]
pub enum BootstrapError {
    /// The username or the password is empty.
    EmptyCredentials,
    /// Not one of [`PURPOSES`].
    InvalidPurpose(String),
    /// A user already holds the login (as username or address) with another password.
    AnotherPassword(String),
    /// No policy has this slug.
    UnknownPolicy(String),
    /// The database has no top tenant.
    NoTopTenant,
    /// The user creation refused the login (cannot happen under the login lock, short of a
    /// uuid collision).
    Conflict { field: &'static str, value: String },
    /// The password hashing task failed.
    Hashing(String),
    /// The database failed.
    Storage(Error),
}

impl fmt::Display for BootstrapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootstrapError::EmptyCredentials => {
                f.write_str("the bootstrap username and password must not be empty")
            }
            BootstrapError::InvalidPurpose(p) => write!(f, "invalid purpose {p:?}"),
            BootstrapError::AnotherPassword(u) => {
                write!(f, "a user named {u:?} already exists with another password")
            }
            BootstrapError::UnknownPolicy(slug) => write!(f, "no policy with slug {slug:?}"),
            BootstrapError::NoTopTenant => f.write_str("bootstrap failed: no top tenant"),
            BootstrapError::Conflict { field, value } => {
                write!(f, "bootstrap failed: the {field} {value:?} is already used")
            }
            BootstrapError::Hashing(e) => write!(f, "bootstrap failed: {e}"),
            BootstrapError::Storage(e) => write!(f, "bootstrap failed: {e}"),
        }
    }
}

impl std::error::Error for BootstrapError {}

impl From<Error> for BootstrapError {
    fn from(e: Error) -> Self {
        BootstrapError::Storage(e)
    }
}

impl From<tokio_postgres::Error> for BootstrapError {
    fn from(e: tokio_postgres::Error) -> Self {
        BootstrapError::Storage(e.into())
    }
}

impl From<CreateUserError> for BootstrapError {
    fn from(e: CreateUserError) -> Self {
        match e {
            CreateUserError::Conflict { field, value } => BootstrapError::Conflict { field, value },
            CreateUserError::Hashing(e) => BootstrapError::Hashing(e),
            CreateUserError::Storage(e) => BootstrapError::Storage(e),
        }
    }
}

/// Creates the initial user in the top tenant, with the requested policy, in one transaction.
/// Idempotent: when a user already holds the login (as username or address) with this password
/// nothing changes; with another password it is an error. The login is locked as every user
/// creation locks it ([`users::lock_logins`]), so a concurrent `POST /users` of the same login
/// either sees this user or is seen by this bootstrap.
pub async fn bootstrap_user(
    storage: &Storage,
    req: &BootstrapRequest,
    scheme: Scheme,
) -> Result<BootstrapOutcome, BootstrapError> {
    if req.username.is_empty() || req.password.is_empty() {
        return Err(BootstrapError::EmptyCredentials);
    }
    if !PURPOSES.contains(&req.purpose.as_str()) {
        return Err(BootstrapError::InvalidPurpose(req.purpose.clone()));
    }
    let mut client = storage.client().await?;
    let tx = client.transaction().await?;
    users::lock_logins(&tx, &[&req.username]).await?;
    if let Some(holder) = users::find_login_holder(&tx, &req.username).await? {
        let pw = req.password.clone();
        let stored = holder.password;
        let ok =
            tokio::task::spawn_blocking(move || password::verify(&pw, stored.as_ref(), scheme))
                .await
                .unwrap_or(false);
        return if ok {
            Ok(BootstrapOutcome::Unchanged(holder.uuid))
        } else {
            Err(BootstrapError::AnotherPassword(req.username.clone()))
        };
    }
    let top = tenants::top_tenant(&tx)
        .await?
        .ok_or(BootstrapError::NoTopTenant)?;
    let policy = policies::uuid_by_slug(&tx, &req.policy_slug, &top)
        .await?
        .ok_or_else(|| BootstrapError::UnknownPolicy(req.policy_slug.clone()))?;
    let stored = hash_password(req.password.clone(), scheme).await?;
    let new = NewUser {
        uuid: None,
        username: Some(req.username.clone()),
        firstname: None,
        lastname: None,
        purpose: req.purpose.clone(),
        enabled: true,
        tenant_uuid: top,
        authentication_method: "native".into(),
        password: Some(stored),
        email_address: None,
        email_confirmed: true,
    };
    let user = create_user_in(&tx, &new).await?;
    policies::add_user_policy(&tx, &user.uuid, &policy)
        .await
        .map_err(|e| match e {
            PolicyError::Db(e) => BootstrapError::Storage(e),
            // The policy was deleted since it was read.
            _ => BootstrapError::UnknownPolicy(req.policy_slug.clone()),
        })?;
    tx.commit().await?;
    Ok(BootstrapOutcome::Created(user.uuid))
}
