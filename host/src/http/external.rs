//! External authentication (spec core §4): the routes served for each enabled external-auth
//! plugin (`/users/{user_uuid}/external/{auth_type}`), the listing of a user's external auths,
//! per-tenant configuration and connected users. Data is kept encrypted by the core store.

use std::sync::Arc;

use abi_stable::std_types::RStr;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use wazo_auth_core::external::{self, StoreError};
use wazo_auth_plugin_api::ffi::HttpReply;
use wazo_auth_plugin_api::ErrorKind;

use super::auth::{authorize, required_acl, scoping_tenant, visible_tenants, Caller};
use super::errors::{api_error, storage_unavailable, unknown_resource};
use super::listing;
use super::request::{json_object_body, path_uuid, read_body};
use super::State;
use crate::plugins::{CallError, LoadedExternal};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/users/{user_uuid}/external").route(web::get().to(list_user_external)),
    )
    .service(
        web::resource("/users/{user_uuid}/external/{auth_type}")
            .route(web::get().to(plugin_get))
            .route(web::post().to(plugin_create))
            .route(web::put().to(plugin_update))
            .route(web::delete().to(plugin_delete)),
    )
    .service(
        web::resource("/external/{auth_type}/config")
            .route(web::get().to(config_get))
            .route(web::post().to(config_create))
            .route(web::put().to(config_update))
            .route(web::delete().to(config_delete)),
    )
    .service(web::resource("/external/{auth_type}/users").route(web::get().to(connected_users)));
}

fn param(req: &HttpRequest, name: &str) -> String {
    req.match_info().get(name).unwrap_or_default().to_string()
}

fn unknown_type(auth_type: &str) -> HttpResponse {
    api_error(
        StatusCode::NOT_FOUND,
        format!("No such external auth type: \"{auth_type}\""),
        "unknown-external-auth-type",
        json!({ "type": auth_type }),
        Some("external"),
    )
}

fn no_data(auth_type: &str) -> HttpResponse {
    api_error(
        StatusCode::NOT_FOUND,
        format!("No such external auth: \"{auth_type}\""),
        "unknown-external-auth",
        json!({ "type": auth_type }),
        Some("external"),
    )
}

fn unreadable(context: &str, e: impl std::fmt::Display) -> HttpResponse {
    log::error!("{context}: {e}");
    api_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Stored external authentication data cannot be read",
        "processing-error",
        json!({}),
        Some("external"),
    )
}

fn store_failure(context: &str, auth_type: &str, e: StoreError) -> HttpResponse {
    match e {
        StoreError::UnknownType => unknown_type(auth_type),
        StoreError::NotFound => no_data(auth_type),
        StoreError::UnknownUser => unknown_resource("user", "users", ""),
        StoreError::UnknownTenant => api_error(
            StatusCode::BAD_REQUEST,
            "Invalid data: unknown tenant",
            "invalid-data",
            json!({}),
            Some("external"),
        ),
        StoreError::Conflict => api_error(
            StatusCode::CONFLICT,
            format!("This external authentication configuration already exists: \"{auth_type}\""),
            "conflict",
            json!({ "type": auth_type }),
            Some(auth_type),
        ),
        StoreError::Other(e @ wazo_auth_core::Error::Corrupt(_)) => unreadable(context, e),
        StoreError::Other(e) => storage_unavailable(context, e),
    }
}

/// The user must exist in a tenant visible from the scoping tenant.
async fn check_user(
    state: &State,
    req: &HttpRequest,
    caller: &Caller,
    user: &str,
) -> Result<(), HttpResponse> {
    let scoping = scoping_tenant(state, req, caller).await?;
    let visible = visible_tenants(state, &scoping).await?;
    match state.storage.user_tenant(user).await {
        Ok(Some(t)) if visible.contains(&t) => Ok(()),
        Ok(_) => Err(unknown_resource("user", "users", user)),
        Err(e) => Err(storage_unavailable("user look-up failed", e)),
    }
}

