//! RFC 9457 `application/problem+json` errors with a stable `code`, mapped in one place
//! ([`ApiError::problem`]). 5xx bodies are opaque and carry the request id; the cause chain goes
//! to the log only.

use super::telemetry::current_request_id;
use crate::admin::AdminError;
use crate::auth::AuthError;
use crate::billing::BillingError;
use crate::domain::ValidationError;
use crate::error::Chain;
use crate::payments::{ProviderError, WebhookError};
use crate::state::NotBuilt;
use crate::store::StoreError;
use crate::usage::UsageError;
use crate::webhooks::IngestError;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use serde::Serialize;

/// One invalid field of a `validation_failed` problem.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FieldError {
    /// The JSON field name (`email`, `password`).
    pub field: &'static str,
    /// Why it is invalid (never echoes a secret).
    pub message: String,
}

impl From<ValidationError> for FieldError {
    fn from(e: ValidationError) -> Self {
        Self {
            field: e.field,
            message: e.message,
        }
    }
}

/// The problem document (RFC 9457 §3) plus Tollgate's stable `code`, the field errors of a
/// validation failure, and the request id of a server error.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Problem {
    /// Always `about:blank`: the `code` member identifies the problem.
    #[serde(rename = "type")]
    #[schema(example = "about:blank")]
    pub kind: &'static str,
    /// The status's reason phrase.
    pub title: &'static str,
    /// The HTTP status.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// Human-readable detail (never secrets, never internal causes).
    pub detail: String,
    /// Stable snake_case code for programs: switch on this.
    pub code: ProblemCode,
    /// Field errors of a `validation_failed` problem.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The request id (API Gateway's, or generated locally), on 5xx answers: quote it to find
    /// the cause in the logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The counts of a `usage_limit_reached` or `insufficient_credits` problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageCounts>,
    /// What an `insufficient_credits` track costs and what the balance holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credits: Option<CreditShortfall>,
}

/// The cost and balance of an `insufficient_credits` problem.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct CreditShortfall {
    /// Credits the track costs.
    pub cost: u64,
    /// Credits the balance holds.
    pub balance: i64,
}

/// A feature's counts in a `usage_limit_reached` problem.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct UsageCounts {
    /// The feature.
    pub feature: String,
    /// Units counted this period.
    pub used: u64,
    /// The plan's limit per period.
    pub limit: Option<u64>,
    /// When the count resets, RFC 3339.
    pub resets_at: String,
}

