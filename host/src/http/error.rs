//! One error type for every route: [`ApiError`] carries a status and one of the original's
//! error body shapes (spec core §0.1), renders it through actix's `ResponseError`, and logs every
//! 5xx in one place (its cause is logged, never sent).

use std::borrow::Cow;
use std::fmt;

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::{json, Value};

const ROUTE_NOT_FOUND: &str = "The requested URL was not found on the server. If you entered the \
                               URL manually please check your spelling and try again.";
const METHOD_NOT_ALLOWED: &str = "The method is not allowed for the requested URL.";
const DATABASE_UNAVAILABLE: &str = "The authentication database is unavailable; try again later";

/// The body of an error answer.
#[derive(Debug, Clone)]
enum Shape {
    /// Shape A, "token-service" errors: `{"reason": [msg], "timestamp": [t], "status_code": n}`.
    Token(String),
    /// Shape B, API exceptions: `{"message", "error_id", "details", "timestamp"[, "resource"]}`.
    Api {
        message: Value,
        error_id: Cow<'static, str>,
        details: Value,
        resource: Option<Cow<'static, str>>,
    },
    /// Shape C, plain HTTP errors: `{"message": "..."}`.
    Plain(Cow<'static, str>),
    /// No body (answers to `HEAD`).
    Empty,
}

/// An error answer of the API. Its `Debug` and `Display` show the status and the internal cause
/// only, never the body (which may echo a client's token).
#[derive(Clone)]
pub struct ApiError(Box<Parts>);

/// What an [`ApiError`] holds (boxed: a handler's `Result` stays small on the success path).
#[derive(Clone)]
struct Parts {
    status: StatusCode,
    shape: Shape,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// What went wrong inside (logged with a 5xx, never sent).
    cause: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, shape: Shape) -> ApiError {
        ApiError(Box::new(Parts {
            status,
            shape,
            headers: Vec::new(),
            cause: None,
        }))
    }

    /// Shape A with `message` as its reason.
    pub fn token(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError::new(status, Shape::Token(message.into()))
    }

    /// Shape B.
    pub fn api(
        status: StatusCode,
        message: impl Into<Value>,
        error_id: impl Into<Cow<'static, str>>,
        details: Value,
        resource: Option<&'static str>,
    ) -> ApiError {
        ApiError::new(
            status,
            Shape::Api {
                message: message.into(),
                error_id: error_id.into(),
                details,
                resource: resource.map(Cow::Borrowed),
            },
        )
    }

    /// Shape C.
    pub fn plain(status: StatusCode, message: impl Into<Cow<'static, str>>) -> ApiError {
        ApiError::new(status, Shape::Plain(message.into()))
    }

    /// A status without a body (answers to `HEAD`).
    pub fn bare(status: StatusCode) -> ApiError {
        ApiError::new(status, Shape::Empty)
    }

    /// `400 invalid-data` for the first failing field of a body (spec management §1.4):
    /// `details = {field: {message, constraint_id, constraint}}`; a nested field is written
    /// `"address.state"` (details `{"address": {"state": {...}}}`).
    pub fn invalid_data(
        resource: &'static str,
        field: &str,
        message: &str,
        constraint_id: &str,
        constraint: Value,
    ) -> ApiError {
        let detail = json!({
            "message": message,
            "constraint_id": constraint_id,
            "constraint": constraint,
        });
        ApiError::api(
            StatusCode::BAD_REQUEST,
            message,
            "invalid-data",
            nest(field, detail),
            Some(resource),
        )
    }

    /// `400 invalid-data` for a schema-level error (marshmallow's `_schema`) at `field`:
    /// `"_schema"`, or `"address._schema"` for a nested object. Its detail holds the message only.
    pub fn invalid_schema(resource: &'static str, field: &str, message: &str) -> ApiError {
        ApiError::api(
            StatusCode::BAD_REQUEST,
            message,
            "invalid-data",
            nest(field, json!({ "message": message })),
            Some(resource),
        )
    }

    /// The 400 `invalid-data` answer to a body that is not an object.
    pub fn invalid_input_type(resource: &'static str) -> ApiError {
        ApiError::api(
            StatusCode::BAD_REQUEST,
            "Invalid input type.",
            "invalid-data",
            json!({"_schema": {"message": "Invalid input type."}}),
            Some(resource),
        )
    }

