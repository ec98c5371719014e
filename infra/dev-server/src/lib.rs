//! The local API: every function's router merged on one port, on the embedded store, with the
//! webhook processor fed by an in-process queue, the mail outbox drained by an in-process worker
//! into a directory (and optionally SMTP) listed at `/dev/mail` ([`mail`]), and — without a
//! `STRIPE_SECRET_KEY` — an offline Stripe stand-in ([`offline_stripe`]). Also the generator of
//! the OpenAPI document ([`openapi`]), since this crate links every function's routes.

pub mod mail;
pub mod offline_stripe;
pub mod openapi;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use offline_stripe::OfflineStripe;
use serde_json::json;
use std::sync::Arc;
use tollgate::error::Chain;
use tollgate::payments::ProviderError;
use tollgate::queue::EventMessage;
use tollgate::webhooks::Processor;
use tollgate::AppState;

/// Every function's routes, merged (the same routers the Lambdas serve).
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(signup::routes())
        .merge(login::routes())
        .merge(account::routes())
        .merge(oauth::routes())
        .merge(token_refresh::routes())
        .merge(jwks::routes())
        .merge(subscription_lookup::routes())
        .merge(checkout::routes())
        .merge(webhook_ingest::routes())
        .merge(web::routes())
        .merge(usage::routes())
        .merge(admin::routes())
        // The example route behind the Tollgate authorizer, with API Gateway's authorizer step
        // played in-process by the same use case.
        .merge(whoami::routes().route_layer(axum::middleware::from_fn(
            tollgate::http::authorizer::emulate,
        )))
}

/// The whole local app with `state`: every route, problem+json fallbacks, request spans.
pub fn app(state: AppState) -> Router {
    tollgate::http_app(routes(), state)
}

/// The dev server's own parts besides the functions' routes.
#[derive(Default)]
pub struct DevParts {
    /// The offline Stripe stand-in, whose pages are `GET|POST /dev/checkout/{session}/complete`
    /// (the "payment page") and `GET /dev/portal/{subscription}`.
    pub stripe: Option<Arc<OfflineStripe>>,
    /// The mail outbox directory, listed at `GET /dev/mail`.
    pub mail: Option<Arc<mail::DevMailer>>,
}

/// [`app`] plus the dev server's own pages (`parts`).
pub fn app_with(state: AppState, parts: DevParts) -> Router {
    let mut all = routes();
    if let Some(stripe) = parts.stripe {
        all = all.merge(
            Router::new()
                .route(
                    "/dev/checkout/{session}/complete",
                    get(complete_redirect).post(complete_json),
                )
                .route("/dev/portal/{subscription}", get(portal_page))
                .layer(Extension(stripe)),
        );
    }
    if let Some(mailer) = parts.mail {
        all = all.merge(mail::routes(mailer));
    }
    all = all.route("/dev/admin", axum::routing::post(grant_admin));
    tollgate::http_app(all, state)
}

fn provider_problem(e: ProviderError) -> Response {
    let status = match e {
        ProviderError::NotFound => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_GATEWAY,
    };
    (status, Json(json!({"error": Chain(&e).to_string()}))).into_response()
}

async fn complete_redirect(
    Extension(stripe): Extension<Arc<OfflineStripe>>,
    Path(session): Path<String>,
) -> Response {
    match stripe.complete(&session).await {
        Ok(success_url) => Redirect::to(&success_url).into_response(),
        Err(e) => provider_problem(e),
    }
}

async fn complete_json(
    Extension(stripe): Extension<Arc<OfflineStripe>>,
    Path(session): Path<String>,
) -> Response {
    match stripe.complete(&session).await {
        Ok(success_url) => Json(
            json!({"completed": true, "checkout_session": session, "success_url": success_url}),
        )
        .into_response(),
        Err(e) => provider_problem(e),
    }
}

/// `POST /dev/admin {"email"}`: gives an existing user the `admin` role — what
/// `tollgate-admin grant-admin` does for a deployed stack (the dev server holds its store, so the
/// command cannot open it while it runs). Only on the dev server, which listens on loopback.
async fn grant_admin(
    axum::extract::State(state): axum::extract::State<AppState>,
    Json(body): Json<serde_json::Value>,
) -> Response {
    let Some(email) = body.get("email").and_then(serde_json::Value::as_str) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "expected {\"email\": \"…\"}"})),
        )
            .into_response();
    };
    let granted = async {
        let admin = state.admin()?;
        Ok::<_, tollgate::http::ApiError>(admin.grant_admin_role(email).await?)
    };
    match granted.await {
        Ok(user) => {
            Json(json!({"user_id": user.id.to_string(), "roles": user.roles})).into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn portal_page(Path(subscription): Path<String>) -> Response {
    Json(json!({
        "subscription": subscription,
        "note": "offline billing portal: use POST /billing/subscription/cancel, /resume or /change with your bearer token",
    }))
    .into_response()
}

/// Drains the in-process queue: each event is processed in arrival order; a retryable failure is
/// retried up to 5 times with exponential backoff (100 ms · 2ⁿ) like SQS redelivery, a permanent
/// one is not retried. Either way it then stays `failed` in the ledger (the dev server's
/// dead-letter queue) and the error is logged.
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
                    Err(e) if attempt < 5 && e.is_retryable() => {
                        tracing::warn!(event_id = %message.event_id, attempt, error = %Chain(&e), "processing failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                    Err(e) => {
                        tracing::error!(event_id = %message.event_id, attempt, error = %Chain(&e), "processing failed; left as failed in the ledger");
                        break;
                    }
                }
            }
        }
    })
}
