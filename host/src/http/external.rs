//! External authentication (spec core §4): the routes served for each enabled external-auth
//! plugin (`/users/{user_uuid}/external/{auth_type}`), the listing of a user's external auths,
//! per-tenant configuration and connected users. Data is kept encrypted by the core store
//! (`wazo_auth_core::services::external`); the plugins are called here, each call bounded by
//! `plugin_call_timeout`.

use std::sync::Arc;

use abi_stable::std_types::RStr;
use actix_web::dev::Payload;
use actix_web::http::{Method, StatusCode};
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use wazo_auth_core::external::{StoreError, UserExternal};
use wazo_auth_core::ids::{self, UserUuid};
use wazo_auth_core::services::external as service;
use wazo_auth_plugin_api::ffi::HttpReply;
use wazo_auth_plugin_api::ErrorKind;

use super::error::ApiError;
use super::extract::{Caller, Id, RawBody};
use super::listing::{self, ListParams};
use super::routes::{acl, Router};
use super::validate;
use super::State;
use crate::plugins::{CallError, LoadedExternal};

pub fn routes(r: &mut Router) {
    r.resource("/users/{user_uuid}/external")
        .route(
            Method::GET,
            acl("auth.users.{user_uuid}.external.read"),
            list_user_external,
        )
        .without_default();
    r.resource("/users/{user_uuid}/external/{auth_type}")
        .route(
            Method::GET,
            acl("auth.users.{user_uuid}.external.{auth_type}.read"),
            plugin_get,
        )
        .post(
            acl("auth.users.{user_uuid}.external.{auth_type}.create"),
            plugin_create,
        )
        .put(
            acl("auth.users.{user_uuid}.external.{auth_type}.update"),
            plugin_update,
        )
        .delete(
            acl("auth.users.{user_uuid}.external.{auth_type}.delete"),
            plugin_delete,
        )
        .without_default();
    r.resource("/external/{auth_type}/config")
        .route(
            Method::GET,
            acl("auth.{auth_type}.external.config.read"),
            config_get,
        )
        .post(
            acl("auth.{auth_type}.external.config.create"),
            config_create,
        )
        .put(
            acl("auth.{auth_type}.external.config.update"),
            config_update,
        )
        .delete(
            acl("auth.{auth_type}.external.config.delete"),
            config_delete,
        )
        .without_default();
    r.resource("/external/{auth_type}/users")
        .route(
            Method::GET,
            acl("auth.{auth_type}.external.users.read"),
            connected_users,
        )
        .without_default();
}

fn param(req: &HttpRequest, name: &str) -> String {
    req.match_info().get(name).unwrap_or_default().to_string()
}

// ------------------------------------------------------------------------------------------------
// Errors
// ------------------------------------------------------------------------------------------------

fn unknown_type(auth_type: &str) -> ApiError {
    ApiError::api(
        StatusCode::NOT_FOUND,
        format!("No such external auth type: \"{auth_type}\""),
        "unknown-external-auth-type",
        json!({ "type": auth_type }),
        Some("external"),
    )
}

/// The original names the auth type as the resource of this error.
fn no_data(auth_type: &str) -> ApiError {
    ApiError::api(
        StatusCode::NOT_FOUND,
        format!("No such external auth: \"{auth_type}\""),
        "unknown-external-auth",
        json!({ "type": auth_type }),
        None,
    )
    .with_resource(auth_type.to_string())
}

fn unknown_user(user: &str) -> ApiError {
    ApiError::unknown("user", "users", user)
}

fn conflict(message: String, auth_type: &str) -> ApiError {
    ApiError::api(
        StatusCode::CONFLICT,
        message,
        "conflict",
        json!({ "type": auth_type }),
        None,
    )
    .with_resource(auth_type.to_string())
}

