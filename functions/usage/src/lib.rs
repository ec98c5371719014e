//! `usage`: metered features (docs/architecture.md §5d).
//!
//! | route | auth | answer |
//! |---|---|---|
//! | `POST /usage/track {feature, quantity?, idempotency_key, user_id?}` | bearer: access token, user API key, or a service key with `user_id` | 200 `{feature, used, limit, remaining, overage, resets_at, plan, replayed}`; 402 `usage_limit_reached` (nothing counted) |
//! | `GET /usage[?feature=…]` | bearer: access token or user API key | 200 `{usage: [{feature, used, limit, remaining, overage, resets_at, plan}]}` |
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
use tollgate::domain::{rfc3339, ApiKeyKind, UserId};
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

/// The `(method, path)` pairs this function serves: the source of truth the SAM template, the
/// OpenAPI document and the local Lambda router are checked against.
pub const ROUTES: &[(&str, &str)] = &[("POST", TRACK_PATH), ("GET", USAGE_PATH)];

/// What this function builds at start-up: the published JWKS (it verifies tokens) and accounts
/// (API keys, the plan catalog, subscriptions, the usage counters). No private key.
pub const NEEDS: Needs = Needs {
    keys: KeyAccess::Public,
    accounts: true,
    billing: false,
    ingest: false,
    mail: false,
    oauth: false,
};

/// This function's routes, with full public paths.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(TRACK_PATH, post(track))
        .route(USAGE_PATH, get(usage))
}

/// This function's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    Doc::openapi()
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(track, usage),
    components(schemas(TrackRequest, UsageBody, TrackedBody, UsageList))
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
        }
    }
}

/// `POST /usage/track` answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TrackedBody {
    /// The counts after the track.
    #[serde(flatten)]
    usage: UsageBody,
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
        (status = 402, description = "`usage_limit_reached`: the plan's limit for this period is reached; nothing was counted. `usage` holds the counts and `resets_at`.", body = Problem, content_type = PROBLEM_JSON),
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
