//! `admin`: the admin API (docs/architecture.md §5f), for users whose stored record holds the
//! role `admin` (read on every request; `tollgate-admin grant-admin <email>` makes the first).
//! Everyone else gets 403 `admin_required`. Every action is audited on the user's account with
//! the acting admin as `actor`.
//!
//! | route | answer |
//! |---|---|
//! | `GET /admin/users?email=…` or `?limit&before` | 200 `{users: [user], next_before}` (find by email, or page through users) |
//! | `GET /admin/users/{id}` | 200 `{user, subscription, sessions, api_keys, credits, usage, audit}` |
//! | `POST /admin/users/{id}/disable`, `/enable` | 200 `user` (disabling revokes every session; login, refresh, tokens and keys are refused) |
//! | `POST /admin/users/{id}/sessions/revoke` | 200 `user` (every session revoked) |
//! | `POST /admin/users/{id}/credits {amount, reason}` | 200 `{balance}` (grant > 0, remove < 0) |
//! | `PUT /admin/users/{id}/roles {roles}` | 200 `user` |
//! | `POST /admin/users/{id}/billing/resync` | 200 `{plan, status, access}` (refetched from the provider now) |

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tollgate::admin::{Admin, AdminError, UserView};
use tollgate::auth::AuthenticatedUser;
use tollgate::domain::{rfc3339, User, UserId, UserStatus};
use tollgate::http::openapi::{
    BodyProblems, ServerProblems, Unauthenticated, ValidationFailed, PROBLEM_JSON,
};
use tollgate::http::{ApiError, JsonBody, Problem, QueryParams};
use tollgate::{AppState, KeyAccess, Needs};
use utoipa::OpenApi as _;

/// `GET /admin/users`.
pub const USERS_PATH: &str = "/admin/users";
/// `GET /admin/users/{id}`.
pub const USER_PATH: &str = "/admin/users/{id}";
/// `POST /admin/users/{id}/disable`.
pub const DISABLE_PATH: &str = "/admin/users/{id}/disable";
/// `POST /admin/users/{id}/enable`.
pub const ENABLE_PATH: &str = "/admin/users/{id}/enable";
/// `POST /admin/users/{id}/sessions/revoke`.
pub const REVOKE_SESSIONS_PATH: &str = "/admin/users/{id}/sessions/revoke";
/// `POST /admin/users/{id}/credits`.
pub const CREDITS_PATH: &str = "/admin/users/{id}/credits";
/// `PUT /admin/users/{id}/roles`.
pub const ROLES_PATH: &str = "/admin/users/{id}/roles";
/// `POST /admin/users/{id}/billing/resync`.
pub const RESYNC_PATH: &str = "/admin/users/{id}/billing/resync";

/// The `(method, path)` pairs this function serves: the source of truth the SAM template, the
/// OpenAPI document and the local Lambda router are checked against.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", USERS_PATH),
    ("GET", USER_PATH),
    ("POST", DISABLE_PATH),
    ("POST", ENABLE_PATH),
    ("POST", REVOKE_SESSIONS_PATH),
    ("POST", CREDITS_PATH),
    ("PUT", ROLES_PATH),
    ("POST", RESYNC_PATH),
];

/// What this function builds at start-up: the published JWKS (it verifies tokens), accounts
/// (users, sessions, keys, audit, usage, credits) and billing (the provider API keys, for
/// resync). No private key.
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
        .route(USERS_PATH, get(list))
        .route(USER_PATH, get(view))
        .route(DISABLE_PATH, post(disable))
        .route(ENABLE_PATH, post(enable))
        .route(REVOKE_SESSIONS_PATH, post(revoke_sessions))
        .route(CREDITS_PATH, post(credits))
        .route(ROLES_PATH, put(roles))
        .route(RESYNC_PATH, post(resync))
}

/// This function's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    Doc::openapi()
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list, view, disable, enable, revoke_sessions, credits, roles, resync),
    components(schemas(
        UserBody,
        UsersBody,
        UserViewBody,
        SubscriptionBody,
        SessionBody,
        KeyBody,
        EntryBody,
        UsageBody,
        AuditBody,
        CreditsRequest,
        BalanceBody,
        RolesRequest
    ))
)]
struct Doc;

/// The admin responses every route shares.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // documents the responses; handlers answer through ApiError
enum AdminProblems {
    /// `admin_required`: the caller is not an active user with the admin role.
    #[response(status = 403, content_type = "application/problem+json")]
    AdminRequired(Problem),
    /// `user_not_found`: no such user.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
}

