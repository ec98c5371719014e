//! `login`: `POST /auth/login`.
//!
//! Request `{email, password}` → 200 `{access_token, token_type, expires_in, refresh_token}` and
//! the refresh cookie. Unknown email and wrong password give the same 401 `invalid_credentials`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use tollgate::http::openapi::{BodyProblems, ServerProblems, Tokens, PROBLEM_JSON};
use tollgate::http::{token_response, ApiError, JsonBody, Problem, UserAgent};
use tollgate::{AppState, KeyAccess, Needs};
use utoipa::OpenApi as _;

/// The public path this function serves.
pub const PATH: &str = "/auth/login";

/// The `(method, path)` pairs this function serves: the source of truth the SAM template, the
/// OpenAPI document and the local Lambda router are checked against.
pub const ROUTES: &[(&str, &str)] = &[("POST", PATH)];

/// What this function builds at start-up: accounts and the private signing keys.
pub const NEEDS: Needs = Needs {
    keys: KeyAccess::Signing,
    accounts: true,
    billing: false,
    ingest: false,
};

/// This function's routes, with full public paths.
pub fn routes() -> Router<AppState> {
    Router::new().route(PATH, post(login))
}

/// This function's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    Doc::openapi()
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(login), components(schemas(LoginRequest)))]
struct Doc;

/// `POST /auth/login` body.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct LoginRequest {
    /// The account's email (any case).
    #[schema(example = "ada@example.com")]
    email: String,
    /// The password.
    #[schema(example = "correct horse battery staple")]
    password: String,
}

/// Checks the credentials and starts a session.
#[utoipa::path(
    post,
    path = PATH,
    tag = "accounts",
    request_body = LoginRequest,
    responses(
        (status = 200, response = Tokens),
        (status = 401, description = "`invalid_credentials`: unknown email or wrong password (indistinguishable).", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "`account_disabled`: the account is disabled.", body = Problem, content_type = PROBLEM_JSON),
        BodyProblems,
        ServerProblems,
    ),
)]
async fn login(
    State(state): State<AppState>,
    UserAgent(ua): UserAgent,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<Response, ApiError> {
    let (_, tokens) = state.auth()?.login(&req.email, req.password, ua).await?;
    Ok(token_response(
        StatusCode::OK,
        &tokens,
        None,
        state.config(),
    ))
}
