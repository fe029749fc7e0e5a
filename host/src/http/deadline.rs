//! The request read deadline (`rest_api.request_read_timeout`): a client has that long to send
//! a whole request, head and body. A body still arriving when it passes is answered 408 and the
//! connection is closed; a body nobody reads cannot hold the connection open either.
//!
//! - The head: actix's own head timer (`client_request_timeout`, set in `server.rs` to this
//!   deadline or less) answers 408 and closes a connection whose first request head is late.
//! - The body: the outermost middleware ([`ReadDeadline`]) gives every request that has a body
//!   a deadline, counted from the connection's start for its first request ([`on_connect`]),
//!   from the end of the head for the next ones, and replaces the body stream with one that
//!   fails once the deadline passes. Whoever reads the body ([`super::extract::read_limited`])
//!   then answers 408 ([`request_timeout`]), with `Connection: close`.
//! - A body no handler reads (a `GET` with a trickling body, a `POST` refused before its body):
//!   the middleware keeps the body stream alive until the answer is sent, so actix sees an
//!   unfinished body and closes the connection after answering (it would otherwise drain a
//!   chunked body for as long as the client sends it, and keep the connection for that long).
//!
//! Requests without a body (token checks) pay one lookup in the connection's data.

use std::cell::{Cell, RefCell};
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{forward_ready, Payload, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::error::PayloadError;
use actix_web::http::{ConnectionType, StatusCode};
use actix_web::rt::time::{sleep_until, Instant, Sleep};
use actix_web::web::Bytes;
use actix_web::HttpMessage as _;
use actix_web::{HttpResponse, ResponseError};
use futures_util::{Stream, StreamExt};

use super::error::ApiError;

/// When a connection was accepted; taken by its first request.
struct ConnectionStart(Cell<Option<Instant>>);

/// `HttpServer::on_connect`: notes when each connection starts, for the deadline of its first
/// request (whose head was read in the meantime).
pub fn on_connect(_: &dyn std::any::Any, data: &mut actix_web::dev::Extensions) {
    data.insert(ConnectionStart(Cell::new(Some(Instant::now()))));
}

/// The error of a body stream whose deadline passed.
#[derive(Debug)]
struct DeadlinePassed;

impl std::fmt::Display for DeadlinePassed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request read deadline passed")
    }
}

impl std::error::Error for DeadlinePassed {}

/// Whether a body read failed because the deadline passed.
pub fn passed(error: &PayloadError) -> bool {
    matches!(error, PayloadError::Io(e) if e.get_ref().is_some_and(|inner| inner.is::<DeadlinePassed>()))
}

/// The answer to a request not received in time (shape C, as the other transport errors).
pub fn request_timeout() -> ApiError {
    ApiError::plain(
        StatusCode::REQUEST_TIMEOUT,
        "The request was not received in time",
    )
}

/// The middleware (see the module's documentation).
pub struct ReadDeadline {
    timeout: Duration,
}

impl ReadDeadline {
    pub fn new(timeout: Duration) -> ReadDeadline {
        ReadDeadline { timeout }
    }
}

impl<S, B> Transform<S, ServiceRequest> for ReadDeadline
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<Held<B>>;
    type Error = actix_web::Error;
    type Transform = ReadDeadlineService<S>;
    type InitError = ();
    type Future = Ready<Result<ReadDeadlineService<S>, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(ReadDeadlineService {
            service,
            timeout: self.timeout,
        }))
    }
}

pub struct ReadDeadlineService<S> {
    service: S,
    timeout: Duration,
}