/// A user as the admin API shows one.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UserBody {
    /// The user id.
    id: String,
    /// The email.
    email: String,
    /// Whether the email is verified.
    email_verified: bool,
    /// The display name.
    name: Option<String>,
    /// `active` or `disabled`.
    #[schema(value_type = String, example = "active")]
    status: &'static str,
    /// Roles (`admin`, …).
    roles: Vec<String>,
    /// Signed up, RFC 3339.
    created_at: String,
}

impl From<&User> for UserBody {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.to_string(),
            email: u.email.clone(),
            email_verified: u.email_verified,
            name: u.name.clone(),
            status: match u.status {
                UserStatus::Active => "active",
                UserStatus::Disabled => "disabled",
            },
            roles: u.roles.clone(),
            created_at: rfc3339(u.created_at),
        }
    }
}

/// `GET /admin/users` answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UsersBody {
    /// The page (or the one user found by email; empty if none).
    users: Vec<UserBody>,
    /// Pass as `before` for the next page; `null` on the last.
    next_before: Option<String>,
}

/// The subscription and access now.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SubscriptionBody {
    /// The plan with access now.
    plan: String,
    /// Whether a paid plan grants access now.
    access: bool,
    /// The stored status (`active`, `trialing`, …); `null` without a subscription.
    status: Option<String>,
    /// `stripe` or `whop`; `null` without a subscription.
    provider: Option<String>,
    /// The period's end, RFC 3339.
    current_period_end: Option<String>,
}

/// A session.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionBody {
    /// The session id.
    id: String,
    /// Started, RFC 3339.
    created_at: String,
    /// Last refreshed, RFC 3339.
    last_used_at: String,
    /// Whether it is revoked (directly or by a raised session epoch).
    revoked: bool,
    /// Client IP at sign-in.
    ip: Option<String>,
    /// User agent at sign-in.
    user_agent: Option<String>,
}

/// An API key (never the key itself).
#[derive(Serialize, utoipa::ToSchema)]
pub struct KeyBody {
    /// The key id.
    id: String,
    /// `tg_<id>`.
    prefix: String,
    /// Its name.
    name: String,
    /// Revoked, RFC 3339; `null` if live.
    revoked_at: Option<String>,
}

/// A credit ledger entry.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EntryBody {
    /// Its cause.
    cause: String,
    /// `purchase`, `allowance`, `spend`, `refund`, `adjustment`.
    #[schema(value_type = String)]
    kind: &'static str,
    /// Credits added or taken.
    amount: i64,
    /// When, RFC 3339.
    at: String,
    /// The admin who made an adjustment.
    actor: Option<String>,
    /// The reason.
    note: Option<String>,
}

/// A metered feature's count this period.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UsageBody {
    /// The feature.
    feature: String,
    /// Units counted.
    used: u64,
    /// The plan's limit; `null`: unlimited.
    limit: Option<u64>,
}

/// An audit record.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditBody {
    /// What happened.
    action: String,
    /// When, RFC 3339.
    at: String,
    /// The admin who did it, if not the user.
    actor: Option<String>,
    /// Detail.
    detail: Option<String>,
}

/// `GET /admin/users/{id}` answer: everything support sees.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UserViewBody {
    /// The profile.
    user: UserBody,
    /// The subscription and access now.
    subscription: SubscriptionBody,
    /// Sessions, oldest first.
    sessions: Vec<SessionBody>,
    /// API keys.
    api_keys: Vec<KeyBody>,
    /// The credit balance.
    credit_balance: i64,
    /// The newest credit ledger entries.
    credit_entries: Vec<EntryBody>,
    /// Counts this period.
    usage: Vec<UsageBody>,
    /// The newest audit records.
    audit: Vec<AuditBody>,
}