/// Every problem `code` Tollgate answers with.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProblemCode {
    /// 422: a field is invalid (see `errors`), or a parameter names nothing usable.
    ValidationFailed,
    /// 409: an account with this email exists.
    EmailTaken,
    /// 401: wrong email or password (indistinguishable).
    InvalidCredentials,
    /// 403: the account is disabled.
    AccountDisabled,
    /// 401: the refresh token is missing, malformed or unknown.
    InvalidRefreshToken,
    /// 401: a rotated refresh token was reused; the session is revoked.
    RefreshTokenReused,
    /// 401: the session passed its idle timeout or absolute lifetime.
    SessionExpired,
    /// 401: the session was revoked.
    SessionRevoked,
    /// 401: a valid bearer access token is required.
    InvalidToken,
    /// 400: the link's token is invalid, expired or already used; ask for a new one.
    InvalidLink,
    /// 401: the sign-in code is wrong, expired or has no tries left.
    InvalidCode,
    /// 403: the current password is wrong.
    WrongPassword,
    /// 403: login needs a verified email.
    EmailNotVerified,
    /// 403: the action needs a recent login, or the password or an email code with it.
    ReauthenticationRequired,
    /// 409: the email is verified already.
    EmailAlreadyVerified,
    /// 404: no such live session.
    SessionNotFound,
    /// 422 (a provider this deployment does not offer) or 503 (no provider configured).
    ProviderNotConfigured,
    /// 404: the deployment offers no sign-in with that identity provider.
    UnknownProvider,
    /// 400: `redirect_to` is not on the deployment's OAuth redirect allowlist.
    RedirectNotAllowed,
    /// 400: the OAuth exchange code is invalid, expired (60 s) or already used.
    InvalidExchangeCode,
    /// 404: no identity at that provider is linked to the account.
    IdentityNotFound,
    /// 409: the identity is the account's last way to sign in.
    LastSignInMethod,
    /// 403: the authorizer refused the credential (invalid, expired, revoked, or its user is
    /// disabled).
    NotAuthorized,
    /// 429: too many requests, or failed logins throttle the account; retry after
    /// `Retry-After` seconds.
    RateLimited,
    /// 401: the API key is unknown, revoked or expired.
    InvalidApiKey,
    /// 404: no such API key of this user.
    ApiKeyNotFound,
    /// 409: the user has as many API keys as allowed; revoke one first.
    ApiKeyLimitReached,
    /// 403: the route needs an access token or a user key (a service key cannot act here).
    ForbiddenForKey,
    /// 402: the plan's limit of a metered feature is reached this period (see `usage`).
    UsageLimitReached,
    /// 422: the idempotency key was used before for another feature or quantity.
    IdempotencyKeyReused,
    /// 402: the track costs more credits than the balance holds (see `credits`); buy a credit
    /// pack. 409 from the admin API: a removal the balance does not cover.
    InsufficientCredits,
    /// 403: the admin API needs an active user with the `admin` role.
    AdminRequired,
    /// 404: no such user.
    UserNotFound,
    /// 409: the user already has access to a paid plan.
    SubscriptionExists,
    /// 404: there is no subscription to act on.
    NoSubscription,
    /// 502: the payment (or identity) provider refused the request.
    ProviderError,
    /// 400: the webhook signature did not verify; nothing was stored.
    InvalidSignature,
    /// 400: the verified webhook is not an event of this provider.
    MalformedEvent,
    /// 400: the body is not JSON of the expected shape.
    MalformedJson,
    /// 413: the body is too large.
    PayloadTooLarge,
    /// 415: the body is not `application/json`.
    UnsupportedMediaType,
    /// 404: no such route.
    NotFound,
    /// 405: the route exists, the method does not.
    MethodNotAllowed,
    /// 503: a dependency is temporarily unavailable; retry.
    Unavailable,
    /// 500: an internal error (the request id finds it in the logs).
    Internal,
}

/// Every error an endpoint can answer with. The one mapping to status and `code` is
/// [`ApiError::problem`].
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// An account use case failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A billing use case failed.
    #[error(transparent)]
    Billing(#[from] BillingError),
    /// A webhook was refused.
    #[error(transparent)]
    Ingest(#[from] IngestError),
    /// A usage use case failed.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// An admin use case failed.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The handler's function was built without a part it uses (a bug; 500).
    #[error(transparent)]
    NotBuilt(#[from] NotBuilt),
    /// A query parameter is invalid (422 `validation_failed`).
    #[error("{0}")]
    InvalidQuery(String),
    /// The body is not JSON / not the expected shape (400 `malformed_json`).
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// The body exceeds `TOLLGATE_MAX_BODY_BYTES` (413 `payload_too_large`).
    #[error("payload too large")]
    PayloadTooLarge,
    /// A body was sent without `Content-Type: application/json` (415 `unsupported_media_type`).
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// No bearer token on a route that needs one (401 `invalid_token`).
    #[error("missing bearer token")]
    MissingBearer,
    /// No route for this path (404 `not_found`).
    #[error("not found")]
    NotFound,
    /// Route exists, method does not (405 `method_not_allowed`).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The authorizer refused the credential (403 `not_authorized`).
    #[error("not authorized")]
    NotAuthorized,
    /// A rate rule refused the request (429 `rate_limited`, with `Retry-After` and the
    /// `RateLimit-*` headers).
    #[error("rate limited")]
    RateLimited(crate::domain::Throttled),
}

type Mapped = (StatusCode, ProblemCode, String);

fn unavailable() -> Mapped {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        ProblemCode::Unavailable,
        "a dependency is temporarily unavailable; retry".into(),
    )
}

fn internal() -> Mapped {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        ProblemCode::Internal,
        "internal error".into(),
    )
}

/// A store failure: retryable ones (and lost races) are 503, the rest 500.
fn store(e: &StoreError) -> Mapped {
    if e.is_retryable() || matches!(e, StoreError::Conflict(_)) {
        unavailable()
    } else {
        internal()
    }
}

