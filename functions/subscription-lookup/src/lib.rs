//! `subscription-lookup`: `GET /auth/me`, `GET /billing/subscription` and `GET /billing/plans`
//! (public: the catalog as a pricing page needs it), `GET /billing/payments` (the user's payments,
//! paged).
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
use tollgate::domain::{rfc3339, CheckoutSessionId, CreditSpend, Entitlement};
use tollgate::http::openapi::{ServerProblems, Unauthenticated, ValidationFailed, PROBLEM_JSON};
use tollgate::http::{ApiError, Problem, QueryParams, UserBody};
use tollgate::{AppState, KeyAccess, Needs};
use utoipa::OpenApi as _;

/// The public path of the current-user route.
pub const ME_PATH: &str = "/auth/me";
/// `GET /billing/payments`.
pub const PAYMENTS_PATH: &str = "/billing/payments";
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
    ("GET", PAYMENTS_PATH),
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
    outbound: false,
};

/// This function's routes, with full public paths.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(ME_PATH, get(me))
        .route(SUBSCRIPTION_PATH, get(subscription))
        .route(PLANS_PATH, get(plans))
        .route(PAYMENTS_PATH, get(payments))
}

/// This function's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    Doc::openapi()
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(me, subscription, plans, payments),
    components(schemas(
        MeBody,
        SubscriptionBody,
        PlansBody,
        PlanBody,
        PriceBody,
        MeteredBody,
        PackBody,
        PaymentsBody,
        PaymentBody
    ))
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
    /// Credits one unit costs (0: none).
    credits_per_unit: u64,
    /// When units cost credits: `beyond_limit` or `always`.
    #[schema(value_type = String, example = "beyond_limit")]
    spend: &'static str,
}

/// A credit pack as a pricing page shows it.
#[derive(Serialize, utoipa::ToSchema)]
struct PackBody {
    /// The pack id (`POST /billing/checkout {pack}`).
    id: String,
    /// Display name.
    name: String,
    /// Credits granted per purchase.
    credits: u64,
    /// The price, minor currency units.
    amount: u64,
    /// ISO 4217, lowercase.
    currency: String,
    /// The providers it can be bought with.
    #[schema(value_type = Vec<String>)]
    providers: Vec<&'static str>,
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
    /// Credits granted each period while the plan is held.
    monthly_credits: u64,
}

/// `GET /billing/plans` answer.
#[derive(Serialize, utoipa::ToSchema)]
struct PlansBody {
    /// Every plan, lowest tier first.
    plans: Vec<PlanBody>,
    /// Credit packs sold once, in catalog order.
    credit_packs: Vec<PackBody>,
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
                            credits_per_unit: m.credits,
                            spend: match m.spend {
                                CreditSpend::BeyondLimit => "beyond_limit",
                                CreditSpend::Always => "always",
                            },
                        },
                    )
                })
                .collect(),
            monthly_credits: p.monthly_credits,
        })
        .collect();
    plans.sort_by_key(|p| p.tier);
    let credit_packs = catalog
        .packs()
        .iter()
        .map(|p| PackBody {
            id: p.id.clone(),
            name: p.name.clone(),
            credits: p.credits,
            amount: p.price.amount,
            currency: p.price.currency.clone(),
            providers: [
                p.stripe.as_ref().map(|_| "stripe"),
                p.whop.as_ref().map(|_| "whop"),
            ]
            .into_iter()
            .flatten()
            .collect(),
        })
        .collect();
    Ok((
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(PlansBody {
            plans,
            credit_packs,
        }),
    )
        .into_response())
}

/// `GET /billing/payments` query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PaymentsQuery {
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
    /// `next_before` of the previous page.
    #[param(pattern = "^[0-9]{10}#[a-z]+#[^#]{1,255}$")]
    before: Option<String>,
}

/// One payment (a charge or a failed attempt).
#[derive(Serialize, utoipa::ToSchema)]
struct PaymentBody {
    /// The provider's payment or invoice id.
    id: String,
    /// `stripe` or `whop`.
    #[schema(value_type = String)]
    provider: &'static str,
    /// Amount in minor currency units.
    amount: i64,
    /// ISO 4217 code, lowercase.
    currency: String,
    /// `paid` or `failed`.
    #[schema(value_type = String)]
    status: &'static str,
    /// The provider subscription it belongs to.
    subscription_id: Option<String>,
    /// When, RFC 3339.
    paid_at: String,
}

/// `GET /billing/payments` answer.
#[derive(Serialize, utoipa::ToSchema)]
struct PaymentsBody {
    /// Newest first.
    payments: Vec<PaymentBody>,
    /// Pass as `before` for the next page; `null` on the last.
    next_before: Option<String>,
}

/// The caller's payments, newest first, paged.
#[utoipa::path(
    get,
    path = PAYMENTS_PATH,
    tag = "billing",
    params(PaymentsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of payments.", body = PaymentsBody),
        (status = 401, response = Unauthenticated),
        (status = 403, description = "`forbidden_for_key`: a service key.", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, response = ValidationFailed),
        ServerProblems,
    ),
)]
async fn payments(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<PaymentsQuery>,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::InvalidQuery("limit must be 1 to 100".into()));
    }
    if query
        .before
        .as_deref()
        .is_some_and(|c| !tollgate::store::keys::is_payment_cursor(c))
    {
        return Err(ApiError::InvalidQuery(
            "before must be a next_before of an earlier page".into(),
        ));
    }
    let (page, next_before) = state
        .billing()?
        .payments(&caller.user_id(), query.before.as_deref(), limit)
        .await?;
    let payments = page
        .iter()
        .map(|p| PaymentBody {
            id: p.payment_id.to_string(),
            provider: p.provider.as_str(),
            amount: p.amount_minor,
            currency: p.currency.clone(),
            status: match p.status {
                tollgate::domain::PaymentStatus::Paid => "paid",
                tollgate::domain::PaymentStatus::Failed => "failed",
            },
            subscription_id: p.subscription_id.as_ref().map(ToString::to_string),
            paid_at: rfc3339(p.paid_at),
        })
        .collect();
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(PaymentsBody {
            payments,
            next_before,
        }),
    )
        .into_response())
}