impl From<&UserView> for UserViewBody {
    fn from(v: &UserView) -> Self {
        let sub = v.billing.subscription.as_ref();
        Self {
            user: UserBody::from(&v.user),
            subscription: SubscriptionBody {
                plan: v.billing.access.plan.clone(),
                access: v.billing.access.has_access,
                status: sub.map(|s| s.status.as_str().to_owned()),
                provider: sub.map(|s| s.provider.as_str().to_owned()),
                current_period_end: sub.and_then(|s| s.current_period_end).map(rfc3339),
            },
            sessions: v
                .sessions
                .iter()
                .map(|s| SessionBody {
                    id: s.id.to_string(),
                    created_at: rfc3339(s.created_at),
                    last_used_at: rfc3339(s.last_used_at),
                    revoked: s.revoked_at.is_some() || s.epoch < v.user.session_epoch,
                    ip: s.ip.clone(),
                    user_agent: s.user_agent.clone(),
                })
                .collect(),
            api_keys: v
                .api_keys
                .iter()
                .map(|k| KeyBody {
                    id: k.key_id.clone(),
                    prefix: k.prefix(),
                    name: k.name.clone(),
                    revoked_at: k.revoked_at.map(rfc3339),
                })
                .collect(),
            credit_balance: v.credits.balance,
            credit_entries: v
                .credits
                .entries
                .iter()
                .map(|e| EntryBody {
                    cause: e.cause.clone(),
                    kind: e.kind.as_str(),
                    amount: e.amount,
                    at: rfc3339(e.at),
                    actor: e.actor.map(|a| a.to_string()),
                    note: e.note.clone(),
                })
                .collect(),
            usage: v
                .usage
                .iter()
                .map(|u| UsageBody {
                    feature: u.feature.clone(),
                    used: u.used,
                    limit: u.limit,
                })
                .collect(),
            audit: v
                .audit
                .iter()
                .map(|a| AuditBody {
                    action: a.action.as_str().to_owned(),
                    at: rfc3339(a.at),
                    actor: a.actor.map(|x| x.to_string()),
                    detail: a.detail.clone(),
                })
                .collect(),
        }
    }
}

/// `GET /admin/users` query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsersQuery {
    /// Find the user with this email (case-insensitive) instead of paging.
    #[param(max_length = 320)]
    email: Option<String>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
    /// `next_before` of the previous page.
    #[param(pattern = "^[0-9a-f]{2,2048}$")]
    before: Option<String>,
}

/// `POST /admin/users/{id}/credits` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreditsRequest {
    /// Credits to grant (> 0) or remove (< 0).
    #[schema(example = 100, minimum = -1000000000, maximum = 1000000000)]
    amount: i64,
    /// Why (1–200 characters; kept in the ledger and the audit).
    #[schema(example = "goodwill for the outage", min_length = 1, max_length = 200)]
    reason: String,
}

/// The balance after an adjustment.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BalanceBody {
    /// Credits.
    balance: i64,
}

/// `PUT /admin/users/{id}/roles` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolesRequest {
    /// The roles the user holds from now (each 1–32 of `[a-z_]`; `admin` grants this API).
    #[schema(example = json!(["admin"]))]
    roles: Vec<String>,
}

fn admin(state: &AppState) -> Result<&Admin, ApiError> {
    Ok(state.admin()?)
}

/// `{id}` as a user id; anything else names no user.
fn user_id(id: &str) -> Result<UserId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::from(AdminError::UserNotFound))
}

fn no_store(body: impl Serialize) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

/// Finds a user by email, or pages through users.
#[utoipa::path(
    get,
    path = USERS_PATH,
    tag = "admin",
    params(UsersQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user found (or none), or a page of users.", body = UsersBody),
        (status = 401, response = Unauthenticated),
        AdminProblems,
        (status = 422, response = ValidationFailed),
        ServerProblems,
    ),
)]
async fn list(
    State(state): State<AppState>,
    who: AuthenticatedUser,
    QueryParams(query): QueryParams<UsersQuery>,
) -> Result<Response, ApiError> {
    let admin = admin(&state)?;
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::InvalidQuery("limit must be 1 to 100".into()));
    }
    let body = match &query.email {
        Some(email) => UsersBody {
            users: admin
                .find_by_email(&who.user_id, email)
                .await?
                .iter()
                .map(UserBody::from)
                .collect(),
            next_before: None,
        },
        None => {
            let (users, next) = admin
                .list_users(&who.user_id, query.before.as_deref(), limit)
                .await?;
            UsersBody {
                users: users.iter().map(UserBody::from).collect(),
                next_before: next,
            }
        }
    };
    Ok(no_store(body))
}

/// Everything support sees of one user.
#[utoipa::path(
    get,
    path = USER_PATH,
    tag = "admin",
    params(("id" = String, Path, description = "The user id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user's profile, subscription, sessions, API keys, credits, usage and audit.", body = UserViewBody),
        (status = 401, response = Unauthenticated),
        AdminProblems,
        ServerProblems,
    ),
)]
async fn view(
    State(state): State<AppState>,
    who: AuthenticatedUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let view = admin(&state)?.view(&who.user_id, &user_id(&id)?).await?;
    Ok(no_store(UserViewBody::from(&view)))
}

