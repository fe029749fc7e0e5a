//! Groups and user ↔ group memberships (spec management §7, §9; core §2.4, §2.5):
//! `/groups`, `/groups/{group_uuid}`, `/groups/{group_uuid}/users[/{user_uuid}]` and
//! `/users/{user_uuid}/groups`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use wazo_auth_core::groups::{
    self, Group, GroupError, GroupFilter, GroupScope, Page, UserFilter, NAME_MAX_CHARS,
    SLUG_MAX_CHARS,
};

use super::auth::{authorize, required_acl, scoping_tenant, visible_tenants};
use super::errors::{
    api_error, invalid_data, plain_error, storage_unavailable, token_error, unknown_resource,
};
use super::listing::{self, ListParams};
use super::request::{path_uuid, read_body};
use super::State;

const RESOURCE: &str = "groups";
const SLUG_PATTERN: &str = "^[a-zA-Z0-9_-]+$";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/groups")
            .route(web::get().to(list))
            .route(web::head().to(list))
            .route(web::post().to(create))
            .default_service(web::to(other_method)),
    )
    .service(
        web::resource("/groups/{group_uuid}")
            .route(web::get().to(get))
            .route(web::head().to(get))
            .route(web::put().to(update))
            .route(web::delete().to(delete))
            .default_service(web::to(other_method)),
    )
    .service(
        web::resource("/groups/{group_uuid}/users")
            .route(web::get().to(list_members))
            .route(web::head().to(list_members))
            .default_service(web::to(other_method)),
    )
    .service(
        web::resource("/groups/{group_uuid}/users/{user_uuid}")
            .route(web::put().to(add_member))
            .route(web::delete().to(remove_member))
            .default_service(web::to(other_method)),
    )
    .service(
        web::resource("/users/{user_uuid}/groups")
            .route(web::get().to(list_user_groups))
            .route(web::head().to(list_user_groups))
            .default_service(web::to(other_method)),
    );
}

// ------------------------------------------------------------------------------------------------
// Small helpers
// ------------------------------------------------------------------------------------------------

/// The router's 404 (the original's `uuid` path converter rejects the value: no route matches).
fn no_route() -> HttpResponse {
    super::errors::route_not_found()
}

/// 405 on a known route; 404 when a path parameter is not a UUID (no route would match).
async fn other_method(req: HttpRequest) -> HttpResponse {
    if req
        .match_info()
        .iter()
        .any(|(_, value)| path_uuid(value).is_none())
    {
        return no_route();
    }
    plain_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "The method is not allowed for the requested URL.",
    )
}

/// A UUID path parameter, lower-cased; 404 (no route) otherwise.
fn uuid_param(req: &HttpRequest, name: &str) -> Result<String, HttpResponse> {
    req.match_info()
        .get(name)
        .and_then(path_uuid)
        .map(|u| u.hyphenated().to_string())
        .ok_or_else(no_route)
}

fn db_failed(e: impl std::fmt::Display) -> HttpResponse {
    storage_unavailable("group storage", e)
}

/// Maps a write error; `name` is the group name of the 409 message.
fn write_failed(e: GroupError, name: &str, group: &str, user: &str) -> HttpResponse {
    match e {
        GroupError::Duplicate => token_error(
            StatusCode::CONFLICT,
            format!("Group \"{name}\" already exists"),
        ),
        GroupError::UnknownTenant => api_error(
            StatusCode::NOT_FOUND,
            "No such tenant",
            "unknown-tenant",
            json!({}),
            Some("tenants"),
        ),
        GroupError::UnknownGroup => unknown_group(group),
        GroupError::UnknownUser => unknown_user(user),
        GroupError::Storage(e) => db_failed(e),
    }
}

fn unknown_group(uuid: &str) -> HttpResponse {
    unknown_resource("group", "groups", uuid)
}

fn unknown_user(uuid: &str) -> HttpResponse {
    unknown_resource("user", "users", uuid)
}

fn forbidden_group(uuid: &str) -> HttpResponse {
    api_error(
        StatusCode::FORBIDDEN,
        format!("Forbidden group modification: \"{uuid}\""),
        "forbidden-group",
        json!({ "uuid": uuid }),
        Some(RESOURCE),
    )
}