    /// `404 unknown-<kind>`, e.g. `unknown("user", "users", uuid)`.
    pub fn unknown(kind: &str, resource: &'static str, id: &str) -> ApiError {
        ApiError::api(
            StatusCode::NOT_FOUND,
            format!("No such {kind}: \"{id}\""),
            format!("unknown-{kind}"),
            json!({ "uuid": id }),
            Some(resource),
        )
    }

    /// `401 unauthorized` (shape B) with its details.
    pub fn unauthorized(details: Value) -> ApiError {
        ApiError::api(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "unauthorized",
            details,
            None,
        )
    }

    /// The router's 404 (no route matches, e.g. a path segment that must be a UUID is not one),
    /// with a JSON body (the original answers an HTML page).
    pub fn route_not_found() -> ApiError {
        ApiError::plain(StatusCode::NOT_FOUND, ROUTE_NOT_FOUND)
    }

    /// The router's 405 (a known path, another method).
    pub fn method_not_allowed() -> ApiError {
        ApiError::plain(StatusCode::METHOD_NOT_ALLOWED, METHOD_NOT_ALLOWED)
    }

    /// A 503 when the database (or a service a plugin depends on) fails; `context` and `cause`
    /// are logged, never sent.
    pub fn unavailable(context: &str, cause: impl fmt::Display) -> ApiError {
        ApiError::plain(StatusCode::SERVICE_UNAVAILABLE, DATABASE_UNAVAILABLE)
            .with_cause(format!("{context}: {cause}"))
    }

    /// Records what went wrong inside (logged with a 5xx, never sent).
    pub fn with_cause(mut self, cause: impl fmt::Display) -> ApiError {
        self.0.cause = Some(cause.to_string());
        self
    }

    /// Sets the `resource` of a shape B body to a value known only at run time (e.g. an
    /// external auth type).
    pub fn with_resource(mut self, name: impl Into<Cow<'static, str>>) -> ApiError {
        if let Shape::Api { resource, .. } = &mut self.0.shape {
            *resource = Some(name.into());
        }
        self
    }

    /// Adds a header to the answer.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> ApiError {
        self.0.headers.push((name, value));
        self
    }

    /// The same status and headers without the body (for `HEAD`).
    pub fn without_body(mut self) -> ApiError {
        self.0.shape = Shape::Empty;
        self
    }

    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The body as JSON (`Null` when there is none).
    pub fn body(&self) -> Value {
        let timestamp = wazo_auth_core::tokens::now();
        match &self.0.shape {
            Shape::Token(reason) => json!({
                "reason": [reason],
                "timestamp": [timestamp],
                "status_code": self.0.status.as_u16(),
            }),
            Shape::Api {
                message,
                error_id,
                details,
                resource,
            } => {
                let mut body = json!({
                    "message": message,
                    "error_id": error_id,
                    "details": details,
                    "timestamp": timestamp,
                });
                if let Some(r) = resource {
                    body["resource"] = Value::from(r.as_ref());
                }
                body
            }
            Shape::Plain(message) => json!({ "message": message }),
            Shape::Empty => Value::Null,
        }
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0.cause {
            Some(cause) => write!(f, "{}: {cause}", self.0.status),
            None => write!(f, "{}", self.0.status),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.0.status
    }

    fn error_response(&self) -> HttpResponse {
        if self.0.status.is_server_error() {
            match &self.0.cause {
                Some(cause) => log::error!("{cause}"),
                None => log::error!("answered {}", self.0.status),
            }
        }
        let mut answer = HttpResponse::build(self.0.status);
        for (name, value) in &self.0.headers {
            answer.insert_header((name.clone(), value.clone()));
        }
        match self.0.shape {
            Shape::Empty => answer.finish(),
            _ => answer.json(self.body()),
        }
    }
}

impl From<ApiError> for HttpResponse {
    fn from(e: ApiError) -> HttpResponse {
        e.error_response()
    }
}