fn provider(e: &ProviderError) -> Mapped {
    if e.is_retryable() {
        unavailable()
    } else {
        (
            StatusCode::BAD_GATEWAY,
            ProblemCode::ProviderError,
            "the payment provider refused the request".into(),
        )
    }
}

fn invalid_token() -> Mapped {
    (
        StatusCode::UNAUTHORIZED,
        ProblemCode::InvalidToken,
        "a valid bearer access token is required".into(),
    )
}

fn auth(e: &AuthError) -> Mapped {
    use AuthError as A;
    use ProblemCode as C;
    match e {
        A::Validation(_) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            C::ValidationFailed,
            "the request has invalid fields".into(),
        ),
        A::EmailTaken => (
            StatusCode::CONFLICT,
            C::EmailTaken,
            "an account with this email already exists".into(),
        ),
        A::InvalidCredentials => (
            StatusCode::UNAUTHORIZED,
            C::InvalidCredentials,
            "email or password is incorrect".into(),
        ),
        A::AccountDisabled => (
            StatusCode::FORBIDDEN,
            C::AccountDisabled,
            "this account is disabled".into(),
        ),
        A::InvalidRefreshToken => (
            StatusCode::UNAUTHORIZED,
            C::InvalidRefreshToken,
            "the refresh token is missing, malformed or unknown".into(),
        ),
        A::RefreshTokenReused => (
            StatusCode::UNAUTHORIZED,
            C::RefreshTokenReused,
            "this refresh token was already used; the session has been revoked".into(),
        ),
        A::SessionExpired => (
            StatusCode::UNAUTHORIZED,
            C::SessionExpired,
            "the session has expired; log in again".into(),
        ),
        A::SessionRevoked => (
            StatusCode::UNAUTHORIZED,
            C::SessionRevoked,
            "the session has been revoked; log in again".into(),
        ),
        A::InvalidAccessToken => invalid_token(),
        A::InvalidLink => (
            StatusCode::BAD_REQUEST,
            C::InvalidLink,
            "the link is invalid, expired or already used; ask for a new one".into(),
        ),
        A::InvalidCode => (
            StatusCode::UNAUTHORIZED,
            C::InvalidCode,
            "the code is wrong or expired; after 5 wrong tries ask for a new one".into(),
        ),
        A::WrongPassword => (
            StatusCode::FORBIDDEN,
            C::WrongPassword,
            "the current password is wrong".into(),
        ),
        A::EmailNotVerified => (
            StatusCode::FORBIDDEN,
            C::EmailNotVerified,
            "verify your email first: open the link we sent, or ask for a new one".into(),
        ),
        A::ReauthenticationRequired => (
            StatusCode::FORBIDDEN,
            C::ReauthenticationRequired,
            "this needs a recent login: send your password or an email code with the request"
                .into(),
        ),
        A::EmailAlreadyVerified => (
            StatusCode::CONFLICT,
            C::EmailAlreadyVerified,
            "the email is verified already".into(),
        ),
        A::SessionNotFound => (
            StatusCode::NOT_FOUND,
            C::SessionNotFound,
            "no such session".into(),
        ),
        A::UnknownProvider => (
            StatusCode::NOT_FOUND,
            C::UnknownProvider,
            "this deployment offers no sign-in with that provider".into(),
        ),
        A::RedirectNotAllowed => (
            StatusCode::BAD_REQUEST,
            C::RedirectNotAllowed,
            "redirect_to is not on this deployment's allowlist".into(),
        ),
        A::IdentityProvider(crate::idp::IdpError::Unavailable(_)) => unavailable(),
        A::IdentityProvider(_) => (
            StatusCode::BAD_GATEWAY,
            C::ProviderError,
            "the identity provider refused the request".into(),
        ),
        A::InvalidExchangeCode => (
            StatusCode::BAD_REQUEST,
            C::InvalidExchangeCode,
            "the code is invalid, expired or already used; sign in again".into(),
        ),
        A::IdentityNotFound => (
            StatusCode::NOT_FOUND,
            C::IdentityNotFound,
            "no identity at that provider is linked to this account".into(),
        ),
        A::LastSignInMethod => (
            StatusCode::CONFLICT,
            C::LastSignInMethod,
            "this is the account's only way to sign in: set a password or link another provider first".into(),
        ),
        A::RateLimited(t) => (
            StatusCode::TOO_MANY_REQUESTS,
            C::RateLimited,
            format!(
                "too many requests; retry in {} s",
                t.retry_after
            ),
        ),
        A::InvalidApiKey => (
            StatusCode::UNAUTHORIZED,
            C::InvalidApiKey,
            "the API key is unknown, revoked or expired".into(),
        ),
        A::ApiKeyNotFound => (
            StatusCode::NOT_FOUND,
            C::ApiKeyNotFound,
            "no such API key".into(),
        ),
        A::ApiKeyLimitReached => (
            StatusCode::CONFLICT,
            C::ApiKeyLimitReached,
            "you have as many API keys as allowed; revoke one first".into(),
        ),
        A::ForbiddenForKey => (
            StatusCode::FORBIDDEN,
            C::ForbiddenForKey,
            "a service key cannot act here; use a user's access token or key".into(),
        ),
        A::Billing(e) => billing(e),
        A::Store(e) => store(e),
        A::NoSigningKey | A::Internal(_) => internal(),
    }
}

