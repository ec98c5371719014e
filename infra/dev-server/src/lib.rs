//! The local API: every function's router merged on one port, on the embedded store, with the
//! webhook processor fed by an in-process queue and an offline `local` payment provider.

pub mod local;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use local::LocalProvider;
use serde_json::json;
use std::sync::Arc;
use tollgate::billing::Provider;
use tollgate::http::ApiError;
use tollgate::payments::ProviderError;
use tollgate::queue::EventMessage;
use tollgate::webhooks::process::Processor;
use tollgate::AppState;

/// Every function's routes, merged (the same routers the Lambdas serve).
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(signup::routes())
        .merge(login::routes())
        .merge(token_refresh::routes())
        .merge(jwks::routes())
        .merge(subscription_lookup::routes())
        .merge(checkout::routes())
        .merge(webhook_ingest::routes())
}

/// The whole local app with `state`: routes, problem+json fallbacks and request logging.
pub fn app(state: AppState) -> Router {
    tollgate::http_app(routes(), state).layer(axum::middleware::from_fn(log_request))
}

/// [`app`] plus the `local` provider's routes: `POST /webhooks/local` (its signed events),
/// `GET|POST /dev/checkout/{session}/complete` (the "payment page") and `GET /dev/portal/{sub}`.
pub fn app_with_local(state: AppState, local: Arc<LocalProvider>) -> Router {
    let dev = Router::new()
        .route("/webhooks/local", post(local_webhook))
        .route(
            "/dev/checkout/{session}/complete",
            get(complete_redirect).post(complete_json),
        )
        .route("/dev/portal/{subscription}", get(portal_page))
        .layer(Extension(local));
    tollgate::http_app(routes().merge(dev), state).layer(axum::middleware::from_fn(log_request))
}

async fn local_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    state
        .ingest()
        .ingest(Provider::Local, &headers, &body)
        .await?;
    Ok(Json(json!({"received": true})).into_response())
}

fn provider_problem(e: ProviderError) -> Response {
    let status = match e {
        ProviderError::NotFound => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_GATEWAY,
    };
    (status, Json(json!({"error": e.to_string()}))).into_response()
}

async fn complete_redirect(
    Extension(local): Extension<Arc<LocalProvider>>,
    Path(session): Path<String>,
) -> Response {
    match local.complete(&session).await {
        Ok(success_url) => Redirect::to(&success_url).into_response(),
        Err(e) => provider_problem(e),
    }
}

async fn complete_json(
    Extension(local): Extension<Arc<LocalProvider>>,
    Path(session): Path<String>,
) -> Response {
    match local.complete(&session).await {
        Ok(success_url) => Json(
            json!({"completed": true, "checkout_session": session, "success_url": success_url}),
        )
        .into_response(),
        Err(e) => provider_problem(e),
    }
}

async fn portal_page(Path(subscription): Path<String>) -> Response {
    Json(json!({
        "subscription": subscription,
        "note": "local billing portal: use POST /billing/subscription/cancel, /resume or /change with your bearer token",
    }))
    .into_response()
}

/// Drains the in-process queue: each event is processed in arrival order, retried up to 5 times
/// with exponential backoff (100 ms · 2ⁿ) like SQS redelivery; after that it stays `failed` in the
/// ledger (the dev server's dead-letter queue) and the error is logged.
pub fn spawn_worker(
    processor: Arc<Processor>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<EventMessage>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            let mut delay = std::time::Duration::from_millis(100);
            for attempt in 1..=5 {
                match processor.process_one(&message).await {
                    Ok(outcome) => {
                        tracing::debug!(event_id = %message.event_id, ?outcome, "processed");
                        break;
                    }
                    Err(e) if attempt < 5 => {
                        tracing::warn!(event_id = %message.event_id, attempt, error = %e, "processing failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                    Err(e) => {
                        tracing::error!(event_id = %message.event_id, error = %e, "processing failed 5 times; left as failed in the ledger")
                    }
                }
            }
        }
    })
}

async fn log_request(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    tracing::debug!(%method, %path, status = response.status().as_u16(), micros = started.elapsed().as_micros() as u64, "request");
    response
}
