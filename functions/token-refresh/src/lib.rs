//! `token-refresh`: `POST /auth/refresh` and `POST /auth/logout`.
//!
//! Both take the refresh token from the JSON body `{refresh_token}` or, when the body is empty,
//! from the `tollgate_refresh` cookie. Refresh → 200 new token pair (+ cookie); a reused rotated
//! token → 401 `refresh_token_reused` and the session is revoked. Logout → 204 and the cookie is
//! cleared.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use tollgate::auth::AuthError;
use tollgate::http::{
    clear_refresh_cookie, refresh_cookie, refresh_token_from_cookie, ApiError, OptionalJsonBody,
    TokenBody,
};
use tollgate::AppState;

/// Refresh path.
pub const REFRESH_PATH: &str = "/auth/refresh";
/// Logout path.
pub const LOGOUT_PATH: &str = "/auth/logout";

/// The `(method, path)` pairs this function serves: the source of truth the SAM template is
/// checked against.
pub const ROUTES: &[(&str, &str)] = &[("POST", REFRESH_PATH), ("POST", LOGOUT_PATH)];

/// This function's routes, with full public paths.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(REFRESH_PATH, post(refresh))
        .route(LOGOUT_PATH, post(logout))
}

/// Body of both routes; optional when the cookie is sent.
#[derive(Deserialize)]
pub struct RefreshRequest {
    refresh_token: String,
}

fn presented(headers: &HeaderMap, body: Option<RefreshRequest>) -> Result<String, ApiError> {
    body.map(|b| b.refresh_token)
        .or_else(|| refresh_token_from_cookie(headers))
        .ok_or(ApiError::Auth(AuthError::InvalidRefreshToken))
}

async fn refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
    OptionalJsonBody(body): OptionalJsonBody<RefreshRequest>,
) -> Result<Response, ApiError> {
    let token = presented(&headers, body)?;
    let tokens = state.auth().refresh_token(&token).await?;
    Ok((
        [
            (header::SET_COOKIE, refresh_cookie(&tokens, state.config())),
            (header::CACHE_CONTROL, "no-store".parse().expect("static")),
        ],
        Json(TokenBody::from(&tokens)),
    )
        .into_response())
}

async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    OptionalJsonBody(body): OptionalJsonBody<RefreshRequest>,
) -> Result<Response, ApiError> {
    let token = presented(&headers, body)?;
    state.auth().logout(&token).await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, clear_refresh_cookie(state.config()))],
    )
        .into_response())
}
