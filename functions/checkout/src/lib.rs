//! `checkout`: `POST /billing/checkout`, `POST /billing/portal`,
//! `POST /billing/subscription/cancel`, `POST /billing/subscription/resume`,
//! `POST /billing/subscription/change` (all with `Authorization: Bearer <access token>`).
//!
//! - checkout `{plan, interval?, provider?}` → 200 `{url, provider}`; 409 `subscription_exists`
//!   for a user with access to a paid plan; 422 for an unknown plan, a missing price or a
//!   provider this deployment does not offer; 503 `provider_not_configured` without any provider.
//!   `{pack, provider?}` instead opens a one-time checkout for a credit pack (Stripe
//!   `mode=payment`); its paid event grants the credits.
//! - portal → 200 `{url}`; 404 `no_subscription`.
//! - cancel (at period end) / resume → 202 `{status: "pending"}`: the provider confirms by webhook.
//! - change `{plan, interval?}` → 202, prorated per the target plan's `proration`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tollgate::auth::AuthenticatedUser;
use tollgate::billing::BillingError;
use tollgate::domain::rules;
use tollgate::domain::{Interval, Provider};
use tollgate::http::limit::by_user;
use tollgate::http::openapi::{
    BodyProblems, Internal, IntervalName, ProviderName, RateLimited, ServerProblems,
    Unauthenticated, ValidationFailed, PROBLEM_JSON,
};
use tollgate::http::{ApiError, JsonBody, OptionalJsonBody, Problem};
use tollgate::{AppState, KeyAccess, Needs};
use utoipa::OpenApi as _;

/// Checkout path.
pub const CHECKOUT_PATH: &str = "/billing/checkout";
/// Portal path.
pub const PORTAL_PATH: &str = "/billing/portal";
/// Cancel-at-period-end path.
pub const CANCEL_PATH: &str = "/billing/subscription/cancel";
/// Resume path.
pub const RESUME_PATH: &str = "/billing/subscription/resume";
/// Plan change path.
pub const CHANGE_PATH: &str = "/billing/subscription/change";

/// The `(method, path)` pairs this function serves: the source of truth the SAM template, the
/// OpenAPI document and the local Lambda router are checked against.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", CHECKOUT_PATH),
    ("POST", PORTAL_PATH),
    ("POST", CANCEL_PATH),
    ("POST", RESUME_PATH),
    ("POST", CHANGE_PATH),
];

/// What this function builds at start-up: the published JWKS (it verifies tokens) and billing
/// with the providers' API clients.
pub const NEEDS: Needs = Needs {
    keys: KeyAccess::Public,
    accounts: false,
    billing: true,
    ingest: false,
    mail: false,
    oauth: false,
    outbound: false,
};

/// This function's routes, with full public paths.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(CHECKOUT_PATH, by_user(rules::BILLING_USER, post(checkout)))
        .route(PORTAL_PATH, by_user(rules::BILLING_USER, post(portal)))
        .route(CANCEL_PATH, by_user(rules::BILLING_USER, post(cancel)))
        .route(RESUME_PATH, by_user(rules::BILLING_USER, post(resume)))
        .route(CHANGE_PATH, by_user(rules::BILLING_USER, post(change)))
}

/// This function's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    Doc::openapi()
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(checkout, portal, cancel, resume, change),
    components(schemas(CheckoutBody, ChangeBody, CheckoutStarted, PortalBody, Pending))
)]
struct Doc;

/// `POST /billing/checkout` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutBody {
    /// A paid plan id of the catalog (`pro`, `team`) to subscribe to; or
    #[schema(example = "pro")]
    #[serde(default)]
    plan: Option<String>,
    /// a credit pack id of the catalog (`credits_1000`) to buy once. Exactly one of the two.
    #[serde(default)]
    pack: Option<String>,
    /// The billing interval of a plan (Stripe prices; default `month`).
    #[serde(default)]
    #[schema(value_type = Option<IntervalName>)]
    interval: Option<Interval>,
    /// `stripe` or `whop` (default: the first configured).
    #[serde(default)]
    #[schema(value_type = Option<ProviderName>)]
    provider: Option<Provider>,
}

/// `POST /billing/subscription/change` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeBody {
    /// The paid plan to move to.
    #[schema(example = "team")]
    plan: String,
    /// The billing interval (default: the current one, else `month`).
    #[serde(default)]
    #[schema(value_type = Option<IntervalName>)]
    interval: Option<Interval>,
}

/// A started checkout.
#[derive(Serialize, utoipa::ToSchema)]
struct CheckoutStarted {
    /// Where to send the buyer.
    url: String,
    /// `stripe` or `whop`.
    provider: &'static str,
}

/// A billing portal session.
#[derive(Serialize, utoipa::ToSchema)]
struct PortalBody {
    /// Where to send the customer.
    url: String,
}

/// What cancel, resume and change answer besides the common problems.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // documents the responses; handlers answer through `pending()` and ApiError
enum SubscriptionChange {
    /// Asked of the provider; its webhook updates the state.
    #[response(status = 202)]
    Pending(Pending),
    /// `no_subscription`: there is no subscription to act on.
    #[response(status = 404, content_type = "application/problem+json")]
    NoSubscription(Problem),
    /// `provider_error`: the payment provider refused (Whop cannot change plans through its API).
    #[response(status = 502, content_type = "application/problem+json")]
    ProviderRefused(Problem),
}

/// A change the provider confirms by webhook.
#[derive(Serialize, utoipa::ToSchema)]
struct Pending {
    /// Always `pending`.
    #[schema(example = "pending")]
    status: &'static str,
}

