//! Sessions and refresh tokens (spec management §10, §11; core §1.8, §1.9).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use wazo_auth_core::refresh_tokens::{RefreshToken, RefreshTokenQuery};

use super::auth::{authorize, required_acl, scoping_tenant, visible_tenants, Caller};
use super::errors::{api_error, storage_unavailable, unknown_resource};
use super::listing;
use super::request::path_uuid;
use super::State;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/sessions").route(web::get().to(list_sessions)))
        .service(web::resource("/sessions/{session_uuid}").route(web::delete().to(delete_session)))
        // The literal `me` routes come before the `{user_uuid}` ones.
        .service(web::resource("/users/me/tokens").route(web::get().to(list_my_tokens)))
        .service(
            web::resource("/users/me/tokens/{client_id}").route(web::delete().to(delete_my_token)),
        )
        .service(
            web::resource("/users/{user_uuid}/sessions").route(web::get().to(list_user_sessions)),
        )
        .service(
            web::resource("/users/{user_uuid}/sessions/{session_uuid}")
                .route(web::delete().to(delete_user_session)),
        )
        .service(web::resource("/tokens").route(web::get().to(list_tokens)))
        .service(web::resource("/users/{user_uuid}/tokens").route(web::get().to(list_user_tokens)))
        .service(
            web::resource("/users/{user_uuid}/tokens/{client_id}")
                .route(web::delete().to(delete_user_token)),
        );
}

fn param(req: &HttpRequest, name: &str) -> String {
    req.match_info().get(name).unwrap_or_default().to_string()
}

/// Python's `isoformat()` of an aware UTC datetime.
fn iso_utc(t: &DateTime<Utc>) -> String {
    if t.timestamp_subsec_micros() == 0 {
        t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
    }
}

/// Scoping tenant, then the tenants a request may see: the scoping tenant, with its
/// descendants when `all` is set.
async fn tenants_in_scope(
    state: &State,
    req: &HttpRequest,
    caller: &Caller,
    all: bool,
) -> Result<Vec<String>, HttpResponse> {
    let scoping = scoping_tenant(state, req, caller).await?;
    if all {
        visible_tenants(state, &scoping).await
    } else {
        Ok(vec![scoping])
    }
}

/// The user must exist in a tenant visible from the scoping tenant, else 404 unknown-user.
async fn visible_user(
    state: &State,
    req: &HttpRequest,
    caller: &Caller,
    user_uuid: &str,
) -> Result<Vec<String>, HttpResponse> {
    let visible = tenants_in_scope(state, req, caller, true).await?;
    let tenant = state
        .storage
        .user_tenant(user_uuid)
        .await
        .map_err(|e| storage_unavailable("user look-up failed", e))?;
    match tenant {
        Some(t) if visible.contains(&t) => Ok(visible),
        _ => Err(unknown_resource("user", "users", user_uuid)),
    }
}

fn session_json(s: &wazo_auth_core::sessions::Session) -> Value {
    json!({
        "uuid": s.uuid,
        "mobile": s.mobile,
        "tenant_uuid": s.tenant_uuid,
        "user_uuid": s.user_uuid,
    })
}

async fn respond_sessions(
    state: &State,
    req: &HttpRequest,
    tenants: Vec<String>,
    user: Option<String>,
) -> HttpResponse {
    let params = match listing::parse(req, &["mobile"], "") {
        Ok(p) => p,
        Err(resp) => return resp.into(),
    };
    let order_by_mobile = params.order == "mobile";
    match state
        .storage
        .list_sessions(
            &tenants,
            user.as_deref(),
            order_by_mobile.then_some(params.descending),
            params.limit,
            params.offset,
        )
        .await
    {
        Ok((total, items)) => HttpResponse::Ok().json(json!({
            "total": total,
            "filtered": total,
            "items": items.iter().map(session_json).collect::<Vec<_>>(),
        })),
        Err(e) => storage_unavailable("listing sessions failed", e),
    }
}

