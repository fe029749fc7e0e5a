//! The outermost middleware of the API: gives each request its id (`X-Request-ID`, the
//! client's when it is sane, else a new one) and a span carrying it (every log line written
//! while the request is handled names it), answers the id in `X-Request-ID`, counts the answer
//! and its duration by route template ([`super::metrics::http_answered`]), and writes the access
//! log line. Neither the metrics nor the access log ever see the raw path or the query string
//! (which hold tokens): only the route template.
//!
//! Every request to every Wazo service is a token check, so this stays cheap: no allocation on
//! the token routes besides the generated id, metric handles cached per worker thread, and the
//! access line formatted only when its level is logged.

use std::cell::Cell;
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::HttpRequest;

use super::metrics;

/// The request id header, read and answered.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The target of the access log lines (`RUST_LOG=wazo_auth::access=off` silences them).
pub const ACCESS_TARGET: &str = "wazo_auth::access";

/// The longest client request id kept; longer ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// The route label of requests no route matched (the raw path is never used: it may hold a
/// token).
pub const UNMATCHED: &str = "unmatched";

/// What the middleware does besides the request id.
#[derive(Debug, Clone)]
pub struct Options {
    /// The level of the access log line (`None`: no line).
    pub access_log: Option<log::Level>,
    /// Count the answers in the HTTP metric families.
    pub metrics: bool,
    /// `rest_api.num_proxies` and `rest_api.trusted_proxies`: how the access log finds the
    /// client address.
    pub proxies: crate::http::request::ProxyTrust,
}

/// The middleware (one per worker, see `App::wrap`).
pub struct Telemetry(Rc<Options>);

impl Telemetry {
    pub fn new(options: Options) -> Telemetry {
        Telemetry(Rc::new(options))
    }
}

impl<S, B> Transform<S, ServiceRequest> for Telemetry
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = TelemetryService<S>;
    type InitError = ();
    type Future = Ready<Result<TelemetryService<S>, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(TelemetryService {
            service,
            options: self.0.clone(),
        }))
    }
}

pub struct TelemetryService<S> {
    service: S,
    options: Rc<Options>,
}

impl<S, B> Service<ServiceRequest> for TelemetryService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = Answer<S::Future>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let start = Instant::now();
        let id = request_id(req.headers());
        let span = tracing::info_span!(
            target: "wazo_auth::request",
            "request",
            // Visible ASCII (kept only if so, or generated): UTF-8's fast path, no header
            // re-validation.
            request_id = std::str::from_utf8(id.as_bytes()).unwrap_or_default()
        );
        let method = method_label(req.method());
        // The hand-routed token paths are named here, from the path; the others from the
        // resource the router matched, once answered.
        let route = token_route(req.path());
        // The span is entered when the answer is polled, where the inner layers and the
        // handlers do their work (their `call`s only build futures).
        let inner = self.service.call(req);
        Answer {
            inner,
            span,
            start,
            id: Some(id),
            method,
            route,
            options: self.options.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer under way: the inner future, polled inside the request's span.
    pub struct Answer<F> {
        #[pin]
        inner: F,
        span: tracing::Span,
        start: Instant,
        id: Option<HeaderValue>,
        method: &'static str,
        route: Option<&'static str>,
        options: Rc<Options>,
    }
}

impl<F, B> Future for Answer<F>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let outcome = match this.inner.poll(cx) {
            Poll::Ready(outcome) => outcome,
            Poll::Pending => return Poll::Pending,
        };
        let elapsed = this.start.elapsed();
        let options = &**this.options;
        let access = options
            .access_log
            .filter(|level| log::log_enabled!(target: ACCESS_TARGET, *level));
        if options.metrics || access.is_some() {
            let (status, request) = match &outcome {
                Ok(res) => (res.status(), Some(res.request())),
                // Errors that no inner layer turned into an answer (actix renders them after
                // this middleware).
                Err(e) => (e.as_response_error().status_code(), None),
            };
            let route = this
                .route
                .or_else(|| request.map(matched_route))
                .unwrap_or(UNMATCHED);
            if options.metrics {
                metrics::http_answered(this.method, route, status.as_u16(), elapsed);
            }
            if let Some(level) = access {
                let client = request.map_or_else(
                    || "-".to_string(),
                    |r| crate::http::request::client_addr(r, &options.proxies),
                );
                // Milliseconds with three decimals, in integers (cheaper than a float).
                let micros = elapsed.as_micros();
                log::log!(
                    target: ACCESS_TARGET,
                    level,
                    "{client} {} {route} {} {}.{:03}ms",
                    this.method,
                    status.as_u16(),
                    micros / 1000,
                    micros % 1000
                );
            }
        }
        Poll::Ready(outcome.map(|mut res| {
            if let Some(id) = this.id.take() {
                res.headers_mut().insert(REQUEST_ID, id);
            }
            res
        }))
    }
}

