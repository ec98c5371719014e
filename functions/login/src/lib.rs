//! `login`: the routes that sign a person in and issue tokens — `POST /auth/login` (email and
//! password), `POST /auth/otp/verify` (email and the 6-digit code from the sign-in mail) and
//! `POST /auth/magic-link/verify` (the token of the sign-in mail's link, posted by the page the
//! link opens, so mail scanners that prefetch links cannot spend it).
//!
//! Each answers 200 `{access_token, token_type, expires_in, refresh_token}` and the refresh
//! cookie. Unknown email and wrong password give the same 401 `invalid_credentials`; a wrong,
//! expired or exhausted code 401 `invalid_code` (after 5 wrong tries even the right code is
//! refused); a bad link 400 `invalid_link`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use tollgate::domain::rules;
use tollgate::domain::RequestOrigin;
use tollgate::http::limit::by_ip;
use tollgate::http::openapi::{BodyProblems, RateLimited, ServerProblems, Tokens, PROBLEM_JSON};
use tollgate::http::{token_response, ApiError, JsonBody, Problem};
use tollgate::{AppState, KeyAccess, Needs};
use utoipa::OpenApi as _;

/// `POST /auth/login`.
pub const PATH: &str = "/auth/login";
/// `POST /auth/otp/verify`.
pub const OTP_VERIFY_PATH: &str = "/auth/otp/verify";
/// `POST /auth/magic-link/verify`.
pub const MAGIC_LINK_PATH: &str = "/auth/magic-link/verify";

/// The `(method, path)` pairs this function serves: the source of truth the SAM template, the
/// OpenAPI document and the local Lambda router are checked against.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", PATH),
    ("POST", OTP_VERIFY_PATH),
    ("POST", MAGIC_LINK_PATH),
];

/// What this function builds at start-up: accounts and the private signing keys.
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
        .route(PATH, by_ip(rules::LOGIN_IP, post(login)))
        .route(OTP_VERIFY_PATH, by_ip(rules::VERIFY_IP, post(verify_code)))
        .route(
            MAGIC_LINK_PATH,
            by_ip(rules::VERIFY_IP, post(verify_magic_link)),
        )
}

/// This function's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    Doc::openapi()
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(login, verify_code, verify_magic_link),
    components(schemas(LoginRequest, CodeRequest, LinkRequest))
)]
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
        (status = 403, description = "`account_disabled`: the account is disabled; `email_not_verified`: login needs a verified email (`TOLLGATE_REQUIRE_VERIFIED_EMAIL`).", body = Problem, content_type = PROBLEM_JSON),
        BodyProblems,
        (status = 429, response = RateLimited),
        ServerProblems,
    ),
)]
async fn login(
    State(state): State<AppState>,
    origin: RequestOrigin,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<Response, ApiError> {
    let (_, tokens) = state
        .auth()?
        .login(&req.email, req.password, &origin)
        .await?;
    Ok(token_response(
        StatusCode::OK,
        &tokens,
        None,
        state.config(),
    ))
}

/// `POST /auth/otp/verify` body.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct CodeRequest {
    /// The email the code was sent to.
    #[schema(example = "ada@example.com")]
    email: String,
    /// The 6-digit code from the sign-in mail.
    #[schema(example = "042917", pattern = "^[0-9]{6}$")]
    code: String,
}

/// Signs in with the 6-digit code of a sign-in mail (`POST /auth/otp/request`): spends the code,
/// marks the email verified, starts a session.
#[utoipa::path(
    post,
    path = OTP_VERIFY_PATH,
    tag = "accounts",
    request_body = CodeRequest,
    responses(
        (status = 200, response = Tokens),
        (status = 401, description = "`invalid_code`: wrong, expired, already used, or 5 wrong tries made (then even the right code is refused: ask for a new one).", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "`account_disabled`.", body = Problem, content_type = PROBLEM_JSON),
        BodyProblems,
        (status = 429, response = RateLimited),
        ServerProblems,
    ),
)]
async fn verify_code(
    State(state): State<AppState>,
    origin: RequestOrigin,
    JsonBody(req): JsonBody<CodeRequest>,
) -> Result<Response, ApiError> {
    let (_, tokens) = state
        .auth()?
        .verify_code(&req.email, &req.code, &origin)
        .await?;
    Ok(token_response(
        StatusCode::OK,
        &tokens,
        None,
        state.config(),
    ))
}

/// `POST /auth/magic-link/verify` body.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct LinkRequest {
    /// The `token` parameter of the link (`<app>/magic-link?token=…`).
    #[schema(example = "q5yE2Vd0V8m3kQ8wW5nqk1b8rVhZr0m2pX7o4sLx9aA")]
    token: String,
}

/// Signs in with the magic link of a sign-in mail: spends the link (once), marks the email
/// verified, starts a session. The link opens a page that posts its token here, so a mail
/// scanner that fetches the link does not spend it.
#[utoipa::path(
    post,
    path = MAGIC_LINK_PATH,
    tag = "accounts",
    request_body = LinkRequest,
    responses(
        (status = 200, response = Tokens),
        (status = 400, description = "`invalid_link`: unknown, expired (15 min) or already used.", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "`account_disabled`.", body = Problem, content_type = PROBLEM_JSON),
        BodyProblems,
        (status = 429, response = RateLimited),
        ServerProblems,
    ),
)]
async fn verify_magic_link(
    State(state): State<AppState>,
    origin: RequestOrigin,
    JsonBody(req): JsonBody<LinkRequest>,
) -> Result<Response, ApiError> {
    let (_, tokens) = state.auth()?.verify_magic_link(&req.token, &origin).await?;
    Ok(token_response(
        StatusCode::OK,
        &tokens,
        None,
        state.config(),
    ))
}