/// Disables the account: every session revoked, login, refresh, access tokens and API keys
/// refused from the next request. Audited `account_disabled` with the admin.
#[utoipa::path(
    post,
    path = DISABLE_PATH,
    tag = "admin",
    params(("id" = String, Path, description = "The user id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Disabled.", body = UserBody),
        (status = 401, response = Unauthenticated),
        AdminProblems,
        (status = 422, description = "`validation_failed`: an admin cannot disable themself.", body = Problem, content_type = PROBLEM_JSON),
        ServerProblems,
    ),
)]
async fn disable(
    State(state): State<AppState>,
    who: AuthenticatedUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let user = admin(&state)?
        .set_disabled(&who.user_id, &user_id(&id)?, true)
        .await?;
    Ok(no_store(UserBody::from(&user)))
}

/// Enables a disabled account (its sessions stay revoked; its API keys work again). Audited
/// `account_enabled`.
#[utoipa::path(
    post,
    path = ENABLE_PATH,
    tag = "admin",
    params(("id" = String, Path, description = "The user id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Enabled.", body = UserBody),
        (status = 401, response = Unauthenticated),
        AdminProblems,
        ServerProblems,
    ),
)]
async fn enable(
    State(state): State<AppState>,
    who: AuthenticatedUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let user = admin(&state)?
        .set_disabled(&who.user_id, &user_id(&id)?, false)
        .await?;
    Ok(no_store(UserBody::from(&user)))
}

/// Revokes every session of the user at once. Audited `sessions_revoked_by_admin`.
#[utoipa::path(
    post,
    path = REVOKE_SESSIONS_PATH,
    tag = "admin",
    params(("id" = String, Path, description = "The user id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every session revoked.", body = UserBody),
        (status = 401, response = Unauthenticated),
        AdminProblems,
        ServerProblems,
    ),
)]
async fn revoke_sessions(
    State(state): State<AppState>,
    who: AuthenticatedUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let user = admin(&state)?
        .revoke_sessions(&who.user_id, &user_id(&id)?)
        .await?;
    Ok(no_store(UserBody::from(&user)))
}

/// Grants or removes credits with a reason (ledger entry and audit name the admin).
#[utoipa::path(
    post,
    path = CREDITS_PATH,
    tag = "admin",
    params(("id" = String, Path, description = "The user id")),
    request_body = CreditsRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The balance after it.", body = BalanceBody),
        (status = 401, response = Unauthenticated),
        AdminProblems,
        (status = 409, description = "`insufficient_credits`: the balance does not cover the removal.", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, response = ValidationFailed),
        BodyProblems,
        ServerProblems,
    ),
)]
async fn credits(
    State(state): State<AppState>,
    who: AuthenticatedUser,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<CreditsRequest>,
) -> Result<Response, ApiError> {
    let balance = admin(&state)?
        .adjust_credits(&who.user_id, &user_id(&id)?, body.amount, &body.reason)
        .await?;
    Ok(no_store(BalanceBody { balance }))
}

/// Sets the user's roles. Audited `roles_changed`.
#[utoipa::path(
    put,
    path = ROLES_PATH,
    tag = "admin",
    params(("id" = String, Path, description = "The user id")),
    request_body = RolesRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user with the new roles.", body = UserBody),
        (status = 401, response = Unauthenticated),
        AdminProblems,
        (status = 422, response = ValidationFailed),
        BodyProblems,
        ServerProblems,
    ),
)]
async fn roles(
    State(state): State<AppState>,
    who: AuthenticatedUser,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<RolesRequest>,
) -> Result<Response, ApiError> {
    let user = admin(&state)?
        .set_roles(&who.user_id, &user_id(&id)?, body.roles)
        .await?;
    Ok(no_store(UserBody::from(&user)))
}

/// Refetches the user's subscription from its provider and applies it now. Audited
/// `billing_resynced`.
#[utoipa::path(
    post,
    path = RESYNC_PATH,
    tag = "admin",
    params(("id" = String, Path, description = "The user id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The subscription after the resync.", body = SubscriptionBody),
        (status = 401, response = Unauthenticated),
        AdminProblems,
        (status = 502, description = "`provider_error`: the provider refused.", body = Problem, content_type = PROBLEM_JSON),
        ServerProblems,
    ),
)]
async fn resync(
    State(state): State<AppState>,
    who: AuthenticatedUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let view = admin(&state)?
        .resync_billing(&who.user_id, &user_id(&id)?)
        .await?;
    let sub = view.subscription.as_ref();
    Ok(no_store(SubscriptionBody {
        plan: view.access.plan.clone(),
        access: view.access.has_access,
        status: sub.map(|s| s.status.as_str().to_owned()),
        provider: sub.map(|s| s.provider.as_str().to_owned()),
        current_period_end: sub.and_then(|s| s.current_period_end).map(rfc3339),
    }))
}
