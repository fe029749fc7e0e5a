//! Policies and policy associations (spec management §8, §9; core §2.1, §2.4):
//! `/policies`, `/policies/{policy_uuid|policy_slug}`, `/policies/{…}/acl/{access}`,
//! `/users/{user_uuid}/policies[/{…}]` and `/groups/{group_uuid}/policies[/{…}]`.
//!
//! A UUID-shaped `{policy}` segment selects the uuid semantics (visible tenants of the scoping
//! tenant); anything else is a slug, resolved in the scoping tenant only.
//!
//! Differences with the original, on purpose:
//! * the `/acl/{access}` endpoints refuse (403) to edit a config-managed policy or a shared
//!   policy of another tenant, as `PUT /policies/{…}` does (the original lets a sub-tenant edit
//!   its parent's shared policy there);
//! * `read_only=true|false` list filters select exactly the policies presented with that
//!   `read_only` value (the original's `true` only sees the top tenant's shared policies, and its
//!   `false` keeps config-managed policies owned by a listed tenant);
//! * a name without any slug character (e.g. `ééé`) gets a random slug instead of an empty one;
//!   a generated slug is checked against existing slugs case-insensitively, as the unique index;
//! * NUL characters in name, description or ACL are a 400 instead of a database error (500);
//!   a slug with a trailing newline is refused (Python's `$` accepts it).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use wazo_auth_core::policies::{self, ListQuery, NewPolicy, Order, Policy, PolicyError, Scope};

use super::auth::{authorize, required_acl, scoping_tenant, visible_tenants, Caller};
use super::errors::{api_error, plain_error, storage_unavailable, token_error, unknown_resource};
use super::listing::{self, ListParams};
use super::request::{path_uuid, read_body};
use super::State;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/policies")
            .route(web::get().to(list))
            .route(web::head().to(list))
            .route(web::post().to(create))
            .default_service(web::to(other_method)),
    )
    .service(
        web::resource("/policies/{policy}")
            .route(web::get().to(get))
            .route(web::head().to(get))
            .route(web::put().to(update))
            .route(web::delete().to(delete))
            .default_service(web::to(other_method)),
    )
    .service(
        web::resource("/policies/{policy}/acl/{access}")
            .route(web::put().to(add_access))
            .route(web::delete().to(remove_access))
            .default_service(web::to(other_method)),
    )
    .service(
        web::resource("/users/{user_uuid}/policies")
            .route(web::get().to(list_user_policies))
            .route(web::head().to(list_user_policies))
            .default_service(web::to(other_method)),
    )
    .service(
        web::resource("/users/{user_uuid}/policies/{policy}")
            .route(web::put().to(add_user_policy))
            .route(web::delete().to(remove_user_policy))
            .default_service(web::to(other_method)),
    )
    .service(
        web::resource("/groups/{group_uuid}/policies")
            .route(web::get().to(list_group_policies))
            .route(web::head().to(list_group_policies))
            .default_service(web::to(other_method)),
    )
    .service(
        web::resource("/groups/{group_uuid}/policies/{policy}")
            .route(web::put().to(add_group_policy))
            .route(web::delete().to(remove_group_policy))
            .default_service(web::to(other_method)),
    );
}

// ------------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------------

const NAME_MAX_CHARS: usize = 80;
const SLUG_MAX_CHARS: usize = 80;

/// The router's 404 (a `uuid` path converter rejected the value: no route matches).
fn no_route() -> HttpResponse {
    super::errors::route_not_found()
}

/// 405 on a known route; 404 when a `user_uuid`/`group_uuid` parameter is not a UUID.
async fn other_method(req: HttpRequest) -> HttpResponse {
    if req
        .match_info()
        .iter()
        .any(|(name, value)| name.ends_with("_uuid") && path_uuid(value).is_none())
    {
        return no_route();
    }
    plain_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "The method is not allowed for the requested URL.",
    )
}

