//! `login`: `POST /auth/login`.
//!
//! Request `{email, password}` → 200 `{access_token, token_type, expires_in, refresh_token}` and
//! the refresh cookie. Unknown email and wrong password give the same 401 `invalid_credentials`.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use tollgate::http::{refresh_cookie, ApiError, JsonBody, TokenBody, UserAgent};
use tollgate::AppState;

/// The public path this function serves.
pub const PATH: &str = "/auth/login";

/// The `(method, path)` pairs this function serves: the source of truth the SAM template is
/// checked against.
pub const ROUTES: &[(&str, &str)] = &[("POST", PATH)];

/// This function's routes, with full public paths.
pub fn routes() -> Router<AppState> {
    Router::new().route(PATH, post(login))
}

/// `POST /auth/login` body.
#[derive(Deserialize)]
pub struct LoginRequest {
    email: String,
    password: String,
}

async fn login(
    State(state): State<AppState>,
    UserAgent(ua): UserAgent,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<Response, ApiError> {
    let (_, tokens) = state.auth().login(&req.email, req.password, ua).await?;
    Ok((
        [
            (header::SET_COOKIE, refresh_cookie(&tokens, state.config())),
            (header::CACHE_CONTROL, "no-store".parse().expect("static")),
        ],
        Json(TokenBody::from(&tokens)),
    )
        .into_response())
}
