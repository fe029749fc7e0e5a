//! Sessions and refresh tokens (spec management §10, §11). Every function takes the caller's
//! [`Scope`]; a user outside it is unknown, a session or refresh token outside it is not
//! touched.

use super::Listing;
use crate::ids::{SessionUuid, UserUuid};
use crate::refresh_tokens::{RefreshToken, RefreshTokenQuery};
use crate::scope::{Listed, Scope};
use crate::sessions::Session;
use crate::{Error, Storage};

/// A session deletion that the rules refuse.
#[derive(Debug)]
pub enum SessionError {
    /// The user is not visible (or does not exist).
    UnknownUser,
    Storage(Error),
}

impl From<Error> for SessionError {
    fn from(e: Error) -> Self {
        SessionError::Storage(e)
    }
}

/// A refresh-token deletion that the rules refuse.
#[derive(Debug)]
pub enum RefreshTokenError {
    /// The user is not visible (or does not exist).
    UnknownUser,
    /// The user has no refresh token for this client id (among users of the tenants).
    NotFound,
    Storage(Error),
}

impl From<Error> for RefreshTokenError {
    fn from(e: Error) -> Self {
        RefreshTokenError::Storage(e)
    }
}

/// A page of sessions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionPage {
    /// `Some(descending)`: ordered by `mobile` first; else by creation.
    pub by_mobile: Option<bool>,
    pub limit: Option<i64>,
    pub offset: i64,
}

/// Whether a user is in the scope (exists in one of its tenants).
pub async fn user_visible(storage: &Storage, scope: &Scope, user: UserUuid) -> Result<bool, Error> {
    match storage.user_tenant(&user.text()).await? {
        Some(t) => scope.contains(&t).await,
        None => Ok(false),
    }
}

/// `GET /sessions`: the sessions of the scoping tenant (with its descendants when `recurse`),
/// with the counts of the list answer (`filtered` is `total`: sessions have no filters).
pub async fn list(
    storage: &Storage,
    scope: &Scope,
    recurse: bool,
    page: &SessionPage,
) -> Result<Listing<Session>, Error> {
    listing(storage, &scope.listing(recurse).await?, None, page).await
}

/// `GET /users/{u}/sessions`: the sessions of a user of the scope, among the sessions of the
/// scope; `None` when the user is not in the scope.
pub async fn user_sessions(
    storage: &Storage,
    scope: &Scope,
    user: UserUuid,
    page: &SessionPage,
) -> Result<Option<Listing<Session>>, Error> {
    if !user_visible(storage, scope, user).await? {
        return Ok(None);
    }
    let user = user.text();
    Ok(Some(
        listing(storage, &scope.listing(true).await?, Some(&user), page).await?,
    ))
}

async fn listing(
    storage: &Storage,
    tenants: &Listed,
    user: Option<&str>,
    page: &SessionPage,
) -> Result<Listing<Session>, Error> {
    let (total, items) = storage
        .list_sessions(tenants, user, page.by_mobile, page.limit, page.offset)
        .await?;
    Ok(Listing {
        total,
        filtered: total,
        items,
    })
}

/// Deletes a session (its tokens go with it) when it belongs to the scope. Returns whether one
/// was deleted.
pub async fn delete(storage: &Storage, scope: &Scope, session: SessionUuid) -> Result<bool, Error> {
    storage
        .delete_session(&session.text(), scope.tenants().await?)
        .await
}

/// [`delete`] for `/users/{user_uuid}/sessions/{session_uuid}`: the user must be in the scope
/// first. The session is looked up in the scope, not among the user's sessions (as today).
pub async fn delete_of_user(
    storage: &Storage,
    scope: &Scope,
    user: UserUuid,
    session: SessionUuid,
) -> Result<bool, SessionError> {
    if !user_visible(storage, scope, user).await? {
        return Err(SessionError::UnknownUser);
    }
    Ok(delete(storage, scope, session).await?)
}

/// Which refresh tokens a listing covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshTokenOwners<'a> {
    /// `GET /tokens`: the users of the scoping tenant (with its descendants when `recurse`).
    Listed { recurse: bool },
    /// `GET /users/{u}/tokens`: a user of the scope (`None` outside it).
    User(UserUuid),
    /// `GET /users/me/tokens`: the caller's own user (the `uuid` of its token, as is), among
    /// the users of the scope.
    Me(&'a str),
}

/// The refresh tokens of `owners` matching `query` (whose own `tenants` and `user_uuid` are
/// replaced), with the counts of the list answer (`total` ignores the search and the filters);
/// `None` when the user of [`RefreshTokenOwners::User`] is not in the scope.
pub async fn refresh_tokens(
    storage: &Storage,
    scope: &Scope,
    owners: RefreshTokenOwners<'_>,
    query: RefreshTokenQuery,
) -> Result<Option<Listing<RefreshToken>>, Error> {
    let (tenants, user_uuid) = match owners {
        RefreshTokenOwners::Listed { recurse } => (scope.listing(recurse).await?, None),
        RefreshTokenOwners::User(user) => {
            if !user_visible(storage, scope, user).await? {
                return Ok(None);
            }
            (scope.listing(true).await?, Some(user.text()))
        }
        RefreshTokenOwners::Me(user) => (scope.listing(true).await?, Some(user.to_string())),
    };
    let query = RefreshTokenQuery {
        tenants,
        user_uuid,
        ..query
    };
    let (total, filtered, items) = storage.list_refresh_tokens(&query).await?;
    Ok(Some(Listing {
        total,
        filtered,
        items,
    }))
}

/// Deletes the refresh token of `owner` for `client_id` among users of the scope, and ends the
/// sessions issued from it (one transaction). `owner` is a user uuid as text: the `uuid` of a
/// `me` token is taken as it is.
pub async fn delete_refresh_token(
    storage: &Storage,
    scope: &Scope,
    owner: &str,
    client_id: &str,
) -> Result<(), RefreshTokenError> {
    if storage
        .delete_refresh_token(owner, client_id, scope.tenants().await?)
        .await?
    {
        Ok(())
    } else {
        Err(RefreshTokenError::NotFound)
    }
}

/// [`delete_refresh_token`] for `/users/{user_uuid}/tokens/{client_id}`: the user must be in the
/// scope first.
pub async fn delete_user_refresh_token(
    storage: &Storage,
    scope: &Scope,
    user: UserUuid,
    client_id: &str,
) -> Result<(), RefreshTokenError> {
    if !user_visible(storage, scope, user).await? {
        return Err(RefreshTokenError::UnknownUser);
    }
    delete_refresh_token(storage, scope, &user.text(), client_id).await
}