fn query_json(req: &HttpRequest) -> String {
    let mut m = Map::new();
    for (k, v) in form_urlencoded::parse(req.query_string().as_bytes()) {
        m.entry(k.into_owned())
            .or_insert(Value::from(v.into_owned()));
    }
    Value::Object(m).to_string()
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

fn reply_to_response(plugin: &LoadedExternal, reply: HttpReply) -> HttpResponse {
    let Ok(status) = StatusCode::from_u16(reply.status) else {
        log::error!(
            "external auth {}: handler answered an invalid status {}",
            plugin.plugin.name,
            reply.status
        );
        return plugin_unavailable();
    };
    if reply.body_json.is_empty() {
        return HttpResponse::build(status).finish();
    }
    match serde_json::from_str::<Value>(reply.body_json.as_str()) {
        Ok(body) => HttpResponse::build(status).json(body),
        Err(e) => {
            log::error!(
                "external auth {}: handler answered a body that is not JSON: {e}",
                plugin.plugin.name
            );
            plugin_unavailable()
        }
    }
}

fn plugin_unavailable() -> HttpResponse {
    api_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "The external authentication plugin failed; try again later",
        "plugin-unavailable",
        json!({}),
        Some("external"),
    )
}

fn call_failure(
    plugin: &LoadedExternal,
    auth_type: &str,
    user: &str,
    verb: &str,
    e: CallError,
) -> HttpResponse {
    match e {
        CallError::Plugin(err) if err.kind == ErrorKind::NOT_FOUND => {
            if err.message.as_str() == "unknown user" {
                unknown_resource("user", "users", user)
            } else {
                no_data(auth_type)
            }
        }
        CallError::Plugin(err) if err.kind == ErrorKind::CONFLICT => api_error(
            StatusCode::CONFLICT,
            format!("This external authentication method has already been set: \"{auth_type}\""),
            "conflict",
            json!({ "type": auth_type }),
            Some(auth_type),
        ),
        CallError::Plugin(err) if err.kind == ErrorKind::INVALID_INPUT => api_error(
            StatusCode::BAD_REQUEST,
            err.message.as_str(),
            "invalid-data",
            json!({}),
            Some("users"),
        ),
        other => {
            log::error!(
                "external auth {} ({}): {verb} failed: {other}",
                plugin.plugin.name,
                plugin.plugin.file.display()
            );
            plugin_unavailable()
        }
    }
}

async fn dispatch(
    state: State,
    req: HttpRequest,
    payload: Option<web::Payload>,
    verb: Verb,
) -> HttpResponse {
    let user = param(&req, "user_uuid");
    let auth_type = param(&req, "auth_type");
    // Routes exist only for enabled, loaded plugins (as the original registers them).
    let Some(plugin) = state.plugins.external(&auth_type) else {
        return unknown_type(&auth_type);
    };
    let required = required_acl(
        &format!(
            "auth.users.{{user_uuid}}.external.{{auth_type}}.{}",
            verb.acl_suffix()
        ),
        &[("user_uuid", &user), ("auth_type", &auth_type)],
    );
    let caller = match authorize(&state, &req, &required).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(user_id) = path_uuid(&user) else {
        return unknown_resource("user", "users", &user);
    };
    let user = user_id.hyphenated().to_string();
    if let Err(r) = check_user(&state, &req, &caller, &user).await {
        return r;
    }
    let body = match payload {
        Some(p) => {
            let raw = match read_body(p, state.settings.max_body_bytes).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            let parsed = if raw.iter().all(u8::is_ascii_whitespace) {
                Map::new()
            } else {
                match json_object_body(&raw) {
                    Ok(m) => m,
                    Err(r) => return r,
                }
            };
            Value::Object(parsed).to_string()
        }
        None => "{}".to_string(),
    };
    let query = query_json(&req);
    let timeout = state.settings.plugin_call_timeout;
    let (u, b, q) = (user.clone(), body, query);
    let outcome = plugin
        .plugin
        .call(timeout, move |p| match verb {
            Verb::Get => p.get(RStr::from_str(&u), RStr::from_str(&q)),
            Verb::Create => p.create(RStr::from_str(&u), RStr::from_str(&b), RStr::from_str(&q)),
            Verb::Update => p.update(RStr::from_str(&u), RStr::from_str(&b), RStr::from_str(&q)),
            Verb::Delete => p.delete(RStr::from_str(&u), RStr::from_str(&q)),
        })
        .await;
    match outcome {
        Ok(reply) => reply_to_response(&plugin, reply),
        Err(e) => call_failure(&plugin, &auth_type, &user, verb.acl_suffix(), e),
    }
}

