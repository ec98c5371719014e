//! `checkout`: `POST /billing/checkout`, `POST /billing/portal`,
//! `POST /billing/subscription/cancel`, `POST /billing/subscription/resume`,
//! `POST /billing/subscription/change` (all with `Authorization: Bearer <access token>`).
//!
//! - checkout `{plan, interval?, provider?}` → 200 `{url, provider}`; 409 `subscription_exists`
//!   for a user with access to a paid plan; 422 for an unknown plan or missing price; 503
//!   `provider_not_configured` without provider keys.
//! - portal → 200 `{url}`; 404 `no_subscription`.
//! - cancel (at period end) / resume → 202 `{status: "pending"}`: the provider confirms by webhook.
//! - change `{plan, interval?}` → 202, prorated per the target plan's `proration`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tollgate::billing::{Interval, Provider};
use tollgate::domain::UserId;
use tollgate::http::{ApiError, Authenticated, JsonBody, OptionalJsonBody};
use tollgate::AppState;

/// Checkout path.
pub const CHECKOUT_PATH: &str = "/billing/checkout";
/// Portal path.
pub const PORTAL_PATH: &str = "/billing/portal";
/// Cancel-at-period-end path.
pub const CANCEL_PATH: &str = "/billing/subscription/cancel";
/// Resume path.
pub const RESUME_PATH: &str = "/billing/subscription/resume";
/// Plan change path.
pub const CHANGE_PATH: &str = "/billing/subscription/change";

/// The `(method, path)` pairs this function serves: the source of truth the SAM template is
/// checked against.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", CHECKOUT_PATH),
    ("POST", PORTAL_PATH),
    ("POST", CANCEL_PATH),
    ("POST", RESUME_PATH),
    ("POST", CHANGE_PATH),
];

/// This function's routes, with full public paths.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(CHECKOUT_PATH, post(checkout))
        .route(PORTAL_PATH, post(portal))
        .route(CANCEL_PATH, post(cancel))
        .route(RESUME_PATH, post(resume))
        .route(CHANGE_PATH, post(change))
}

/// `POST /billing/checkout` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutBody {
    plan: String,
    #[serde(default)]
    interval: Option<Interval>,
    #[serde(default)]
    provider: Option<String>,
}

/// `POST /billing/subscription/change` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeBody {
    plan: String,
    #[serde(default)]
    interval: Option<Interval>,
}

fn user_of(claims: &tollgate::auth::AccessClaims) -> Result<UserId, ApiError> {
    claims.sub.parse().map_err(|_| ApiError::MissingBearer)
}

async fn checkout(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    JsonBody(body): JsonBody<CheckoutBody>,
) -> Result<Response, ApiError> {
    let provider = match body.provider.as_deref() {
        None => None,
        Some(p) => Some(Provider::parse(p).ok_or_else(|| {
            ApiError::InvalidQuery(format!("unknown provider {p:?}: use stripe or whop"))
        })?),
    };
    let (provider, url) = state
        .billing()
        .create_checkout(&user_of(&claims)?, &body.plan, body.interval, provider)
        .await?;
    Ok(Json(json!({"url": url, "provider": provider.as_str()})).into_response())
}

async fn portal(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
) -> Result<Response, ApiError> {
    let url = state.billing().create_portal(&user_of(&claims)?).await?;
    Ok(Json(json!({"url": url})).into_response())
}

fn pending() -> Response {
    (StatusCode::ACCEPTED, Json(json!({"status": "pending"}))).into_response()
}

async fn cancel(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    _: OptionalJsonBody<serde_json::Value>,
) -> Result<Response, ApiError> {
    state.billing().cancel(&user_of(&claims)?).await?;
    Ok(pending())
}

async fn resume(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    _: OptionalJsonBody<serde_json::Value>,
) -> Result<Response, ApiError> {
    state.billing().resume(&user_of(&claims)?).await?;
    Ok(pending())
}

async fn change(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    JsonBody(body): JsonBody<ChangeBody>,
) -> Result<Response, ApiError> {
    state
        .billing()
        .change_plan(&user_of(&claims)?, &body.plan, body.interval)
        .await?;
    Ok(pending())
}