/// A store error; `context` is logged with a 5xx.
fn store_failure(context: &str, auth_type: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::UnknownType => unknown_type(auth_type),
        StoreError::NotFound => no_data(auth_type),
        StoreError::UnknownUser => unknown_user(""),
        StoreError::UnknownTenant => ApiError::api(
            StatusCode::BAD_REQUEST,
            "Invalid data: unknown tenant",
            "invalid-data",
            json!({}),
            Some("external"),
        ),
        StoreError::Conflict => conflict(
            format!("This external authentication configuration already exists: \"{auth_type}\""),
            auth_type,
        ),
        StoreError::Other(e @ wazo_auth_core::Error::Corrupt(_)) => ApiError::api(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Stored external authentication data cannot be read",
            "processing-error",
            json!({}),
            Some("external"),
        )
        .with_cause(format!("{context}: {e}")),
        StoreError::Other(e) => ApiError::unavailable(context, e),
    }
}

fn plugin_unavailable(cause: String) -> ApiError {
    ApiError::api(
        StatusCode::SERVICE_UNAVAILABLE,
        "The external authentication plugin failed; try again later",
        "plugin-unavailable",
        json!({}),
        Some("external"),
    )
    .with_cause(cause)
}

fn call_failure(
    plugin: &LoadedExternal,
    auth_type: &str,
    user: &str,
    method: &str,
    e: CallError,
) -> ApiError {
    match e {
        CallError::Plugin(err) if err.kind == ErrorKind::NOT_FOUND => {
            if err.message.as_str() == "unknown user" {
                unknown_user(user)
            } else {
                no_data(auth_type)
            }
        }
        CallError::Plugin(err) if err.kind == ErrorKind::CONFLICT => conflict(
            format!("This external authentication method has already been set: \"{auth_type}\""),
            auth_type,
        ),
        CallError::Plugin(err) if err.kind == ErrorKind::INVALID_INPUT => ApiError::api(
            StatusCode::BAD_REQUEST,
            err.message.as_str(),
            "invalid-data",
            json!({}),
            Some("users"),
        ),
        other => plugin_unavailable(format!(
            "external auth {} ({}): {} failed: {other}",
            plugin.plugin.name,
            plugin.plugin.file.display(),
            method
        )),
    }
}

// ------------------------------------------------------------------------------------------------
// /users/{user_uuid}/external/{auth_type}: the plugin's own routes
// ------------------------------------------------------------------------------------------------

/// The plugin of the `{auth_type}` path segment. Routes exist only for enabled, loaded plugins
/// (as the original registers them): another type is 404 unknown-external-auth-type, before the
/// token is checked.
struct Plugin {
    auth_type: String,
    loaded: Arc<LoadedExternal>,
}

impl FromRequest for Plugin {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(state) = req.app_data::<State>() else {
            return std::future::ready(Err(ApiError::unavailable(
                "no application state",
                "Plugin",
            )));
        };
        let auth_type = param(req, "auth_type");
        std::future::ready(match state.plugins.external(&auth_type) {
            Some(loaded) => Ok(Plugin { auth_type, loaded }),
            None => Err(unknown_type(&auth_type)),
        })
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Verb {
    Get,
    Create,
    Update,
    Delete,
}

impl Verb {
    fn acl_suffix(self) -> &'static str {
        match self {
            Verb::Get => "read",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Delete => "delete",
        }
    }
}

/// The `{user_uuid}` of a plugin route: a UUID (else 404 unknown-user, not the router's 404)
/// of a user in a tenant visible from the scoping tenant (401 / 404 unknown-user).
async fn plugin_user(
    state: &State,
    req: &HttpRequest,
    caller: &Caller,
) -> Result<String, ApiError> {
    let raw = param(req, "user_uuid");
    let Some(user) = ids::parse_canonical(&raw).map(UserUuid::from) else {
        return Err(unknown_user(&raw));
    };
    let scope = caller.scope().await?;
    if !service::user_visible(&state.storage, &scope, user).await? {
        return Err(unknown_user(&user.text()));
    }
    Ok(user.text())
}

/// The body sent to the plugin, read after the user checks (413 over `max_body_bytes`): `{}`
/// for an empty (or blank) body, else a JSON object (400 otherwise, shape A for a non-object).
async fn plugin_body(body: RawBody) -> Result<String, ApiError> {
    let raw = body.read().await?;
    let parsed = if raw.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        validate::token_object(&raw)?
    };
    Ok(Value::Object(parsed).to_string())
}

