//! What every function's part of the OpenAPI 3.1 document shares: the security schemes, the
//! problem schema and the document's info. Each function crate describes its own routes
//! (`#[utoipa::path]` on its handlers) and exposes them as `openapi()`; the dev server merges
//! them into `docs/openapi.json` (`cargo run -p dev-server --bin openapi`), which `GET
//! /openapi.json` serves and a test keeps equal to the functions' `ROUTES`.

use super::Problem;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::Modify;

/// Security scheme name of `Authorization: Bearer <access token>`.
pub const BEARER: &str = "bearer";
/// Security scheme name of the refresh cookie.
pub const REFRESH_COOKIE: &str = "refresh_cookie";
/// Security scheme name of Stripe's webhook signature.
pub const STRIPE_SIGNATURE: &str = "stripe_signature";
/// Security scheme name of Standard Webhooks' signature (Whop).
pub const STANDARD_WEBHOOKS: &str = "standard_webhooks";

/// The `application/problem+json` media type of every error answer (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Adds the security schemes to a document.
#[derive(Debug)]
pub struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A Tollgate access token (RS256 JWT, 15 minutes), from signup, login or refresh.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            REFRESH_COOKIE,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                super::REFRESH_COOKIE,
                "The refresh token, set HttpOnly by signup, login and refresh (path /auth).",
            ))),
        );
        components.add_security_scheme(
            STRIPE_SIGNATURE,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Stripe-Signature",
                "Stripe's HMAC-SHA256 signature of the raw body (docs.stripe.com/webhooks#verify-manually).",
            ))),
        );
        components.add_security_scheme(
            STANDARD_WEBHOOKS,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "webhook-signature",
                "Standard Webhooks signature (with webhook-id and webhook-timestamp), as Whop sends it.",
            ))),
        );
    }
}

/// 400 `malformed_json`: the body is not JSON, or not of the expected shape.
#[derive(Debug, utoipa::ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct MalformedBody(pub Problem);

/// A session's tokens (signup adds the new `user`); the refresh token is also set as the
/// `tollgate_refresh` cookie (`HttpOnly; Secure; SameSite=Strict; Path=/auth`).
#[derive(Debug, utoipa::ToResponse)]
#[response(headers(("set-cookie" = String, description = "`tollgate_refresh=…; Path=/auth; Max-Age=…; HttpOnly; Secure; SameSite=Strict`")))]
pub struct Tokens(pub super::TokenBody);

/// 401 `invalid_token`: a valid bearer access token is required (missing, malformed, expired,
/// or its session or user is gone).
#[derive(Debug, utoipa::ToResponse)]
#[response(content_type = "application/problem+json", headers(("www-authenticate" = String, description = "`Bearer`")))]
pub struct Unauthenticated(pub Problem);

/// 429 `rate_limited`: too many requests for this client IP, account or user, or failed logins
/// throttle the account; retry after `Retry-After` seconds.
#[derive(Debug, utoipa::ToResponse)]
#[response(
    content_type = "application/problem+json",
    headers(
        ("retry-after" = u32, description = "Seconds to wait before retrying."),
        ("ratelimit-limit" = u32, description = "Requests allowed per window (absent for the login throttle)."),
        ("ratelimit-remaining" = u32, description = "Requests left in this window: 0."),
        ("ratelimit-reset" = u32, description = "Seconds until the window ends."),
    )
)]
pub struct RateLimited(pub Problem);

/// 413 `payload_too_large`: the body is larger than the limit (`TOLLGATE_MAX_BODY_BYTES`).
#[derive(Debug, utoipa::ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct PayloadTooLarge(pub Problem);

/// 415 `unsupported_media_type`: the body is not `application/json`.
#[derive(Debug, utoipa::ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct UnsupportedMediaType(pub Problem);

/// 422 `validation_failed`: a field is invalid (listed in `errors`) or a value names nothing usable.
#[derive(Debug, utoipa::ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct ValidationFailed(pub Problem);

/// 500 `internal`: an internal error; `request_id` finds its cause in the logs.
#[derive(Debug, utoipa::ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct Internal(pub Problem);

/// 503 `unavailable`: a dependency is temporarily unavailable; retry (`request_id` in the body).
#[derive(Debug, utoipa::ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct Unavailable(pub Problem);

/// The problems every route with a JSON body may answer before its handler runs: 400, 413, 415.
#[derive(Debug, utoipa::IntoResponses)]
pub enum BodyProblems {
    /// 400 `malformed_json`.
    #[response(status = 400)]
    Malformed(#[ref_response] MalformedBody),
    /// 413 `payload_too_large`.
    #[response(status = 413)]
    TooLarge(#[ref_response] PayloadTooLarge),
    /// 415 `unsupported_media_type`.
    #[response(status = 415)]
    MediaType(#[ref_response] UnsupportedMediaType),
}

/// The server problems every route that reaches a dependency may answer: 500, 503.
#[derive(Debug, utoipa::IntoResponses)]
pub enum ServerProblems {
    /// 500 `internal`.
    #[response(status = 500)]
    Internal(#[ref_response] Internal),
    /// 503 `unavailable`.
    #[response(status = 503)]
    Unavailable(#[ref_response] Unavailable),
}

/// A payment provider, as the API names it (documents `crate::domain::Provider`).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProviderName {
    /// Stripe.
    Stripe,
    /// Whop.
    Whop,
}

/// A billing interval of a Stripe price (documents `crate::domain::Interval`).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IntervalName {
    /// Monthly.
    Month,
    /// Yearly.
    Year,
}

/// The document's frame: title, version, description, the shared schemas and the security
/// schemes. Function crates' documents are merged into it.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Tollgate",
        description = "Accounts, sessions and paid plans as functions on AWS Lambda. Errors are RFC 9457 problem documents (application/problem+json) with a stable `code`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(
        schemas(super::Problem, super::ProblemCode, super::FieldError, super::TokenBody, super::UserBody, ProviderName, IntervalName),
        responses(Tokens, MalformedBody, Unauthenticated, RateLimited, PayloadTooLarge, UnsupportedMediaType, ValidationFailed, Internal, Unavailable),
    ),
    modifiers(&SecuritySchemes),
)]
pub struct Frame;
