//! User writes (spec management §2; core §3.4 for the login rule).

use std::fmt;

use deadpool_postgres::GenericClient;

use crate::error::Error;
use crate::password::{self, Scheme, StoredPassword};
use crate::storage::Storage;
use crate::users::{self, NewUser, User, WriteError};

/// A user to create, as a client asks for it (the password in clear: the service hashes it).
#[derive(Debug, Clone)]
pub struct UserCreation {
    /// Canonical lower-case hyphenated uuid, or `None` to generate one.
    pub uuid: Option<String>,
    pub username: Option<String>,
    pub firstname: Option<String>,
    pub lastname: Option<String>,
    pub purpose: String,
    pub enabled: bool,
    pub tenant_uuid: String,
    pub authentication_method: String,
    pub password: Option<String>,
    pub email_address: Option<String>,
    /// Whether `email_address` is stored as confirmed.
    pub email_confirmed: bool,
}

/// Why a user was not created.
#[derive(Debug)]
pub enum CreateUserError {
    /// `field` (`uuid`, `username` or `email_address`) is already used by `value` (for a login:
    /// as another user's username or address, in any case).
    Conflict { field: &'static str, value: String },
    /// The password hashing task failed.
    Hashing(String),
    /// The database failed.
    Storage(Error),
}

impl fmt::Display for CreateUserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CreateUserError::Conflict { field, value } => {
                write!(f, "the {field} {value:?} is already used")
            }
            CreateUserError::Hashing(e) => write!(f, "password hashing failed: {e}"),
            CreateUserError::Storage(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for CreateUserError {}

impl From<WriteError> for CreateUserError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Conflict { field, value } => CreateUserError::Conflict { field, value },
            WriteError::Storage(e) => CreateUserError::Storage(e),
        }
    }
}

impl From<Error> for CreateUserError {
    fn from(e: Error) -> Self {
        CreateUserError::Storage(e)
    }
}

impl From<tokio_postgres::Error> for CreateUserError {
    fn from(e: tokio_postgres::Error) -> Self {
        CreateUserError::Storage(e.into())
    }
}

/// Hashes a password on the blocking pool (it costs tens of milliseconds of CPU).
pub async fn hash_password(
    password: String,
    scheme: Scheme,
) -> Result<StoredPassword, CreateUserError> {
    tokio::task::spawn_blocking(move || password::hash(&password, scheme))
        .await
        .map_err(|e| CreateUserError::Hashing(e.to_string()))
}

/// `POST /users`: hashes the password, then creates the user in a transaction of its own (see
/// [`create_user_in`]).
pub async fn create_user(
    storage: &Storage,
    scheme: Scheme,
    req: UserCreation,
) -> Result<User, CreateUserError> {
    let password = match req.password {
        Some(pw) => Some(hash_password(pw, scheme).await?),
        None => None,
    };
    let new = NewUser {
        uuid: req.uuid,
        username: req.username,
        firstname: req.firstname,
        lastname: req.lastname,
        purpose: req.purpose,
        enabled: req.enabled,
        tenant_uuid: req.tenant_uuid,
        authentication_method: req.authentication_method,
        password,
        email_address: req.email_address,
        email_confirmed: req.email_confirmed,
    };
    let mut client = storage.client().await?;
    let tx = client.transaction().await?;
    let user = create_user_in(&tx, &new).await?;
    tx.commit().await?;
    Ok(user)
}

/// Creates a user (and its main address) and adds it to its tenant's all-users group, inside
/// the caller's transaction: takes the login locks of its username and address (held until the
/// transaction ends), refuses a login already used as a username or address, then writes. Every
/// creation of a user goes through here (`POST /users`, the bootstrap), so that they all
/// serialise on the same locks.
pub async fn create_user_in<C: GenericClient>(
    client: &C,
    new: &NewUser,
) -> Result<User, CreateUserError> {
    let username = new.username.as_deref();
    let email = new.email_address.as_deref();
    let logins: Vec<&str> = username.into_iter().chain(email).collect();
    users::lock_logins(client, &logins).await?;
    if let Some(u) = username.filter(|u| !u.is_empty()) {
        if users::login_in_use(client, u, None).await? {
            return Err(CreateUserError::Conflict {
                field: "username",
                value: u.to_string(),
            });
        }
    }
    if let Some(a) = email.filter(|a| !a.is_empty()) {
        if users::login_in_use(client, a, None).await? {
            return Err(CreateUserError::Conflict {
                field: "email_address",
                value: a.to_string(),
            });
        }
    }
    let uuid = new
        .uuid
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    users::insert_user(client, &uuid, new).await?;
    let mut emails = Vec::new();
    if let Some(address) = email {
        emails.push(users::insert_main_email(client, &uuid, new, address).await?);
    }
    if !users::join_all_users_group(client, &new.tenant_uuid, &uuid).await? {
        log::warn!(
            "tenant {} has no all-users group; user {uuid} not added to it",
            new.tenant_uuid
        );
    }
    Ok(User {
        uuid,
        username: new.username.clone(),
        firstname: new.firstname.clone(),
        lastname: new.lastname.clone(),
        purpose: new.purpose.clone(),
        enabled: new.enabled,
        tenant_uuid: new.tenant_uuid.clone(),
        authentication_method: new.authentication_method.clone(),
        emails,
    })
}
