//! `subscription-lookup`: `GET /auth/me` (and, with billing, `GET /billing/subscription`).
//!
//! `GET /auth/me` with `Authorization: Bearer <access token>` → 200
//! `{id, email, email_verified, plan}`; a missing, invalid or expired token, or a token whose
//! session was revoked → 401 `invalid_token`.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tollgate::http::{ApiError, Authenticated};
use tollgate::AppState;

/// The public path of the current-user route.
pub const ME_PATH: &str = "/auth/me";

/// The `(method, path)` pairs this function serves: the source of truth the SAM template is
/// checked against.
pub const ROUTES: &[(&str, &str)] = &[("GET", ME_PATH)];

/// This function's routes, with full public paths.
pub fn routes() -> Router<AppState> {
    Router::new().route(ME_PATH, get(me))
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
