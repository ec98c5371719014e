//! `account`: the account lifecycle (docs/architecture.md §11).
//!
//! | route | auth | answer |
//! |---|---|---|
//! | `POST /auth/verify-email {token}` | – | 200 the user, `email_verified: true` |
//! | `POST /auth/verify-email/resend` | bearer | 202, a new link mailed |
//! | `POST /auth/password/forgot {email}` | – | 202 always (no enumeration) |
//! | `POST /auth/password/reset {token, password}` | – | 204; every session ends; notice mailed |
//! | `POST /auth/password/change {current_password, new_password}` | bearer | 204; every other session ends; notice mailed |
//! | `POST /auth/otp/request {email}` | – | 202 always; a code and a magic link mailed |
//! | `GET /auth/sessions` | bearer | 200 the live sessions, the current one marked |
//! | `DELETE /auth/sessions/{id}` | bearer | 204; its refresh token stops at once |
//! | `POST /auth/logout-all {keep_current?}` | bearer | 204 |
//! | `PATCH /auth/me {name}` | bearer | 200 the user |
//! | `DELETE /auth/me {password?, code?}` | bearer + recent login | 204; subscription cancelled at the provider |
//! | `GET /auth/audit?limit&before` | bearer | 200 a page of the audit log, newest first |
//! | `POST /auth/api-keys {name, expires_at?}` | bearer | 201 the key, shown once |
//! | `GET /auth/api-keys` | bearer | 200 the live keys (never the keys themselves) |
//! | `DELETE /auth/api-keys/{id}` | bearer | 204; the key is refused from then on |
//!
//! Signing in with the code or the link is `login`'s (it holds the signing keys); this function
//! reads only the published JWKS. Mail is queued in the same write as the change that owes it;
//! the `mailer` function sends it.

mod api_keys;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tollgate::auth::{AuthError, AuthenticatedUser, Reauthentication};
use tollgate::domain::rules;
use tollgate::domain::{rfc3339, RequestOrigin, SessionId};
use tollgate::http::limit::{by_ip, by_user};
use tollgate::http::openapi::{
    BodyProblems, RateLimited, ServerProblems, Unauthenticated, ValidationFailed, PROBLEM_JSON,
};
use tollgate::http::{
    clear_refresh_cookie, ApiError, JsonBody, OptionalJsonBody, Problem, QueryParams, UserBody,
};
use tollgate::{AppState, KeyAccess, Needs};
use utoipa::OpenApi as _;

/// `POST /auth/verify-email`.
pub const VERIFY_EMAIL_PATH: &str = "/auth/verify-email";
/// `POST /auth/verify-email/resend`.
pub const RESEND_PATH: &str = "/auth/verify-email/resend";
/// `POST /auth/password/forgot`.
pub const FORGOT_PATH: &str = "/auth/password/forgot";
/// `POST /auth/password/reset`.
pub const RESET_PATH: &str = "/auth/password/reset";
/// `POST /auth/password/change`.
pub const CHANGE_PATH: &str = "/auth/password/change";
/// `POST /auth/otp/request`.
pub const OTP_REQUEST_PATH: &str = "/auth/otp/request";
/// `GET /auth/sessions`.
pub const SESSIONS_PATH: &str = "/auth/sessions";
/// `DELETE /auth/sessions/{id}`.
pub const SESSION_PATH: &str = "/auth/sessions/{id}";
/// `POST /auth/logout-all`.
pub const LOGOUT_ALL_PATH: &str = "/auth/logout-all";
/// `PATCH` and `DELETE /auth/me` (`GET` is subscription-lookup's).
pub const ME_PATH: &str = "/auth/me";
/// `GET /auth/audit`.
pub const AUDIT_PATH: &str = "/auth/audit";

