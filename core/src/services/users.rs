//! Users (spec management §2, §4 password change; core §3.4 for the login rule). The
//! functions that take a [`Scope`] treat a user outside it as unknown.

use std::fmt;

use crate::sql::Db;
use tokio_postgres::IsolationLevel;

use super::Listing;
use crate::error::Error;
use crate::ids::UserUuid;
use crate::password::{self, Scheme, StoredPassword};
use crate::scope::Scope;
use crate::storage::Storage;
use crate::users::{self, NewUser, User, UserQuery, UserRecord, UserUpdate, WriteError};

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

/// `POST /users`: hashes the password, then creates the user in the scoping tenant, in a
/// transaction of its own (see [`create_user_in`]).
pub async fn create_user(
    storage: &Storage,
    scheme: Scheme,
    scope: &Scope,
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
        tenant_uuid: scope.tenant().to_string(),
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
pub(crate) async fn create_user_in<C: Db>(
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

/// `GET /users`: a page of users of the scoping tenant (with its descendants when `recurse`;
/// the query's own `tenants` are replaced), with its counts, read in one repeatable-read,
/// read-only transaction (consistent counts).
pub async fn list(
    storage: &Storage,
    scope: &Scope,
    recurse: bool,
    query: UserQuery,
) -> Result<Listing<User>, Error> {
    let query = UserQuery {
        tenants: scope.listing(recurse).await?,
        ..query
    };
    let mut client = storage.client().await?;
    let tx = client
        .build_transaction()
        .read_only(true)
        .isolation_level(IsolationLevel::RepeatableRead)
        .start()
        .await?;
    let page = users::list_users(&tx, &query).await?;
    tx.commit().await?;
    Ok(Listing {
        total: page.total,
        filtered: page.filtered,
        items: page.items,
    })
}

/// `GET /users/{uuid}`: the user, when it is in the scope.
pub async fn get(storage: &Storage, scope: &Scope, user: UserUuid) -> Result<Option<User>, Error> {
    let client = storage.client().await?;
    let Some(found) = users::get_user(&client, &user.text()).await? else {
        return Ok(None);
    };
    Ok(scope.contains(&found.tenant_uuid).await?.then_some(found))
}

/// Whether a user is in the scope (exists in one of its tenants).
pub async fn visible(storage: &Storage, scope: &Scope, user: UserUuid) -> Result<bool, Error> {
    let tenants = scope.tenants().await?;
    let client = storage.client().await?;
    users::user_in_tenants(&client, &user.text(), tenants).await
}

/// Why a user was not updated or deleted.
#[derive(Debug)]
pub enum UserWriteError {
    /// Not in the caller's tenants, or gone.
    Unknown,
    /// The username is already another user's login (see [`CreateUserError::Conflict`]).
    Conflict {
        field: &'static str,
        value: String,
    },
    Storage(Error),
}

impl fmt::Display for UserWriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserWriteError::Unknown => f.write_str("unknown user"),
            UserWriteError::Conflict { field, value } => {
                write!(f, "the {field} {value:?} is already used")
            }
            UserWriteError::Storage(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for UserWriteError {}

impl From<WriteError> for UserWriteError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Conflict { field, value } => UserWriteError::Conflict { field, value },
            WriteError::Storage(e) => UserWriteError::Storage(e),
        }
    }
}

impl From<Error> for UserWriteError {
    fn from(e: Error) -> Self {
        UserWriteError::Storage(e)
    }
}

impl From<tokio_postgres::Error> for UserWriteError {
    fn from(e: tokio_postgres::Error) -> Self {
        UserWriteError::Storage(e.into())
    }
}

/// `PUT /users/{uuid}`: replaces the editable fields of a user of the scope, in one transaction
/// (taking the login lock of the new username); disabling a user deletes its sessions.
pub async fn update(
    storage: &Storage,
    scope: &Scope,
    user: UserUuid,
    update: &UserUpdate,
) -> Result<User, UserWriteError> {
    let uuid = user.text();
    let tenants = scope.tenants().await?;
    let mut client = storage.client().await?;
    let tx = client.transaction().await?;
    if !users::user_in_tenants(&tx, &uuid, tenants).await? {
        return Err(UserWriteError::Unknown);
    }
    if !users::update_user(&tx, &uuid, update).await? {
        return Err(UserWriteError::Unknown);
    }
    if !update.enabled {
        let sessions = users::delete_user_sessions(&tx, &uuid).await?;
        if !sessions.is_empty() {
            log::info!(
                "user {uuid} disabled: {} session(s) deleted",
                sessions.len()
            );
        }
    }
    let updated = users::get_user(&tx, &uuid).await?;
    tx.commit().await?;
    updated.ok_or(UserWriteError::Unknown)
}