/// The query string as a JSON object (the first value of each parameter).
fn query_json(req: &HttpRequest) -> String {
    let mut m = Map::new();
    for (k, v) in form_urlencoded::parse(req.query_string().as_bytes()) {
        m.entry(k.into_owned())
            .or_insert(Value::from(v.into_owned()));
    }
    Value::Object(m).to_string()
}

fn reply_to_response(plugin: &LoadedExternal, reply: HttpReply) -> Result<HttpResponse, ApiError> {
    let Ok(status) = StatusCode::from_u16(reply.status) else {
        return Err(plugin_unavailable(format!(
            "external auth {}: handler answered an invalid status {}",
            plugin.plugin.name, reply.status
        )));
    };
    if reply.body_json.is_empty() {
        return Ok(HttpResponse::build(status).finish());
    }
    match serde_json::from_str::<Value>(reply.body_json.as_str()) {
        Ok(body) => Ok(HttpResponse::build(status).json(body)),
        Err(e) => Err(plugin_unavailable(format!(
            "external auth {}: handler answered a body that is not JSON: {e}",
            plugin.plugin.name
        ))),
    }
}

/// Calls the plugin's handler for `verb` (bounded by `plugin_call_timeout`) and relays its
/// answer.
async fn call_plugin(
    state: &State,
    req: &HttpRequest,
    plugin: &Plugin,
    user: String,
    verb: Verb,
    body: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let query = query_json(req);
    let timeout = state.settings.plugin_call_timeout;
    let (u, b, q) = (user.clone(), body.unwrap_or_else(|| "{}".into()), query);
    let outcome = plugin
        .loaded
        .plugin
        .call(timeout, move |p| match verb {
            Verb::Get => p.get(RStr::from_str(&u), RStr::from_str(&q)),
            Verb::Create => p.create(RStr::from_str(&u), RStr::from_str(&b), RStr::from_str(&q)),
            Verb::Update => p.update(RStr::from_str(&u), RStr::from_str(&b), RStr::from_str(&q)),
            Verb::Delete => p.delete(RStr::from_str(&u), RStr::from_str(&q)),
        })
        .await;
    match outcome {
        Ok(reply) => reply_to_response(&plugin.loaded, reply),
        Err(e) => Err(call_failure(
            &plugin.loaded,
            &plugin.auth_type,
            &user,
            verb.acl_suffix(),
            e,
        )),
    }
}

/// `GET /users/{u}/external/{t}`: plugin loaded (404) → token (401) → user (404, 401) → plugin.
async fn plugin_get(
    state: State,
    req: HttpRequest,
    plugin: Plugin,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let user = plugin_user(&state, &req, &caller).await?;
    call_plugin(&state, &req, &plugin, user, Verb::Get, None).await
}

/// `POST /users/{u}/external/{t}`: plugin loaded (404) → token (401) → user (404, 401) → body
/// (413, 400) → plugin.
async fn plugin_create(
    state: State,
    req: HttpRequest,
    plugin: Plugin,
    caller: Caller,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    let user = plugin_user(&state, &req, &caller).await?;
    let body = plugin_body(body).await?;
    call_plugin(&state, &req, &plugin, user, Verb::Create, Some(body)).await
}

/// `PUT /users/{u}/external/{t}`: as `POST`.
async fn plugin_update(
    state: State,
    req: HttpRequest,
    plugin: Plugin,
    caller: Caller,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    let user = plugin_user(&state, &req, &caller).await?;
    let body = plugin_body(body).await?;
    call_plugin(&state, &req, &plugin, user, Verb::Update, Some(body)).await
}

/// `DELETE /users/{u}/external/{t}`: as `GET`.
async fn plugin_delete(
    state: State,
    req: HttpRequest,
    plugin: Plugin,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let user = plugin_user(&state, &req, &caller).await?;
    call_plugin(&state, &req, &plugin, user, Verb::Delete, None).await
}

// ------------------------------------------------------------------------------------------------
// /users/{user_uuid}/external/{auth_type}/...: the plugin's sub-routes (plugin-api 1.3)
// ------------------------------------------------------------------------------------------------

