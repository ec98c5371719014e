//! `subscription-lookup`: `GET /auth/me`, `GET /billing/subscription` and `GET /billing/plans`
//! (public: the catalog as a pricing page needs it).
//!
//! `GET /billing/subscription[?checkout_session=<id>]` with a bearer token → 200 `{plan, status,
//! access, tier, entitlements, current_period_end, cancel_at_period_end, trial_end, grace_until,
//! provider}` (times RFC 3339, `null` when absent). With `checkout_session` it first fetches that
//! session's subscription from the provider and applies it (the success-page redirect can beat the
//! webhook).
//!
//! `GET /auth/me` with `Authorization: Bearer <access token>` → 200
//! `{id, email, email_verified, name, created_at, plan}`; a missing, invalid or expired token, or a token whose
//! session was revoked → 401 `invalid_token`.
//!
//! Both routes also take a user's API key as the bearer (`Authorization: Bearer tg_…`): the key
//! acts as its user with the user's plan at this moment; an unknown, revoked or expired key → 401
//! `invalid_api_key`, a service key → 403 `forbidden_for_key`, a disabled owner → 403
//! `account_disabled`.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tollgate::auth::Caller;
use tollgate::domain::{rfc3339, CheckoutSessionId, Entitlement};
use tollgate::http::openapi::{ServerProblems, Unauthenticated, ValidationFailed, PROBLEM_JSON};
use tollgate::http::{ApiError, Problem, QueryParams, UserBody};
use tollgate::{AppState, KeyAccess, Needs};
use utoipa::OpenApi as _;

/// The public path of the current-user route.
pub const ME_PATH: &str = "/auth/me";
/// `GET /billing/plans` (public).
pub const PLANS_PATH: &str = "/billing/plans";
/// The public path of the subscription route.
pub const SUBSCRIPTION_PATH: &str = "/billing/subscription";

/// The `(method, path)` pairs this function serves: the source of truth the SAM template, the
/// OpenAPI document and the local Lambda router are checked against.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", ME_PATH),
    ("GET", SUBSCRIPTION_PATH),
    ("GET", PLANS_PATH),
];

/// What this function builds at start-up: the published JWKS (it verifies tokens), accounts
/// (sessions for `/auth/me`) and billing with the providers' API clients (the redirect sync).
pub const NEEDS: Needs = Needs {
    keys: KeyAccess::Public,
    accounts: true,
    billing: true,
    ingest: false,
    mail: false,
    oauth: false,
};

/// This function's routes, with full public paths.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(ME_PATH, get(me))
        .route(SUBSCRIPTION_PATH, get(subscription))
        .route(PLANS_PATH, get(plans))
}

/// This function's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    Doc::openapi()
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(me, subscription, plans),
    components(schemas(MeBody, SubscriptionBody, PlansBody, PlanBody, PriceBody, MeteredBody))
)]
struct Doc;

/// The current user.
#[derive(Serialize, utoipa::ToSchema)]
struct MeBody {
    /// The user.
    #[serde(flatten)]
    user: UserBody,
    /// The plan the user has access to now (`free` without a paid subscription).
    plan: String,
}