/// `GET /0.1/sessions`
async fn list_sessions(state: State, req: HttpRequest) -> HttpResponse {
    let caller = match authorize(&state, &req, "auth.sessions.read").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let recurse = match listing::parse(&req, &["mobile"], "") {
        Ok(p) => p.recurse,
        Err(r) => return r.into(),
    };
    let tenants = match tenants_in_scope(&state, &req, &caller, recurse).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    respond_sessions(&state, &req, tenants, None).await
}

/// `GET /0.1/users/{user_uuid}/sessions`
async fn list_user_sessions(state: State, req: HttpRequest) -> HttpResponse {
    let user = param(&req, "user_uuid");
    let required = required_acl(
        "auth.users.{user_uuid}.sessions.read",
        &[("user_uuid", &user)],
    );
    let caller = match authorize(&state, &req, &required).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(user_id) = path_uuid(&user) else {
        return super::errors::route_not_found();
    };
    let user = user_id.hyphenated().to_string();
    let tenants = match visible_user(&state, &req, &caller, &user).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    respond_sessions(&state, &req, tenants, Some(user)).await
}

async fn delete_session_in(state: &State, tenants: &[String], session: &str) -> HttpResponse {
    match state.storage.delete_session(session, tenants).await {
        Ok(deleted) => {
            if deleted {
                log::info!("session {session} deleted");
            }
            HttpResponse::NoContent().finish()
        }
        Err(e) => storage_unavailable("deleting a session failed", e),
    }
}

/// `DELETE /0.1/sessions/{session_uuid}`: deletes the session when it is in a visible tenant;
/// 204 in every case.
async fn delete_session(state: State, req: HttpRequest) -> HttpResponse {
    let session = param(&req, "session_uuid");
    let required = required_acl(
        "auth.sessions.{session_uuid}.delete",
        &[("session_uuid", &session)],
    );
    let caller = match authorize(&state, &req, &required).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(session) = path_uuid(&session) else {
        return super::errors::route_not_found();
    };
    let tenants = match tenants_in_scope(&state, &req, &caller, true).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    delete_session_in(&state, &tenants, &session.hyphenated().to_string()).await
}

/// `DELETE /0.1/users/{user_uuid}/sessions/{session_uuid}`
async fn delete_user_session(state: State, req: HttpRequest) -> HttpResponse {
    let user = param(&req, "user_uuid");
    let session = param(&req, "session_uuid");
    let required = required_acl(
        "auth.users.{user_uuid}.sessions.{session_uuid}.delete",
        &[("user_uuid", &user), ("session_uuid", &session)],
    );
    let caller = match authorize(&state, &req, &required).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (Some(user), Some(session)) = (path_uuid(&user), path_uuid(&session)) else {
        return super::errors::route_not_found();
    };
    let tenants = match visible_user(&state, &req, &caller, &user.hyphenated().to_string()).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    delete_session_in(&state, &tenants, &session.hyphenated().to_string()).await
}

fn refresh_json(r: &RefreshToken) -> Value {
    json!({
        "client_id": r.client_id,
        "created_at": iso_utc(&r.created_at),
        "mobile": r.mobile,
        "user_uuid": r.user_uuid,
        "tenant_uuid": r.tenant_uuid,
        "metadata": r.metadata,
    })
}

async fn respond_tokens(
    state: &State,
    req: &HttpRequest,
    tenants: Vec<String>,
    user: Option<String>,
) -> HttpResponse {
    let params = match listing::parse(req, &["created_at", "client_id", "mobile"], "created_at") {
        Ok(p) => p,
        Err(resp) => return resp.into(),
    };
    let mobile = match params.bool_filter("mobile") {
        Ok(m) => m,
        Err(r) => return r.into(),
    };
    let query = RefreshTokenQuery {
        tenants,
        user_uuid: user,
        search: params.search.clone(),
        client_id: params.filter("client_id").map(String::from),
        mobile,
        created_at: params.filter("created_at").map(String::from),
        order: params.order.clone(),
        descending: params.descending,
        limit: params.limit,
        offset: params.offset,
    };
    match state.storage.list_refresh_tokens(&query).await {
        Ok((total, filtered, items)) => HttpResponse::Ok().json(json!({
            "total": total,
            "filtered": filtered,
            "items": items.iter().map(refresh_json).collect::<Vec<_>>(),
        })),
        Err(e) => storage_unavailable("listing refresh tokens failed", e),
    }
}

