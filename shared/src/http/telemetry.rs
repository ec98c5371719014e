//! Request telemetry: every request runs in a `request` span carrying its request id (API
//! Gateway's `requestContext.requestId` when the Lambda adapter provides it as a [`RequestId`]
//! extension, otherwise a fresh UUIDv7), method and path, and — once known — the user and webhook
//! event ids. The id is echoed in `x-request-id` and in every 5xx problem body.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderValue;
use tracing::Instrument as _;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The request id given by the platform (API Gateway's `requestContext.requestId`), put into the
/// request's extensions by the Lambda adapter.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// The response header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of the request being handled on this task, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Middleware: runs the request in its span with its id, echoes the id in `x-request-id`, and
/// logs the status and latency (at `debug`).
pub async fn request_span(req: Request, next: Next) -> Response {
    let id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.uri().path(),
        user_id = tracing::field::Empty,
        event_id = tracing::field::Empty,
    );
    let started = std::time::Instant::now();
    let mut response = REQUEST_ID
        .scope(id.clone(), next.run(req).instrument(span.clone()))
        .await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    span.in_scope(|| {
        tracing::debug!(
            status = response.status().as_u16(),
            micros = started.elapsed().as_micros() as u64,
            "request"
        )
    });
    response
}