fn billing(e: &BillingError) -> Mapped {
    use BillingError as B;
    use ProblemCode as C;
    match e {
        B::Invalid(m) => (StatusCode::UNPROCESSABLE_ENTITY, C::ValidationFailed, m.clone()),
        B::ProviderNotOffered(p) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            C::ProviderNotConfigured,
            format!("{p} is not offered by this deployment"),
        ),
        B::NotConfigured(what) => (
            StatusCode::SERVICE_UNAVAILABLE,
            C::ProviderNotConfigured,
            format!("billing is not available: {what}"),
        ),
        B::SubscriptionExists => (
            StatusCode::CONFLICT,
            C::SubscriptionExists,
            "you already have access to a paid plan; change plans with POST /billing/subscription/change".into(),
        ),
        B::NoSubscription => (
            StatusCode::NOT_FOUND,
            C::NoSubscription,
            "there is no subscription to act on".into(),
        ),
        B::UnknownUser => invalid_token(),
        B::Provider(e) => provider(e),
        B::Store(e) => store(e),
    }
}

fn usage(e: &UsageError) -> Mapped {
    use ProblemCode as C;
    match e {
        UsageError::Invalid(_) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            C::ValidationFailed,
            "the request has invalid fields".into(),
        ),
        UsageError::LimitReached(r) => (
            StatusCode::PAYMENT_REQUIRED,
            C::UsageLimitReached,
            format!(
                "the plan's limit of {} for {} is reached for this period; it resets at {}",
                r.limit.unwrap_or_default(),
                r.feature,
                crate::domain::rfc3339(r.resets_at)
            ),
        ),
        UsageError::InsufficientCredits {
            report,
            cost,
            balance,
        } => (
            StatusCode::PAYMENT_REQUIRED,
            C::InsufficientCredits,
            format!(
                "this track of {} costs {cost} credits and the balance is {balance}",
                report.feature
            ),
        ),
        UsageError::IdempotencyMismatch => (
            StatusCode::UNPROCESSABLE_ENTITY,
            C::IdempotencyKeyReused,
            "this idempotency key was used for another feature or quantity".into(),
        ),
        UsageError::Store(e) => store(e),
    }
}

fn admin(e: &AdminError) -> Mapped {
    use ProblemCode as C;
    match e {
        AdminError::Forbidden => (
            StatusCode::FORBIDDEN,
            C::AdminRequired,
            "this route needs an active user with the admin role".into(),
        ),
        AdminError::UserNotFound => (
            StatusCode::NOT_FOUND,
            C::UserNotFound,
            "there is no such user".into(),
        ),
        AdminError::Invalid(m) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            C::ValidationFailed,
            m.clone(),
        ),
        AdminError::InsufficientCredits { balance } => (
            StatusCode::CONFLICT,
            C::InsufficientCredits,
            format!("the balance is {balance}: it does not cover the removal"),
        ),
        AdminError::Contended => (
            StatusCode::SERVICE_UNAVAILABLE,
            C::Unavailable,
            "the user changed meanwhile; retry".into(),
        ),
        AdminError::Billing(e) => billing(e),
        AdminError::Usage(e) => usage(e),
        AdminError::Store(e) => store(e),
    }
}