/// `GET /0.1/tokens`
async fn list_tokens(state: State, req: HttpRequest) -> HttpResponse {
    let caller = match authorize(&state, &req, "auth.tokens.read").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let recurse = match listing::parse(&req, &["created_at", "client_id", "mobile"], "created_at") {
        Ok(p) => p.recurse,
        Err(r) => return r.into(),
    };
    let tenants = match tenants_in_scope(&state, &req, &caller, recurse).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    respond_tokens(&state, &req, tenants, None).await
}

/// `GET /0.1/users/{user_uuid}/tokens`
async fn list_user_tokens(state: State, req: HttpRequest) -> HttpResponse {
    let user = param(&req, "user_uuid");
    let required = required_acl(
        "auth.users.{user_uuid}.tokens.read",
        &[("user_uuid", &user)],
    );
    let caller = match authorize(&state, &req, &required).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(user) = path_uuid(&user) else {
        return super::errors::route_not_found();
    };
    let user = user.hyphenated().to_string();
    let tenants = match visible_user(&state, &req, &caller, &user).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    respond_tokens(&state, &req, tenants, Some(user)).await
}

/// The calling user of a `me` route (404 unknown-user for a token without a user).
async fn me(
    state: &State,
    req: &HttpRequest,
    caller: &Caller,
) -> Result<(String, Vec<String>), HttpResponse> {
    let Some(user) = caller.user_uuid().map(String::from) else {
        return Err(api_error(
            StatusCode::NOT_FOUND,
            "No such user: \"None\"",
            "unknown-user",
            json!({ "uuid": null }),
            Some("users"),
        ));
    };
    let tenants = tenants_in_scope(state, req, caller, true).await?;
    Ok((user, tenants))
}

/// `GET /0.1/users/me/tokens`
async fn list_my_tokens(state: State, req: HttpRequest) -> HttpResponse {
    let caller = match authorize(&state, &req, "auth.users.me.tokens.read").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match me(&state, &req, &caller).await {
        Ok((user, tenants)) => respond_tokens(&state, &req, tenants, Some(user)).await,
        Err(r) => r,
    }
}

async fn delete_token_of(
    state: &State,
    user: &str,
    client_id: &str,
    tenants: &[String],
) -> HttpResponse {
    match state
        .storage
        .delete_refresh_token(user, client_id, tenants)
        .await
    {
        Ok(true) => {
            log::info!("refresh token of user {user} for client {client_id:?} deleted");
            HttpResponse::NoContent().finish()
        }
        Ok(false) => api_error(
            StatusCode::NOT_FOUND,
            format!("unknown refresh_token for client_id \"{client_id}\""),
            "cannot-find-refresh-token-matching-client-id",
            json!({ "client_id": client_id }),
            Some("tokens"),
        ),
        Err(e) => storage_unavailable("deleting a refresh token failed", e),
    }
}

/// `DELETE /0.1/users/{user_uuid}/tokens/{client_id}`
async fn delete_user_token(state: State, req: HttpRequest) -> HttpResponse {
    let user = param(&req, "user_uuid");
    let client_id = param(&req, "client_id");
    let required = required_acl(
        "auth.users.{user_uuid}.tokens.{client_id}.delete",
        &[("user_uuid", &user), ("client_id", &client_id)],
    );
    let caller = match authorize(&state, &req, &required).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(user) = path_uuid(&user) else {
        return super::errors::route_not_found();
    };
    let user = user.hyphenated().to_string();
    let tenants = match visible_user(&state, &req, &caller, &user).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    delete_token_of(&state, &user, &client_id, &tenants).await
}

/// `DELETE /0.1/users/me/tokens/{client_id}`
async fn delete_my_token(state: State, req: HttpRequest) -> HttpResponse {
    let client_id = param(&req, "client_id");
    let required = required_acl(
        "auth.users.me.tokens.{client_id}.delete",
        &[("client_id", &client_id)],
    );
    let caller = match authorize(&state, &req, &required).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match me(&state, &req, &caller).await {
        Ok((user, tenants)) => delete_token_of(&state, &user, &client_id, &tenants).await,
        Err(r) => r,
    }
}