async fn plugin_get(state: State, req: HttpRequest) -> HttpResponse {
    dispatch(state, req, None, Verb::Get).await
}

async fn plugin_create(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    dispatch(state, req, Some(payload), Verb::Create).await
}

async fn plugin_update(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    dispatch(state, req, Some(payload), Verb::Update).await
}

async fn plugin_delete(state: State, req: HttpRequest) -> HttpResponse {
    dispatch(state, req, None, Verb::Delete).await
}

/// `GET /0.1/users/{user_uuid}/external`: every enabled type, whether the user has data for it,
/// that data through the plugin's safe view only, and the plugin's `plugin_info`.
async fn list_user_external(state: State, req: HttpRequest) -> HttpResponse {
    let user = param(&req, "user_uuid");
    let required = required_acl(
        "auth.users.{user_uuid}.external.read",
        &[("user_uuid", &user)],
    );
    if let Err(r) = authorize(&state, &req, &required).await {
        return r;
    }
    // The original's `uuid` path converter: a segment that is not a UUID matches no route.
    let Some(user) = path_uuid(&user).map(|u| u.hyphenated().to_string()) else {
        return super::errors::route_not_found();
    };
    let params = match listing::parse(&req, &["type"], "type") {
        Ok(p) => p,
        Err(r) => return r.into(),
    };
    let client = match state.storage.client().await {
        Ok(c) => c,
        Err(e) => return storage_unavailable("database unavailable", e),
    };
    let rows = match external::list_user_data(&client, &state.keyring, &user).await {
        Ok(r) => r,
        Err(e) => return store_failure("listing external auths failed", "", e),
    };
    drop(client);
    // Types whose plugin is not loaded are skipped (the original answers 500 for them).
    let rows: Vec<(external::UserExternal, Arc<LoadedExternal>)> = rows
        .into_iter()
        .filter_map(|r| state.plugins.external(&r.auth_type).map(|p| (r, p)))
        .collect();
    let total = rows.len();
    let type_filter = params.filter("type").map(str::to_lowercase);
    let pattern = params.search.as_deref().map(like_to_regex);
    let mut selected: Vec<_> = rows
        .into_iter()
        .filter(|(r, _)| {
            type_filter
                .as_ref()
                .is_none_or(|t| r.auth_type.to_lowercase() == *t)
        })
        .filter(|(r, _)| pattern.as_ref().is_none_or(|p| p.is_match(&r.auth_type)))
        .collect();
    if params.descending {
        selected.reverse();
    }
    let filtered = selected.len();
    let start = usize::try_from(params.offset)
        .unwrap_or(usize::MAX)
        .min(filtered);
    let end = match params.limit {
        Some(l) => start
            .saturating_add(usize::try_from(l).unwrap_or(usize::MAX))
            .min(filtered),
        None => filtered,
    };
    let mut items = Vec::new();
    for (row, plugin) in &selected[start..end] {
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
                        // Never fall back to the raw data.
                        log::error!(
                            "external auth {}: safe_view failed; showing nothing",
                            row.auth_type
                        );
                        json!({})
                    }
                }
            }
        };
        items.push(json!({
            "type": row.auth_type,
            "data": safe,
            "enabled": row.data.is_some(),
            "plugin_info": plugin.plugin_info,
        }));
    }
    HttpResponse::Ok().json(json!({"total": total, "filtered": filtered, "items": items}))
}