/// The `(method, path)` pairs this function serves: the source of truth the SAM template, the
/// OpenAPI document and the local Lambda router are checked against.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", VERIFY_EMAIL_PATH),
    ("POST", RESEND_PATH),
    ("POST", FORGOT_PATH),
    ("POST", RESET_PATH),
    ("POST", CHANGE_PATH),
    ("POST", OTP_REQUEST_PATH),
    ("GET", SESSIONS_PATH),
    ("DELETE", SESSION_PATH),
    ("POST", LOGOUT_ALL_PATH),
    ("PATCH", ME_PATH),
    ("DELETE", ME_PATH),
    ("GET", AUDIT_PATH),
    ("POST", api_keys::API_KEYS_PATH),
    ("GET", api_keys::API_KEYS_PATH),
    ("DELETE", api_keys::API_KEY_PATH),
];

/// What this function builds at start-up: the published JWKS (it verifies tokens, issues
/// none), accounts, and billing with the providers' API clients (deleting an account cancels
/// its subscription).
pub const NEEDS: Needs = Needs {
    keys: KeyAccess::Public,
    accounts: true,
    billing: true,
    ingest: false,
    mail: false,
    oauth: false,
    outbound: false,
};

/// This function's routes, with full public paths.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            VERIFY_EMAIL_PATH,
            by_ip(rules::VERIFY_IP, post(verify_email)),
        )
        .route(
            RESEND_PATH,
            by_ip(rules::CODE_IP, post(resend_verification)),
        )
        .route(FORGOT_PATH, by_ip(rules::FORGOT_IP, post(forgot_password)))
        .route(RESET_PATH, by_ip(rules::VERIFY_IP, post(reset_password)))
        .route(
            CHANGE_PATH,
            by_user(rules::LOGIN_ACCOUNT, post(change_password)),
        )
        .route(OTP_REQUEST_PATH, by_ip(rules::CODE_IP, post(request_code)))
        .route(SESSIONS_PATH, get(list_sessions))
        .route(SESSION_PATH, delete(revoke_session))
        .route(LOGOUT_ALL_PATH, post(logout_all))
        .route(
            ME_PATH,
            by_user(
                rules::LOGIN_ACCOUNT,
                axum::routing::patch(update_profile).delete(delete_account),
            ),
        )
        .route(AUDIT_PATH, get(audit_log))
        .route(
            api_keys::API_KEYS_PATH,
            by_user(rules::API_KEYS_USER, post(api_keys::create)).get(api_keys::list),
        )
        .route(api_keys::API_KEY_PATH, delete(api_keys::revoke))
}

/// This function's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = Doc::openapi();
    doc.merge(api_keys::openapi());
    doc
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        verify_email,
        resend_verification,
        forgot_password,
        reset_password,
        change_password,
        request_code,
        list_sessions,
        revoke_session,
        logout_all,
        update_profile,
        delete_account,
        audit_log
    ),
    components(schemas(
        TokenRequest,
        EmailRequest,
        ResetRequest,
        ChangeRequest,
        SessionsBody,
        SessionBody,
        LogoutAllRequest,
        ProfileRequest,
        DeleteRequest,
        AuditPage,
        AuditEntry
    ))
)]
struct Doc;

fn no_store(response: impl IntoResponse) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], response).into_response()
}

/// A body holding a link's token.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct TokenRequest {
    /// The `token` parameter of the link (`<app>/verify-email?token=…`).
    #[schema(example = "q5yE2Vd0V8m3kQ8wW5nqk1b8rVhZr0m2pX7o4sLx9aA")]
    token: String,
}

/// Verifies the email with the token of a verification link (24 h, single use).
#[utoipa::path(
    post,
    path = VERIFY_EMAIL_PATH,
    tag = "account",
    request_body = TokenRequest,
    responses(
        (status = 200, description = "The email is verified; the next access token carries `email_verified: true`.", body = UserBody),
        (status = 400, description = "`invalid_link`: unknown, expired or already used.", body = Problem, content_type = PROBLEM_JSON),
        BodyProblems,
        (status = 429, response = RateLimited),
        ServerProblems,
    ),
)]
async fn verify_email(
    State(state): State<AppState>,
    origin: RequestOrigin,
    JsonBody(req): JsonBody<TokenRequest>,
) -> Result<Response, ApiError> {
    let user = state.auth()?.verify_email(&req.token, &origin).await?;
    Ok(no_store(Json(UserBody::from(&user))))
}