impl<S, B> Service<ServiceRequest> for ReadDeadlineService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<Held<B>>;
    type Error = actix_web::Error;
    type Future = Guarded<S::Future>;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        // Taken by the first request of the connection, with or without a body.
        let connected = req
            .conn_data::<ConnectionStart>()
            .and_then(|start| start.0.take());
        let body = match req.take_payload() {
            Payload::None => None,
            payload => {
                let deadline = connected.unwrap_or_else(Instant::now) + self.timeout;
                let body = Rc::new(Body {
                    payload: RefCell::new(payload),
                    expired: Cell::new(false),
                });
                req.set_payload(Payload::Stream {
                    payload: Box::pin(BoundedBody {
                        body: body.clone(),
                        deadline: Box::pin(sleep_until(deadline)),
                        finished: false,
                    }),
                });
                Some(body)
            }
        };
        Guarded {
            inner: self.service.call(req),
            body,
        }
    }
}

/// The request's body, shared by the stream handed to the handlers and the middleware.
struct Body {
    payload: RefCell<Payload>,
    /// Set when a read found the deadline passed.
    expired: Cell<bool>,
}

/// The body stream handed to the handlers: the request's, failing once the deadline passed.
struct BoundedBody {
    body: Rc<Body>,
    deadline: Pin<Box<Sleep>>,
    finished: bool,
}

impl Stream for BoundedBody {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        // The deadline first: a client trickling bytes always has one ready.
        if self.body.expired.get() || self.deadline.as_mut().poll(cx).is_ready() {
            self.body.expired.set(true);
            return Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                DeadlinePassed,
            )))));
        }
        let next = self.body.payload.borrow_mut().poll_next_unpin(cx);
        if let Poll::Ready(None) = next {
            self.finished = true;
        }
        next
    }
}

pin_project_lite::pin_project! {
    /// The answer under way, holding the request's body.
    pub struct Guarded<F> {
        #[pin]
        inner: F,
        body: Option<Rc<Body>>,
    }
}

impl<F, B> Future for Guarded<F>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
    B: MessageBody,
{
    type Output = Result<ServiceResponse<Held<B>>, actix_web::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let outcome = match this.inner.poll(cx) {
            Poll::Ready(outcome) => outcome,
            Poll::Pending => return Poll::Pending,
        };
        let body = this.body.take();
        let expired = body.as_ref().is_some_and(|b| b.expired.get());
        match outcome {
            Ok(mut res) => {
                if expired {
                    res.response_mut()
                        .head_mut()
                        .set_connection_type(ConnectionType::Close);
                }
                Poll::Ready(Ok(res.map_body(|_, inner| Held {
                    inner,
                    request_body: body,
                })))
            }
            // An error actix renders once this future is gone: its answer holds the body too.
            Err(error) => Poll::Ready(Err(match body {
                Some(body) => HeldError { error, body }.into(),
                None => error,
            })),
        }
    }
}

/// An error answer whose body holds the request's body (see [`Held`]).
struct HeldError {
    error: actix_web::Error,
    body: Rc<Body>,
}

impl std::fmt::Debug for HeldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.error, f)
    }
}

impl std::fmt::Display for HeldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.error, f)
    }
}

impl ResponseError for HeldError {
    fn status_code(&self) -> StatusCode {
        self.error.as_response_error().status_code()
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        let mut res = self.error.error_response();
        if self.body.expired.get() {
            res.head_mut().set_connection_type(ConnectionType::Close);
        }
        let request_body = Some(self.body.clone());
        res.map_body(|_, inner| {
            BoxBody::new(Held {
                inner,
                request_body,
            })
        })
    }
}

pin_project_lite::pin_project! {
    /// An answer's body holding the request's body until it is sent: actix, finding the request
    /// body unfinished (and not dropped) once the answer is sent, closes the connection instead
    /// of draining the rest.
    pub struct Held<B> {
        #[pin]
        inner: B,
        request_body: Option<Rc<Body>>,
    }
}

impl<B: MessageBody> MessageBody for Held<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.inner.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        self.project().inner.poll_next(cx)
    }

    fn try_into_bytes(self) -> Result<Bytes, Self> {
        if self.request_body.is_some() {
            return Err(self);
        }
        self.inner.try_into_bytes().map_err(|inner| Held {
            inner,
            request_body: None,
        })
    }
}