/// Starts a checkout for a paid plan, or a one-time checkout for a credit pack.
#[utoipa::path(
    post,
    path = CHECKOUT_PATH,
    tag = "billing",
    request_body = CheckoutBody,
    security(("bearer" = [])),
    responses(
        (status = 429, response = RateLimited),
        (status = 200, description = "The checkout URL at the provider.", body = CheckoutStarted),
        (status = 401, response = Unauthenticated),
        (status = 409, description = "`subscription_exists`: the user already has access to a paid plan.", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "`validation_failed` (neither or both of `plan` and `pack`, an unknown plan or pack, no price for this interval or provider) or `provider_not_configured` (a provider this deployment does not offer).", body = Problem, content_type = PROBLEM_JSON),
        (status = 500, response = Internal),
        (status = 502, description = "`provider_error`: the payment provider refused.", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "`provider_not_configured` (no provider at all) or `unavailable`.", body = Problem, content_type = PROBLEM_JSON),
        BodyProblems,
    ),
)]
async fn checkout(
    State(state): State<AppState>,
    who: AuthenticatedUser,
    JsonBody(body): JsonBody<CheckoutBody>,
) -> Result<Response, ApiError> {
    let billing = state.billing()?;
    let (provider, url) = match (&body.plan, &body.pack) {
        (Some(plan), None) => {
            billing
                .create_checkout(&who.user_id, plan, body.interval, body.provider)
                .await?
        }
        (None, Some(pack)) if body.interval.is_none() => {
            billing
                .create_pack_checkout(&who.user_id, pack, body.provider)
                .await?
        }
        (None, Some(_)) => {
            return Err(BillingError::Invalid("a credit pack has no interval".into()).into())
        }
        _ => {
            return Err(
                BillingError::Invalid("give exactly one of `plan` and `pack`".into()).into(),
            )
        }
    };
    Ok(Json(CheckoutStarted {
        url,
        provider: provider.as_str(),
    })
    .into_response())
}

/// A self-service billing portal for the user's subscription (Stripe's portal; Whop's manage page).
#[utoipa::path(
    post,
    path = PORTAL_PATH,
    tag = "billing",
    security(("bearer" = [])),
    responses(
        (status = 429, response = RateLimited),
        (status = 200, description = "The portal URL.", body = PortalBody),
        (status = 401, response = Unauthenticated),
        (status = 404, description = "`no_subscription`: there is no subscription to manage.", body = Problem, content_type = PROBLEM_JSON),
        (status = 502, description = "`provider_error`: the payment provider refused.", body = Problem, content_type = PROBLEM_JSON),
        ServerProblems,
    ),
)]
async fn portal(
    State(state): State<AppState>,
    who: AuthenticatedUser,
) -> Result<Response, ApiError> {
    let url = state.billing()?.create_portal(&who.user_id).await?;
    Ok(Json(PortalBody { url }).into_response())
}

fn pending() -> Response {
    (StatusCode::ACCEPTED, Json(Pending { status: "pending" })).into_response()
}

/// Sets the subscription to cancel at the end of the period (access continues until then).
#[utoipa::path(
    post,
    path = CANCEL_PATH,
    tag = "billing",
    request_body(content = Option<Object>, description = "Empty, `null` or a JSON object (ignored)."),
    security(("bearer" = [])),
    responses(
        SubscriptionChange,
        (status = 429, response = RateLimited),
        SubscriptionChange,
        (status = 401, response = Unauthenticated),
        BodyProblems,
        ServerProblems,
    ),
)]
async fn cancel(
    State(state): State<AppState>,
    who: AuthenticatedUser,
    _: OptionalJsonBody<Option<serde_json::Map<String, serde_json::Value>>>,
) -> Result<Response, ApiError> {
    state.billing()?.cancel(&who.user_id).await?;
    Ok(pending())
}

/// Undoes a pending cancel-at-period-end.
#[utoipa::path(
    post,
    path = RESUME_PATH,
    tag = "billing",
    request_body(content = Option<Object>, description = "Empty, `null` or a JSON object (ignored)."),
    security(("bearer" = [])),
    responses(
        SubscriptionChange,
        (status = 429, response = RateLimited),
        SubscriptionChange,
        (status = 401, response = Unauthenticated),
        BodyProblems,
        ServerProblems,
    ),
)]
async fn resume(
    State(state): State<AppState>,
    who: AuthenticatedUser,
    _: OptionalJsonBody<Option<serde_json::Map<String, serde_json::Value>>>,
) -> Result<Response, ApiError> {
    state.billing()?.resume(&who.user_id).await?;
    Ok(pending())
}

/// Moves the subscription to another plan, prorated per the target plan's `proration`.
#[utoipa::path(
    post,
    path = CHANGE_PATH,
    tag = "billing",
    request_body = ChangeBody,
    security(("bearer" = [])),
    responses(
        SubscriptionChange,
        (status = 429, response = RateLimited),
        SubscriptionChange,
        (status = 401, response = Unauthenticated),
        (status = 422, response = ValidationFailed),
        BodyProblems,
        ServerProblems,
    ),
)]
async fn change(
    State(state): State<AppState>,
    who: AuthenticatedUser,
    JsonBody(body): JsonBody<ChangeBody>,
) -> Result<Response, ApiError> {
    state
        .billing()?
        .change_plan(&who.user_id, &body.plan, body.interval)
        .await?;
    Ok(pending())
}
