//! Policies and policy associations (spec management §8, §9; core §2.1, §2.4):
//! `/policies`, `/policies/{policy_uuid|policy_slug}`, `/policies/{…}/acl/{access}`,
//! `/users/{user_uuid}/policies[/{…}]` and `/groups/{group_uuid}/policies[/{…}]`.
//!
//! A UUID-shaped `{policy}` segment selects the uuid semantics (visible tenants of the scoping
//! tenant); anything else (fully percent-decoded) is a slug, resolved in the scoping tenant
//! only; the required ACL follows the same choice (`routes::Acl::UuidOrSlug`). Each handler
//! extracts, calls one service of `wazo_auth_core::services::policies`, and renders.
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

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use wazo_auth_core::ids::{self, GroupUuid, UserUuid};
use wazo_auth_core::policies::{
    self, ListQuery, Order, PolicyError, View, NAME_MAX_CHARS, SLUG_MAX_CHARS,
};
use wazo_auth_core::scope::Scope;
use wazo_auth_core::services::policies as service;
use wazo_auth_core::services::policies::{
    PolicyChange, PolicyCreation, PolicyRef, PolicyWriteError, Target,
};

use super::error::ApiError;
use super::extract::{decoded_param, read_limited, Caller, Id, RawBody};
use super::listing::{self, ListParams};
use super::routes::{acl, acl_by_slug, Acl, Router};
use super::validate::{self, Invalid, Presence};
use super::State;

const SLUG_PATTERN: &str = "^[a-zA-Z0-9_-]+$";

/// A route on `{policy}`, requiring `by_uuid` or `by_slug` (api.yml `x-required-acl-by-slug`).
const fn by_policy(by_uuid: &'static str, by_slug: &'static str) -> Acl {
    acl_by_slug("policy", by_uuid, by_slug)
}

pub fn routes(r: &mut Router) {
    r.resource("/policies")
        .get(acl("auth.policies.read"), list)
        .post(acl("auth.policies.create"), create);
    r.resource("/policies/{policy}")
        .get(
            by_policy(
                "auth.policies.{policy_uuid}.read",
                "auth.policies.{policy_slug}.read",
            ),
            get,
        )
        .put(
            by_policy(
                "auth.policies.{policy_uuid}.update",
                "auth.policies.{policy_slug}.update",
            ),
            update,
        )
        .delete(
            by_policy(
                "auth.policies.{policy_uuid}.delete",
                "auth.policies.{policy_slug}.delete",
            ),
            delete,
        );
    r.resource("/policies/{policy}/acl/{access}")
        .put(
            by_policy(
                "auth.policies.{policy_uuid}.update",
                "auth.policies.{policy_slug}.update",
            ),
            add_access,
        )
        .delete(
            by_policy(
                "auth.policies.{policy_uuid}.update",
                "auth.policies.{policy_slug}.update",
            ),
            remove_access,
        );
    r.resource("/users/{user_uuid}/policies").get(
        acl("auth.users.{user_uuid}.policies.read"),
        list_user_policies,
    );
    r.resource("/users/{user_uuid}/policies/{policy}")
        .put(
            by_policy(
                "auth.users.{user_uuid}.policies.{policy_uuid}.create",
                "auth.users.{user_uuid}.policies.{policy_slug}.create",
            ),
            add_user_policy,
        )
        .delete(
            by_policy(
                "auth.users.{user_uuid}.policies.{policy_uuid}.delete",
                "auth.users.{user_uuid}.policies.{policy_slug}.delete",
            ),
            remove_user_policy,
        );
    r.resource("/groups/{group_uuid}/policies").get(
        acl("auth.groups.{group_uuid}.policies.read"),
        list_group_policies,
    );
    r.resource("/groups/{group_uuid}/policies/{policy}")
        .put(
            by_policy(
                "auth.groups.{group_uuid}.policies.{policy_uuid}.create",
                "auth.groups.{group_uuid}.policies.{policy_slug}.create",
            ),
            add_group_policy,
        )
        .delete(
            by_policy(
                "auth.groups.{group_uuid}.policies.{policy_uuid}.delete",
                "auth.groups.{group_uuid}.policies.{policy_slug}.delete",
            ),
            remove_group_policy,
        );
}

// ------------------------------------------------------------------------------------------------
// The `{policy}` segment, the scope
// ------------------------------------------------------------------------------------------------

/// The `{policy}` segment (fully percent-decoded): a canonical UUID names the policy by uuid,
/// anything else by slug.
struct PolicyPath(PolicyRef);

