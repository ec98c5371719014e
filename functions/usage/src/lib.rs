//! `usage`: metered features (docs/architecture.md §5d).
//!
//! | route | auth | answer |
//! |---|---|---|
//! | `POST /usage/track {feature, quantity?, idempotency_key, user_id?}` | bearer: access token, user API key, or a service key with `user_id` | 200 `{feature, used, limit, remaining, overage, resets_at, plan, credits_per_unit, spend, credits_spent, credit_balance, replayed}`; 402 `usage_limit_reached` or `insufficient_credits` (nothing counted or spent) |
//! | `GET /usage[?feature=…]` | bearer: access token or user API key | 200 `{usage: [{feature, used, limit, remaining, overage, resets_at, plan, credits_per_unit, spend}]}` |
//! | `GET /billing/credits[?limit&before]` | bearer: access token or user API key | 200 `{balance, entries: [{cause, kind, amount, at, pack, feature, quantity, provider, payment_id, note}], next_before}` (the plan's allowance for this period granted first, if due) |
//!
//! A track is one atomic write of the count and the idempotency key: the count never passes the
//! plan's limit (unless the feature allows overage), and a retried key counts once. Over the
//! limit the answer is **402 Payment Required** `usage_limit_reached`: the limit lifts by a plan
//! change or at `resets_at`, not by retrying soon — 429 would invite clients' automatic retries
//! (and a `Retry-After` weeks away); 402 tells the app to offer an upgrade.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tollgate::auth::{AnyCaller, AuthError, Caller};
use tollgate::domain::{rfc3339, ApiKeyKind, CreditEntry, CreditSpend, UserId};
use tollgate::http::openapi::{
    BodyProblems, ServerProblems, Unauthenticated, ValidationFailed, PROBLEM_JSON,
};
use tollgate::http::{ApiError, JsonBody, Problem, QueryParams};
use tollgate::usage::UsageReport;
use tollgate::{AppState, KeyAccess, Needs};
use utoipa::OpenApi as _;

/// `POST /usage/track`.
pub const TRACK_PATH: &str = "/usage/track";
/// `GET /usage`.
pub const USAGE_PATH: &str = "/usage";
/// `GET /billing/credits`.
pub const CREDITS_PATH: &str = "/billing/credits";

/// The `(method, path)` pairs this function serves: the source of truth the SAM template, the
/// OpenAPI document and the local Lambda router are checked against.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", TRACK_PATH),
    ("GET", USAGE_PATH),
    ("GET", CREDITS_PATH),
];

/// What this function builds at start-up: the published JWKS (it verifies tokens) and accounts
/// (API keys, the plan catalog, subscriptions, the usage counters, credit balances). No private
/// key.
pub const NEEDS: Needs = Needs {
    keys: KeyAccess::Public,
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
        .route(TRACK_PATH, post(track))
        .route(USAGE_PATH, get(usage))
        .route(CREDITS_PATH, get(credits))
}

/// This function's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    Doc::openapi()
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(track, usage, credits),
    components(schemas(
        TrackRequest,
        UsageBody,
        TrackedBody,
        UsageList,
        CreditsBody,
        CreditEntryBody
    ))
)]
struct Doc;

/// `POST /usage/track` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrackRequest {
    /// The metered feature (a key of `[plans.metered]` in the catalog).
    #[schema(example = "exports")]
    feature: String,
    /// Units to count (default 1).
    #[schema(minimum = 1, maximum = 1000000)]
    quantity: Option<u64>,
    /// Your key for this operation: a retry with the same key counts nothing again and answers
    /// the count (keys are remembered at least 24 h, per user).
    #[schema(example = "export-7f3e2a", min_length = 1, max_length = 255)]
    idempotency_key: String,
    /// The user to count for — only with a service key.
    #[schema(value_type = Option<String>, example = "0190f1b2-0000-7000-8000-000000000000")]
    user_id: Option<String>,
}