/// A database error answers 503 (the cause is logged).
impl From<wazo_auth_core::Error> for ApiError {
    fn from(e: wazo_auth_core::Error) -> ApiError {
        ApiError::unavailable("database request failed", e)
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(e: deadpool_postgres::PoolError) -> ApiError {
        ApiError::unavailable("no database connection", e)
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> ApiError {
        wazo_auth_core::Error::from(e).into()
    }
}

/// `detail` at the dotted path `field`: `("address.state", d)` is `{"address": {"state": d}}`.
fn nest(field: &str, detail: Value) -> Value {
    field
        .rsplit('.')
        .fold(detail, |inner, part| json!({ part: inner }))
}

/// A Python-style `repr` of a marshmallow error dict, as the original puts in `reason[0]`:
/// `{'field': ['message.']}`.
pub fn marshmallow_repr(errors: &[(String, String)]) -> String {
    let mut out = String::from("{");
    for (i, (field, msg)) in errors.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&format!("'{}': ['{}']", py_escape(field), py_escape(msg)));
    }
    out.push('}');
    out
}

fn py_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "\\'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_looks_like_python() {
        let r = marshmallow_repr(&[("expiration".into(), "Not a valid integer.".into())]);
        assert_eq!(r, "{'expiration': ['Not a valid integer.']}");
        let r = marshmallow_repr(&[("_schema".into(), "it's".into()), ("b".into(), "x".into())]);
        assert_eq!(r, "{'_schema': ['it\\'s'], 'b': ['x']}");
    }

    #[test]
    fn shapes() {
        let a = ApiError::token(StatusCode::NOT_FOUND, "No such token").body();
        assert_eq!(a["reason"], json!(["No such token"]));
        assert_eq!(a["status_code"], 404);
        assert!(a["timestamp"][0].is_f64());
        let b = ApiError::invalid_data("tenants", "address.state", "m", "length", json!({}));
        assert_eq!(b.status(), StatusCode::BAD_REQUEST);
        let b = b.body();
        assert_eq!(b["details"]["address"]["state"]["constraint_id"], "length");
        assert_eq!(b["resource"], "tenants");
        assert_eq!(b["error_id"], "invalid-data");
        let s =
            ApiError::invalid_schema("tenants", "address._schema", "Invalid input type.").body();
        assert_eq!(
            s["details"],
            json!({"address": {"_schema": {"message": "Invalid input type."}}})
        );
        assert_eq!(s["message"], "Invalid input type.");
        let top = ApiError::invalid_schema("tenants", "_schema", "Invalid input type.").body();
        assert_eq!(
            top["details"],
            ApiError::invalid_input_type("tenants").body()["details"]
        );
        let c = ApiError::route_not_found().body();
        assert_eq!(c, json!({ "message": ROUTE_NOT_FOUND }));
        let u = ApiError::unknown("group", "groups", "x").body();
        assert_eq!(u["error_id"], "unknown-group");
        assert_eq!(u["message"], "No such group: \"x\"");
    }

    #[test]
    fn database_errors_are_503_without_their_cause() {
        let e: ApiError = wazo_auth_core::Error::database("secret detail").into();
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!e.body().to_string().contains("secret detail"));
        assert!(e.to_string().contains("secret detail"));
    }

    #[test]
    fn debug_and_display_never_show_the_body() {
        let e = ApiError::unauthorized(json!({"invalid_token": "0123-secret-token"}));
        assert!(!format!("{e:?}").contains("secret"));
        assert!(!e.to_string().contains("secret"));
    }

    #[test]
    fn causes_are_kept_out_of_the_body_and_resources_can_be_set_late() {
        let e = ApiError::api(
            StatusCode::INTERNAL_SERVER_ERROR,
            "m",
            "processing-error",
            json!({}),
            Some("external"),
        )
        .with_cause("inner detail");
        assert!(!e.body().to_string().contains("inner detail"));
        assert!(e.to_string().contains("inner detail"));
        let r = ApiError::api(StatusCode::CONFLICT, "m", "conflict", json!({}), None)
            .with_resource(String::from("foo"))
            .body();
        assert_eq!(r["resource"], "foo");
        // Only shape B has a resource.
        let t = ApiError::token(StatusCode::CONFLICT, "m")
            .with_resource("foo")
            .body();
        assert!(t.get("resource").is_none());
    }

    #[test]
    fn head_answers_have_no_body() {
        let r = ApiError::token(StatusCode::FORBIDDEN, "x")
            .without_body()
            .error_response();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let bytes = futures_util::FutureExt::now_or_never(actix_web::body::to_bytes(r.into_body()))
            .unwrap()
            .unwrap();
        assert!(bytes.is_empty());
    }
}