impl FromRequest for PolicyPath {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let raw = decoded_param(req, "policy");
        ready(Ok(PolicyPath(match ids::parse_canonical(&raw) {
            Some(u) => PolicyRef::Uuid(u.into()),
            None => PolicyRef::Slug(raw),
        })))
    }
}

/// The caller's view on policies (401): from the scoping tenant, with its descendants when
/// `recurse`.
async fn view_of(caller: &Caller, recurse: bool) -> Result<View, ApiError> {
    let scope = caller.scope().await?;
    Ok(service::view(&scope, recurse).await?)
}

/// The scope, view and target of a `{policy}` request: a uuid is seen from the visible tenants
/// (and looked up by the use case); a slug is resolved now (404), in the scoping tenant only.
async fn target(
    state: &State,
    caller: &Caller,
    by: &PolicyPath,
) -> Result<(Scope, View, Target), ApiError> {
    let scope = caller.scope().await?;
    let view = service::view(&scope, matches!(by.0, PolicyRef::Uuid(_))).await?;
    let target = service::resolve(&state.storage, &by.0, &view)
        .await?
        .ok_or_else(|| unknown(&by.0))?;
    Ok((scope, view, target))
}

// ------------------------------------------------------------------------------------------------
// Errors
// ------------------------------------------------------------------------------------------------

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
fn no_such_policy(key: &str, value: &str) -> ApiError {
    ApiError::token(
        StatusCode::NOT_FOUND,
        format!("No such policy {{'{key}': {}}}", py_repr(value)),
    )
}

fn unknown(by: &PolicyRef) -> ApiError {
    match by {
        PolicyRef::Uuid(u) => no_such_policy("uuid", &u.text()),
        PolicyRef::Slug(s) => no_such_policy("slug", s),
    }
}

impl From<PolicyError> for ApiError {
    fn from(e: PolicyError) -> ApiError {
        match e {
            PolicyError::Duplicate(name) => ApiError::token(
                StatusCode::CONFLICT,
                format!("Policy \"{name}\" already exists"),
            ),
            PolicyError::DuplicateAccess(access) => ApiError::token(
                StatusCode::CONFLICT,
                format!("Policy already associated to {access}"),
            ),
            PolicyError::UnknownPolicy(uuid) => {
                ApiError::token(StatusCode::NOT_FOUND, format!("No such policy {uuid}"))
            }
            PolicyError::UnknownUser(uuid) => ApiError::unknown("user", "users", &uuid),
            PolicyError::UnknownGroup(uuid) => ApiError::unknown("group", "groups", &uuid),
            PolicyError::Db(e) => e.into(),
        }
    }
}

/// A refused write; an escalation is the caller's 401 (spec management §1.2).
fn write_error(e: PolicyWriteError, caller: &Caller) -> ApiError {
    match e {
        PolicyWriteError::Escalation(access) => {
            let mut details = json!({ "invalid_token": caller.token_id });
            if !access.is_empty() {
                details["required_access"] = Value::from(access);
            }
            ApiError::unauthorized(details)
        }
        PolicyWriteError::NotVisible(uuid) => no_such_policy("uuid", &uuid),
        PolicyWriteError::ReadOnly(uuid) => ApiError::token(
            StatusCode::FORBIDDEN,
            format!("Forbidden policy deletion: \"{uuid}\""),
        ),
        PolicyWriteError::Policy(e) => e.into(),
    }
}

// ------------------------------------------------------------------------------------------------
// Body validation (PolicySchema): 400 `Invalid value supplied for field: <field>`
// ------------------------------------------------------------------------------------------------

/// A valid policy body.
#[derive(Debug, PartialEq)]
struct PolicyBody {
    name: String,
    /// `None`: generate one (POST); always ignored by PUT.
    slug: Option<String>,
    description: Option<String>,
    acl: Vec<String>,
    /// Always ignored by PUT.
    shared: bool,
}