/// One feature's count this period.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UsageBody {
    /// The feature.
    feature: String,
    /// Units counted this period.
    used: u64,
    /// The plan's limit per period; `null`: unlimited.
    limit: Option<u64>,
    /// Units left; `null`: unlimited.
    remaining: Option<u64>,
    /// Whether tracks past the limit are counted (overage).
    overage: bool,
    /// When the count resets (the period's end), RFC 3339.
    resets_at: String,
    /// The plan the limit comes from.
    plan: String,
    /// Credits one unit costs (0: none).
    credits_per_unit: u64,
    /// When units cost credits: `beyond_limit` (tracks past the limit are paid in credits) or
    /// `always`.
    #[schema(value_type = String, example = "beyond_limit")]
    spend: &'static str,
}

fn spend_name(spend: CreditSpend) -> &'static str {
    match spend {
        CreditSpend::BeyondLimit => "beyond_limit",
        CreditSpend::Always => "always",
    }
}

impl From<&UsageReport> for UsageBody {
    fn from(r: &UsageReport) -> Self {
        Self {
            feature: r.feature.clone(),
            used: r.used,
            limit: r.limit,
            remaining: r.remaining,
            overage: r.overage,
            resets_at: rfc3339(r.resets_at),
            plan: r.plan.clone(),
            credits_per_unit: r.credits_per_unit,
            spend: spend_name(r.spend),
        }
    }
}

/// `POST /usage/track` answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TrackedBody {
    /// The counts after the track.
    #[serde(flatten)]
    usage: UsageBody,
    /// Credits this track spent (0 when it spent none, and on a replay).
    credits_spent: u64,
    /// The balance after this track's spend; `null` when it spent nothing.
    credit_balance: Option<i64>,
    /// Whether this idempotency key was seen before (nothing was counted this time).
    replayed: bool,
}

/// `GET /usage` answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UsageList {
    /// Every metered feature (or the one asked for).
    usage: Vec<UsageBody>,
}

/// `GET /usage` query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Only this feature.
    feature: Option<String>,
}

/// Whom a track counts for: the caller, or — for a service key — the `user_id` it names.
fn subject(caller: &Caller, user_id: Option<&str>) -> Result<UserId, ApiError> {
    let service = matches!(caller, Caller::Key(p) if p.key.kind == ApiKeyKind::Service);
    match (service, user_id) {
        (true, Some(id)) => id.parse().map_err(|_| {
            ApiError::from(AuthError::Validation(vec![
                tollgate::domain::ValidationError {
                    field: "user_id",
                    message: "must be a user id (UUID)".into(),
                },
            ]))
        }),
        (true, None) => Err(ApiError::from(AuthError::Validation(vec![
            tollgate::domain::ValidationError {
                field: "user_id",
                message: "a service key must name the user".into(),
            },
        ]))),
        (false, Some(_)) => Err(AuthError::ForbiddenForKey.into()),
        (false, None) => Ok(caller.user_id()),
    }
}