/// The route template of an answered request (outside `/0.1/token`): the pattern of the
/// resource the router matched (e.g. `/0.1/users/{user_uuid}`), or [`UNMATCHED`].
fn matched_route(req: &HttpRequest) -> &'static str {
    req.match_pattern().map_or(UNMATCHED, metrics::route_label)
}

/// The templates of the paths `token::dispatch` routes by hand, from the path alone (as that
/// function splits it): the token itself never becomes a label or a log field.
fn token_route(path: &str) -> Option<&'static str> {
    let rest = path.strip_prefix("/0.1/token")?;
    if rest.is_empty() {
        return Some("/0.1/token");
    }
    let rest = rest.strip_prefix('/')?;
    let (segment, tail) = match rest.split_once('/') {
        Some((segment, tail)) => (segment, Some(tail)),
        None => (rest, None),
    };
    Some(match (segment.is_empty(), tail) {
        (false, None) => "/0.1/token/{token}",
        (false, Some("scopes/check")) => "/0.1/token/{token}/scopes/check",
        _ => UNMATCHED,
    })
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Whether a client's request id is kept: 1 to [`MAX_REQUEST_ID_LEN`] visible ASCII
/// characters (nothing that could break a log line or a header).
fn is_sane(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN && id.iter().all(|b| b.is_ascii_graphic())
}

/// The request's id: the client's `X-Request-ID` when sane, else a new one.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    match headers.get(REQUEST_ID) {
        Some(id) if is_sane(id.as_bytes()) => id.clone(),
        _ => new_request_id(),
    }
}

/// A new request id: a random (version 4) UUID, from a per-thread generator seeded from the
/// system's randomness (no system call per request).
fn new_request_id() -> HeaderValue {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(seed());
    }
    // splitmix64: every 64-bit state is visited once per cycle, its outputs are well mixed.
    let next = || {
        STATE
            .try_with(|state| {
                let s = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
                state.set(s);
                let mut z = s;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^ (z >> 31)
            })
            .unwrap_or_else(|_| seed())
    };
    let (high, low) = (next(), next());
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&high.to_le_bytes());
    bytes[8..].copy_from_slice(&low.to_le_bytes());
    let uuid = uuid::Builder::from_random_bytes(bytes).into_uuid();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    HeaderValue::from_str(uuid.hyphenated().encode_lower(&mut text))
        .unwrap_or_else(|_| HeaderValue::from_static("-"))
}

fn seed() -> u64 {
    let (a, b) = uuid::Uuid::new_v4().as_u64_pair();
    a ^ b.rotate_left(17)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_paths_are_named_by_their_template() {
        assert_eq!(token_route("/0.1/token"), Some("/0.1/token"));
        let t = "/0.1/token/2b9c6e4a-6f1d-4a57-9d3e-5c8f7b1a2d3e";
        assert_eq!(token_route(t), Some("/0.1/token/{token}"));
        assert_eq!(
            token_route(&format!("{t}/scopes/check")),
            Some("/0.1/token/{token}/scopes/check")
        );
        assert_eq!(token_route(&format!("{t}/other")), Some(UNMATCHED));
        assert_eq!(token_route("/0.1/token/"), Some(UNMATCHED));
        assert_eq!(token_route("/0.1/tokens"), None);
        assert_eq!(token_route("/0.1/users"), None);
    }

    #[test]
    fn client_ids_are_kept_only_when_sane() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_static("abc-123_X.y"));
        assert_eq!(request_id(&headers), "abc-123_X.y");
        for insane in [
            "".to_string(),
            "with space".to_string(),
            "x".repeat(MAX_REQUEST_ID_LEN + 1),
        ] {
            headers.insert(REQUEST_ID, HeaderValue::from_str(&insane).unwrap());
            let id = request_id(&headers);
            assert_ne!(id, insane.as_str());
            assert!(
                uuid::Uuid::parse_str(id.to_str().unwrap()).is_ok(),
                "{id:?}"
            );
        }
        headers.insert(REQUEST_ID, HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap());
        assert_ne!(request_id(&headers), &b"caf\xc3\xa9"[..]);
        assert_eq!(request_id(&headers).len(), 36);
        let long = "x".repeat(MAX_REQUEST_ID_LEN);
        headers.insert(REQUEST_ID, HeaderValue::from_str(&long).unwrap());
        assert_eq!(request_id(&headers), long.as_str());
    }

    #[test]
    fn generated_ids_are_version_4_uuids_and_differ() {
        let ids: std::collections::BTreeSet<String> = (0..1000)
            .map(|_| new_request_id().to_str().unwrap().to_string())
            .collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);
        }
    }
}
