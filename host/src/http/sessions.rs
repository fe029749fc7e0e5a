//! Sessions and refresh tokens (spec management §10, §11; core §1.8, §1.9): `/sessions`,
//! `/tokens`, and the per-user and `me` views of them. Each handler extracts, calls one service
//! of `wazo_auth_core::services::sessions`, and renders.
//!
//! The caller comes before the path ids here: a malformed id is the router's 404 only once the
//! token grants the route (these routes always checked the token first), so the ids are read
//! in the handlers ([`Id::from_path`]).

use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use wazo_auth_core::ids::{SessionUuid, UserUuid};
use wazo_auth_core::refresh_tokens::{RefreshToken, RefreshTokenQuery};
use wazo_auth_core::services::sessions as service;
use wazo_auth_core::services::sessions::{
    RefreshTokenError, RefreshTokenOwners, SessionError, SessionPage,
};
use wazo_auth_core::services::Listing;
use wazo_auth_core::sessions::Session;

use super::error::ApiError;
use super::extract::{Caller, Id};
use super::listing::{self, ListParams};
use super::routes::{acl, Router};
use super::State;

const SESSION_ORDER: &[&str] = &["mobile"];
const TOKEN_ORDER: &[&str] = &["created_at", "client_id", "mobile"];

pub fn routes(r: &mut Router) {
    r.resource("/sessions")
        .route(Method::GET, acl("auth.sessions.read"), list_sessions)
        .without_default();
    r.resource("/sessions/{session_uuid}")
        .delete(acl("auth.sessions.{session_uuid}.delete"), delete_session)
        .without_default();
    // The literal `me` routes come before the `{user_uuid}` ones.
    r.resource("/users/me/tokens")
        .route(
            Method::GET,
            acl("auth.users.me.tokens.read"),
            list_my_tokens,
        )
        .without_default();
    r.resource("/users/me/tokens/{client_id}")
        .delete(
            acl("auth.users.me.tokens.{client_id}.delete"),
            delete_my_token,
        )
        .without_default();
    r.resource("/users/{user_uuid}/sessions")
        .route(
            Method::GET,
            acl("auth.users.{user_uuid}.sessions.read"),
            list_user_sessions,
        )
        .without_default();
    r.resource("/users/{user_uuid}/sessions/{session_uuid}")
        .delete(
            acl("auth.users.{user_uuid}.sessions.{session_uuid}.delete"),
            delete_user_session,
        )
        .without_default();
    r.resource("/tokens")
        .route(Method::GET, acl("auth.tokens.read"), list_tokens)
        .without_default();
    r.resource("/users/{user_uuid}/tokens")
        .route(
            Method::GET,
            acl("auth.users.{user_uuid}.tokens.read"),
            list_user_tokens,
        )
        .without_default();
    r.resource("/users/{user_uuid}/tokens/{client_id}")
        .delete(
            acl("auth.users.{user_uuid}.tokens.{client_id}.delete"),
            delete_user_token,
        )
        .without_default();
}

// ------------------------------------------------------------------------------------------------
// Errors
// ------------------------------------------------------------------------------------------------

fn unknown_user(user: &UserUuid) -> ApiError {
    ApiError::unknown("user", "users", &user.to_string())
}

fn session_error(e: SessionError, user: &UserUuid) -> ApiError {
    match e {
        SessionError::UnknownUser => unknown_user(user),
        SessionError::Storage(e) => e.into(),
    }
}

/// `user` is the path's user (`None` for a `me` route, whose user is never unknown here).
fn refresh_token_error(e: RefreshTokenError, user: Option<&UserUuid>, client_id: &str) -> ApiError {
    match e {
        RefreshTokenError::UnknownUser => ApiError::unknown(
            "user",
            "users",
            &user.map(ToString::to_string).unwrap_or_default(),
        ),
        RefreshTokenError::NotFound => ApiError::api(
            StatusCode::NOT_FOUND,
            format!("unknown refresh_token for client_id \"{client_id}\""),
            "cannot-find-refresh-token-matching-client-id",
            json!({ "client_id": client_id }),
            Some("tokens"),
        ),
        RefreshTokenError::Storage(e) => e.into(),
    }
}

/// The user of a `me` route: the token's `uuid` (404 unknown-user `"None"` without one).
fn me(caller: &Caller) -> Result<String, ApiError> {
    caller.user_uuid().ok_or_else(|| {
        ApiError::api(
            StatusCode::NOT_FOUND,
            "No such user: \"None\"",
            "unknown-user",
            json!({ "uuid": null }),
            Some("users"),
        )
    })
}