/// Mails a new verification link to the signed-in user.
#[utoipa::path(
    post,
    path = RESEND_PATH,
    tag = "account",
    security(("bearer" = [])),
    responses(
        (status = 202, description = "A new link is on its way."),
        (status = 401, response = Unauthenticated),
        (status = 409, description = "`email_already_verified`.", body = Problem, content_type = PROBLEM_JSON),
        (status = 429, response = RateLimited),
        ServerProblems,
    ),
)]
async fn resend_verification(
    State(state): State<AppState>,
    origin: RequestOrigin,
    who: AuthenticatedUser,
) -> Result<Response, ApiError> {
    state.auth()?.resend_verification(&who, &origin).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// A body holding an email address.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct EmailRequest {
    /// The account's email.
    #[schema(example = "ada@example.com", format = Email, max_length = 254)]
    email: String,
}

/// Mails a password-reset link (30 min, single use) if the email has an account. Answers 202
/// whether or not it has one, after the same work, so the answer and its timing never reveal
/// which emails have accounts.
#[utoipa::path(
    post,
    path = FORGOT_PATH,
    tag = "account",
    request_body = EmailRequest,
    responses(
        (status = 202, description = "If the email has an account, a reset link is on its way."),
        (status = 422, response = ValidationFailed),
        BodyProblems,
        (status = 429, response = RateLimited),
        ServerProblems,
    ),
)]
async fn forgot_password(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<EmailRequest>,
) -> Result<Response, ApiError> {
    state.auth()?.forgot_password(&req.email).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `POST /auth/password/reset` body.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ResetRequest {
    /// The `token` parameter of the reset link.
    #[schema(example = "q5yE2Vd0V8m3kQ8wW5nqk1b8rVhZr0m2pX7o4sLx9aA")]
    token: String,
    /// The new password: 8 to 128 characters, not one of the most common passwords.
    #[schema(
        example = "a new and uncommon passphrase",
        min_length = 8,
        max_length = 128
    )]
    password: String,
}

