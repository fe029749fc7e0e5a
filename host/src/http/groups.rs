//! Groups and user ↔ group memberships (spec management §7, §9; core §2.4, §2.5):
//! `/groups`, `/groups/{group_uuid}`, `/groups/{group_uuid}/users[/{user_uuid}]` and
//! `/users/{user_uuid}/groups`. Each handler extracts, calls one service of
//! `wazo_auth_core::services::groups`, and renders.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::{json, Map, Value};
use wazo_auth_core::groups::{
    self, Group, GroupError, GroupFilter, Page, UserFilter, NAME_MAX_CHARS, SLUG_MAX_CHARS,
};
use wazo_auth_core::ids::{GroupUuid, UserUuid};
use wazo_auth_core::services::groups as service;
use wazo_auth_core::services::groups::{GroupWriteError, MembershipError};
use wazo_auth_core::services::Listing;

use super::error::ApiError;
use super::extract::{Caller, Id, RawBody};
use super::listing::{self, ListParams};
use super::routes::{acl, Router};
use super::validate::{self, Invalid, Presence};
use super::State;

const RESOURCE: &str = "groups";
const SLUG_PATTERN: &str = "^[a-zA-Z0-9_-]+$";

pub fn routes(r: &mut Router) {
    r.resource("/groups")
        .get(acl("auth.groups.read"), list)
        .post(acl("auth.groups.create"), create);
    r.resource("/groups/{group_uuid}")
        .get(acl("auth.groups.{group_uuid}.read"), get)
        .put(acl("auth.groups.{group_uuid}.update"), update)
        .delete(acl("auth.groups.{group_uuid}.delete"), delete);
    r.resource("/groups/{group_uuid}/users")
        .get(acl("auth.groups.{group_uuid}.users.read"), list_members);
    r.resource("/groups/{group_uuid}/users/{user_uuid}")
        .put(
            acl("auth.groups.{group_uuid}.users.{user_uuid}.create"),
            add_member,
        )
        .delete(
            acl("auth.groups.{group_uuid}.users.{user_uuid}.delete"),
            remove_member,
        );
    r.resource("/users/{user_uuid}/groups")
        .get(acl("auth.users.{user_uuid}.groups.read"), list_user_groups);
}

// ------------------------------------------------------------------------------------------------
// Errors
// ------------------------------------------------------------------------------------------------

fn unknown_group(uuid: &GroupUuid) -> ApiError {
    ApiError::unknown("group", RESOURCE, &uuid.to_string())
}

fn unknown_user(uuid: &UserUuid) -> ApiError {
    ApiError::unknown("user", "users", &uuid.to_string())
}

fn forbidden_group(uuid: &GroupUuid) -> ApiError {
    ApiError::api(
        StatusCode::FORBIDDEN,
        format!("Forbidden group modification: \"{uuid}\""),
        "forbidden-group",
        json!({ "uuid": uuid }),
        Some(RESOURCE),
    )
}

/// A storage-level write error; `name` is the group name of the 409 message.
fn write_error(
    e: GroupError,
    name: &str,
    group: Option<&GroupUuid>,
    user: Option<&UserUuid>,
) -> ApiError {
    match e {
        GroupError::Duplicate => ApiError::token(
            StatusCode::CONFLICT,
            format!("Group \"{name}\" already exists"),
        ),
        GroupError::UnknownTenant => ApiError::api(
            StatusCode::NOT_FOUND,
            "No such tenant",
            "unknown-tenant",
            json!({}),
            Some("tenants"),
        ),
        GroupError::UnknownGroup => ApiError::unknown(
            "group",
            RESOURCE,
            &group.map(ToString::to_string).unwrap_or_default(),
        ),
        GroupError::UnknownUser => ApiError::unknown(
            "user",
            "users",
            &user.map(ToString::to_string).unwrap_or_default(),
        ),
        GroupError::Storage(e) => e.into(),
    }
}

impl From<GroupError> for ApiError {
    fn from(e: GroupError) -> ApiError {
        write_error(e, "", None, None)
    }
}