/// `DELETE /users/{uuid}`: deletes a user of the scope with its sessions (and their tokens), in
/// one transaction.
pub async fn delete(
    storage: &Storage,
    scope: &Scope,
    user: UserUuid,
) -> Result<(), UserWriteError> {
    let uuid = user.text();
    let tenants = scope.tenants().await?;
    let mut client = storage.client().await?;
    let tx = client.transaction().await?;
    if !users::user_in_tenants(&tx, &uuid, tenants).await? {
        return Err(UserWriteError::Unknown);
    }
    // Unlike the original, the sessions (and tokens) of a deleted user go with it.
    users::delete_user_sessions(&tx, &uuid).await?;
    if !users::delete_user(&tx, &uuid).await? {
        return Err(UserWriteError::Unknown);
    }
    tx.commit().await?;
    Ok(())
}

/// Why a password was not changed (before or after the old password is checked).
#[derive(Debug)]
pub enum PasswordChangeError {
    /// No such user in the scope.
    UnknownUser,
    /// The user has no login (no username, no confirmed main address).
    NoLogin,
    /// A password hashing task failed.
    Hashing(String),
    Storage(Error),
}

impl fmt::Display for PasswordChangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordChangeError::UnknownUser => f.write_str("unknown user"),
            PasswordChangeError::NoLogin => f.write_str("the user has no login"),
            PasswordChangeError::Hashing(e) => write!(f, "password hashing failed: {e}"),
            PasswordChangeError::Storage(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for PasswordChangeError {}

impl From<Error> for PasswordChangeError {
    fn from(e: Error) -> Self {
        PasswordChangeError::Storage(e)
    }
}

impl From<tokio_postgres::Error> for PasswordChangeError {
    fn from(e: tokio_postgres::Error) -> Self {
        PasswordChangeError::Storage(e.into())
    }
}

/// The login whose password a password change checks (the throttle's key), and what the login
/// look-up finds for it.
#[derive(Debug)]
pub struct PasswordLogin {
    /// The user, found in the caller's scope.
    user: UserUuid,
    pub login: String,
    /// The user as the login look-up finds it (enabled users only; an e-mail login needs a
    /// confirmed address): `None` when it does not find this user.
    record: Option<UserRecord>,
}

/// The outcome of checking the old password of a password change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldPassword {
    /// Wrong password, or the login look-up does not find the user.
    Refused,
    /// Right, but the user's password is managed by an external method.
    ManagedExternally,
    Accepted,
}

/// `PUT /users/{uuid}/password`, first step: the user (in the scope) and its login. As the
/// original, the old password is then checked through the login look-up.
pub async fn password_login(
    storage: &Storage,
    scope: &Scope,
    user: UserUuid,
) -> Result<PasswordLogin, PasswordChangeError> {
    let uuid = user.text();
    let client = storage.client().await?;
    let Some(found) = users::get_user(&client, &uuid).await? else {
        return Err(PasswordChangeError::UnknownUser);
    };
    if !scope.contains(&found.tenant_uuid).await? {
        return Err(PasswordChangeError::UnknownUser);
    }
    let Some(login) = found.login() else {
        log::warn!("user {uuid} has no login (username or main confirmed e-mail)");
        return Err(PasswordChangeError::NoLogin);
    };
    let record = users::find_enabled_user_by_login(&client, login)
        .await?
        .filter(|r| r.uuid == uuid);
    Ok(PasswordLogin {
        user,
        login: login.to_string(),
        record,
    })
}

/// Second step: checks the old password (hashing off the async executor; a dummy hash when
/// there is no password to check, so that timing does not tell).
pub async fn check_old_password(
    found: &PasswordLogin,
    old_password: String,
    scheme: Scheme,
) -> Result<OldPassword, PasswordChangeError> {
    let stored = found.record.as_ref().and_then(|r| r.password.clone());
    let ok = tokio::task::spawn_blocking(move || {
        password::verify(&old_password, stored.as_ref(), scheme)
    })
    .await
    .map_err(|e| PasswordChangeError::Hashing(e.to_string()))?;
    Ok(match found.record.as_ref().filter(|_| ok) {
        None => OldPassword::Refused,
        Some(r) if users::is_external_method(r.effective_authentication_method()) => {
            OldPassword::ManagedExternally
        }
        Some(_) => OldPassword::Accepted,
    })
}

/// Last step: hashes and stores the new password of the user found by [`password_login`] and
/// deletes its sessions, in one transaction. Returns how many sessions were deleted.
pub async fn set_password(
    storage: &Storage,
    found: &PasswordLogin,
    new_password: String,
    scheme: Scheme,
) -> Result<usize, PasswordChangeError> {
    let uuid = found.user.text();
    let stored = tokio::task::spawn_blocking(move || password::hash(&new_password, scheme))
        .await
        .map_err(|e| PasswordChangeError::Hashing(e.to_string()))?;
    let mut client = storage.client().await?;
    let tx = client.transaction().await?;
    users::set_password(&tx, &uuid, &stored).await?;
    let sessions = users::delete_user_sessions(&tx, &uuid).await?;
    tx.commit().await?;
    Ok(sessions.len())
}