/// A path parameter, fully percent-decoded (the router leaves `%25`, `%2F` and `%2B` encoded).
fn path_param(req: &HttpRequest, name: &str) -> String {
    let raw = req.match_info().get(name).unwrap_or_default();
    if !raw.contains('%') {
        return raw.to_string();
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A UUID path parameter, lower-cased; 404 (no route) otherwise.
fn uuid_param(req: &HttpRequest, name: &str) -> Result<String, HttpResponse> {
    path_uuid(&path_param(req, name))
        .map(|u| u.hyphenated().to_string())
        .ok_or_else(no_route)
}

/// How the `{policy}` segment designates a policy.
enum PolicyRef {
    Uuid(String),
    Slug(String),
}

impl PolicyRef {
    fn from_path(req: &HttpRequest) -> PolicyRef {
        let raw = path_param(req, "policy");
        match path_uuid(&raw) {
            Some(u) => PolicyRef::Uuid(u.hyphenated().to_string()),
            None => PolicyRef::Slug(raw),
        }
    }

    /// The value substituted in ACL templates.
    fn value(&self) -> &str {
        match self {
            PolicyRef::Uuid(v) | PolicyRef::Slug(v) => v,
        }
    }
}

fn db_failed(e: impl std::fmt::Display) -> HttpResponse {
    storage_unavailable("policy storage", e)
}

/// Python's `repr()` of a string.
fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// 404 of a look-up by uuid or slug: `No such policy {'uuid': '…'}`.
fn no_such_policy(by: &PolicyRef) -> HttpResponse {
    let (key, value) = match by {
        PolicyRef::Uuid(v) => ("uuid", v),
        PolicyRef::Slug(v) => ("slug", v),
    };
    token_error(
        StatusCode::NOT_FOUND,
        format!("No such policy {{'{key}': {}}}", py_repr(value)),
    )
}

fn read_only_policy(uuid: &str) -> HttpResponse {
    token_error(
        StatusCode::FORBIDDEN,
        format!("Forbidden policy deletion: \"{uuid}\""),
    )
}

fn policy_failed(e: PolicyError) -> HttpResponse {
    match e {
        PolicyError::Duplicate(name) => token_error(
            StatusCode::CONFLICT,
            format!("Policy \"{name}\" already exists"),
        ),
        PolicyError::DuplicateAccess(access) => token_error(
            StatusCode::CONFLICT,
            format!("Policy already associated to {access}"),
        ),
        PolicyError::UnknownPolicy(uuid) => {
            token_error(StatusCode::NOT_FOUND, format!("No such policy {uuid}"))
        }
        PolicyError::UnknownUser(uuid) => unknown_resource("user", "users", &uuid),
        PolicyError::UnknownGroup(uuid) => unknown_resource("group", "groups", &uuid),
        PolicyError::Db(e) => db_failed(e),
    }
}

/// The privilege-escalation refusal (spec §1.2).
fn escalation(caller: &Caller, access: &str) -> HttpResponse {
    let mut details = json!({ "invalid_token": caller.token_id });
    if !access.is_empty() {
        details["required_access"] = Value::from(access);
    }
    api_error(
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        "unauthorized",
        details,
        None,
    )
}

/// Every access of `acl` may be granted by the caller.
fn check_may_add<'a>(
    caller: &Caller,
    acl: impl IntoIterator<Item = &'a String>,
) -> Result<(), HttpResponse> {
    match acl.into_iter().find(|a| !caller.acl.may_add_access(a)) {
        Some(a) => Err(escalation(caller, a)),
        None => Ok(()),
    }
}

/// Every access of `acl` may be removed by the caller.
fn check_may_remove<'a>(
    caller: &Caller,
    acl: impl IntoIterator<Item = &'a String>,
) -> Result<(), HttpResponse> {
    match acl.into_iter().find(|a| !caller.acl.may_remove_access(a)) {
        Some(a) => Err(escalation(caller, a)),
        None => Ok(()),
    }
}

/// The scoping tenant and, with `recurse`, its descendants (the scoping tenant first).
async fn scope_of(
    state: &State,
    req: &HttpRequest,
    caller: &Caller,
    recurse: bool,
) -> Result<Scope, HttpResponse> {
    let requested = scoping_tenant(state, req, caller).await?;
    let mut tenants = vec![requested.clone()];
    if recurse {
        for t in visible_tenants(state, &requested).await? {
            if t != requested {
                tenants.push(t);
            }
        }
    }
    Ok(Scope { requested, tenants })
}

