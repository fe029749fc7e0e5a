//! Sessions and refresh tokens (spec management §10, §11). Every function takes the tenants the
//! caller may act in; a user outside them is unknown, a session or refresh token outside them
//! is not touched.

use super::Listing;
use crate::ids::{SessionUuid, UserUuid};
use crate::refresh_tokens::{RefreshToken, RefreshTokenQuery};
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

/// Whether a user exists in one of `tenants`.
pub async fn user_visible(
    storage: &Storage,
    user: UserUuid,
    tenants: &[String],
) -> Result<bool, Error> {
    Ok(storage
        .user_tenant(&user.text())
        .await?
        .is_some_and(|t| tenants.contains(&t)))
}

/// The sessions of `tenants` (of one user when given), with the counts of the list answer
/// (`filtered` is `total`: sessions have no filters).
pub async fn list(
    storage: &Storage,
    tenants: &[String],
    user: Option<UserUuid>,
    page: &SessionPage,
) -> Result<Listing<Session>, Error> {
    let user = user.map(|u| u.text());
    let (total, items) = storage
        .list_sessions(
            tenants,
            user.as_deref(),
            page.by_mobile,
            page.limit,
            page.offset,
        )
        .await?;
    Ok(Listing {
        total,
        filtered: total,
        items,
    })
}

/// Deletes a session (its tokens go with it) when it belongs to one of `tenants`. Returns
/// whether one was deleted.
pub async fn delete(
    storage: &Storage,
    session: SessionUuid,
    tenants: &[String],
) -> Result<bool, Error> {
    storage.delete_session(&session.text(), tenants).await
}

/// [`delete`] for `/users/{user_uuid}/sessions/{session_uuid}`: the user must be visible first.
/// The session is looked up in `tenants`, not among the user's sessions (as today).
pub async fn delete_of_user(
    storage: &Storage,
    user: UserUuid,
    session: SessionUuid,
    tenants: &[String],
) -> Result<bool, SessionError> {
    if !user_visible(storage, user, tenants).await? {
        return Err(SessionError::UnknownUser);
    }
    Ok(delete(storage, session, tenants).await?)
}

/// The refresh tokens matching `query`, with the counts of the list answer (`total` ignores the
/// search and the filters).
pub async fn refresh_tokens(
    storage: &Storage,
    query: &RefreshTokenQuery,
) -> Result<Listing<RefreshToken>, Error> {
    let (total, filtered, items) = storage.list_refresh_tokens(query).await?;
    Ok(Listing {
        total,
        filtered,
        items,
    })
}

/// Deletes the refresh token of `owner` for `client_id` among users of `tenants`, and ends the
/// sessions issued from it (one transaction). `owner` is a user uuid as text: the `uuid` of a
/// `me` token is taken as it is.
pub async fn delete_refresh_token(
    storage: &Storage,
    owner: &str,
    client_id: &str,
    tenants: &[String],
) -> Result<(), RefreshTokenError> {
    if storage
        .delete_refresh_token(owner, client_id, tenants)
        .await?
    {
        Ok(())
    } else {
        Err(RefreshTokenError::NotFound)
    }
}

/// [`delete_refresh_token`] for `/users/{user_uuid}/tokens/{client_id}`: the user must be
/// visible first.
pub async fn delete_user_refresh_token(
    storage: &Storage,
    user: UserUuid,
    client_id: &str,
    tenants: &[String],
) -> Result<(), RefreshTokenError> {
    if !user_visible(storage, user, tenants).await? {
        return Err(RefreshTokenError::UnknownUser);
    }
    delete_refresh_token(storage, &user.text(), client_id, tenants).await
}