/// The SQL `ILIKE` pattern of the listing helpers as a case-insensitive regex.
fn like_to_regex(pattern: &str) -> regex::Regex {
    let mut re = String::from("(?is)^");
    for c in pattern.chars() {
        match c {
            '%' => re.push_str(".*"),
            '_' => re.push('.'),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    regex::Regex::new(&re).unwrap_or_else(|_| regex::Regex::new("^$").expect("valid regex"))
}

/// The auth type path segment: a plugin-like name, else 404.
fn config_type(req: &HttpRequest) -> Result<String, HttpResponse> {
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

async fn config_caller(
    state: &State,
    req: &HttpRequest,
    verb: &str,
) -> Result<(String, String), HttpResponse> {
    let auth_type = param(req, "auth_type");
    let required = required_acl(
        &format!("auth.{{auth_type}}.external.config.{verb}"),
        &[("auth_type", &auth_type)],
    );
    let caller = authorize(state, req, &required).await?;
    let auth_type = config_type(req)?;
    let tenant = scoping_tenant(state, req, &caller).await?;
    Ok((auth_type, tenant))
}

async fn config_get(state: State, req: HttpRequest) -> HttpResponse {
    let (auth_type, tenant) = match config_caller(&state, &req, "read").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let client = match state.storage.client().await {
        Ok(c) => c,
        Err(e) => return storage_unavailable("database unavailable", e),
    };
    match external::get_config(&client, &state.keyring, &auth_type, &tenant).await {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(StoreError::UnknownType) => api_error(
            StatusCode::NOT_FOUND,
            format!("No config found for \"{auth_type}\""),
            "unknown-config",
            json!({ "type": auth_type }),
            Some("external"),
        ),
        Err(e) => store_failure("reading external auth config failed", &auth_type, e),
    }
}

async fn config_body(state: &State, payload: web::Payload) -> Result<Value, HttpResponse> {
    let raw = read_body(payload, state.settings.max_body_bytes).await?;
    Ok(Value::Object(json_object_body(&raw)?))
}

async fn config_create(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let (auth_type, tenant) = match config_caller(&state, &req, "create").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let data = match config_body(&state, payload).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let client = match state.storage.client().await {
        Ok(c) => c,
        Err(e) => return storage_unavailable("database unavailable", e),
    };
    match external::create_config(&client, &state.keyring, &auth_type, &tenant, &data).await {
        Ok(()) => HttpResponse::Created().json(""),
        Err(e) => store_failure("storing external auth config failed", &auth_type, e),
    }
}

async fn config_update(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let (auth_type, tenant) = match config_caller(&state, &req, "update").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let data = match config_body(&state, payload).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let client = match state.storage.client().await {
        Ok(c) => c,
        Err(e) => return storage_unavailable("database unavailable", e),
    };
    match external::update_config(&client, &state.keyring, &auth_type, &tenant, &data).await {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(e) => store_failure("updating external auth config failed", &auth_type, e),
    }
}

async fn config_delete(state: State, req: HttpRequest) -> HttpResponse {
    let (auth_type, tenant) = match config_caller(&state, &req, "delete").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let client = match state.storage.client().await {
        Ok(c) => c,
        Err(e) => return storage_unavailable("database unavailable", e),
    };
    match external::delete_config(&client, &auth_type, &tenant).await {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(e) => store_failure("deleting external auth config failed", &auth_type, e),
    }
}

/// `GET /0.1/external/{auth_type}/users`
async fn connected_users(state: State, req: HttpRequest) -> HttpResponse {
    let auth_type = param(&req, "auth_type");
    let required = required_acl(
        "auth.{auth_type}.external.users.read",
        &[("auth_type", &auth_type)],
    );
    let caller = match authorize(&state, &req, &required).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let params = match listing::parse(&req, &[], "") {
        Ok(p) => p,
        Err(r) => return r.into(),
    };
    let scoping = match scoping_tenant(&state, &req, &caller).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let tenants = if params.recurse {
        match visible_tenants(&state, &scoping).await {
            Ok(t) => t,
            Err(r) => return r,
        }
    } else {
        vec![scoping]
    };
    let client = match state.storage.client().await {
        Ok(c) => c,
        Err(e) => return storage_unavailable("database unavailable", e),
    };
    match external::connected_users(&client, &auth_type, &tenants, params.limit, params.offset)
        .await
    {
        Ok((count, users)) => HttpResponse::Ok().json(json!({
            "total": count,
            "filtered": count,
            "items": users.into_iter().map(|u| json!({"uuid": u})).collect::<Vec<_>>(),
        })),
        Err(e) => store_failure("listing connected users failed", &auth_type, e),
    }
}
