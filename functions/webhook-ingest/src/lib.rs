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
use serde_json::json;
use tollgate::billing::Provider;
use tollgate::http::ApiError;
use tollgate::webhooks::ingest::{IngestOutcome, MAX_WEBHOOK_BYTES};
use tollgate::AppState;

/// Stripe webhook path.
pub const STRIPE_PATH: &str = "/webhooks/stripe";
/// Whop webhook path.
pub const WHOP_PATH: &str = "/webhooks/whop";

/// The `(method, path)` pairs this function serves: the source of truth the SAM template is
/// checked against.
pub const ROUTES: &[(&str, &str)] = &[("POST", STRIPE_PATH), ("POST", WHOP_PATH)];

/// This function's routes, with full public paths.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(STRIPE_PATH, post(stripe))
        .route(WHOP_PATH, post(whop))
        // One byte over the cap still reaches the use case, which answers 413 as problem+json.
        .layer(DefaultBodyLimit::max(MAX_WEBHOOK_BYTES + 1))
}

async fn receive(
    state: AppState,
    provider: Provider,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let outcome = state.ingest().ingest(provider, &headers, &body).await?;
    Ok(
        Json(json!({"received": true, "duplicate": outcome == IngestOutcome::Duplicate}))
            .into_response(),
    )
}

async fn stripe(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    receive(state, Provider::Stripe, headers, body).await
}

async fn whop(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    receive(state, Provider::Whop, headers, body).await
}
