//! `whoami`: `GET /example/whoami`, the example of a customer's own route behind the Tollgate
//! authorizer (template: `Auth: Authorizer: TollgateAuthorizer`). It echoes what the authorizer
//! passed — user id, plan, tier, entitlements, key id — which is all a route needs to serve the
//! caller by plan without calling Tollgate. Copy it as the start of your own.
//!
//! On the dev server the route is behind the in-process emulation of API Gateway's authorizer
//! step (`tollgate::http::authorizer::emulate`), running the same use case.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tollgate::auth::authorizer::AuthorizerContext;
use tollgate::http::openapi::{RateLimited, ServerProblems, Unauthenticated, PROBLEM_JSON};
use tollgate::http::{ApiError, Problem};
use tollgate::{AppState, Needs};
use utoipa::OpenApi as _;

/// `GET /example/whoami`.
pub const WHOAMI_PATH: &str = "/example/whoami";

/// The `(method, path)` pairs this function serves: the source of truth the SAM template, the
/// OpenAPI document and the local Lambda router are checked against.
pub const ROUTES: &[(&str, &str)] = &[("GET", WHOAMI_PATH)];

/// What this function builds at start-up: nothing (the authorizer did the work).
pub const NEEDS: Needs = Needs::NOTHING;

/// This function's routes, with full public paths.
pub fn routes() -> Router<AppState> {
    Router::new().route(WHOAMI_PATH, get(whoami))
}

/// This function's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    Doc::openapi()
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(whoami), components(schemas(WhoamiBody)))]
struct Doc;

/// What the authorizer said about the caller.
#[derive(Serialize, utoipa::ToSchema)]
struct WhoamiBody {
    /// The user (UUIDv7).
    user_id: String,
    /// The plan in effect.
    plan: String,
    /// The plan's tier rank.
    tier: u32,
    /// The plan's flags and limits.
    #[schema(value_type = Object)]
    entitlements: serde_json::Value,
    /// The API key's id, when the caller used a key.
    key_id: Option<String>,
}

/// Echoes the Tollgate authorizer's context: the example of a route protected by it.
#[utoipa::path(
    get,
    path = WHOAMI_PATH,
    tag = "example",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Who called, with their plan.", body = WhoamiBody),
        (status = 401, response = Unauthenticated),
        (status = 403, description = "`not_authorized`: the credential was refused (API Gateway itself answers a bare 403).", body = Problem, content_type = PROBLEM_JSON),
        (status = 429, response = RateLimited),
        ServerProblems,
    ),
)]
async fn whoami(context: AuthorizerContext) -> Result<Response, ApiError> {
    let entitlements = serde_json::from_str(&context.entitlements)
        .unwrap_or_else(|_| serde_json::Value::Object(Default::default()));
    let body = WhoamiBody {
        user_id: context.user_id,
        plan: context.plan,
        tier: context.tier,
        entitlements,
        key_id: context.key_id,
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}