fn mismatching_tenant(user_tenant: &str, group_tenant: &str) -> HttpResponse {
    api_error(
        StatusCode::BAD_REQUEST,
        "Ressources are not in the same tenant",
        "missmatching-tenant",
        json!({ "user_tenant_uuid": user_tenant, "group_tenant_uuid": group_tenant }),
        Some(RESOURCE),
    )
}

// ------------------------------------------------------------------------------------------------
// Body validation (GroupRequestSchema / GroupPutSchema)
// ------------------------------------------------------------------------------------------------

/// A valid group body.
#[derive(Debug, PartialEq)]
struct GroupBody {
    name: String,
    /// `None`: generate one (POST); always ignored by PUT.
    slug: Option<String>,
}

fn field_error(field: &str, message: &str, constraint_id: &str, constraint: Value) -> HttpResponse {
    invalid_data(RESOURCE, field, message, constraint_id, constraint)
}

/// A string field with a length range. `Ok(None)` when absent or (if `nullable`) null.
fn string_field(
    body: &Map<String, Value>,
    field: &str,
    required: bool,
    nullable: bool,
    max: usize,
) -> Result<Option<String>, HttpResponse> {
    let value = match body.get(field) {
        None if required => {
            return Err(field_error(
                field,
                "Missing data for required field.",
                "required",
                json!("required"),
            ))
        }
        None => return Ok(None),
        Some(Value::Null) if nullable => return Ok(None),
        Some(Value::Null) => {
            return Err(field_error(
                field,
                "Field may not be null.",
                "not_null",
                json!("not_null"),
            ))
        }
        Some(Value::String(s)) => s,
        Some(_) => {
            return Err(field_error(
                field,
                "Not a valid string.",
                "type",
                json!("string"),
            ))
        }
    };
    let len = value.chars().count();
    if len < 1 || len > max {
        return Err(field_error(
            field,
            &format!("Length must be between 1 and {max}."),
            "length",
            json!({"min": 1, "max": max}),
        ));
    }
    // PostgreSQL text cannot hold NUL: refuse it as a type error instead of failing later.
    if value.contains('\0') {
        return Err(field_error(
            field,
            "Not a valid string.",
            "type",
            json!("string"),
        ));
    }
    Ok(Some(value.clone()))
}

/// Decodes and validates a group body: the decode error of the original (400
/// `{"message": "Failed to decode JSON object: ..."}`), a non-object body (400 invalid-data
/// `_schema`), then the first failing field (`name`, then `slug` for POST).
fn group_body(raw: &[u8], with_slug: bool) -> Result<GroupBody, HttpResponse> {
    let decoded = super::request::decode_json_body(raw)?
        .ok_or_else(|| super::request::invalid_input_type(RESOURCE))?;
    let body = &decoded;
    let name = string_field(body, "name", true, false, NAME_MAX_CHARS)?.unwrap_or_default();
    let slug = if with_slug {
        let slug = string_field(body, "slug", false, true, SLUG_MAX_CHARS)?;
        if let Some(s) = &slug {
            if !groups::is_valid_slug(s) {
                return Err(field_error(
                    "slug",
                    "String does not match expected pattern.",
                    "regex",
                    json!(SLUG_PATTERN),
                ));
            }
        }
        slug
    } else {
        None
    };
    Ok(GroupBody { name, slug })
}

/// [`group_body`] without its result (for the fuzz targets, through [`super::body_check`]).
pub(super) fn check_body(body: &[u8], with_slug: bool) -> Result<(), HttpResponse> {
    group_body(body, with_slug).map(drop)
}

// ------------------------------------------------------------------------------------------------
// Listing helpers
// ------------------------------------------------------------------------------------------------

fn page(params: &ListParams) -> Page {
    Page {
        order: params.order.clone(),
        descending: params.descending,
        limit: params.limit,
        offset: params.offset,
    }
}

fn owned(params: &ListParams, name: &str) -> Option<String> {
    params.filter(name).map(str::to_string)
}

fn envelope(total: i64, filtered: i64, items: Vec<Value>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "total": total, "filtered": filtered, "items": items }))
}