/// The fields of a POST (`put = false`) or PUT body, in the schema's order: name, slug,
/// description, acl, shared.
fn fields(body: &Map<String, Value>, put: bool) -> Result<PolicyBody, Invalid> {
    let name = validate::string(body, "name", Presence::Required, 1, Some(NAME_MAX_CHARS))?
        .unwrap_or_default();
    let slug = if put {
        None
    } else {
        let slug = validate::string(body, "slug", Presence::Nullable, 1, Some(SLUG_MAX_CHARS))?;
        if slug.as_deref().is_some_and(|s| !policies::is_valid_slug(s)) {
            return Err(Invalid::regex("slug", SLUG_PATTERN));
        }
        slug
    };
    let description = validate::string(body, "description", Presence::Nullable, 0, None)?;
    let acl = validate::string_list(body, "acl", Presence::Optional)?.unwrap_or_default();
    let shared = if put {
        false
    } else {
        validate::boolean(body, "shared", Presence::Optional)?.unwrap_or(false)
    };
    Ok(PolicyBody {
        name,
        slug,
        description,
        acl,
        shared,
    })
}

/// Decodes and validates a policy body: the decode error of the original (400
/// `{"message": "Failed to decode JSON object: ..."}`), a non-object body (`_schema`), then the
/// first failing field.
fn policy_body(raw: &[u8], put: bool) -> Result<PolicyBody, ApiError> {
    let body = validate::decode(raw)?.ok_or_else(|| validate::field_error("_schema"))?;
    fields(&body, put).map_err(Invalid::into_field_error)
}

