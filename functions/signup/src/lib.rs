//! `signup`: `POST /auth/signup`.
//!
//! Request `{email, password}` → 201 `{access_token, token_type, expires_in, refresh_token,
//! user: {id, email, created_at}}` and the refresh cookie. Errors (problem+json): 422
//! `validation_failed`, 409 `email_taken`, 400/413/415 for bad bodies.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use tollgate::http::openapi::{
    BodyProblems, ServerProblems, Tokens, ValidationFailed, PROBLEM_JSON,
};
use tollgate::http::{token_response, ApiError, JsonBody, Problem, UserAgent};
use tollgate::{AppState, KeyAccess, Needs};
use utoipa::OpenApi as _;

/// The public path this function serves.
pub const PATH: &str = "/auth/signup";

/// The `(method, path)` pairs this function serves: the source of truth the SAM template, the
/// OpenAPI document and the local Lambda router are checked against.
pub const ROUTES: &[(&str, &str)] = &[("POST", PATH)];

/// What this function builds at start-up: accounts and the private signing keys (it issues the
/// first session's tokens).
pub const NEEDS: Needs = Needs {
    keys: KeyAccess::Signing,
    accounts: true,
    billing: false,
    ingest: false,
};

/// This function's routes, with full public paths.
pub fn routes() -> Router<AppState> {
    Router::new().route(PATH, post(signup))
}

/// This function's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    Doc::openapi()
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(signup), components(schemas(SignupRequest)))]
struct Doc;

/// `POST /auth/signup` body.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SignupRequest {
    /// The email to sign up with (trimmed, unique case-insensitively; at most 254 characters).
    #[schema(example = "ada@example.com", format = Email, max_length = 254)]
    email: String,
    /// 8 to 128 characters, no composition rules (NIST SP 800-63B).
    #[schema(
        example = "correct horse battery staple",
        min_length = 8,
        max_length = 128
    )]
    password: String,
}

/// Creates an account and its first session.
#[utoipa::path(
    post,
    path = PATH,
    tag = "accounts",
    request_body = SignupRequest,
    responses(
        (status = 201, response = Tokens),
        (status = 409, description = "`email_taken`: an account with this email exists.", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, response = ValidationFailed),
        BodyProblems,
        ServerProblems,
    ),
)]
async fn signup(
    State(state): State<AppState>,
    UserAgent(ua): UserAgent,
    JsonBody(req): JsonBody<SignupRequest>,
) -> Result<Response, ApiError> {
    let (user, tokens) = state.auth()?.signup(&req.email, req.password, ua).await?;
    Ok(token_response(
        StatusCode::CREATED,
        &tokens,
        Some(&user),
        state.config(),
    ))
}
