//! `webhook-ingest`: `POST /webhooks/stripe` and `POST /webhooks/whop` (no bearer: signatures).
//!
//! Verifies the signature over the raw body, stores the event in the ledger, enqueues a pointer
//! on the SQS FIFO queue, and only then answers 200 `{received: true, duplicate}`. Bad signature
//! → 400 `invalid_signature` with nothing stored; ledger or queue failure → 503 (the provider
//! retries); body over 256 KiB → 413.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;
use tollgate::domain::Provider;
use tollgate::http::openapi::Internal;
use tollgate::http::{ApiError, Problem};
use tollgate::webhooks::{IngestOutcome, MAX_WEBHOOK_BYTES};
use tollgate::{AppState, KeyAccess, Needs};
use utoipa::OpenApi as _;

/// Stripe webhook path.
pub const STRIPE_PATH: &str = "/webhooks/stripe";
/// Whop webhook path.
pub const WHOP_PATH: &str = "/webhooks/whop";

/// The `(method, path)` pairs this function serves: the source of truth the SAM template, the
/// OpenAPI document and the local Lambda router are checked against.
pub const ROUTES: &[(&str, &str)] = &[("POST", STRIPE_PATH), ("POST", WHOP_PATH)];

/// What this function builds at start-up: the webhook signing secrets, the ledger and the queue
/// — no signing keys and no provider API keys.
pub const NEEDS: Needs = Needs {
    keys: KeyAccess::None,
    accounts: false,
    billing: false,
    ingest: true,
    mail: false,
    oauth: false,
    outbound: false,
};

/// This function's routes, with full public paths.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(STRIPE_PATH, post(stripe))
        .route(WHOP_PATH, post(whop))
        // One byte over the cap still reaches the use case, which answers 413 as problem+json.
        .layer(DefaultBodyLimit::max(MAX_WEBHOOK_BYTES + 1))
}

/// This function's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    Doc::openapi()
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(stripe, whop), components(schemas(Received)))]
struct Doc;

/// What a delivery is answered, for both providers.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // documents the responses; the handler answers through `Received` and ApiError
enum Delivery {
    /// Stored and enqueued (or already processed).
    #[response(status = 200)]
    Received(Received),
    /// `invalid_signature` (nothing stored) or `malformed_event`.
    #[response(status = 400, content_type = "application/problem+json")]
    Refused(Problem),
    /// `payload_too_large`: over 256 KiB.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// `provider_not_configured` (no webhook secret yet) or `unavailable` (not stored): the
    /// provider retries.
    #[response(status = 503, content_type = "application/problem+json")]
    Retry(Problem),
}

/// The acknowledgement, sent only once the event is stored and enqueued.
#[derive(Serialize, utoipa::ToSchema)]
struct Received {
    /// Always `true`.
    received: bool,
    /// Whether the event had already been processed (nothing was enqueued again).
    duplicate: bool,
}

async fn receive(
    state: AppState,
    provider: Provider,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let outcome = state.ingest()?.ingest(provider, &headers, &body).await?;
    Ok(Json(Received {
        received: true,
        duplicate: outcome == IngestOutcome::Duplicate,
    })
    .into_response())
}

/// Receives a Stripe event (signed with `Stripe-Signature`).
#[utoipa::path(
    post,
    path = STRIPE_PATH,
    tag = "webhooks",
    request_body(content = Object, description = "A Stripe event, exactly as Stripe sends it (the signature covers the raw bytes)."),
    security(("stripe_signature" = [])),
    responses(Delivery, (status = 500, response = Internal)),
)]
async fn stripe(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    receive(state, Provider::Stripe, headers, body).await
}

/// Receives a Whop event (Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`).
#[utoipa::path(
    post,
    path = WHOP_PATH,
    tag = "webhooks",
    request_body(content = Object, description = "A Whop event, exactly as Whop sends it (the signature covers the raw bytes)."),
    security(("standard_webhooks" = [])),
    responses(Delivery, (status = 500, response = Internal)),
)]
async fn whop(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    receive(state, Provider::Whop, headers, body).await
}