fn group_write_error(e: GroupWriteError, group: &GroupUuid, name: &str) -> ApiError {
    match e {
        GroupWriteError::Unknown => unknown_group(group),
        GroupWriteError::Forbidden => forbidden_group(group),
        GroupWriteError::Write(e) => write_error(e, name, Some(group), None),
    }
}

fn membership_error(e: MembershipError, group: &GroupUuid, user: &UserUuid) -> ApiError {
    match e {
        MembershipError::UnknownUser => unknown_user(user),
        MembershipError::UnknownGroup => unknown_group(group),
        MembershipError::MismatchingTenant {
            user_tenant,
            group_tenant,
        } => ApiError::api(
            StatusCode::BAD_REQUEST,
            "Ressources are not in the same tenant",
            "missmatching-tenant",
            json!({ "user_tenant_uuid": user_tenant, "group_tenant_uuid": group_tenant }),
            Some(RESOURCE),
        ),
        MembershipError::Forbidden => forbidden_group(group),
        MembershipError::Write(e) => write_error(e, "", Some(group), Some(user)),
    }
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

fn fields(body: &Map<String, Value>, with_slug: bool) -> Result<GroupBody, Invalid> {
    let name = validate::string(body, "name", Presence::Required, 1, Some(NAME_MAX_CHARS))?
        .unwrap_or_default();
    let slug = if with_slug {
        let slug = validate::string(body, "slug", Presence::Nullable, 1, Some(SLUG_MAX_CHARS))?;
        if slug.as_deref().is_some_and(|s| !groups::is_valid_slug(s)) {
            return Err(Invalid::regex("slug", SLUG_PATTERN));
        }
        slug
    } else {
        None
    };
    Ok(GroupBody { name, slug })
}

/// Decodes and validates a group body: the decode error of the original (400
/// `{"message": "Failed to decode JSON object: ..."}`), a non-object body (400 invalid-data
/// `_schema`), then the first failing field (`name`, then `slug` for POST).
fn group_body(raw: &[u8], with_slug: bool) -> Result<GroupBody, ApiError> {
    fields(&validate::object(raw, RESOURCE)?, with_slug).map_err(|e| e.into_error(RESOURCE))
}

/// [`group_body`] without its result (for the fuzz targets, through [`super::body_check`]).
pub(super) fn check_body(body: &[u8], with_slug: bool) -> Result<(), ApiError> {
    group_body(body, with_slug).map(drop)
}

// ------------------------------------------------------------------------------------------------
// Rendering
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

fn envelope<T>(listing: Listing<T>, render: impl Fn(T) -> Value) -> HttpResponse {
    let items: Vec<Value> = listing.items.into_iter().map(render).collect();
    HttpResponse::Ok().json(json!({
        "total": listing.total,
        "filtered": listing.filtered,
        "items": items,
    }))
}

fn group_list(listing: Listing<Group>) -> HttpResponse {
    envelope(listing, |g| g.to_json())
}

// ------------------------------------------------------------------------------------------------
// /groups
// ------------------------------------------------------------------------------------------------

/// `GET /groups`: params (400) → scoping tenant (401) → sort column known to the storage (400
/// shape A, `slug`/`read_only` are accepted by the schema only) → list.
async fn list(
    state: State,
    req: actix_web::HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let params = listing::parse(&req, &["name", "slug", "uuid", "read_only"], "name")?;
    let read_only = params.bool_filter("read_only")?;
    let scope = caller.scope().await?;
    if !matches!(params.order.as_str(), "name" | "uuid") {
        return Err(ApiError::token(
            StatusCode::BAD_REQUEST,
            format!("Invalid sort column: {}", params.order),
        ));
    }
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
    let page = page(&params);
    let listed = service::list(&state.storage, &scope, params.recurse, &filter, &page).await?;
    Ok(group_list(listed))
}

/// `POST /groups`: body (400) → scoping tenant (401) → create (409) → 200.
async fn create(state: State, caller: Caller, body: RawBody) -> Result<HttpResponse, ApiError> {
    let body = group_body(&body.read().await?, true)?;
    let scope = caller.scope().await?;
    let group = service::create(&state.storage, &scope, &body.name, body.slug.as_deref())
        .await
        .map_err(|e| write_error(e, &body.name, None, None))?;
    Ok(HttpResponse::Ok().json(group.to_json()))
}

// ------------------------------------------------------------------------------------------------
// /groups/{group_uuid}
// ------------------------------------------------------------------------------------------------

/// `GET /groups/{g}`: 404 unless visible from the scoping tenant.
async fn get(state: State, group: Id<GroupUuid>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let scope = caller.scope().await?;
    match service::get(&state.storage, &scope, *group).await? {
        Some(g) => Ok(HttpResponse::Ok().json(g.to_json())),
        None => Err(unknown_group(&group)),
    }
}

/// `PUT /groups/{g}`: visible (404) → body (400) → system-managed (403) → rename (409) → 200.
/// Only the name changes.
async fn update(
    state: State,
    group: Id<GroupUuid>,
    caller: Caller,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.scope().await?;
    let raw = body.read().await?;
    if service::get(&state.storage, &scope, *group)
        .await?
        .is_none()
    {
        return Err(unknown_group(&group));
    }
    let body = group_body(&raw, false)?;
    let updated = service::rename(&state.storage, &scope, *group, &body.name)
        .await
        .map_err(|e| group_write_error(e, &group, &body.name))?;
    Ok(HttpResponse::Ok().json(updated.to_json()))
}

/// `DELETE /groups/{g}`: visible (404) → system-managed (403) → 204.
async fn delete(
    state: State,
    group: Id<GroupUuid>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.scope().await?;
    service::delete(&state.storage, &scope, *group)
        .await
        .map_err(|e| group_write_error(e, &group, ""))?;
    Ok(HttpResponse::NoContent().finish())
}

// ------------------------------------------------------------------------------------------------
// Memberships
// ------------------------------------------------------------------------------------------------

/// `GET /groups/{g}/users`: scope (401) → group visible (404 unknown-group; the original
/// lists the members of any group, an unknown one having none) → params (400) → the members.
async fn list_members(
    state: State,
    req: actix_web::HttpRequest,
    group: Id<GroupUuid>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.scope().await?;
    if service::get(&state.storage, &scope, *group)
        .await?
        .is_none()
    {
        return Err(unknown_group(&group));
    }
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
    let members = service::members(&state.storage, &scope, *group, &filter, &page(&params))
        .await?
        .ok_or_else(|| unknown_group(&group))?;
    Ok(envelope(members, |m| m))
}

/// `PUT /groups/{g}/users/{u}`: user visible (404 unknown-user) → group visible (404
/// unknown-group) → same tenant (400 missmatching-tenant) → system-managed (403) → 204
/// (idempotent).
async fn add_member(
    state: State,
    group: Id<GroupUuid>,
    user: Id<UserUuid>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.scope().await?;
    service::add_member(&state.storage, &scope, *group, *user)
        .await
        .map_err(|e| membership_error(e, &group, &user))?;
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /groups/{g}/users/{u}`: group visible (404) → system-managed (403) → remove; when
/// nothing was removed, a user outside the scope (or unknown) is a 404, else 204.
async fn remove_member(
    state: State,
    group: Id<GroupUuid>,
    user: Id<UserUuid>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.scope().await?;
    service::remove_member(&state.storage, &scope, *group, *user)
        .await
        .map_err(|e| membership_error(e, &group, &user))?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /users/{u}/groups`: scoping tenant (401) → user visible (404) → params (400) → the
/// user's groups in any tenant.
async fn list_user_groups(
    state: State,
    req: actix_web::HttpRequest,
    user: Id<UserUuid>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.scope().await?;
    if !service::user_visible(&state.storage, &scope, *user).await? {
        return Err(unknown_user(&user));
    }
    let params = listing::parse(&req, &["name", "uuid"], "name")?;
    let filter = GroupFilter {
        uuid: owned(&params, "uuid"),
        name: owned(&params, "name"),
        user_uuid: owned(&params, "user_uuid"),
        search: params.search.clone(),
        ..GroupFilter::default()
    };
    let groups = service::user_groups(&state.storage, &scope, *user, &filter, &page(&params))
        .await?
        .ok_or_else(|| unknown_user(&user))?;
    Ok(group_list(groups))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_err(raw: &str, with_slug: bool) -> Value {
        let e = group_body(raw.as_bytes(), with_slug).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{raw}");
        e.body()
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