/// The catch-all resource of the plugins' sub-routes. Not declared through [`Router`]: each
/// route's ACL comes from its plugin's declaration, checked by [`sub_route`].
pub fn sub_routes(cfg: &mut actix_web::web::ServiceConfig) {
    cfg.service(
        actix_web::web::resource("/users/{user_uuid}/external/{auth_type}/{tail:.*}")
            .default_service(actix_web::web::to(sub_route)),
    );
}

/// A declared sub-route: plugin loaded and path declared (the router's 404 otherwise; 405 for
/// another method) → user uuid (the router's 404, as the original's converter) → token
/// granting the route's ACL (401) → user visible from the scoping tenant (404 unknown-user) →
/// body for `POST`/`PUT`/`PATCH` (413, 400) → the plugin's `handle` (bounded by
/// `plugin_call_timeout`; errors answered as for the plugin's own routes: a panic or a time-out
/// is 503 `plugin-unavailable`).
async fn sub_route(
    state: State,
    req: HttpRequest,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    let auth_type = param(&req, "auth_type");
    let tail = param(&req, "tail");
    let Some(plugin) = state.plugins.external(&auth_type) else {
        return Err(ApiError::route_not_found());
    };
    let method = if req.method() == Method::HEAD {
        "GET"
    } else {
        req.method().as_str()
    };
    let mut on_path = plugin.declared.routes.iter().filter(|r| r.path == tail);
    let Some(first) = on_path.next() else {
        return Err(ApiError::route_not_found());
    };
    let Some(route) = std::iter::once(first)
        .chain(on_path)
        .find(|r| r.method == method)
    else {
        return Err(ApiError::method_not_allowed());
    };
    let Some(uuid) = ids::parse_canonical(&param(&req, "user_uuid")).map(UserUuid::from) else {
        return Err(ApiError::route_not_found());
    };
    let user = uuid.text();
    let caller = Caller::authorize(state.clone(), &req, &route.acl_for(&user)).await?;
    let scope = caller.scope().await?;
    if !service::user_visible(&state.storage, &scope, uuid).await? {
        return Err(unknown_user(&user));
    }
    let body = if matches!(method, "POST" | "PUT" | "PATCH") {
        plugin_body(body).await?
    } else {
        "{}".to_string()
    };
    let args = [
        method.to_string(),
        route.path.clone(),
        user.clone(),
        scope.tenant().to_string(),
        query_json(&req),
        body,
    ];
    let outcome = plugin
        .plugin
        .call(state.settings.plugin_call_timeout, move |p| {
            let [m, path, u, t, q, b] = &args;
            p.handle(
                RStr::from_str(m),
                RStr::from_str(path),
                RStr::from_str(u),
                RStr::from_str(t),
                RStr::from_str(q),
                RStr::from_str(b),
            )
        })
        .await;
    match outcome {
        Ok(reply) => reply_to_response(&plugin, reply),
        Err(e) => Err(call_failure(
            &plugin,
            &auth_type,
            &user,
            &format!("{method} {}", route.path),
            e,
        )),
    }
}

// ------------------------------------------------------------------------------------------------
// /users/{user_uuid}/external
// ------------------------------------------------------------------------------------------------