/// [`policy_body`] without its result (for the fuzz targets, through [`super::body_check`]).
pub(super) fn check_body(body: &[u8], put: bool) -> Result<(), ApiError> {
    policy_body(body, put).map(drop)
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

/// `GET /policies`: params (400) → scoping tenant (401) → sort column (400, `read_only` is
/// accepted by the schema only) → the visible policies, presented from the scope.
async fn list(state: State, req: HttpRequest, caller: Caller) -> Result<HttpResponse, ApiError> {
    let params = listing::parse(
        &req,
        &["name", "slug", "description", "uuid", "read_only"],
        "name",
    )?;
    let read_only = params.bool_filter("read_only")?;
    let scope = view_of(&caller, params.recurse).await?;
    if params.order == "read_only" {
        return Err(ApiError::token(
            StatusCode::BAD_REQUEST,
            "Invalid sort column: read_only",
        ));
    }
    let q = ListQuery {
        read_only,
        ..list_query(&params, true)
    };
    let (items, total) = service::list(&state.storage, &scope, &q).await?;
    let items: Vec<Value> = items.iter().map(|p| p.to_json(Some(&scope))).collect();
    Ok(HttpResponse::Ok().json(json!({ "items": items, "total": total })))
}

/// `GET /users/{u}/policies`: params (400) → scope (401) → user in the scope (404 unknown-user;
/// the original lists any uuid's) → the user's policies (whatever their tenant).
async fn list_user_policies(
    state: State,
    req: HttpRequest,
    user: Id<UserUuid>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let params = listing::parse(&req, &["name", "description", "uuid"], "name")?;
    let scope = caller.scope().await?;
    let q = list_query(&params, false);
    let listing = service::user_policies(&state.storage, &scope, *user, &q)
        .await?
        .ok_or_else(|| ApiError::unknown("user", "users", &user.to_string()))?;
    let items: Vec<Value> = listing.items.iter().map(|p| p.to_json(None)).collect();
    Ok(HttpResponse::Ok()
        .json(json!({ "items": items, "total": listing.total, "filtered": listing.filtered })))
}

/// `GET /groups/{g}/policies`: visible tenants (401) → group visible (404) → params (400) → the
/// group's policies visible from the scope.
async fn list_group_policies(
    state: State,
    req: HttpRequest,
    group: Id<GroupUuid>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let own = caller.scope().await?;
    if !service::group_visible(&state.storage, &own, *group).await? {
        return Err(ApiError::unknown("group", "groups", &group.to_string()));
    }
    let scope = service::view(&own, true).await?;
    let params = listing::parse(&req, &["name", "description", "uuid"], "name")?;
    let q = list_query(&params, false);
    let listing = service::group_policies(&state.storage, *group, &scope, &q)
        .await?
        .ok_or_else(|| ApiError::unknown("group", "groups", &group.to_string()))?;
    let items: Vec<Value> = listing
        .items
        .iter()
        .map(|p| p.to_json(Some(&scope)))
        .collect();
    Ok(HttpResponse::Ok()
        .json(json!({ "items": items, "total": listing.total, "filtered": listing.filtered })))
}

// ------------------------------------------------------------------------------------------------
// Policies
// ------------------------------------------------------------------------------------------------

/// `POST /policies`: body (400) → scoping tenant (401) → escalation (401) → create (409) → 200,
/// as stored.
async fn create(state: State, caller: Caller, body: RawBody) -> Result<HttpResponse, ApiError> {
    let body = policy_body(&body.read().await?, false)?;
    let scope = caller.scope().await?;
    let new = PolicyCreation {
        name: body.name,
        slug: body.slug,
        description: body.description,
        acl: body.acl,
        shared: body.shared,
    };
    let policy = service::create(&state.storage, &caller.acl, &scope, new)
        .await
        .map_err(|e| write_error(e, &caller))?;
    Ok(HttpResponse::Ok().json(policy.to_json(None)))
}

/// `GET /policies/{p}`: scope (401) → visible (404) → 200, presented from the scope.
async fn get(state: State, by: PolicyPath, caller: Caller) -> Result<HttpResponse, ApiError> {
    let (_, scope, target) = target(&state, &caller, &by).await?;
    let policy = service::get(&state.storage, target, &scope)
        .await?
        .ok_or_else(|| unknown(&by.0))?;
    Ok(HttpResponse::Ok().json(policy.to_json(Some(&scope))))
}

/// `PUT /policies/{p}`: scope (401) → slug resolved (404) → body (413, 400) → escalation on the
/// new ACL (401) → visible, locked (404) → escalation on the accesses dropped (401) → read-only
/// (403) → update (409) → 200, as stored. Name, description and ACL change. (The body is read
/// after the look-up, as before: not through `RawBody`.)
async fn update(
    state: State,
    by: PolicyPath,
    caller: Caller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (_, scope, target) = target(&state, &caller, &by).await?;
    let raw = read_limited(payload, state.settings.max_body_bytes).await?;
    let body = policy_body(&raw, true)?;
    let change = PolicyChange {
        name: &body.name,
        description: body.description.as_deref(),
        acl: &body.acl,
    };
    let updated = service::update(&state.storage, &caller.acl, &target, &scope, change)
        .await
        .map_err(|e| write_error(e, &caller))?;
    Ok(HttpResponse::Ok().json(updated.to_json(None)))
}

/// `DELETE /policies/{p}`: scope (401) → slug resolved (404) → visible, locked (404) →
/// escalation on its ACL (401) → read-only (403) → 204.
async fn delete(state: State, by: PolicyPath, caller: Caller) -> Result<HttpResponse, ApiError> {
    let (_, scope, target) = target(&state, &caller, &by).await?;
    service::delete(&state.storage, &caller.acl, &target, &scope)
        .await
        .map_err(|e| write_error(e, &caller))?;
    Ok(HttpResponse::NoContent().finish())
}

/// `PUT /policies/{p}/acl/{access}`: scope (401) → slug resolved (404) → escalation (401) →
/// visible, locked (404) → read-only (403) → already there (409) → 204.
async fn add_access(
    state: State,
    req: HttpRequest,
    by: PolicyPath,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let access = decoded_param(&req, "access");
    let (_, scope, target) = target(&state, &caller, &by).await?;
    service::add_access(&state.storage, &caller.acl, &target, &scope, &access)
        .await
        .map_err(|e| write_error(e, &caller))?;
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /policies/{p}/acl/{access}`: as [`add_access`]; an absent access is fine.
async fn remove_access(
    state: State,
    req: HttpRequest,
    by: PolicyPath,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let access = decoded_param(&req, "access");
    let (_, scope, target) = target(&state, &caller, &by).await?;
    service::remove_access(&state.storage, &caller.acl, &target, &scope, &access)
        .await
        .map_err(|e| write_error(e, &caller))?;
    Ok(HttpResponse::NoContent().finish())
}

// ------------------------------------------------------------------------------------------------
// Associations
// ------------------------------------------------------------------------------------------------

/// `PUT /users/{u}/policies/{p}`: scope (401) → slug resolved (404) → the policy visible from
/// the scope (404) → the user in the scope (404 unknown-user) → the policy visible from the
/// user's own tenant (404) → escalation on its ACL (401) → 204 (idempotent). The original
/// attaches any policy to any user (its "not multi-tenant" FIXME): see
/// `wazo_auth_core::services::policies::add_user_policy`.
async fn add_user_policy(
    state: State,
    user: Id<UserUuid>,
    by: PolicyPath,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let (scope, view, target) = target(&state, &caller, &by).await?;
    service::add_user_policy(&state.storage, &caller.acl, &scope, *user, &target, &view)
        .await
        .map_err(|e| write_error(e, &caller))?;
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /users/{u}/policies/{p}`: as `PUT` (a policy attached to the user is removable even
/// when its tenant no longer sees it), the escalation guard on removing its ACL → 204
/// (idempotent).
async fn remove_user_policy(
    state: State,
    user: Id<UserUuid>,
    by: PolicyPath,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let (scope, view, target) = target(&state, &caller, &by).await?;
    service::remove_user_policy(&state.storage, &caller.acl, &scope, *user, &target, &view)
        .await
        .map_err(|e| write_error(e, &caller))?;
    Ok(HttpResponse::NoContent().finish())
}

/// `PUT /groups/{g}/policies/{p}`: slug resolved (401, 404) → visible tenants (401) → group
/// visible (404 unknown-group) → policy visible (404) → escalation on its ACL (401) → 204
/// (idempotent).
async fn add_group_policy(
    state: State,
    group: Id<GroupUuid>,
    by: PolicyPath,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let (scope, _, target) = target(&state, &caller, &by).await?;
    let scope = service::view(&scope, true).await?;
    service::add_group_policy(&state.storage, &caller.acl, *group, &target, &scope)
        .await
        .map_err(|e| write_error(e, &caller))?;
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /groups/{g}/policies/{p}`: as [`add_group_policy`] (idempotent).
async fn remove_group_policy(
    state: State,
    group: Id<GroupUuid>,
    by: PolicyPath,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let (scope, _, target) = target(&state, &caller, &by).await?;
    let scope = service::view(&scope, true).await?;
    service::remove_group_policy(&state.storage, &caller.acl, *group, &target, &scope)
        .await
        .map_err(|e| write_error(e, &caller))?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Result<PolicyBody, Value> {
        let m = match v {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        fields(&m, false).map_err(|e| {
            let e = e.into_field_error();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST);
            e.body()["reason"][0].clone()
        })
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
        assert_eq!(full.description.as_deref(), Some("d"));
        assert_eq!(full.acl, vec!["a".to_string(), "!b".to_string()]);
        assert!(full.shared);
        for (bad, field) in [
            (json!({}), "name"),
            (json!({"name": null}), "name"),
            (json!({"name": 42}), "name"),
            (json!({"name": ""}), "name"),
            (json!({"name": "x".repeat(81)}), "name"),
            (json!({"name": "a\u{0}b"}), "name"),
            (json!({"name": "n", "slug": "a b"}), "slug"),
            (json!({"name": "n", "slug": ""}), "slug"),
            (json!({"name": "n", "slug": "s\n"}), "slug"),
            (json!({"name": "n", "slug": "x".repeat(81)}), "slug"),
            (json!({"name": "n", "description": 42}), "description"),
            (json!({"name": "n", "description": "a\u{0}"}), "description"),
            (json!({"name": "n", "acl": null}), "acl"),
            (json!({"name": "n", "acl": "a"}), "acl"),
            (json!({"name": "n", "acl": [1]}), "acl"),
            (json!({"name": "n", "acl": ["a\u{0}"]}), "acl"),
            (json!({"name": "n", "shared": null}), "shared"),
            (json!({"name": "n", "shared": "maybe"}), "shared"),
            (json!({"name": "n", "shared": 2}), "shared"),
            (json!({"name": 1, "slug": 1, "acl": 1}), "name"),
        ] {
            assert_eq!(
                body(bad.clone()),
                Err(json!(format!("Invalid value supplied for field: {field}"))),
                "{bad}"
            );
        }
        assert!(body(json!({"name": "é".repeat(80)})).is_ok());
        // PUT ignores slug and shared entirely.
        let put = fields(
            &validate::object(br#"{"name": "n", "slug": 1, "shared": 2}"#, "policies").unwrap(),
            true,
        )
        .unwrap();
        assert_eq!((put.slug, put.shared), (None, false));
    }

    #[test]
    fn non_object_bodies() {
        for empty in [&b"null"[..], b"false", b"[]", b"0", b"\"\""] {
            let e = policy_body(empty, false).unwrap_err().body();
            assert_eq!(e["reason"][0], "Invalid value supplied for field: name");
        }
        for b in [&b"42"[..], b"true", b"\"s\"", b"[1]"] {
            let e = policy_body(b, true).unwrap_err().body();
            assert_eq!(e["reason"][0], "Invalid value supplied for field: _schema");
        }
        let e = policy_body(b"", false).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert!(e.body()["message"]
            .as_str()
            .unwrap()
            .starts_with("Failed to decode JSON object"));
    }
}