/// Sets a new password with a reset link: every session ends (log in again), the email counts
/// as verified, a notice is mailed.
#[utoipa::path(
    post,
    path = RESET_PATH,
    tag = "account",
    request_body = ResetRequest,
    responses(
        (status = 204, description = "The password is set; every session is revoked."),
        (status = 400, description = "`invalid_link`: unknown, expired, already used, or superseded by a later password change.", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "`validation_failed`: the password's length, or a common password (`errors` says why).", body = Problem, content_type = PROBLEM_JSON),
        BodyProblems,
        (status = 429, response = RateLimited),
        ServerProblems,
    ),
)]
async fn reset_password(
    State(state): State<AppState>,
    origin: RequestOrigin,
    JsonBody(req): JsonBody<ResetRequest>,
) -> Result<Response, ApiError> {
    state
        .auth()?
        .reset_password(&req.token, req.password, &origin)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /auth/password/change` body.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ChangeRequest {
    /// The current password.
    #[schema(example = "the current passphrase")]
    current_password: String,
    /// The new password: 8 to 128 characters, not one of the most common passwords.
    #[schema(
        example = "a new and uncommon passphrase",
        min_length = 8,
        max_length = 128
    )]
    new_password: String,
}

/// Changes the signed-in user's password: every other session ends, this one stays, a notice is
/// mailed.
#[utoipa::path(
    post,
    path = CHANGE_PATH,
    tag = "account",
    request_body = ChangeRequest,
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Changed; every other session is revoked."),
        (status = 401, response = Unauthenticated),
        (status = 403, description = "`wrong_password`: the current password is wrong.", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "`validation_failed` on `new_password`: its length, or a common password.", body = Problem, content_type = PROBLEM_JSON),
        BodyProblems,
        (status = 429, response = RateLimited),
        ServerProblems,
    ),
)]
async fn change_password(
    State(state): State<AppState>,
    origin: RequestOrigin,
    who: AuthenticatedUser,
    JsonBody(req): JsonBody<ChangeRequest>,
) -> Result<Response, ApiError> {
    state
        .auth()?
        .change_password(&who, req.current_password, req.new_password, &origin)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Mails a 6-digit sign-in code (10 min, 5 tries) and a magic link (15 min, single use) if the
/// email has an account (or passwordless sign-up is on). Answers 202 whatever the email, after
/// the same work. Sign in with `POST /auth/otp/verify` or `POST /auth/magic-link/verify`.
#[utoipa::path(
    post,
    path = OTP_REQUEST_PATH,
    tag = "account",
    request_body = EmailRequest,
    responses(
        (status = 202, description = "If the email can sign in, a code and a link are on their way; any earlier code stops working."),
        (status = 422, response = ValidationFailed),
        BodyProblems,
        (status = 429, response = RateLimited),
        ServerProblems,
    ),
)]
async fn request_code(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<EmailRequest>,
) -> Result<Response, ApiError> {
    state.auth()?.request_code(&req.email).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// One session (times RFC 3339 UTC).
#[derive(Serialize, utoipa::ToSchema)]
struct SessionBody {
    /// Session id (UUIDv7).
    id: String,
    /// Whether this is the session of the access token that asked.
    current: bool,
    /// When it started.
    created_at: String,
    /// When it last refreshed.
    last_used_at: String,
    /// When it ends unless used (idle timeout, capped by the absolute lifetime).
    expires_at: String,
    /// The browser or client at sign-in.
    user_agent: Option<String>,
    /// The client IP at sign-in.
    ip: Option<String>,
    /// How it signed in: `signup`, `password`, `email_code` or `magic_link`.
    method: Option<&'static str>,
}

/// `GET /auth/sessions` answer.
#[derive(Serialize, utoipa::ToSchema)]
struct SessionsBody {
    /// Live sessions, newest first.
    sessions: Vec<SessionBody>,
}

/// The signed-in user's live sessions, newest first, the current one marked.
#[utoipa::path(
    get,
    path = SESSIONS_PATH,
    tag = "account",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Live sessions (revoked and expired ones are not listed).", body = SessionsBody),
        (status = 401, response = Unauthenticated),
        ServerProblems,
    ),
)]
async fn list_sessions(
    State(state): State<AppState>,
    who: AuthenticatedUser,
) -> Result<Response, ApiError> {
    let sessions = state.auth()?.list_sessions(&who).await?;
    let sessions = sessions
        .into_iter()
        .map(|v| SessionBody {
            id: v.session.id.to_string(),
            current: v.current,
            created_at: rfc3339(v.session.created_at),
            last_used_at: rfc3339(v.session.last_used_at),
            expires_at: rfc3339(v.session.expires_at),
            user_agent: v.session.user_agent,
            ip: v.session.ip,
            method: v.session.method.map(|m| m.as_str()),
        })
        .collect();
    Ok(no_store(Json(SessionsBody { sessions })))
}

/// Ends one of the signed-in user's sessions: its refresh token is refused from now on, and its
/// access tokens at Tollgate's routes.
#[utoipa::path(
    delete,
    path = SESSION_PATH,
    tag = "account",
    params(("id" = String, Path, description = "The session id (from `GET /auth/sessions`).")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Revoked."),
        (status = 401, response = Unauthenticated),
        (status = 404, description = "`session_not_found`: no such live session of this user.", body = Problem, content_type = PROBLEM_JSON),
        ServerProblems,
    ),
)]
async fn revoke_session(
    State(state): State<AppState>,
    origin: RequestOrigin,
    who: AuthenticatedUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: SessionId = id
        .parse()
        .map_err(|_| ApiError::Auth(AuthError::SessionNotFound))?;
    state.auth()?.revoke_session(&who, &id, &origin).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /auth/logout-all` body (optional).
#[derive(Deserialize, Default, utoipa::ToSchema)]
pub struct LogoutAllRequest {
    /// Keep the calling session (end every *other* one). Default `false`.
    #[serde(default)]
    keep_current: bool,
}

/// Ends every session of the signed-in user — or every other one with `keep_current`. Without
/// `keep_current` the refresh cookie is cleared too.
#[utoipa::path(
    post,
    path = LOGOUT_ALL_PATH,
    tag = "account",
    request_body(content = Option<LogoutAllRequest>, description = "Optional; `{}` or no body ends every session."),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Done.",
            headers(("set-cookie" = String, description = "`tollgate_refresh=; Max-Age=0` unless `keep_current`"))),
        (status = 401, response = Unauthenticated),
        BodyProblems,
        ServerProblems,
    ),
)]
async fn logout_all(
    State(state): State<AppState>,
    origin: RequestOrigin,
    who: AuthenticatedUser,
    OptionalJsonBody(body): OptionalJsonBody<LogoutAllRequest>,
) -> Result<Response, ApiError> {
    let keep_current = body.unwrap_or_default().keep_current;
    state
        .auth()?
        .logout_all(&who, keep_current, &origin)
        .await?;
    if keep_current {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Ok((
            StatusCode::NO_CONTENT,
            [(header::SET_COOKIE, clear_refresh_cookie(state.config()))],
        )
            .into_response())
    }
}

