//! RFC 9457 `application/problem+json` errors with a stable `code`, mapped in one place.

use crate::auth::AuthError;
use crate::billing::BillingError;
use crate::domain::ValidationError;
use crate::webhooks::ingest::IngestError;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use serde::Serialize;

/// The problem document (RFC 9457 §3) plus Tollgate's stable `code` and, for validation
/// failures, `errors`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// Always `about:blank`: the `code` member identifies the problem.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The status's reason phrase.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// Human-readable detail (never secrets, never internal causes).
    pub detail: String,
    /// Stable snake_case code for programs (`email_taken`, `invalid_credentials`, …).
    pub code: &'static str,
    /// Field errors of a `validation_failed` problem.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ValidationError>,
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
}

impl ApiError {
    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        use AuthError as A;
        let (status, code, detail, errors): (
            StatusCode,
            &'static str,
            String,
            Vec<ValidationError>,
        ) = match self {
            Self::Auth(A::Validation(errors)) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "the request has invalid fields".into(),
                errors.clone(),
            ),
            Self::Auth(A::EmailTaken) => (
                StatusCode::CONFLICT,
                "email_taken",
                "an account with this email already exists".into(),
                vec![],
            ),
            Self::Auth(A::InvalidCredentials) => (
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "email or password is incorrect".into(),
                vec![],
            ),
            Self::Auth(A::AccountDisabled) => (
                StatusCode::FORBIDDEN,
                "account_disabled",
                "this account is disabled".into(),
                vec![],
            ),
            Self::Auth(A::InvalidRefreshToken) => (
                StatusCode::UNAUTHORIZED,
                "invalid_refresh_token",
                "the refresh token is missing, malformed or unknown".into(),
                vec![],
            ),
            Self::Auth(A::RefreshTokenReused) => (
                StatusCode::UNAUTHORIZED,
                "refresh_token_reused",
                "this refresh token was already used; the session has been revoked".into(),
                vec![],
            ),
            Self::Auth(A::SessionExpired) => (
                StatusCode::UNAUTHORIZED,
                "session_expired",
                "the session has expired; log in again".into(),
                vec![],
            ),
            Self::Auth(A::SessionRevoked) => (
                StatusCode::UNAUTHORIZED,
                "session_revoked",
                "the session has been revoked; log in again".into(),
                vec![],
            ),
            Self::Auth(A::InvalidAccessToken) | Self::MissingBearer => (
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "a valid bearer access token is required".into(),
                vec![],
            ),
            Self::Auth(A::Unavailable(_)) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "a dependency is temporarily unavailable; retry".into(),
                vec![],
            ),
            Self::Auth(A::Internal(_)) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error".into(),
                vec![],
            ),
            Self::Billing(BillingError::Invalid(m)) | Self::InvalidQuery(m) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", m.clone(), vec![]),
            Self::Billing(BillingError::NotConfigured(what)) => (StatusCode::SERVICE_UNAVAILABLE, "provider_not_configured", format!("billing is not available: {what}"), vec![]),
            Self::Billing(BillingError::SubscriptionExists) => (StatusCode::CONFLICT, "subscription_exists", "you already have access to a paid plan; change plans with POST /billing/subscription/change".into(), vec![]),
            Self::Billing(BillingError::NoSubscription) => (StatusCode::NOT_FOUND, "no_subscription", "there is no subscription to act on".into(), vec![]),
            Self::Billing(BillingError::UnknownUser) => (StatusCode::UNAUTHORIZED, "invalid_token", "a valid bearer access token is required".into(), vec![]),
            Self::Billing(BillingError::Provider(_)) => (StatusCode::BAD_GATEWAY, "provider_error", "the payment provider refused the request".into(), vec![]),
            Self::Billing(BillingError::Unavailable(_)) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "a dependency is temporarily unavailable; retry".into(), vec![]),
            Self::Billing(BillingError::Internal(_)) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error".into(), vec![]),
            Self::Ingest(IngestError::NotConfigured(p)) => (StatusCode::SERVICE_UNAVAILABLE, "provider_not_configured", format!("{p} webhooks are not configured"), vec![]),
            Self::Ingest(IngestError::TooLarge) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the webhook body is too large".into(), vec![]),
            Self::Ingest(IngestError::BadSignature(e)) => (StatusCode::BAD_REQUEST, "invalid_signature", format!("the webhook signature did not verify: {e}"), vec![]),
            Self::Ingest(IngestError::Malformed(e)) => (StatusCode::BAD_REQUEST, "malformed_event", e.to_string(), vec![]),
            Self::Ingest(IngestError::Unavailable(_)) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the webhook could not be stored; retry".into(), vec![]),
            Self::MalformedJson(why) => (
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the body is not valid JSON for this endpoint: {why}"),
                vec![],
            ),
            Self::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is too large".into(),
                vec![],
            ),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json".into(),
                vec![],
            ),
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                "not_found",
                "no such route".into(),
                vec![],
            ),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this route".into(),
                vec![],
            ),
        };
        Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail,
            code,
            errors,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.problem();
        if problem.status >= 500 {
            // The cause goes to the log only; the body stays opaque.
            tracing::error!(error = %self, code = problem.code, "request failed");
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
