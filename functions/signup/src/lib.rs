//! `signup`: `POST /auth/signup`.
//!
//! Request `{email, password}` → 201 `{user: {id, email, created_at}, access_token, token_type,
//! expires_in, refresh_token}` and the refresh cookie. Errors (problem+json): 422
//! `validation_failed`, 409 `email_taken`, 400/413/415 for bad bodies.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tollgate::clock::rfc3339;
use tollgate::http::{refresh_cookie, ApiError, JsonBody, TokenBody, UserAgent};
use tollgate::AppState;

/// The public path this function serves.
pub const PATH: &str = "/auth/signup";

/// The `(method, path)` pairs this function serves: the source of truth the SAM template is
/// checked against.
pub const ROUTES: &[(&str, &str)] = &[("POST", PATH)];

/// This function's routes, with full public paths.
pub fn routes() -> Router<AppState> {
    Router::new().route(PATH, post(signup))
}

/// `POST /auth/signup` body.
#[derive(Deserialize)]
pub struct SignupRequest {
    email: String,
    password: String,
}

/// The created user as returned to the client.
#[derive(Serialize)]
pub struct UserBody {
    /// User id (UUIDv7).
    pub id: String,
    /// Email as entered.
    pub email: String,
    /// RFC 3339 UTC.
    pub created_at: String,
}

#[derive(Serialize)]
struct SignupResponse {
    user: UserBody,
    #[serde(flatten)]
    tokens: TokenBody,
}

async fn signup(
    State(state): State<AppState>,
    UserAgent(ua): UserAgent,
    JsonBody(req): JsonBody<SignupRequest>,
) -> Result<Response, ApiError> {
    let (user, tokens) = state.auth().signup(&req.email, req.password, ua).await?;
    let body = SignupResponse {
        user: UserBody {
            id: user.id.to_string(),
            email: user.email,
            created_at: rfc3339(user.created_at),
        },
        tokens: TokenBody::from(&tokens),
    };
    Ok((
        StatusCode::CREATED,
        [
            (header::SET_COOKIE, refresh_cookie(&tokens, state.config())),
            (header::CACHE_CONTROL, "no-store".parse().expect("static")),
        ],
        Json(body),
    )
        .into_response())
}
