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
use axum::Router;
use serde::Deserialize;
use tollgate::auth::AuthError;
use tollgate::domain::rules;
use tollgate::domain::RequestOrigin;
use tollgate::http::limit::by_ip;
use tollgate::http::openapi::{BodyProblems, RateLimited, ServerProblems, Tokens, PROBLEM_JSON};
use tollgate::http::{
    clear_refresh_cookie, refresh_token_from_cookie, token_response, ApiError, OptionalJsonBody,
    Problem,
};
use tollgate::{AppState, KeyAccess, Needs};
use utoipa::OpenApi as _;

/// Refresh path.
pub const REFRESH_PATH: &str = "/auth/refresh";
/// Logout path.
pub const LOGOUT_PATH: &str = "/auth/logout";

/// The `(method, path)` pairs this function serves: the source of truth the SAM template, the
/// OpenAPI document and the local Lambda router are checked against.
pub const ROUTES: &[(&str, &str)] = &[("POST", REFRESH_PATH), ("POST", LOGOUT_PATH)];

/// What this function builds at start-up: accounts and the private signing keys (refresh issues
/// a new access token).
pub const NEEDS: Needs = Needs {
    keys: KeyAccess::Signing,
    accounts: true,
    billing: false,
    ingest: false,
    mail: false,
    oauth: false,
    outbound: false,
};

/// This function's routes, with full public paths.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(REFRESH_PATH, by_ip(rules::REFRESH_IP, post(refresh)))
        .route(LOGOUT_PATH, post(logout))
}

/// This function's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    Doc::openapi()
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(refresh, logout), components(schemas(RefreshRequest)))]
struct Doc;

/// Body of both routes; optional when the cookie is sent.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct RefreshRequest {
    /// The refresh token (`<user id>.<session id>.<secret>`).
    refresh_token: String,
}

fn presented(headers: &HeaderMap, body: Option<RefreshRequest>) -> Result<String, ApiError> {
    body.map(|b| b.refresh_token)
        .or_else(|| refresh_token_from_cookie(headers))
        .ok_or(ApiError::Auth(AuthError::InvalidRefreshToken))
}

/// Exchanges a refresh token for a new access token and a rotated refresh token.
#[utoipa::path(
    post,
    path = REFRESH_PATH,
    tag = "accounts",
    request_body(content = Option<RefreshRequest>, description = "The refresh token, or an empty body with the `tollgate_refresh` cookie."),
    security((), ("refresh_cookie" = [])),
    responses(
        (status = 200, response = Tokens),
        (status = 401, description = "`invalid_refresh_token`, `refresh_token_reused` (the session is now revoked), `session_revoked` or `session_expired`.", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "`account_disabled`: the account is disabled.", body = Problem, content_type = PROBLEM_JSON),
        BodyProblems,
        (status = 429, response = RateLimited),
        ServerProblems,
    ),
)]
async fn refresh(
    State(state): State<AppState>,
    origin: RequestOrigin,
    headers: HeaderMap,
    OptionalJsonBody(body): OptionalJsonBody<RefreshRequest>,
) -> Result<Response, ApiError> {
    let token = presented(&headers, body)?;
    let tokens = state.auth()?.refresh_token(&token, &origin).await?;
    Ok(token_response(
        StatusCode::OK,
        &tokens,
        None,
        state.config(),
    ))
}

/// Revokes the session a refresh token belongs to and clears the cookie.
#[utoipa::path(
    post,
    path = LOGOUT_PATH,
    tag = "accounts",
    request_body(content = Option<RefreshRequest>, description = "The refresh token, or an empty body with the `tollgate_refresh` cookie."),
    security((), ("refresh_cookie" = [])),
    responses(
        (status = 204, description = "The session is revoked (also when it already was); the cookie is cleared.",
            headers(("set-cookie" = String, description = "`tollgate_refresh=; Max-Age=0`"))),
        (status = 401, description = "`invalid_refresh_token`: missing, malformed, or matching nothing in its session.", body = Problem, content_type = PROBLEM_JSON),
        BodyProblems,
        ServerProblems,
    ),
)]
async fn logout(
    State(state): State<AppState>,
    origin: RequestOrigin,
    headers: HeaderMap,
    OptionalJsonBody(body): OptionalJsonBody<RefreshRequest>,
) -> Result<Response, ApiError> {
    let token = presented(&headers, body)?;
    state.auth()?.logout(&token, &origin).await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, clear_refresh_cookie(state.config()))],
    )
        .into_response())
}
