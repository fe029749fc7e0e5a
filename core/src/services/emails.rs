//! E-mail addresses and their confirmation (spec management §3). Every use case takes the
//! caller's [`Scope`]: a user or address outside it is unknown.

use std::fmt;

use uuid::Uuid;

use crate::emails::{self, EmailInput};
use crate::error::Error;
use crate::ids::{EmailUuid, UserUuid};
use crate::scope::Scope;
use crate::sql::Db;
use crate::storage::Storage;
use crate::tokens;
use crate::users::{self, Email};

/// Why an address set was not replaced.
#[derive(Debug)]
pub enum EmailsError {
    /// No such user in the scope.
    UnknownUser,
    /// The address is another user's login (username or address, in any case).
    Conflict(String),
    Storage(Error),
}

impl fmt::Display for EmailsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmailsError::UnknownUser => f.write_str("unknown user"),
            EmailsError::Conflict(a) => write!(f, "the login {a:?} is already used"),
            EmailsError::Storage(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for EmailsError {}

impl From<Error> for EmailsError {
    fn from(e: Error) -> Self {
        EmailsError::Storage(e)
    }
}

impl From<tokio_postgres::Error> for EmailsError {
    fn from(e: tokio_postgres::Error) -> Self {
        EmailsError::Storage(e.into())
    }
}

/// The tenant of a user, its row locked against concurrent writers of its addresses until the
/// end of the transaction; `None` when there is no such user.
async fn lock_user<C: Db>(client: &C, user: &str) -> Result<Option<String>, Error> {
    let row = client
        .fetch_opt(
            "SELECT tenant_uuid FROM auth_user WHERE uuid = $1 FOR NO KEY UPDATE",
            &[&user],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// `PUT /users/{uuid}/emails` and `PUT /admin/users/{uuid}/emails`: replaces the addresses of a
/// user of the scope by `wanted` (already checked: at most one main, no duplicate), in one
/// transaction: the user row is locked, then the logins of the new addresses, then each is
/// checked against the other users' logins (409), then the set is written.
pub async fn replace(
    storage: &Storage,
    scope: &Scope,
    user: UserUuid,
    wanted: &[EmailInput],
) -> Result<Vec<Email>, EmailsError> {
    let uuid = user.text();
    let mut client = storage.client().await?;
    let tx = client.transaction().await?;
    let Some(tenant) = lock_user(&tx, &uuid).await? else {
        return Err(EmailsError::UnknownUser);
    };
    if !scope.contains(&tenant).await? {
        return Err(EmailsError::UnknownUser);
    }
    let logins: Vec<&str> = wanted.iter().map(|e| e.address.as_str()).collect();
    users::lock_logins(&tx, &logins).await?;
    for address in &logins {
        if users::login_in_use(&tx, address, Some(&uuid)).await? {
            return Err(EmailsError::Conflict(address.to_string()));
        }
    }
    let existing = emails::lock_user_emails(&tx, &uuid).await?;
    let stored = emails::replace_user_emails(&tx, &uuid, &existing, wanted).await?;
    tx.commit().await?;
    Ok(stored)
}

/// A token to mail, with what the mail says.
#[derive(Debug, Clone)]
pub struct MailedToken {
    pub token: Uuid,
    pub user_uuid: String,
    pub username: Option<String>,
    pub email_uuid: String,
    pub address: String,
}

/// Why no confirmation token was issued.
#[derive(Debug)]
pub enum ConfirmationError {
    UnknownUser,
    /// Not an address of that user.
    UnknownEmail,
    AlreadyConfirmed,
    Storage(Error),
}

impl fmt::Display for ConfirmationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfirmationError::UnknownUser => f.write_str("unknown user"),
            ConfirmationError::UnknownEmail => f.write_str("unknown e-mail address"),
            ConfirmationError::AlreadyConfirmed => f.write_str("already confirmed"),
            ConfirmationError::Storage(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ConfirmationError {}

impl From<Error> for ConfirmationError {
    fn from(e: Error) -> Self {
        ConfirmationError::Storage(e)
    }
}

impl From<tokio_postgres::Error> for ConfirmationError {
    fn from(e: tokio_postgres::Error) -> Self {
        ConfirmationError::Storage(e.into())
    }
}

/// The ACL of the token of a confirmation link.
pub fn confirmation_acl(email: &str) -> String {
    format!("auth.emails.{email}.confirm.edit")
}

/// `GET /users/{uuid}/emails/{email_uuid}/confirm`: a new confirmation token for an unconfirmed
/// address of a user of the scope (valid `lifetime` seconds).
pub async fn confirmation_token(
    storage: &Storage,
    scope: &Scope,
    user: UserUuid,
    email: EmailUuid,
    lifetime: i64,
) -> Result<MailedToken, ConfirmationError> {
    let (user, email) = (user.text(), email.text());
    let client = storage.client().await?;
    let Some(found) = users::get_user(&client, &user).await? else {
        return Err(ConfirmationError::UnknownUser);
    };
    if !scope.contains(&found.tenant_uuid).await? {
        return Err(ConfirmationError::UnknownUser);
    }
    let Some(address) = found.emails.iter().find(|e| e.uuid == email) else {
        return Err(ConfirmationError::UnknownEmail);
    };
    if address.confirmed {
        return Err(ConfirmationError::AlreadyConfirmed);
    }
    let token = tokens::insert_mail_token(
        &client,
        &confirmation_acl(&email),
        lifetime,
        &found.tenant_uuid,
    )
    .await?;
    Ok(MailedToken {
        token,
        user_uuid: user,
        username: found.username.clone(),
        email_uuid: email,
        address: address.address.clone(),
    })
}

/// `PUT` / `GET /emails/{uuid}/confirm`: confirms an address of a user of the scope; `false`
/// when there is none.
pub async fn confirm(storage: &Storage, scope: &Scope, email: EmailUuid) -> Result<bool, Error> {
    let email = email.text();
    let client = storage.client().await?;
    let Some(found) = emails::find_email(&client, &email).await? else {
        return Ok(false);
    };
    if !scope.contains(&found.tenant_uuid).await? {
        return Ok(false);
    }
    emails::confirm_email(&client, &email).await
}