/// Counts units of a metered feature for the caller (or, with a service key, for `user_id`),
/// once per idempotency key, never past the plan's limit for this period.
#[utoipa::path(
    post,
    path = TRACK_PATH,
    tag = "usage",
    request_body = TrackRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Counted (or, `replayed`, counted before with this key).", body = TrackedBody),
        (status = 401, response = Unauthenticated),
        (status = 402, description = "`usage_limit_reached`: the plan's limit for this period is reached; nothing was counted. `usage` holds the counts and `resets_at`. `insufficient_credits`: the track costs more credits than the balance holds (`credits`: cost and balance); nothing was counted or spent.", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "`forbidden_for_key`: `user_id` without a service key; `account_disabled`.", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, response = ValidationFailed),
        BodyProblems,
        ServerProblems,
    ),
)]
async fn track(
    State(state): State<AppState>,
    AnyCaller(caller): AnyCaller,
    JsonBody(body): JsonBody<TrackRequest>,
) -> Result<Response, ApiError> {
    let user_id = subject(&caller, body.user_id.as_deref())?;
    let (report, replayed) = state
        .usage()?
        .track(
            &user_id,
            &body.feature,
            body.quantity.unwrap_or(1),
            &body.idempotency_key,
        )
        .await?;
    let body = TrackedBody {
        usage: UsageBody::from(&report),
        credits_spent: report.credits_spent,
        credit_balance: report.credit_balance,
        replayed,
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

/// The caller's counts this period, every metered feature or one.
#[utoipa::path(
    get,
    path = USAGE_PATH,
    tag = "usage",
    params(UsageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The counts.", body = UsageList),
        (status = 401, response = Unauthenticated),
        (status = 403, description = "`forbidden_for_key`: a service key (name the user with `POST /usage/track`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, response = ValidationFailed),
        ServerProblems,
    ),
)]
async fn usage(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<UsageQuery>,
) -> Result<Response, ApiError> {
    let reports = state
        .usage()?
        .usage(&caller.user_id(), query.feature.as_deref())
        .await?;
    let body = UsageList {
        usage: reports.iter().map(UsageBody::from).collect(),
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

/// `GET /billing/credits` query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CreditsQuery {
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
    /// `next_before` of the previous page.
    #[param(pattern = "^[0-9]{10}#[ -~]{1,400}$")]
    before: Option<String>,
}

/// One entry of the credit ledger.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreditEntryBody {
    /// What caused it (unique: a cause takes effect once), e.g. `purchase:stripe:pi_…`,
    /// `allowance:<user>:<period start>`, `spend:<user>:<idempotency key>`.
    cause: String,
    /// `purchase`, `allowance`, `spend`, `refund` or `adjustment`.
    #[schema(value_type = String, example = "purchase")]
    kind: &'static str,
    /// Credits added (positive) or taken (negative).
    amount: i64,
    /// When, RFC 3339.
    at: String,
    /// The pack bought or refunded.
    pack: Option<String>,
    /// The feature that spent.
    feature: Option<String>,
    /// Units tracked.
    quantity: Option<u64>,
    /// `stripe` or `whop`, for purchases and refunds.
    #[schema(value_type = Option<String>)]
    provider: Option<&'static str>,
    /// The provider payment.
    payment_id: Option<String>,
    /// A short reason.
    note: Option<String>,
}

impl From<&CreditEntry> for CreditEntryBody {
    fn from(e: &CreditEntry) -> Self {
        Self {
            cause: e.cause.clone(),
            kind: e.kind.as_str(),
            amount: e.amount,
            at: rfc3339(e.at),
            pack: e.pack.clone(),
            feature: e.feature.clone(),
            quantity: e.quantity,
            provider: e.provider.map(|p| p.as_str()),
            payment_id: e.payment_id.as_ref().map(ToString::to_string),
            note: e.note.clone(),
        }
    }
}

/// `GET /billing/credits` answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreditsBody {
    /// Credits now (below zero only after a refund of credits already spent).
    balance: i64,
    /// The ledger, newest first.
    entries: Vec<CreditEntryBody>,
    /// Pass as `before` for the next page; `null` on the last.
    next_before: Option<String>,
}

/// The caller's credit balance and ledger, newest first, paged; this period's plan allowance is
/// granted first if it is due.
#[utoipa::path(
    get,
    path = CREDITS_PATH,
    tag = "billing",
    params(CreditsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The balance and a page of the ledger.", body = CreditsBody),
        (status = 401, response = Unauthenticated),
        (status = 403, description = "`forbidden_for_key`: a service key.", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, response = ValidationFailed),
        ServerProblems,
    ),
)]
async fn credits(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<CreditsQuery>,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::InvalidQuery("limit must be 1 to 100".into()));
    }
    if query
        .before
        .as_deref()
        .is_some_and(|c| !tollgate::store::keys::is_credit_cursor(c))
    {
        return Err(ApiError::InvalidQuery(
            "before must be a next_before of an earlier page".into(),
        ));
    }
    let page = state
        .usage()?
        .credit_page(&caller.user_id(), query.before.as_deref(), limit)
        .await?;
    let body = CreditsBody {
        balance: page.balance,
        entries: page.entries.iter().map(CreditEntryBody::from).collect(),
        next_before: page.next_before,
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}