async fn list_groups_in(
    state: &State,
    scope: GroupScope,
    filter: GroupFilter,
    page: Page,
) -> Result<HttpResponse, HttpResponse> {
    let client = state.storage.client().await.map_err(db_failed)?;
    let items = groups::list(&client, &scope, &filter, &page)
        .await
        .map_err(db_failed)?;
    let total = groups::count(&client, &scope, None)
        .await
        .map_err(db_failed)?;
    let filtered = groups::count(&client, &scope, Some(&filter))
        .await
        .map_err(db_failed)?;
    Ok(envelope(
        total,
        filtered,
        items.iter().map(Group::to_json).collect(),
    ))
}

// ------------------------------------------------------------------------------------------------
// /groups
// ------------------------------------------------------------------------------------------------

/// `GET /groups`: params (400) → scoping tenant (401) → sort column known to the storage (400
/// shape A, `slug`/`read_only` are accepted by the schema only) → list.
async fn list(state: State, req: HttpRequest) -> HttpResponse {
    match list_inner(state, req).await {
        Ok(r) | Err(r) => r,
    }
}

async fn list_inner(state: State, req: HttpRequest) -> Result<HttpResponse, HttpResponse> {
    let caller = authorize(&state, &req, "auth.groups.read").await?;
    let params = listing::parse(&req, &["name", "slug", "uuid", "read_only"], "name")?;
    let read_only = params.bool_filter("read_only")?;
    let tenant = scoping_tenant(&state, &req, &caller).await?;
    if !matches!(params.order.as_str(), "name" | "uuid") {
        return Err(token_error(
            StatusCode::BAD_REQUEST,
            format!("Invalid sort column: {}", params.order),
        ));
    }
    let tenants = if params.recurse {
        visible_tenants(&state, &tenant).await?
    } else {
        vec![tenant]
    };
    let filter = GroupFilter {
        uuid: owned(&params, "uuid"),
        name: owned(&params, "name"),
        slug: owned(&params, "slug"),
        user_uuid: owned(&params, "user_uuid"),
        read_only,
        policy_uuid: owned(&params, "policy_uuid"),
        policy_slug: owned(&params, "policy_slug"),
        search: params.search.clone(),
    };
    let scope = GroupScope {
        tenants: Some(tenants),
        member: None,
    };
    list_groups_in(&state, scope, filter, page(&params)).await
}

/// `POST /groups`: body (400) → scoping tenant (401) → create (409) → 200.
async fn create(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    match create_inner(state, req, payload).await {
        Ok(r) | Err(r) => r,
    }
}