fn client_id(req: &HttpRequest) -> String {
    req.match_info()
        .get("client_id")
        .unwrap_or_default()
        .to_string()
}

// ------------------------------------------------------------------------------------------------
// Rendering
// ------------------------------------------------------------------------------------------------

/// Python's `isoformat()` of an aware UTC datetime.
fn iso_utc(t: &DateTime<Utc>) -> String {
    if t.timestamp_subsec_micros() == 0 {
        t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
    }
}

fn session_json(s: Session) -> Value {
    json!({
        "uuid": s.uuid,
        "mobile": s.mobile,
        "tenant_uuid": s.tenant_uuid,
        "user_uuid": s.user_uuid,
    })
}

fn refresh_json(r: RefreshToken) -> Value {
    json!({
        "client_id": r.client_id,
        "created_at": iso_utc(&r.created_at),
        "mobile": r.mobile,
        "user_uuid": r.user_uuid,
        "tenant_uuid": r.tenant_uuid,
        "metadata": r.metadata,
    })
}

fn envelope<T>(listing: Listing<T>, render: impl Fn(T) -> Value) -> HttpResponse {
    let items: Vec<Value> = listing.items.into_iter().map(render).collect();
    HttpResponse::Ok().json(json!({
        "total": listing.total,
        "filtered": listing.filtered,
        "items": items,
    }))
}

// ------------------------------------------------------------------------------------------------
// Sessions
// ------------------------------------------------------------------------------------------------

fn session_page(params: &ListParams) -> SessionPage {
    SessionPage {
        by_mobile: (params.order == "mobile").then_some(params.descending),
        limit: params.limit,
        offset: params.offset,
    }
}

/// `GET /sessions`: params (400) → scoping tenant (401; with its descendants when `recurse`) →
/// list.
async fn list_sessions(
    state: State,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let params = listing::parse(&req, SESSION_ORDER, "")?;
    let scope = caller.scope().await?;
    let page = session_page(&params);
    let sessions = service::list(&state.storage, &scope, params.recurse, &page).await?;
    Ok(envelope(sessions, session_json))
}

/// `GET /users/{u}/sessions`: route uuid (404) → scoping tenant (401) → user visible (404) →
/// params (400) → the user's sessions in the visible tenants.
async fn list_user_sessions(
    state: State,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let user = Id::<UserUuid>::from_path(&req)?;
    let scope = caller.scope().await?;
    if !service::user_visible(&state.storage, &scope, *user).await? {
        return Err(unknown_user(&user));
    }
    let params = listing::parse(&req, SESSION_ORDER, "")?;
    let page = session_page(&params);
    let sessions = service::user_sessions(&state.storage, &scope, *user, &page)
        .await?
        .ok_or_else(|| unknown_user(&user))?;
    Ok(envelope(sessions, session_json))
}

