//! Route declaration: every route is registered with its method, path and required ACL in one
//! line, and the same declarations make the route table that `api.yml` is checked against (see
//! `route_table` and the test `routes_match_the_api_description`).
//!
//! ```ignore
//! router
//!     .resource("/groups/{group_uuid}")
//!     .get(acl("auth.groups.{group_uuid}.read"), get)
//!     .put(acl("auth.groups.{group_uuid}.update"), update);
//! ```
//!
//! `get` registers `GET` and `HEAD`. A handler reads its caller with the [`super::extract::Caller`]
//! extractor, which finds the declared ACL of the matched resource and method.

use actix_web::http::Method;
use actix_web::{web, FromRequest, Handler, HttpRequest, HttpResponse, Responder};

use super::error::ApiError;

/// What a route requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acl {
    /// No token needed.
    Public,
    /// A token granting this ACL template (`{param}` filled with the path values).
    Required(&'static str),
    /// A route whose `{param}` segment names its object by uuid or by slug (api.yml:
    /// `x-required-acl` and `x-required-acl-by-slug`): a canonical UUID requires `by_uuid`, its
    /// value filling `{<param>_uuid}`; anything else requires `by_slug`, the segment (fully
    /// percent-decoded) filling `{<param>_slug}`. Other `{name}` placeholders are filled as for
    /// [`Acl::Required`].
    UuidOrSlug {
        param: &'static str,
        by_uuid: &'static str,
        by_slug: &'static str,
    },
    /// A token granting this ACL template, read from the `token` query parameter, else from
    /// `X-Auth-Token` (a mailed link carries its token in its URL); `{param}` placeholders are
    /// filled with the path values, then the query's.
    QueryToken(&'static str),
}

/// A route whose token may come in the query string (see [`Acl::QueryToken`]).
pub const fn acl_query_token(template: &'static str) -> Acl {
    Acl::QueryToken(template)
}

/// A route that requires a token granting `template`.
pub const fn acl(template: &'static str) -> Acl {
    Acl::Required(template)
}

/// A route whose `{param}` segment is a uuid or a slug, requiring `by_uuid` or `by_slug`
/// accordingly (see [`Acl::UuidOrSlug`]).
pub const fn acl_by_slug(param: &'static str, by_uuid: &'static str, by_slug: &'static str) -> Acl {
    Acl::UuidOrSlug {
        param,
        by_uuid,
        by_slug,
    }
}

/// One declared route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: Method,
    /// The path under `/0.1`, with `{param}` placeholders.
    pub path: &'static str,
    pub acl: Acl,
}

/// The required ACLs of one resource, by method (resource data read by `Caller`).
#[derive(Debug, Clone, Default)]
pub struct RouteAcls(Vec<(Method, Acl)>);

impl RouteAcls {
    /// What a method of this resource requires (`None`: undeclared).
    pub fn get(&self, method: &Method) -> Option<Acl> {
        self.0.iter().find(|(m, _)| m == method).map(|(_, a)| *a)
    }
}

/// Registers resources, and records what it registers.
pub struct Router<'a> {
    cfg: Option<&'a mut web::ServiceConfig>,
    table: Vec<RouteSpec>,
}

impl<'a> Router<'a> {
    /// A router registering into `cfg`.
    pub fn new(cfg: &'a mut web::ServiceConfig) -> Router<'a> {
        Router {
            cfg: Some(cfg),
            table: Vec::new(),
        }
    }

    /// A router that only records the declarations (for the route table).
    pub fn table_only() -> Router<'static> {
        Router {
            cfg: None,
            table: Vec::new(),
        }
    }

    /// Starts a resource; it is registered when the returned builder is dropped.
    pub fn resource(&mut self, path: &'static str) -> ResourceBuilder<'_, 'a> {
        ResourceBuilder {
            router: self,
            path,
            resource: Some(web::resource(path)),
            acls: Vec::new(),
            default_handler: true,
        }
    }

    /// The declarations made so far.
    pub fn into_table(self) -> Vec<RouteSpec> {
        self.table
    }
}

/// One resource's routes.
pub struct ResourceBuilder<'r, 'a> {
    router: &'r mut Router<'a>,
    path: &'static str,
    resource: Option<actix_web::Resource>,
    acls: Vec<(Method, Acl)>,
    default_handler: bool,
}

impl ResourceBuilder<'_, '_> {
    /// Adds a route for `method`.
    pub fn route<F, Args>(mut self, method: Method, acl: Acl, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.acls.push((method.clone(), acl));
        self.resource = self
            .resource
            .take()
            .map(|r| r.route(web::method(method).to(handler)));
        self
    }

    /// `GET` and `HEAD`.
    pub fn get<F, Args>(self, acl: Acl, handler: F) -> Self
    where
        F: Handler<Args> + Clone,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route(Method::GET, acl, handler.clone())
            .route(Method::HEAD, acl, handler)
    }

    pub fn post<F, Args>(self, acl: Acl, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route(Method::POST, acl, handler)
    }

    pub fn put<F, Args>(self, acl: Acl, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route(Method::PUT, acl, handler)
    }

    pub fn patch<F, Args>(self, acl: Acl, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route(Method::PATCH, acl, handler)
    }

    pub fn delete<F, Args>(self, acl: Acl, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route(Method::DELETE, acl, handler)
    }

    /// Keeps actix's own answer to other methods instead of [`other_method`].
    pub fn without_default(mut self) -> Self {
        self.default_handler = false;
        self
    }
}

impl Drop for ResourceBuilder<'_, '_> {
    fn drop(&mut self) {
        for (method, acl) in &self.acls {
            self.router.table.push(RouteSpec {
                method: method.clone(),
                path: self.path,
                acl: *acl,
            });
        }
        let (Some(cfg), Some(resource)) = (self.router.cfg.as_deref_mut(), self.resource.take())
        else {
            return;
        };
        let mut resource = resource.app_data(RouteAcls(std::mem::take(&mut self.acls)));
        if self.default_handler {
            resource = resource.default_service(web::to(other_method));
        }
        cfg.service(resource);
    }
}

/// Another method on a known path: 405; but 404 when a `*_uuid` path parameter is not a UUID
/// (no route of the original would match).
pub async fn other_method(req: HttpRequest) -> HttpResponse {
    if req.match_info().iter().any(|(name, value)| {
        name.ends_with("_uuid") && wazo_auth_core::ids::parse_canonical(value).is_none()
    }) {
        return ApiError::route_not_found().into();
    }
    ApiError::method_not_allowed().into()
}