/// `PATCH /auth/me` body.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ProfileRequest {
    /// The display name (1 to 100 characters, trimmed), or `null` to remove it.
    #[schema(example = "Ada Lovelace", min_length = 1, max_length = 100)]
    name: Option<String>,
}

/// Sets or removes the signed-in user's display name.
#[utoipa::path(
    patch,
    path = ME_PATH,
    tag = "account",
    request_body = ProfileRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The updated user.", body = UserBody),
        (status = 401, response = Unauthenticated),
        (status = 422, response = ValidationFailed),
        BodyProblems,
        (status = 429, response = RateLimited),
        ServerProblems,
    ),
)]
async fn update_profile(
    State(state): State<AppState>,
    origin: RequestOrigin,
    who: AuthenticatedUser,
    JsonBody(req): JsonBody<ProfileRequest>,
) -> Result<Response, ApiError> {
    let user = state
        .auth()?
        .update_profile(&who, req.name.as_deref(), &origin)
        .await?;
    Ok(no_store(Json(UserBody::from(&user))))
}

/// `DELETE /auth/me` body (optional): proof of a recent login when the session's own is older
/// than the re-authentication window (5 min).
#[derive(Deserialize, Default, utoipa::ToSchema)]
pub struct DeleteRequest {
    /// The account's password.
    #[schema(example = "the current passphrase")]
    password: Option<String>,
    /// A sign-in code mailed by `POST /auth/otp/request`.
    #[schema(example = "042917", pattern = "^[0-9]{6}$")]
    code: Option<String>,
}