async fn create_inner(
    state: State,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, HttpResponse> {
    let caller = authorize(&state, &req, "auth.groups.create").await?;
    let raw = read_body(payload, state.settings.max_body_bytes).await?;
    let body = group_body(&raw, true)?;
    let tenant = scoping_tenant(&state, &req, &caller).await?;
    let mut client = state.storage.client().await.map_err(db_failed)?;
    let tx = client.transaction().await.map_err(db_failed)?;
    let group = groups::create(&tx, &tenant, &body.name, body.slug.as_deref(), false)
        .await
        .map_err(|e| write_failed(e, &body.name, "", ""))?;
    tx.commit().await.map_err(db_failed)?;
    Ok(HttpResponse::Ok().json(group.to_json()))
}

// ------------------------------------------------------------------------------------------------
// /groups/{group_uuid}
// ------------------------------------------------------------------------------------------------

/// `GET /groups/{g}`: 404 unless visible from the scoping tenant.
async fn get(state: State, req: HttpRequest) -> HttpResponse {
    match get_inner(state, req).await {
        Ok(r) | Err(r) => r,
    }
}

async fn get_inner(state: State, req: HttpRequest) -> Result<HttpResponse, HttpResponse> {
    let group_uuid = uuid_param(&req, "group_uuid")?;
    let acl = required_acl(
        "auth.groups.{group_uuid}.read",
        &[("group_uuid", &group_uuid)],
    );
    let caller = authorize(&state, &req, &acl).await?;
    let tenant = scoping_tenant(&state, &req, &caller).await?;
    let tenants = visible_tenants(&state, &tenant).await?;
    let client = state.storage.client().await.map_err(db_failed)?;
    match groups::find_in_tenants(&client, &group_uuid, &tenants, false)
        .await
        .map_err(db_failed)?
    {
        Some(g) => Ok(HttpResponse::Ok().json(g.to_json())),
        None => Err(unknown_group(&group_uuid)),
    }
}

/// `PUT /groups/{g}`: visible (404) → body (400) → system-managed (403) → rename (409) → 200.
/// Only the name changes.
async fn update(state: State, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    match update_inner(state, req, payload).await {
        Ok(r) | Err(r) => r,
    }
}

async fn update_inner(
    state: State,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, HttpResponse> {
    let group_uuid = uuid_param(&req, "group_uuid")?;
    let acl = required_acl(
        "auth.groups.{group_uuid}.update",
        &[("group_uuid", &group_uuid)],
    );
    let caller = authorize(&state, &req, &acl).await?;
    let tenant = scoping_tenant(&state, &req, &caller).await?;
    let tenants = visible_tenants(&state, &tenant).await?;
    let raw = read_body(payload, state.settings.max_body_bytes).await?;
    let mut client = state.storage.client().await.map_err(db_failed)?;
    let tx = client.transaction().await.map_err(db_failed)?;
    let group = groups::find_in_tenants(&tx, &group_uuid, &tenants, true)
        .await
        .map_err(db_failed)?
        .ok_or_else(|| unknown_group(&group_uuid))?;
    let body = group_body(&raw, false)?;
    if group.system_managed {
        return Err(forbidden_group(&group_uuid));
    }
    let updated = groups::rename(&tx, &group_uuid, &body.name, &tenants)
        .await
        .map_err(|e| write_failed(e, &body.name, &group_uuid, ""))?
        .ok_or_else(|| unknown_group(&group_uuid))?;
    tx.commit().await.map_err(db_failed)?;
    Ok(HttpResponse::Ok().json(updated.to_json()))
}

/// `DELETE /groups/{g}`: visible (404) → system-managed (403) → 204.
async fn delete(state: State, req: HttpRequest) -> HttpResponse {
    match delete_inner(state, req).await {
        Ok(r) | Err(r) => r,
    }
}

async fn delete_inner(state: State, req: HttpRequest) -> Result<HttpResponse, HttpResponse> {
    let group_uuid = uuid_param(&req, "group_uuid")?;
    let acl = required_acl(
        "auth.groups.{group_uuid}.delete",
        &[("group_uuid", &group_uuid)],
    );
    let caller = authorize(&state, &req, &acl).await?;
    let tenant = scoping_tenant(&state, &req, &caller).await?;
    let tenants = visible_tenants(&state, &tenant).await?;
    let mut client = state.storage.client().await.map_err(db_failed)?;
    let tx = client.transaction().await.map_err(db_failed)?;
    let group = groups::find_in_tenants(&tx, &group_uuid, &tenants, true)
        .await
        .map_err(db_failed)?
        .ok_or_else(|| unknown_group(&group_uuid))?;
    if group.system_managed {
        return Err(forbidden_group(&group_uuid));
    }
    if !groups::delete(&tx, &group_uuid).await.map_err(db_failed)? {
        return Err(unknown_group(&group_uuid));
    }
    tx.commit().await.map_err(db_failed)?;
    Ok(HttpResponse::NoContent().finish())
}

// ------------------------------------------------------------------------------------------------
// Memberships
// ------------------------------------------------------------------------------------------------

/// `GET /groups/{g}/users`: not scoped, no existence check (an unknown group has no members).
async fn list_members(state: State, req: HttpRequest) -> HttpResponse {
    match list_members_inner(state, req).await {
        Ok(r) | Err(r) => r,
    }
}

async fn list_members_inner(state: State, req: HttpRequest) -> Result<HttpResponse, HttpResponse> {
    let group_uuid = uuid_param(&req, "group_uuid")?;
    let acl = required_acl(
        "auth.groups.{group_uuid}.users.read",
        &[("group_uuid", &group_uuid)],
    );
    authorize(&state, &req, &acl).await?;
    let params = listing::parse(&req, &["username"], "username")?;
    let filter = UserFilter {
        uuid: owned(&params, "uuid"),
        username: owned(&params, "username"),
        firstname: owned(&params, "firstname"),
        lastname: owned(&params, "lastname"),
        purpose: owned(&params, "purpose"),
        email_address: owned(&params, "email_address"),
        group_uuid: owned(&params, "group_uuid"),
        search: params.search.clone(),
    };
    let client = state.storage.client().await.map_err(db_failed)?;
    let items = groups::list_members(&client, &group_uuid, &filter, &page(&params))
        .await
        .map_err(db_failed)?;
    let total = groups::count_members(&client, &group_uuid, None)
        .await
        .map_err(db_failed)?;
    let filtered = groups::count_members(&client, &group_uuid, Some(&filter))
        .await
        .map_err(db_failed)?;
    Ok(envelope(total, filtered, items))
}

fn member_acl(template: &str, group_uuid: &str, user_uuid: &str) -> String {
    required_acl(
        template,
        &[("group_uuid", group_uuid), ("user_uuid", user_uuid)],
    )
}

/// `PUT /groups/{g}/users/{u}`: user visible (404 unknown-user) → group visible (404
/// unknown-group) → same tenant (400 missmatching-tenant) → system-managed (403) → 204
/// (idempotent).
async fn add_member(state: State, req: HttpRequest) -> HttpResponse {
    match add_member_inner(state, req).await {
        Ok(r) | Err(r) => r,
    }
}

async fn add_member_inner(state: State, req: HttpRequest) -> Result<HttpResponse, HttpResponse> {
    let group_uuid = uuid_param(&req, "group_uuid")?;
    let user_uuid = uuid_param(&req, "user_uuid")?;
    let acl = member_acl(
        "auth.groups.{group_uuid}.users.{user_uuid}.create",
        &group_uuid,
        &user_uuid,
    );
    let caller = authorize(&state, &req, &acl).await?;
    let tenant = scoping_tenant(&state, &req, &caller).await?;
    let tenants = visible_tenants(&state, &tenant).await?;
    let mut client = state.storage.client().await.map_err(db_failed)?;
    let tx = client.transaction().await.map_err(db_failed)?;
    let user_tenant = groups::user_tenant(&tx, &user_uuid, Some(&tenants))
        .await
        .map_err(db_failed)?
        .ok_or_else(|| unknown_user(&user_uuid))?;
    let group = groups::find_in_tenants(&tx, &group_uuid, &tenants, false)
        .await
        .map_err(db_failed)?
        .ok_or_else(|| unknown_group(&group_uuid))?;
    if user_tenant != group.tenant_uuid {
        return Err(mismatching_tenant(&user_tenant, &group.tenant_uuid));
    }
    if group.system_managed {
        return Err(forbidden_group(&group_uuid));
    }
    groups::add_user(&tx, &group_uuid, &user_uuid)
        .await
        .map_err(|e| write_failed(e, &group.name, &group_uuid, &user_uuid))?;
    tx.commit().await.map_err(db_failed)?;
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /groups/{g}/users/{u}`: group visible (404) → system-managed (403) → remove; when
/// nothing was removed, an unknown user (any tenant) is a 404, else 204.
async fn remove_member(state: State, req: HttpRequest) -> HttpResponse {
    match remove_member_inner(state, req).await {
        Ok(r) | Err(r) => r,
    }
}

async fn remove_member_inner(state: State, req: HttpRequest) -> Result<HttpResponse, HttpResponse> {
    let group_uuid = uuid_param(&req, "group_uuid")?;
    let user_uuid = uuid_param(&req, "user_uuid")?;
    let acl = member_acl(
        "auth.groups.{group_uuid}.users.{user_uuid}.delete",
        &group_uuid,
        &user_uuid,
    );
    let caller = authorize(&state, &req, &acl).await?;
    let tenant = scoping_tenant(&state, &req, &caller).await?;
    let tenants = visible_tenants(&state, &tenant).await?;
    let mut client = state.storage.client().await.map_err(db_failed)?;
    let tx = client.transaction().await.map_err(db_failed)?;
    let group = groups::find_in_tenants(&tx, &group_uuid, &tenants, false)
        .await
        .map_err(db_failed)?
        .ok_or_else(|| unknown_group(&group_uuid))?;
    if group.system_managed {
        return Err(forbidden_group(&group_uuid));
    }
    let removed = groups::remove_user(&tx, &group_uuid, &user_uuid)
        .await
        .map_err(db_failed)?;
    if !removed
        && groups::user_tenant(&tx, &user_uuid, None)
            .await
            .map_err(db_failed)?
            .is_none()
    {
        return Err(unknown_user(&user_uuid));
    }
    tx.commit().await.map_err(db_failed)?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /users/{u}/groups`: scoping tenant (401) → user visible (404) → params (400) → the
/// user's groups in any tenant.
async fn list_user_groups(state: State, req: HttpRequest) -> HttpResponse {
    match list_user_groups_inner(state, req).await {
        Ok(r) | Err(r) => r,
    }
}

async fn list_user_groups_inner(
    state: State,
    req: HttpRequest,
) -> Result<HttpResponse, HttpResponse> {
    let user_uuid = uuid_param(&req, "user_uuid")?;
    let acl = required_acl(
        "auth.users.{user_uuid}.groups.read",
        &[("user_uuid", &user_uuid)],
    );
    let caller = authorize(&state, &req, &acl).await?;
    let tenant = scoping_tenant(&state, &req, &caller).await?;
    let tenants = visible_tenants(&state, &tenant).await?;
    {
        let client = state.storage.client().await.map_err(db_failed)?;
        groups::user_tenant(&client, &user_uuid, Some(&tenants))
            .await
            .map_err(db_failed)?
            .ok_or_else(|| unknown_user(&user_uuid))?;
    }
    let params = listing::parse(&req, &["name", "uuid"], "name")?;
    let filter = GroupFilter {
        uuid: owned(&params, "uuid"),
        name: owned(&params, "name"),
        user_uuid: owned(&params, "user_uuid"),
        search: params.search.clone(),
        ..GroupFilter::default()
    };
    let scope = GroupScope {
        tenants: None,
        member: Some(user_uuid),
    };
    list_groups_in(&state, scope, filter, page(&params)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_err(raw: &str, with_slug: bool) -> Value {
        let r = group_body(raw.as_bytes(), with_slug).unwrap_err();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{raw}");
        let bytes = actix_web::body::to_bytes(r.into_body());
        let bytes = futures_util::FutureExt::now_or_never(bytes)
            .unwrap()
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn bodies() {
        assert_eq!(
            group_body(br#"{"name": "a", "slug": null, "x": 1}"#, true).unwrap(),
            GroupBody {
                name: "a".into(),
                slug: None
            }
        );
        assert_eq!(
            group_body(br#"{"name": "a", "slug": "B-c_1"}"#, true).unwrap(),
            GroupBody {
                name: "a".into(),
                slug: Some("B-c_1".into())
            }
        );
        // PUT ignores the slug entirely.
        assert_eq!(
            group_body(br#"{"name": "a", "slug": 42}"#, false).unwrap(),
            GroupBody {
                name: "a".into(),
                slug: None
            }
        );
        let e = body_err("{}", true);
        assert_eq!(e["details"]["name"]["constraint_id"], "required");
        assert_eq!(e["resource"], "groups");
        assert_eq!(e["error_id"], "invalid-data");
        let e = body_err(r#"{"name": null}"#, true);
        assert_eq!(e["details"]["name"]["constraint_id"], "not_null");
        let e = body_err(r#"{"name": 42}"#, true);
        assert_eq!(e["details"]["name"]["constraint"], "string");
        let e = body_err(r#"{"name": ""}"#, true);
        assert_eq!(e["message"], "Length must be between 1 and 128.");
        let e = body_err(r#"{"name": "a", "slug": ""}"#, true);
        assert_eq!(e["details"]["slug"]["constraint_id"], "length");
        let e = body_err(r#"{"name": "a", "slug": "a b"}"#, true);
        assert_eq!(e["details"]["slug"]["constraint"], SLUG_PATTERN);
        let e = body_err("[1]", true);
        assert_eq!(
            e["details"],
            json!({"_schema": {"message": "Invalid input type."}})
        );
        let e = body_err("", true);
        assert!(e["message"]
            .as_str()
            .unwrap()
            .starts_with("Failed to decode JSON object"));
        let e = body_err(r#"{"name": "a\u0000b"}"#, true);
        assert_eq!(e["details"]["name"]["constraint_id"], "type");
    }
}