/// The current user behind the bearer — an access token (its session is checked too, so a
/// logged-out session stops working here at once) or a user's API key (`tg_…`, with the owner's
/// plan now).
#[utoipa::path(
    get,
    path = ME_PATH,
    tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user and the plan they have access to now.", body = MeBody),
        (status = 401, response = Unauthenticated),
        (status = 403, description = "`forbidden_for_key`: a service key cannot act as a user; `account_disabled`: the key's owner is disabled.", body = Problem, content_type = PROBLEM_JSON),
        ServerProblems,
    ),
)]
async fn me(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let body = match caller {
        Caller::Token(who) => {
            let me = state.auth()?.me(&who).await?;
            MeBody {
                user: UserBody::from(&me.user),
                plan: me.plan,
            }
        }
        // The key was checked and its owner read just now, with the owner's plan now.
        Caller::Key(principal) => MeBody {
            user: UserBody::from(&principal.user),
            plan: principal.plan.plan,
        },
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

/// `GET /billing/subscription` query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubscriptionQuery {
    /// A checkout session of this user (Stripe `cs_…`) to fetch from the provider and apply first
    /// — what the checkout success page passes, so it never waits for the webhook.
    #[param(pattern = "^[A-Za-z0-9_]{1,255}$")]
    checkout_session: Option<String>,
}

/// The user's billing state (times RFC 3339 UTC, `null` when absent).
#[derive(Serialize, utoipa::ToSchema)]
struct SubscriptionBody {
    /// The plan in effect (`free` without access).
    plan: String,
    /// The stored subscription's provider-neutral status, `null` without one.
    #[schema(value_type = Option<String>, example = "active")]
    status: Option<&'static str>,
    /// Whether a paid plan is accessible now.
    access: bool,
    /// The plan's tier rank (`free` is 0).
    tier: u32,
    /// Flags (booleans) and limits (integers) of the plan in effect.
    #[schema(value_type = Object)]
    entitlements: BTreeMap<String, Entitlement>,
    /// End of the current billing period.
    current_period_end: Option<String>,
    /// Whether it ends at the period end.
    cancel_at_period_end: bool,
    /// End of the trial.
    trial_end: Option<String>,
    /// For `past_due`: when access ends unless payment recovers.
    grace_until: Option<String>,
    /// `stripe` or `whop`, `null` without a subscription.
    #[schema(value_type = Option<String>)]
    provider: Option<&'static str>,
}

/// The user's subscription and access now, after applying `checkout_session` when given.
#[utoipa::path(
    get,
    path = SUBSCRIPTION_PATH,
    tag = "billing",
    params(SubscriptionQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The billing state.", body = SubscriptionBody),
        (status = 401, response = Unauthenticated),
        (status = 403, description = "`forbidden_for_key`: a service key cannot act as a user; `account_disabled`: the key's owner is disabled.", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, response = ValidationFailed),
        (status = 502, description = "`provider_error`: the payment provider refused the lookup.", body = Problem, content_type = PROBLEM_JSON),
        ServerProblems,
    ),
)]
async fn subscription(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<SubscriptionQuery>,
) -> Result<Response, ApiError> {
    let session = query
        .checkout_session
        .map(|s| {
            let shaped = !s.is_empty()
                && s.len() <= 255
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if shaped {
                Ok(CheckoutSessionId::new(s))
            } else {
                Err(ApiError::InvalidQuery(
                    "checkout_session is not a session id".into(),
                ))
            }
        })
        .transpose()?;
    let view = state
        .billing()?
        .subscription(&caller.user_id(), session.as_ref())
        .await?;
    let sub = view.subscription.as_ref();
    let body = SubscriptionBody {
        plan: view.access.plan,
        status: sub.map(|s| s.status.as_str()),
        access: view.access.has_access,
        tier: view.access.tier,
        entitlements: view.access.entitlements,
        current_period_end: sub.and_then(|s| s.current_period_end).map(rfc3339),
        cancel_at_period_end: sub.is_some_and(|s| s.cancel_at_period_end),
        trial_end: sub.and_then(|s| s.trial_end).map(rfc3339),
        grace_until: view.access.grace_until.map(rfc3339),
        provider: sub.map(|s| s.provider.as_str()),
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

/// A price of a plan as a pricing page shows it.
#[derive(Serialize, utoipa::ToSchema)]
struct PriceBody {
    /// `month` or `year`.
    #[schema(example = "month")]
    interval: &'static str,
    /// Amount in minor currency units (cents for `usd`).
    amount: u64,
    /// ISO 4217 code, lowercase.
    #[schema(example = "usd")]
    currency: String,
}

/// A metered feature's allowance per period.
#[derive(Serialize, utoipa::ToSchema)]
struct MeteredBody {
    /// Units per period; `null`: unlimited.
    limit: Option<u64>,
    /// Whether use past the limit is counted (overage) rather than refused.
    overage: bool,
}

/// A plan as a pricing page needs it.
#[derive(Serialize, utoipa::ToSchema)]
struct PlanBody {
    /// The plan id (`POST /billing/checkout {plan}`).
    id: String,
    /// Display name.
    name: String,
    /// Tier rank (`free` is 0).
    tier: u32,
    /// Free trial days of a new subscription.
    trial_days: u32,
    /// Display prices per interval (empty for `free`).
    prices: Vec<PriceBody>,
    /// The providers it can be bought with.
    #[schema(value_type = Vec<String>)]
    providers: Vec<&'static str>,
    /// Flags (booleans) and limits (integers).
    #[schema(value_type = Object)]
    entitlements: BTreeMap<String, Entitlement>,
    /// Metered features and their allowance per period.
    metered: BTreeMap<String, MeteredBody>,
}

/// `GET /billing/plans` answer.
#[derive(Serialize, utoipa::ToSchema)]
struct PlansBody {
    /// Every plan, lowest tier first.
    plans: Vec<PlanBody>,
}

/// The plan catalog as a pricing page needs it: names, display prices per interval, providers,
/// entitlements and metered allowances. Public; cacheable for five minutes.
#[utoipa::path(
    get,
    path = PLANS_PATH,
    tag = "billing",
    responses(
        (status = 200, description = "The plans.", body = PlansBody),
        ServerProblems,
    ),
)]
async fn plans(State(state): State<AppState>) -> Result<Response, ApiError> {
    let catalog = state.auth()?.catalog();
    let mut plans: Vec<PlanBody> = catalog
        .plans()
        .iter()
        .map(|p| PlanBody {
            id: p.id.clone(),
            name: p.name.clone(),
            tier: p.tier,
            trial_days: p.trial_days,
            prices: p
                .display
                .iter()
                .map(|(interval, price)| PriceBody {
                    interval: interval.as_str(),
                    amount: price.amount,
                    currency: price.currency.clone(),
                })
                .collect(),
            providers: [
                p.stripe
                    .as_ref()
                    .filter(|s| !s.prices.is_empty())
                    .map(|_| "stripe"),
                p.whop.as_ref().map(|_| "whop"),
            ]
            .into_iter()
            .flatten()
            .collect(),
            entitlements: p.entitlements.clone(),
            metered: p
                .metered
                .iter()
                .map(|(feature, m)| {
                    (
                        feature.clone(),
                        MeteredBody {
                            limit: m.limit.units(),
                            overage: m.overage,
                        },
                    )
                })
                .collect(),
        })
        .collect();
    plans.sort_by_key(|p| p.tier);
    Ok((
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(PlansBody { plans }),
    )
        .into_response())
}