/// Resolves `by` among the policies visible from `scope`; 404 when it is not.
async fn resolve(state: &State, by: &PolicyRef, scope: &Scope) -> Result<Policy, HttpResponse> {
    let client = state.storage.client().await.map_err(db_failed)?;
    let found = match by {
        PolicyRef::Uuid(u) => policies::get_visible(&client, u, scope).await,
        PolicyRef::Slug(s) => policies::get_visible_by_slug(&client, s, scope).await,
    };
    found.map_err(db_failed)?.ok_or_else(|| no_such_policy(by))
}

// ------------------------------------------------------------------------------------------------
// Bodies
// ------------------------------------------------------------------------------------------------

fn invalid_field(field: &str) -> HttpResponse {
    token_error(
        StatusCode::BAD_REQUEST,
        format!("Invalid value supplied for field: {field}"),
    )
}

/// A JSON body as the original reads it; a non-object is `Invalid value supplied for field:
/// _schema`.
fn json_body(body: &[u8]) -> Result<Map<String, Value>, HttpResponse> {
    super::request::decode_json_body(body)?.ok_or_else(|| invalid_field("_schema"))
}

/// A validated policy body.
#[derive(Debug, PartialEq)]
struct PolicyBody {
    name: String,
    slug: Option<String>,
    description: Option<String>,
    acl: Vec<String>,
    shared: bool,
}

/// marshmallow's `Boolean`.
fn loose_bool(v: &Value) -> Option<bool> {
    const TRUTHY: &[&str] = &[
        "t", "T", "true", "True", "TRUE", "on", "On", "ON", "y", "Y", "yes", "Yes", "YES", "1",
    ];
    const FALSY: &[&str] = &[
        "f", "F", "false", "False", "FALSE", "off", "Off", "OFF", "n", "N", "no", "No", "NO", "0",
    ];
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_f64() {
            Some(1.0) => Some(true),
            Some(0.0) => Some(false),
            _ => None,
        },
        Value::String(s) if TRUTHY.contains(&s.as_str()) => Some(true),
        Value::String(s) if FALSY.contains(&s.as_str()) => Some(false),
        _ => None,
    }
}

/// Validates a POST (`put = false`) or PUT body; the first invalid field (in the schema's
/// order: name, slug, description, acl, shared) is reported.
fn parse_policy_body(body: &Map<String, Value>, put: bool) -> Result<PolicyBody, HttpResponse> {
    let name = match body.get("name") {
        Some(Value::String(s))
            if (1..=NAME_MAX_CHARS).contains(&s.chars().count()) && !s.contains('\0') =>
        {
            s.clone()
        }
        _ => return Err(invalid_field("name")),
    };
    let slug = if put {
        None
    } else {
        match body.get("slug") {
            None | Some(Value::Null) => None,
            Some(Value::String(s))
                if (1..=SLUG_MAX_CHARS).contains(&s.chars().count())
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
            {
                Some(s.clone())
            }
            Some(_) => return Err(invalid_field("slug")),
        }
    };
    let description = match body.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.contains('\0') => Some(s.clone()),
        Some(_) => return Err(invalid_field("description")),
    };
    let acl = match body.get("acl") {
        None => Vec::new(),
        Some(Value::Array(items)) => {
            let mut acl = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) if !s.contains('\0') => acl.push(s.clone()),
                    _ => return Err(invalid_field("acl")),
                }
            }
            acl
        }
        Some(_) => return Err(invalid_field("acl")),
    };
    let shared = if put {
        false
    } else {
        match body.get("shared") {
            None => false,
            Some(v) => loose_bool(v).ok_or_else(|| invalid_field("shared"))?,
        }
    };
    Ok(PolicyBody {
        name,
        slug,
        description,
        acl,
        shared,
    })
}

/// Decodes and validates a POST (`put = false`) or PUT body as `read_policy_body` does (for the
/// fuzz targets, through [`super::body_check`]).
pub(super) fn check_body(body: &[u8], put: bool) -> Result<(), HttpResponse> {
    parse_policy_body(&json_body(body)?, put).map(drop)
}

async fn read_policy_body(
    state: &State,
    payload: web::Payload,
    put: bool,
) -> Result<PolicyBody, HttpResponse> {
    let bytes = read_body(payload, state.settings.max_body_bytes).await?;
    parse_policy_body(&json_body(&bytes)?, put)
}

// ------------------------------------------------------------------------------------------------
// Lists
// ------------------------------------------------------------------------------------------------