/// Deletes the signed-in user's account: needs a login within the last 5 minutes, or the
/// password or an email code in the body. Cancels a live subscription at its provider at once,
/// deletes the user, its email claim, sessions and one-time secrets (the email can sign up
/// again), keeps payment records (no personal data), mails a notice, clears the refresh cookie.
#[utoipa::path(
    delete,
    path = ME_PATH,
    tag = "account",
    request_body(content = Option<DeleteRequest>, description = "Optional: the password or an email code."),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted.",
            headers(("set-cookie" = String, description = "`tollgate_refresh=; Max-Age=0`"))),
        (status = 401, description = "`invalid_token` (bearer), or `invalid_code`: the code given is wrong or expired.", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "`reauthentication_required`: no recent login and no proof; `wrong_password`: the password given is wrong.", body = Problem, content_type = PROBLEM_JSON),
        (status = 502, description = "`provider_error`: the payment provider refused to cancel the subscription; nothing was deleted.", body = Problem, content_type = PROBLEM_JSON),
        BodyProblems,
        (status = 429, response = RateLimited),
        ServerProblems,
    ),
)]
async fn delete_account(
    State(state): State<AppState>,
    origin: RequestOrigin,
    who: AuthenticatedUser,
    OptionalJsonBody(body): OptionalJsonBody<DeleteRequest>,
) -> Result<Response, ApiError> {
    let body = body.unwrap_or_default();
    let proof = Reauthentication {
        password: body.password,
        code: body.code,
    };
    state
        .auth()?
        .delete_account(&who, proof, state.billing()?, &origin)
        .await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, clear_refresh_cookie(state.config()))],
    )
        .into_response())
}

/// `GET /auth/audit` query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Records per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// The `next_before` of the previous page: records older than it.
    #[param(pattern = "^[0-9a-f-]{36}$")]
    before: Option<String>,
}

/// One audit record (times RFC 3339 UTC).
#[derive(Serialize, utoipa::ToSchema)]
struct AuditEntry {
    /// Record id (UUIDv7).
    id: String,
    /// What happened: `signed_up`, `login_succeeded`, `login_failed`, `refresh_token_reused`,
    /// `logged_out`, `logged_out_everywhere`, `session_revoked`, `verification_requested`,
    /// `email_verified`, `password_reset`, `password_changed`, `code_used`, `magic_link_used`,
    /// `profile_updated`, `account_deleted`.
    #[schema(example = "login_succeeded")]
    action: &'static str,
    /// When.
    at: String,
    /// The session involved.
    session_id: Option<String>,
    /// The client IP.
    ip: Option<String>,
    /// The client's `User-Agent`.
    user_agent: Option<String>,
    /// A short detail.
    detail: Option<String>,
}

/// A page of the audit log.
#[derive(Serialize, utoipa::ToSchema)]
struct AuditPage {
    /// Newest first.
    items: Vec<AuditEntry>,
    /// Pass as `before` for the next (older) page; `null` on the last page.
    next_before: Option<String>,
}

/// The signed-in user's audit log, newest first, a page at a time.
#[utoipa::path(
    get,
    path = AUDIT_PATH,
    tag = "account",
    params(AuditQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of records.", body = AuditPage),
        (status = 401, response = Unauthenticated),
        (status = 422, response = ValidationFailed),
        ServerProblems,
    ),
)]
async fn audit_log(
    State(state): State<AppState>,
    who: AuthenticatedUser,
    QueryParams(query): QueryParams<AuditQuery>,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::InvalidQuery("limit must be 1 to 100".into()));
    }
    if let Some(before) = &query.before {
        let shaped = before.len() == 36
            && before
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'-');
        if !shaped {
            return Err(ApiError::InvalidQuery(
                "before must be a record id from a previous page".into(),
            ));
        }
    }
    let limit = limit as usize;
    let records = state
        .auth()?
        .audit_log(&who, query.before.as_deref(), limit)
        .await?;
    let next_before = (records.len() == limit)
        .then(|| records.last().map(|r| r.id.clone()))
        .flatten();
    let items = records
        .into_iter()
        .map(|r| AuditEntry {
            id: r.id,
            action: r.action.as_str(),
            at: rfc3339(r.at),
            session_id: r.session_id.map(|s| s.to_string()),
            ip: r.ip,
            user_agent: r.user_agent,
            detail: r.detail,
        })
        .collect();
    Ok(no_store(Json(AuditPage { items, next_before })))
}
