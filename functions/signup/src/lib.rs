//! `signup`: `POST /auth/signup`.
//!
//! Request `{email, password}` → 201 `{access_token, token_type, expires_in, refresh_token,
//! user: {id, email, created_at}}` and the refresh cookie, and a verification mail is queued
//! (same write). With `TOLLGATE_REQUIRE_VERIFIED_EMAIL`, 202 `{user,
//! email_verification_required: true}` and no session. Errors (problem+json): 422
//! `validation_failed` (also for a common password), 409 `email_taken`, 400/413/415 for bad
//! bodies.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tollgate::auth::SignupOutcome;
use tollgate::domain::rules;
use tollgate::domain::RequestOrigin;
use tollgate::http::limit::by_ip;
use tollgate::http::openapi::{BodyProblems, RateLimited, ServerProblems, Tokens, PROBLEM_JSON};
use tollgate::http::{token_response, ApiError, JsonBody, Problem, UserBody};
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
    mail: false,
    oauth: false,
    outbound: false,
};

/// This function's routes, with full public paths.
pub fn routes() -> Router<AppState> {
    Router::new().route(PATH, by_ip(rules::SIGNUP_IP, post(signup)))
}

/// This function's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    Doc::openapi()
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(signup),
    components(schemas(SignupRequest, VerificationRequired))
)]
struct Doc;

/// `POST /auth/signup` body.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SignupRequest {
    /// The email to sign up with (trimmed, unique case-insensitively; at most 254 characters).
    #[schema(example = "ada@example.com", format = Email, max_length = 254)]
    email: String,
    /// 8 to 128 characters, no composition rules (NIST SP 800-63B), not one of the most common
    /// passwords (OWASP ASVS 6.2.4).
    #[schema(
        example = "correct horse battery staple",
        min_length = 8,
        max_length = 128
    )]
    password: String,
}

/// The answer when login waits for the email to be verified.
#[derive(Serialize, utoipa::ToSchema)]
struct VerificationRequired {
    /// The new user.
    user: UserBody,
    /// Always `true`: open the link in the verification mail, then log in.
    email_verification_required: bool,
}

/// Creates an account and its first session, and queues the verification mail.
#[utoipa::path(
    post,
    path = PATH,
    tag = "accounts",
    request_body = SignupRequest,
    responses(
        (status = 201, response = Tokens),
        (status = 202, description = "The account exists; login waits for the email to be verified (`TOLLGATE_REQUIRE_VERIFIED_EMAIL`), so no session was started.", body = VerificationRequired),
        (status = 409, description = "`email_taken`: an account with this email exists.", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "`validation_failed`: the email is not an address, or the password is shorter than 8 or longer than 128 characters, or is one of the most common passwords (`errors` says which).", body = Problem, content_type = PROBLEM_JSON),
        BodyProblems,
        (status = 429, response = RateLimited),
        ServerProblems,
    ),
)]
async fn signup(
    State(state): State<AppState>,
    origin: RequestOrigin,
    JsonBody(req): JsonBody<SignupRequest>,
) -> Result<Response, ApiError> {
    match state
        .auth()?
        .signup(&req.email, req.password, &origin)
        .await?
    {
        SignupOutcome::SignedIn(user, tokens) => Ok(token_response(
            StatusCode::CREATED,
            &tokens,
            Some(&user),
            state.config(),
        )),
        SignupOutcome::VerificationRequired(user) => Ok((
            StatusCode::ACCEPTED,
            Json(VerificationRequired {
                user: UserBody::from(&user),
                email_verification_required: true,
            }),
        )
            .into_response()),
    }
}