fn list_query(params: &ListParams, with_slug: bool) -> ListQuery {
    let f = |k: &str| params.filter(k).map(str::to_string);
    ListQuery {
        order: match params.order.as_str() {
            "slug" => Order::Slug,
            "description" => Order::Description,
            "uuid" => Order::Uuid,
            _ => Order::Name,
        },
        descending: params.descending,
        limit: params.limit,
        offset: params.offset,
        search: params.search.clone(),
        uuid: f("uuid"),
        name: f("name"),
        slug: if with_slug { f("slug") } else { None },
        user_uuid: f("user_uuid"),
        group_uuid: f("group_uuid"),
        tenant_uuid: f("tenant_uuid"),
        read_only: None,
    }
}

/// `GET /policies`.
async fn list(state: State, req: HttpRequest) -> HttpResponse {
    match list_inner(&state, &req).await {
        Ok(r) | Err(r) => r,
    }
}

async fn list_inner(state: &State, req: &HttpRequest) -> Result<HttpResponse, HttpResponse> {
    let caller = authorize(state, req, "auth.policies.read").await?;
    let params = listing::parse(
        req,
        &["name", "slug", "description", "uuid", "read_only"],
        "name",
    )?;
    let read_only = params.bool_filter("read_only")?;
    let scope = scope_of(state, req, &caller, params.recurse).await?;
    if params.order == "read_only" {
        return Err(token_error(
            StatusCode::BAD_REQUEST,
            "Invalid sort column: read_only",
        ));
    }
    let mut q = list_query(&params, true);
    q.read_only = read_only;
    let client = state.storage.client().await.map_err(db_failed)?;
    let (items, total) = policies::list(&client, &scope, &q)
        .await
        .map_err(db_failed)?;
    let items: Vec<Value> = items.iter().map(|p| p.to_json(Some(&scope))).collect();
    Ok(HttpResponse::Ok().json(json!({ "items": items, "total": total })))
}

/// `GET /users/{user_uuid}/policies` (unscoped, no existence check).
async fn list_user_policies(state: State, req: HttpRequest) -> HttpResponse {
    match list_user_policies_inner(&state, &req).await {
        Ok(r) | Err(r) => r,
    }
}

async fn list_user_policies_inner(
    state: &State,
    req: &HttpRequest,
) -> Result<HttpResponse, HttpResponse> {
    let user = uuid_param(req, "user_uuid")?;
    authorize(
        state,
        req,
        &required_acl(
            "auth.users.{user_uuid}.policies.read",
            &[("user_uuid", &user)],
        ),
    )
    .await?;
    let params = listing::parse(req, &["name", "description", "uuid"], "name")?;
    let q = list_query(&params, false);
    let client = state.storage.client().await.map_err(db_failed)?;
    let (items, total, filtered) = policies::list_user_policies(&client, &user, &q)
        .await
        .map_err(db_failed)?;
    let items: Vec<Value> = items.iter().map(|p| p.to_json(None)).collect();
    Ok(HttpResponse::Ok().json(json!({ "items": items, "total": total, "filtered": filtered })))
}

/// `GET /groups/{group_uuid}/policies`.
async fn list_group_policies(state: State, req: HttpRequest) -> HttpResponse {
    match list_group_policies_inner(&state, &req).await {
        Ok(r) | Err(r) => r,
    }
}

async fn list_group_policies_inner(
    state: &State,
    req: &HttpRequest,
) -> Result<HttpResponse, HttpResponse> {
    let group = uuid_param(req, "group_uuid")?;
    let caller = authorize(
        state,
        req,
        &required_acl(
            "auth.groups.{group_uuid}.policies.read",
            &[("group_uuid", &group)],
        ),
    )
    .await?;
    let scope = scope_of(state, req, &caller, true).await?;
    let client = state.storage.client().await.map_err(db_failed)?;
    if !policies::group_in_tenants(&client, &group, &scope.tenants)
        .await
        .map_err(db_failed)?
    {
        return Err(unknown_resource("group", "groups", &group));
    }
    let params = listing::parse(req, &["name", "description", "uuid"], "name")?;
    let q = list_query(&params, false);
    let (items, total, filtered) = policies::list_group_policies(&client, &group, &scope, &q)
        .await
        .map_err(db_failed)?;
    let items: Vec<Value> = items.iter().map(|p| p.to_json(Some(&scope))).collect();
    Ok(HttpResponse::Ok().json(json!({ "items": items, "total": total, "filtered": filtered })))
}