fn ingest(e: &IngestError) -> Mapped {
    use ProblemCode as C;
    match e {
        IngestError::NotConfigured(p) => (
            StatusCode::SERVICE_UNAVAILABLE,
            C::ProviderNotConfigured,
            format!("{p} webhooks are not configured"),
        ),
        IngestError::TooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            C::PayloadTooLarge,
            "the webhook body is too large".into(),
        ),
        IngestError::Refused(WebhookError::Signature(e)) => (
            StatusCode::BAD_REQUEST,
            C::InvalidSignature,
            format!("the webhook signature did not verify: {e}"),
        ),
        IngestError::Refused(WebhookError::Event(e)) => {
            (StatusCode::BAD_REQUEST, C::MalformedEvent, e.to_string())
        }
        IngestError::Store(_) | IngestError::Queue(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            C::Unavailable,
            "the webhook could not be stored; retry".into(),
        ),
    }
}

impl ApiError {
    /// The problem document for this error (with the current request id on 5xx).
    pub fn problem(&self) -> Problem {
        use ProblemCode as C;
        let (status, code, detail) = match self {
            Self::Auth(e) => auth(e),
            Self::Billing(e) => billing(e),
            Self::Ingest(e) => ingest(e),
            Self::Usage(e) => usage(e),
            Self::Admin(e) => admin(e),
            Self::NotBuilt(_) => internal(),
            Self::InvalidQuery(m) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                C::ValidationFailed,
                m.clone(),
            ),
            Self::MalformedJson(why) => (
                StatusCode::BAD_REQUEST,
                C::MalformedJson,
                format!("the body is not valid JSON for this endpoint: {why}"),
            ),
            Self::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                C::PayloadTooLarge,
                "the request body is too large".into(),
            ),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                C::UnsupportedMediaType,
                "send the body as application/json".into(),
            ),
            Self::MissingBearer => invalid_token(),
            Self::RateLimited(t) => auth(&AuthError::RateLimited(*t)),
            Self::NotAuthorized => (
                StatusCode::FORBIDDEN,
                C::NotAuthorized,
                "the credential was refused: invalid, expired or revoked, or its user is disabled"
                    .into(),
            ),
            Self::NotFound => (StatusCode::NOT_FOUND, C::NotFound, "no such route".into()),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                C::MethodNotAllowed,
                "method not allowed on this route".into(),
            ),
        };
        let errors = match self {
            Self::Auth(AuthError::Validation(errors))
            | Self::Usage(UsageError::Invalid(errors))
            | Self::Admin(AdminError::Usage(UsageError::Invalid(errors))) => {
                errors.iter().cloned().map(FieldError::from).collect()
            }
            _ => Vec::new(),
        };
        Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail,
            code,
            errors,
            request_id: status.is_server_error().then(current_request_id).flatten(),
            usage: match self {
                Self::Usage(
                    UsageError::LimitReached(r) | UsageError::InsufficientCredits { report: r, .. },
                ) => Some(UsageCounts {
                    feature: r.feature.clone(),
                    used: r.used,
                    limit: r.limit,
                    resets_at: crate::domain::rfc3339(r.resets_at),
                }),
                _ => None,
            },
            credits: match self {
                Self::Usage(UsageError::InsufficientCredits { cost, balance, .. }) => {
                    Some(CreditShortfall {
                        cost: *cost,
                        balance: *balance,
                    })
                }
                _ => None,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.problem();
        if problem.status >= 500 {
            // The cause chain goes to the log only; the body stays opaque.
            tracing::error!(error = %Chain(&self), code = ?problem.code, "request failed");
        }
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Self::RateLimited(t) | Self::Auth(AuthError::RateLimited(t)) = &self {
            super::limit::refusal_headers(headers, t);
        }
        response
    }
}

/// Router fallback: 404 as problem+json.
pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// Router fallback for a known path with another method: 405 as problem+json.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
