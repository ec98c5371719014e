//! `subscription-lookup`: `GET /auth/me` and `GET /billing/subscription`.
//!
//! `GET /billing/subscription[?checkout_session=<id>]` with a bearer token → 200 `{plan, status,
//! access, tier, entitlements, current_period_end, cancel_at_period_end, trial_end, grace_until,
//! provider}` (times RFC 3339, `null` when absent). With `checkout_session` it first fetches that
//! session's subscription from the provider and applies it (the success-page redirect can beat the
//! webhook).
//!
//! `GET /auth/me` with `Authorization: Bearer <access token>` → 200
//! `{id, email, email_verified, plan}`; a missing, invalid or expired token, or a token whose
//! session was revoked → 401 `invalid_token`.

use axum::extract::Query;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde::Serialize;
use serde_json::json;
use tollgate::clock::rfc3339;
use tollgate::http::{ApiError, Authenticated};
use tollgate::AppState;

/// The public path of the current-user route.
pub const ME_PATH: &str = "/auth/me";
/// The public path of the subscription route.
pub const SUBSCRIPTION_PATH: &str = "/billing/subscription";

/// The `(method, path)` pairs this function serves: the source of truth the SAM template is
/// checked against.
pub const ROUTES: &[(&str, &str)] = &[("GET", ME_PATH), ("GET", SUBSCRIPTION_PATH)];

/// This function's routes, with full public paths.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(ME_PATH, get(me))
        .route(SUBSCRIPTION_PATH, get(subscription))
}

#[derive(Serialize)]
struct MeBody {
    id: String,
    email: String,
    email_verified: bool,
    plan: String,
}

async fn me(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
) -> Result<Response, ApiError> {
    let me = state.auth().me(&claims).await?;
    let body = MeBody {
        id: me.user.id.to_string(),
        email: me.user.email,
        email_verified: me.user.email_verified,
        plan: me.plan,
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

/// `GET /billing/subscription` query.
#[derive(Deserialize)]
pub struct SubscriptionQuery {
    checkout_session: Option<String>,
}

async fn subscription(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Query(query): Query<SubscriptionQuery>,
) -> Result<Response, ApiError> {
    let user_id = claims.sub.parse().map_err(|_| ApiError::MissingBearer)?;
    let session = query.checkout_session.as_deref().filter(|s| !s.is_empty());
    if session.is_some_and(|s| {
        s.len() > 255 || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    }) {
        return Err(ApiError::InvalidQuery(
            "checkout_session is not a session id".into(),
        ));
    }
    let view = state.billing().subscription(&user_id, session).await?;
    let sub = view.subscription.as_ref();
    let body = json!({
        "plan": view.access.plan,
        "status": sub.map(|s| s.status.as_str()),
        "access": view.access.has_access,
        "tier": view.access.tier,
        "entitlements": view.access.entitlements,
        "current_period_end": sub.and_then(|s| s.current_period_end).map(rfc3339),
        "cancel_at_period_end": sub.is_some_and(|s| s.cancel_at_period_end),
        "trial_end": sub.and_then(|s| s.trial_end).map(rfc3339),
        "grace_until": view.access.grace_until.map(rfc3339),
        "provider": sub.map(|s| s.provider.as_str()),
    });
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}