/// `DELETE /sessions/{s}`: route uuid (404) → scoping tenant (401) → deletes the session when it
/// is in a visible tenant; 204 in every case.
async fn delete_session(
    state: State,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let session = Id::<SessionUuid>::from_path(&req)?;
    let scope = caller.scope().await?;
    if service::delete(&state.storage, &scope, *session).await? {
        log::info!("session {} deleted", *session);
    }
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /users/{u}/sessions/{s}`: route uuids (404) → scoping tenant (401) → user visible
/// (404) → deletes the session when it is in a visible tenant; 204.
async fn delete_user_session(
    state: State,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let user = Id::<UserUuid>::from_path(&req)?;
    let session = Id::<SessionUuid>::from_path(&req)?;
    let scope = caller.scope().await?;
    if service::delete_of_user(&state.storage, &scope, *user, *session)
        .await
        .map_err(|e| session_error(e, &user))?
    {
        log::info!("session {} deleted", *session);
    }
    Ok(HttpResponse::NoContent().finish())
}

// ------------------------------------------------------------------------------------------------
// Refresh tokens
// ------------------------------------------------------------------------------------------------

/// Reads the list parameters of a refresh-token listing (400); `mobile` is read after the
/// scoping tenant, as it always was, hence the two steps.
fn token_params(req: &HttpRequest) -> Result<ListParams, ApiError> {
    listing::parse(req, TOKEN_ORDER, "created_at")
}

/// The query of a refresh-token listing: the `mobile` filter (400) and the page (the owners
/// come from the scope, see [`service::refresh_tokens`]).
fn token_query(params: &ListParams) -> Result<RefreshTokenQuery, ApiError> {
    Ok(RefreshTokenQuery {
        mobile: params.bool_filter("mobile")?,
        tenants: Default::default(),
        user_uuid: None,
        search: params.search.clone(),
        client_id: params.filter("client_id").map(String::from),
        created_at: params.filter("created_at").map(String::from),
        order: params.order.clone(),
        descending: params.descending,
        limit: params.limit,
        offset: params.offset,
    })
}

/// `GET /tokens`: params (400) → scoping tenant (401; with its descendants when `recurse`) →
/// `mobile` (400) → list.
async fn list_tokens(
    state: State,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let params = token_params(&req)?;
    let scope = caller.scope().await?;
    let query = token_query(&params)?;
    let owners = RefreshTokenOwners::Listed {
        recurse: params.recurse,
    };
    let tokens = service::refresh_tokens(&state.storage, &scope, owners, query)
        .await?
        .unwrap_or_default();
    Ok(envelope(tokens, refresh_json))
}

/// `GET /users/{u}/tokens`: route uuid (404) → scoping tenant (401) → user visible (404) →
/// params (400) → list in the visible tenants.
async fn list_user_tokens(
    state: State,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let user = Id::<UserUuid>::from_path(&req)?;
    let scope = caller.scope().await?;
    if !service::user_visible(&state.storage, &scope, *user).await? {
        return Err(unknown_user(&user));
    }
    let query = token_query(&token_params(&req)?)?;
    let owners = RefreshTokenOwners::User(*user);
    let tokens = service::refresh_tokens(&state.storage, &scope, owners, query)
        .await?
        .ok_or_else(|| unknown_user(&user))?;
    Ok(envelope(tokens, refresh_json))
}

/// `GET /users/me/tokens`: the token's user (404) → scoping tenant (401) → params (400) → the
/// caller's refresh tokens in the visible tenants.
async fn list_my_tokens(
    state: State,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let user = me(&caller)?;
    let scope = caller.scope().await?;
    let query = token_query(&token_params(&req)?)?;
    let owners = RefreshTokenOwners::Me(&user);
    let tokens = service::refresh_tokens(&state.storage, &scope, owners, query)
        .await?
        .unwrap_or_default();
    Ok(envelope(tokens, refresh_json))
}

/// `DELETE /users/{u}/tokens/{client_id}`: route uuid (404) → scoping tenant (401) → user
/// visible (404) → delete (404 when there is none) → 204.
async fn delete_user_token(
    state: State,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let user = Id::<UserUuid>::from_path(&req)?;
    let client_id = client_id(&req);
    let scope = caller.scope().await?;
    service::delete_user_refresh_token(&state.storage, &scope, *user, &client_id)
        .await
        .map_err(|e| refresh_token_error(e, Some(&user), &client_id))?;
    log::info!(
        "refresh token of user {} for client {client_id:?} deleted",
        *user
    );
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /users/me/tokens/{client_id}`: the token's user (404) → scoping tenant (401) →
/// delete (404 when there is none) → 204.
async fn delete_my_token(
    state: State,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let client_id = client_id(&req);
    let user = me(&caller)?;
    let scope = caller.scope().await?;
    service::delete_refresh_token(&state.storage, &scope, &user, &client_id)
        .await
        .map_err(|e| refresh_token_error(e, None, &client_id))?;
    log::info!("refresh token of user {user} for client {client_id:?} deleted");
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_render_as_python_isoformat() {
        let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(iso_utc(&t), "2023-11-14T22:13:20+00:00");
        let t = DateTime::from_timestamp(1_700_000_000, 1_500_000).unwrap();
        assert_eq!(iso_utc(&t), "2023-11-14T22:13:20.001500+00:00");
    }

    #[test]
    fn refresh_token_errors() {
        let e = refresh_token_error(RefreshTokenError::NotFound, None, "app");
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
        let b = e.body();
        assert_eq!(
            b["error_id"],
            "cannot-find-refresh-token-matching-client-id"
        );
        assert_eq!(b["details"], json!({"client_id": "app"}));
        assert_eq!(b["resource"], "tokens");
        let u = UserUuid::random();
        let b = refresh_token_error(RefreshTokenError::UnknownUser, Some(&u), "app").body();
        assert_eq!(b["error_id"], "unknown-user");
        assert_eq!(b["details"], json!({"uuid": u.to_string()}));
    }
}