// ------------------------------------------------------------------------------------------------
// Policies
// ------------------------------------------------------------------------------------------------

/// `POST /policies`.
async fn create(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    match create_inner(&state, &req, payload).await {
        Ok(r) | Err(r) => r,
    }
}

async fn create_inner(
    state: &State,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, HttpResponse> {
    let caller = authorize(state, req, "auth.policies.create").await?;
    let body = read_policy_body(state, payload, false).await?;
    let tenant = scoping_tenant(state, req, &caller).await?;
    check_may_add(&caller, &body.acl)?;
    let mut client = state.storage.client().await.map_err(db_failed)?;
    let tx = client.transaction().await.map_err(db_failed)?;
    let policy = policies::create(
        &tx,
        &NewPolicy {
            tenant_uuid: tenant,
            name: body.name,
            slug: body.slug,
            description: body.description,
            acl: body.acl,
            shared: body.shared,
            config_managed: false,
        },
    )
    .await
    .map_err(policy_failed)?;
    tx.commit().await.map_err(db_failed)?;
    Ok(HttpResponse::Ok().json(policy.to_json(None)))
}

/// The template of a policy route's required ACL.
fn policy_acl(template_suffix: &str, by: &PolicyRef) -> String {
    let (param, template) = match by {
        PolicyRef::Uuid(_) => (
            "policy_uuid",
            format!("auth.policies.{{policy_uuid}}.{template_suffix}"),
        ),
        PolicyRef::Slug(_) => (
            "policy_slug",
            format!("auth.policies.{{policy_slug}}.{template_suffix}"),
        ),
    };
    required_acl(&template, &[(param, by.value())])
}

/// The tenants and policy a `/policies/{…}` request acts on: for a uuid, the visible tenants;
/// for a slug, the scoping tenant only (the slug is resolved first: 404).
async fn target(
    state: &State,
    req: &HttpRequest,
    caller: &Caller,
    by: &PolicyRef,
) -> Result<(Scope, Option<Policy>), HttpResponse> {
    match by {
        PolicyRef::Uuid(_) => Ok((scope_of(state, req, caller, true).await?, None)),
        PolicyRef::Slug(_) => {
            let scope = scope_of(state, req, caller, false).await?;
            let policy = resolve(state, by, &scope).await?;
            Ok((scope, Some(policy)))
        }
    }
}

/// `GET /policies/{…}`.
async fn get(state: State, req: HttpRequest) -> HttpResponse {
    match get_inner(&state, &req).await {
        Ok(r) | Err(r) => r,
    }
}

async fn get_inner(state: &State, req: &HttpRequest) -> Result<HttpResponse, HttpResponse> {
    let by = PolicyRef::from_path(req);
    let caller = authorize(state, req, &policy_acl("read", &by)).await?;
    let (scope, found) = target(state, req, &caller, &by).await?;
    let policy = match found {
        Some(p) => p,
        None => resolve(state, &by, &scope).await?,
    };
    Ok(HttpResponse::Ok().json(policy.to_json(Some(&scope))))
}

/// Locks and re-reads, in `tx`, the policy `uuid` if visible from `scope`.
async fn lock_visible(
    tx: &deadpool_postgres::Transaction<'_>,
    uuid: &str,
    scope: &Scope,
) -> Result<Option<Policy>, HttpResponse> {
    if policies::find_for_update(tx, uuid)
        .await
        .map_err(db_failed)?
        .is_none()
    {
        return Ok(None);
    }
    policies::get_visible(tx, uuid, scope)
        .await
        .map_err(db_failed)
}

/// `PUT /policies/{…}`.
async fn update(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    match update_inner(&state, &req, payload).await {
        Ok(r) | Err(r) => r,
    }
}

async fn update_inner(
    state: &State,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, HttpResponse> {
    let by = PolicyRef::from_path(req);
    let caller = authorize(state, req, &policy_acl("update", &by)).await?;
    let (scope, found) = target(state, req, &caller, &by).await?;
    let body = read_policy_body(state, payload, true).await?;
    check_may_add(&caller, &body.acl)?;
    let uuid = match (&by, &found) {
        (_, Some(p)) => p.uuid.clone(),
        (PolicyRef::Uuid(u), None) => u.clone(),
        (PolicyRef::Slug(_), None) => return Err(no_such_policy(&by)),
    };
    let mut client = state.storage.client().await.map_err(db_failed)?;
    let tx = client.transaction().await.map_err(db_failed)?;
    let Some(current) = lock_visible(&tx, &uuid, &scope).await? else {
        return Err(no_such_policy(&PolicyRef::Uuid(uuid)));
    };
    check_may_remove(
        &caller,
        current.acl.iter().filter(|a| !body.acl.contains(a)),
    )?;
    if current.is_read_only_for(&scope.tenants) {
        return Err(read_only_policy(&uuid));
    }
    let updated = policies::update(
        &tx,
        &uuid,
        &scope.tenants,
        &body.name,
        body.description.as_deref(),
        &body.acl,
    )
    .await
    .map_err(policy_failed)?;
    tx.commit().await.map_err(db_failed)?;
    Ok(HttpResponse::Ok().json(updated.to_json(None)))
}

/// `DELETE /policies/{…}`.
async fn delete(state: State, req: HttpRequest) -> HttpResponse {
    match delete_inner(&state, &req).await {
        Ok(r) | Err(r) => r,
    }
}

async fn delete_inner(state: &State, req: &HttpRequest) -> Result<HttpResponse, HttpResponse> {
    let by = PolicyRef::from_path(req);
    let caller = authorize(state, req, &policy_acl("delete", &by)).await?;
    let (scope, found) = target(state, req, &caller, &by).await?;
    let uuid = match (&by, &found) {
        (_, Some(p)) => p.uuid.clone(),
        (PolicyRef::Uuid(u), None) => u.clone(),
        (PolicyRef::Slug(_), None) => return Err(no_such_policy(&by)),
    };
    let mut client = state.storage.client().await.map_err(db_failed)?;
    let tx = client.transaction().await.map_err(db_failed)?;
    let Some(current) = lock_visible(&tx, &uuid, &scope).await? else {
        return Err(no_such_policy(&PolicyRef::Uuid(uuid)));
    };
    check_may_remove(&caller, &current.acl)?;
    if current.is_read_only_for(&scope.tenants) {
        return Err(read_only_policy(&uuid));
    }
    policies::delete(&tx, &uuid, &scope.tenants)
        .await
        .map_err(policy_failed)?;
    tx.commit().await.map_err(db_failed)?;
    Ok(HttpResponse::NoContent().finish())
}

/// `PUT /policies/{…}/acl/{access}`.
async fn add_access(state: State, req: HttpRequest) -> HttpResponse {
    match access_inner(&state, &req, true).await {
        Ok(r) | Err(r) => r,
    }
}

/// `DELETE /policies/{…}/acl/{access}`.
async fn remove_access(state: State, req: HttpRequest) -> HttpResponse {
    match access_inner(&state, &req, false).await {
        Ok(r) | Err(r) => r,
    }
}

async fn access_inner(
    state: &State,
    req: &HttpRequest,
    add: bool,
) -> Result<HttpResponse, HttpResponse> {
    let by = PolicyRef::from_path(req);
    let access = path_param(req, "access");
    let caller = authorize(state, req, &policy_acl("update", &by)).await?;
    let (scope, found) = target(state, req, &caller, &by).await?;
    let allowed = if add {
        caller.acl.may_add_access(&access)
    } else {
        caller.acl.may_remove_access(&access)
    };
    if !allowed {
        return Err(escalation(&caller, &access));
    }
    let uuid = match (&by, &found) {
        (_, Some(p)) => p.uuid.clone(),
        (PolicyRef::Uuid(u), None) => u.clone(),
        (PolicyRef::Slug(_), None) => return Err(no_such_policy(&by)),
    };
    let mut client = state.storage.client().await.map_err(db_failed)?;
    let tx = client.transaction().await.map_err(db_failed)?;
    let Some(current) = lock_visible(&tx, &uuid, &scope).await? else {
        return Err(no_such_policy(&PolicyRef::Uuid(uuid)));
    };
    if current.is_read_only_for(&scope.tenants) {
        return Err(read_only_policy(&uuid));
    }
    if add {
        policies::add_access(&tx, &uuid, &access)
            .await
            .map_err(policy_failed)?;
    } else {
        policies::remove_access(&tx, &uuid, &access)
            .await
            .map_err(db_failed)?;
    }
    tx.commit().await.map_err(db_failed)?;
    Ok(HttpResponse::NoContent().finish())
}

// ------------------------------------------------------------------------------------------------
// Associations
// ------------------------------------------------------------------------------------------------

fn association_acl(owner: &str, owner_value: &str, by: &PolicyRef, action: &str) -> String {
    let (param, name) = match by {
        PolicyRef::Uuid(_) => ("policy_uuid", "{policy_uuid}"),
        PolicyRef::Slug(_) => ("policy_slug", "{policy_slug}"),
    };
    let template = format!("auth.{owner}s.{{{owner}_uuid}}.policies.{name}.{action}");
    let owner_param = format!("{owner}_uuid");
    required_acl(
        &template,
        &[(owner_param.as_str(), owner_value), (param, by.value())],
    )
}

/// `PUT /users/{user_uuid}/policies/{…}`: the policy is looked up without tenant restriction
/// (a slug: in the scoping tenant), the user without any either (as the original).
async fn add_user_policy(state: State, req: HttpRequest) -> HttpResponse {
    match add_user_policy_inner(&state, &req).await {
        Ok(r) | Err(r) => r,
    }
}

async fn add_user_policy_inner(
    state: &State,
    req: &HttpRequest,
) -> Result<HttpResponse, HttpResponse> {
    let user = uuid_param(req, "user_uuid")?;
    let by = PolicyRef::from_path(req);
    let caller = authorize(state, req, &association_acl("user", &user, &by, "create")).await?;
    let (_, found) = target(state, req, &caller, &by).await?;
    let uuid = match (&by, &found) {
        (_, Some(p)) => p.uuid.clone(),
        (PolicyRef::Uuid(u), None) => u.clone(),
        (PolicyRef::Slug(_), None) => return Err(no_such_policy(&by)),
    };
    let mut client = state.storage.client().await.map_err(db_failed)?;
    let tx = client.transaction().await.map_err(db_failed)?;
    let policy = policies::find(&tx, &uuid)
        .await
        .map_err(db_failed)?
        .ok_or_else(|| no_such_policy(&PolicyRef::Uuid(uuid.clone())))?;
    check_may_add(&caller, &policy.acl)?;
    policies::add_user_policy(&tx, &user, &uuid)
        .await
        .map_err(policy_failed)?;
    tx.commit().await.map_err(db_failed)?;
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /users/{user_uuid}/policies/{…}`: the policy must be visible.
async fn remove_user_policy(state: State, req: HttpRequest) -> HttpResponse {
    match remove_user_policy_inner(&state, &req).await {
        Ok(r) | Err(r) => r,
    }
}

async fn remove_user_policy_inner(
    state: &State,
    req: &HttpRequest,
) -> Result<HttpResponse, HttpResponse> {
    let user = uuid_param(req, "user_uuid")?;
    let by = PolicyRef::from_path(req);
    let caller = authorize(state, req, &association_acl("user", &user, &by, "delete")).await?;
    let (scope, found) = target(state, req, &caller, &by).await?;
    let policy = match found {
        Some(p) => p,
        None => resolve(state, &by, &scope).await?,
    };
    check_may_remove(&caller, &policy.acl)?;
    let mut client = state.storage.client().await.map_err(db_failed)?;
    let tx = client.transaction().await.map_err(db_failed)?;
    let removed = policies::remove_user_policy(&tx, &user, &policy.uuid)
        .await
        .map_err(db_failed)?;
    if removed == 0 {
        if !policies::user_exists(&tx, &user).await.map_err(db_failed)? {
            return Err(unknown_resource("user", "users", &user));
        }
        if policies::find(&tx, &policy.uuid)
            .await
            .map_err(db_failed)?
            .is_none()
        {
            return Err(policy_failed(PolicyError::UnknownPolicy(policy.uuid)));
        }
    }
    tx.commit().await.map_err(db_failed)?;
    Ok(HttpResponse::NoContent().finish())
}

/// `PUT /groups/{group_uuid}/policies/{…}`.
async fn add_group_policy(state: State, req: HttpRequest) -> HttpResponse {
    match group_policy_inner(&state, &req, true).await {
        Ok(r) | Err(r) => r,
    }
}

/// `DELETE /groups/{group_uuid}/policies/{…}`.
async fn remove_group_policy(state: State, req: HttpRequest) -> HttpResponse {
    match group_policy_inner(&state, &req, false).await {
        Ok(r) | Err(r) => r,
    }
}

/// Group ↔ policy: group visible (404 unknown-group) → policy visible (404) → escalation (401)
/// → add/remove, both idempotent. A slug is resolved (404) before anything else.
async fn group_policy_inner(
    state: &State,
    req: &HttpRequest,
    add: bool,
) -> Result<HttpResponse, HttpResponse> {
    let group = uuid_param(req, "group_uuid")?;
    let by = PolicyRef::from_path(req);
    let action = if add { "create" } else { "delete" };
    let caller = authorize(state, req, &association_acl("group", &group, &by, action)).await?;
    let (_, found) = target(state, req, &caller, &by).await?;
    let uuid = match (&by, &found) {
        (_, Some(p)) => p.uuid.clone(),
        (PolicyRef::Uuid(u), None) => u.clone(),
        (PolicyRef::Slug(_), None) => return Err(no_such_policy(&by)),
    };
    let scope = scope_of(state, req, &caller, true).await?;
    let mut client = state.storage.client().await.map_err(db_failed)?;
    let tx = client.transaction().await.map_err(db_failed)?;
    if !policies::group_in_tenants(&tx, &group, &scope.tenants)
        .await
        .map_err(db_failed)?
    {
        return Err(unknown_resource("group", "groups", &group));
    }
    let policy = policies::get_visible(&tx, &uuid, &scope)
        .await
        .map_err(db_failed)?
        .ok_or_else(|| no_such_policy(&PolicyRef::Uuid(uuid.clone())))?;
    if add {
        check_may_add(&caller, &policy.acl)?;
        policies::add_group_policy(&tx, &group, &uuid)
            .await
            .map_err(policy_failed)?;
    } else {
        check_may_remove(&caller, &policy.acl)?;
        policies::remove_group_policy(&tx, &group, &uuid)
            .await
            .map_err(db_failed)?;
    }
    tx.commit().await.map_err(db_failed)?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Result<PolicyBody, u16> {
        let m = match v {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        parse_policy_body(&m, false).map_err(|r| r.status().as_u16())
    }

    #[test]
    fn python_repr() {
        assert_eq!(py_repr("abc"), "'abc'");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(py_repr("a\\b\n"), "'a\\\\b\\n'");
        assert_eq!(py_repr("\u{1}"), "'\\x01'");
    }

    #[test]
    fn bodies() {
        let ok = body(json!({"name": "n"})).unwrap();
        assert_eq!(
            ok,
            PolicyBody {
                name: "n".into(),
                slug: None,
                description: None,
                acl: vec![],
                shared: false
            }
        );
        let full = body(json!({"name": "n", "slug": "s-1_", "description": "d",
                               "acl": ["a", "!b"], "shared": "yes"}))
        .unwrap();
        assert_eq!(full.slug.as_deref(), Some("s-1_"));
        assert!(full.shared);
        for bad in [
            json!({}),
            json!({"name": null}),
            json!({"name": 42}),
            json!({"name": ""}),
            json!({"name": "x".repeat(81)}),
            json!({"name": "a\u{0}b"}),
            json!({"name": "n", "slug": "a b"}),
            json!({"name": "n", "slug": ""}),
            json!({"name": "n", "slug": "s\n"}),
            json!({"name": "n", "description": 42}),
            json!({"name": "n", "acl": null}),
            json!({"name": "n", "acl": "a"}),
            json!({"name": "n", "acl": [1]}),
            json!({"name": "n", "shared": null}),
            json!({"name": "n", "shared": "maybe"}),
            json!({"name": "n", "shared": 2}),
        ] {
            assert_eq!(body(bad.clone()), Err(400), "{bad}");
        }
        assert!(body(json!({"name": "é".repeat(80)})).is_ok());
    }

    #[test]
    fn non_object_bodies() {
        assert!(json_body(b"null").unwrap().is_empty());
        assert!(json_body(b"false").unwrap().is_empty());
        assert!(json_body(b"[]").unwrap().is_empty());
        for b in [&b"42"[..], b"true", b"\"s\"", b"[1]"] {
            assert_eq!(json_body(b).unwrap_err().status(), StatusCode::BAD_REQUEST);
        }
        assert_eq!(
            json_body(b"").unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
    }
}