/// The SQL `ILIKE` pattern of the listing helpers as a case-insensitive regex (`None`: too large
/// to compile).
fn like_to_regex(pattern: &str) -> Option<regex::Regex> {
    let mut re = String::from("(?is)^");
    for c in pattern.chars() {
        match c {
            '%' => re.push_str(".*"),
            '_' => re.push('.'),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    regex::Regex::new(&re).ok()
}

type Row = (UserExternal, Arc<LoadedExternal>);

/// The rows matching the `type` filter and the search, in the requested direction.
fn select(rows: Vec<Row>, params: &ListParams) -> Vec<Row> {
    let type_filter = params.filter("type").map(str::to_lowercase);
    let pattern = params.search.as_deref().map(like_to_regex);
    let mut selected: Vec<Row> = rows
        .into_iter()
        .filter(|(r, _)| {
            type_filter
                .as_ref()
                .is_none_or(|t| r.auth_type.to_lowercase() == *t)
        })
        .filter(|(r, _)| match &pattern {
            None => true,
            Some(Some(p)) => p.is_match(&r.auth_type),
            // A pattern too large to compile matches only the empty name.
            Some(None) => r.auth_type.is_empty(),
        })
        .collect();
    if params.descending {
        selected.reverse();
    }
    selected
}

/// The `offset`/`limit` window of `len` rows.
fn window(params: &ListParams, len: usize) -> std::ops::Range<usize> {
    let start = usize::try_from(params.offset)
        .unwrap_or(usize::MAX)
        .min(len);
    let end = match params.limit {
        Some(l) => start
            .saturating_add(usize::try_from(l).unwrap_or(usize::MAX))
            .min(len),
        None => len,
    };
    start..end
}

/// The item of one type: the user's data through the plugin's safe view only (never the raw
/// data: `{}` when the view fails), and the plugin's `plugin_info`.
async fn listed_item(state: &State, row: &UserExternal, plugin: &LoadedExternal) -> Value {
    let safe = match &row.data {
        None => json!({}),
        Some(data) => {
            let text = data.to_string();
            let outcome = plugin
                .plugin
                .call(state.settings.plugin_call_timeout, move |p| {
                    p.safe_view(RStr::from_str(&text))
                })
                .await;
            match outcome.map(|t| serde_json::from_str::<Value>(t.as_str())) {
                Ok(Ok(v @ Value::Object(_))) => v,
                Ok(_) | Err(_) => {
                    log::error!(
                        "external auth {}: safe_view failed; showing nothing",
                        row.auth_type
                    );
                    json!({})
                }
            }
        }
    };
    json!({
        "type": row.auth_type,
        "data": safe,
        "enabled": row.data.is_some(),
        "plugin_info": plugin.plugin_info,
    })
}

/// `GET /users/{u}/external`: token (401) → route uuid (404) → params (400) → scope (401) →
/// user in the scope (404 unknown-user; the original lists any uuid's) → every enabled type
/// whose plugin is loaded (the original answers 500 for the others), whether the user has data
/// for it, that data through the plugin's safe view, and the plugin's `plugin_info`.
async fn list_user_external(
    state: State,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    // The original's `uuid` path converter, after the token: not a UUID matches no route.
    let user = Id::<UserUuid>::from_path(&req)?;
    let params = listing::parse(&req, &["type"], "type")?;
    let scope = caller.scope().await?;
    let rows: Vec<Row> = service::user_data(&state.storage, &state.keyring, &scope, *user)
        .await
        .map_err(|e| store_failure("listing external auths failed", "", e))?
        .ok_or_else(|| unknown_user(&user.text()))?
        .into_iter()
        .filter_map(|r| state.plugins.external(&r.auth_type).map(|p| (r, p)))
        .collect();
    let total = rows.len();
    let selected = select(rows, &params);
    let mut items = Vec::new();
    for (row, plugin) in &selected[window(&params, selected.len())] {
        items.push(listed_item(&state, row, plugin).await);
    }
    Ok(HttpResponse::Ok().json(json!({
        "total": total,
        "filtered": selected.len(),
        "items": items,
    })))
}

// ------------------------------------------------------------------------------------------------
// /external/{auth_type}/config and /external/{auth_type}/users
// ------------------------------------------------------------------------------------------------

/// The auth type of a configuration route, checked after the token: a plugin-like name, else
/// 404 unknown-external-auth-type.
fn config_type(req: &HttpRequest) -> Result<String, ApiError> {
    let t = param(req, "auth_type");
    let valid = !t.is_empty()
        && t.len() <= 128
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(t)
    } else {
        Err(unknown_type(&t))
    }
}

/// A configuration body, read after the scoping tenant (413 over `max_body_bytes`): a JSON
/// object (400 otherwise, shape A for a non-object).
async fn config_body(body: RawBody) -> Result<Value, ApiError> {
    let raw = body.read().await?;
    Ok(Value::Object(validate::token_object(&raw)?))
}

/// `GET /external/{t}/config`: token (401) → type name (404) → scoping tenant (401) → the
/// tenant's configuration (404 unknown-config for an unknown type, 404 without one).
async fn config_get(
    state: State,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let auth_type = config_type(&req)?;
    let scope = caller.scope().await?;
    match service::config(&state.storage, &state.keyring, &auth_type, &scope).await {
        Ok(v) => Ok(HttpResponse::Ok().json(v)),
        Err(StoreError::UnknownType) => Err(ApiError::api(
            StatusCode::NOT_FOUND,
            format!("No config found for \"{auth_type}\""),
            "unknown-config",
            json!({ "type": auth_type }),
            Some("external"),
        )),
        Err(e) => Err(store_failure(
            "reading external auth config failed",
            &auth_type,
            e,
        )),
    }
}

/// `POST /external/{t}/config`: token (401) → type name (404) → scoping tenant (401) → body
/// (413, 400) → store (409 when there is one) → 201 `""`.
async fn config_create(
    state: State,
    req: HttpRequest,
    caller: Caller,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    let auth_type = config_type(&req)?;
    let scope = caller.scope().await?;
    let data = config_body(body).await?;
    service::create_config(&state.storage, &state.keyring, &auth_type, &scope, &data)
        .await
        .map_err(|e| store_failure("storing external auth config failed", &auth_type, e))?;
    Ok(HttpResponse::Created().json(""))
}

/// `PUT /external/{t}/config`: as `POST`, replacing the configuration (404 without one) → 204.
async fn config_update(
    state: State,
    req: HttpRequest,
    caller: Caller,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    let auth_type = config_type(&req)?;
    let scope = caller.scope().await?;
    let data = config_body(body).await?;
    service::update_config(&state.storage, &state.keyring, &auth_type, &scope, &data)
        .await
        .map_err(|e| store_failure("updating external auth config failed", &auth_type, e))?;
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /external/{t}/config`: token (401) → type name (404) → scoping tenant (401) → delete
/// (404 without one) → 204.
async fn config_delete(
    state: State,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let auth_type = config_type(&req)?;
    let scope = caller.scope().await?;
    service::delete_config(&state.storage, &auth_type, &scope)
        .await
        .map_err(|e| store_failure("deleting external auth config failed", &auth_type, e))?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /external/{t}/users`: token (401) → params (400) → scoping tenant (401; with its
/// descendants when `recurse`) → the users with data for the enabled type (404 otherwise).
async fn connected_users(
    state: State,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let auth_type = param(&req, "auth_type");
    let params = listing::parse(&req, &[], "")?;
    let scope = caller.scope().await?;
    let users = service::connected_users(
        &state.storage,
        &auth_type,
        &scope,
        params.recurse,
        params.limit,
        params.offset,
    )
    .await
    .map_err(|e| store_failure("listing connected users failed", &auth_type, e))?;
    let items: Vec<Value> = users
        .items
        .into_iter()
        .map(|u| json!({ "uuid": u }))
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "total": users.total,
        "filtered": users.filtered,
        "items": items,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns() {
        let p = like_to_regex("%Ba_%").unwrap();
        assert!(p.is_match("foobar"));
        assert!(p.is_match("BAZ"));
        assert!(!p.is_match("ba"));
        assert!(like_to_regex("a.b").unwrap().is_match("a.b"));
        assert!(!like_to_regex("a.b").unwrap().is_match("axb"));
    }

    #[test]
    fn store_failures() {
        let e = store_failure("ctx", "foo", StoreError::Conflict);
        assert_eq!(e.status(), StatusCode::CONFLICT);
        assert_eq!(e.body()["resource"], "foo");
        assert_eq!(e.body()["details"], json!({"type": "foo"}));
        let e = store_failure(
            "ctx",
            "foo",
            StoreError::Other(wazo_auth_core::Error::Corrupt("bad".into())),
        );
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(e.body()["error_id"], "processing-error");
        assert!(!e.body().to_string().contains("bad"));
        let e = store_failure("ctx", "foo", StoreError::UnknownUser);
        assert_eq!(e.body()["details"], json!({"uuid": ""}));
    }
}
