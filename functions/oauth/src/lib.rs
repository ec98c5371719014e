//! `oauth`: sign-in with GitHub, Google and any OpenID Connect provider (docs/architecture.md
//! §5b).
//!
//! | route | auth | answer |
//! |---|---|---|
//! | `GET /auth/providers` | – | 200 the identity providers this deployment offers |
//! | `GET /auth/oauth/{provider}?redirect_to&mode` | – (bearer with `mode=link`) | 302 to the provider (200 `{url}` with `Accept: application/json`) |
//! | `GET /auth/oauth/{provider}/callback?code&state` | – | 302 to `redirect_to` with `code=` (one-time, 60 s), `linked=` or `error=` |
//! | `POST /auth/oauth/exchange {code}` | – | 200 tokens and the refresh cookie, as a login |
//! | `GET /auth/identities` | bearer | 200 the linked identities |
//! | `DELETE /auth/identities/{provider}` | bearer | 204; refused for the last way to sign in |
//!
//! Tokens never travel in a URL: the callback hands the app a one-time code, which the app
//! exchanges here (from its own origin) for the same token body and cookie as a login. This
//! function holds the signing keys (it starts sessions) and the providers' client secrets.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tollgate::auth::{AuthenticatedUser, CallbackParams};
use tollgate::domain::rules;
use tollgate::domain::{rfc3339, Identity, RequestOrigin};
use tollgate::http::limit::by_ip;
use tollgate::http::openapi::{
    BodyProblems, RateLimited, ServerProblems, Unauthenticated, PROBLEM_JSON,
};
use tollgate::http::{token_response, ApiError, JsonBody, Problem, QueryParams};
use tollgate::{AppState, KeyAccess, Needs};
use utoipa::OpenApi as _;

/// `GET /auth/providers`.
pub const PROVIDERS_PATH: &str = "/auth/providers";
/// `GET /auth/oauth/{provider}`: starts an authorization.
pub const START_PATH: &str = "/auth/oauth/{provider}";
/// `GET /auth/oauth/{provider}/callback`: where the provider sends the browser back.
pub const CALLBACK_PATH: &str = "/auth/oauth/{provider}/callback";
/// `POST /auth/oauth/exchange`.
pub const EXCHANGE_PATH: &str = "/auth/oauth/exchange";
/// `GET /auth/identities`.
pub const IDENTITIES_PATH: &str = "/auth/identities";
/// `DELETE /auth/identities/{provider}`.
pub const IDENTITY_PATH: &str = "/auth/identities/{provider}";

/// The `(method, path)` pairs this function serves: the source of truth the SAM template, the
/// OpenAPI document and the local Lambda router are checked against.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", PROVIDERS_PATH),
    ("GET", START_PATH),
    ("GET", CALLBACK_PATH),
    ("POST", EXCHANGE_PATH),
    ("GET", IDENTITIES_PATH),
    ("DELETE", IDENTITY_PATH),
];

/// What this function builds at start-up: the private signing keys (the exchange starts a
/// session), accounts, and the identity providers with their client secrets.
pub const NEEDS: Needs = Needs {
    keys: KeyAccess::Signing,
    accounts: true,
    billing: false,
    ingest: false,
    mail: false,
    oauth: true,
    outbound: false,
};

/// This function's routes, with full public paths.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PROVIDERS_PATH, get(providers))
        .route(START_PATH, by_ip(rules::OAUTH_IP, get(start)))
        .route(CALLBACK_PATH, get(callback))
        .route(EXCHANGE_PATH, by_ip(rules::VERIFY_IP, post(exchange)))
        .route(IDENTITIES_PATH, get(identities))
        .route(IDENTITY_PATH, delete(unlink))
}

/// This function's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    Doc::openapi()
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(providers, start, callback, exchange, identities, unlink),
    components(schemas(
        ProvidersBody,
        StartMode,
        AuthorizationBody,
        ExchangeRequest,
        IdentitiesBody,
        IdentityBody
    ))
)]
struct Doc;

/// Headers of every answer here: nothing cached, and no `Referer` carrying a code or state
/// onwards (RFC 9700 §4.2.4).
fn private(response: impl IntoResponse) -> Response {
    (
        [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
        response,
    )
        .into_response()
}

/// A 302 to `location` (never fails: an unusable location becomes `/`).
fn found(location: &str) -> Response {
    let location =
        HeaderValue::from_str(location).unwrap_or_else(|_| HeaderValue::from_static("/"));
    private((StatusCode::FOUND, [(header::LOCATION, location)]))
}

/// `GET /auth/providers` answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ProvidersBody {
    /// The configured identity providers' names, sorted (`github`, `google`, OIDC names): start
    /// a sign-in at `/auth/oauth/{name}`.
    #[schema(example = json!(["github", "google"]))]
    providers: Vec<String>,
}

/// The identity providers this deployment offers sign-in with.
#[utoipa::path(
    get,
    path = PROVIDERS_PATH,
    tag = "oauth",
    responses(
        (status = 200, description = "The configured providers.", body = ProvidersBody),
        ServerProblems,
    ),
)]
async fn providers(State(state): State<AppState>) -> Result<Response, ApiError> {
    let providers = state
        .auth()?
        .identity_providers()
        .names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    Ok(Json(ProvidersBody { providers }).into_response())
}

/// What the authorization does when it comes back.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StartMode {
    /// Sign in (or sign up) with the identity.
    #[default]
    Login,
    /// Link the identity to the signed-in user (needs the bearer token).
    Link,
}

/// `GET /auth/oauth/{provider}` query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StartQuery {
    /// Where the browser returns after the callback; must be on `TOLLGATE_OAUTH_REDIRECT_ALLOWLIST`
    /// (default: its first entry).
    #[param(example = "http://localhost:3000/auth/callback")]
    redirect_to: Option<String>,
    /// `login` (default) or `link`.
    #[param(inline)]
    mode: Option<StartMode>,
}

/// The authorization URL, for clients that navigate themselves (`Accept: application/json`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuthorizationBody {
    /// The provider's authorization URL to send the browser to.
    #[schema(example = "https://github.com/login/oauth/authorize?response_type=code&client_id=…")]
    url: String,
}

/// Starts an authorization code flow with PKCE at the provider: checks `redirect_to` against
/// the allowlist before anything leaves, stores a single-use state (10 min) and sends the
/// browser to the provider. With `mode=link` the identity is linked to the bearer's account
/// (the app fetches this with its token and `Accept: application/json`, then navigates).
#[utoipa::path(
    get,
    path = START_PATH,
    tag = "oauth",
    params(
        ("provider" = String, Path, description = "A configured provider (`GET /auth/providers`).", example = "github"),
        StartQuery,
    ),
    responses(
        (status = 429, response = RateLimited),
        (status = 302, description = "To the provider's authorization page.", headers(("Location" = String, description = "The authorization URL."))),
        (status = 200, description = "With `Accept: application/json`: the authorization URL.", body = AuthorizationBody),
        (status = 400, description = "`redirect_not_allowed`: `redirect_to` is not on the allowlist.", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, response = Unauthenticated),
        (status = 404, description = "`unknown_provider`.", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "`validation_failed`: `mode` is neither `login` nor `link`.", body = Problem, content_type = PROBLEM_JSON),
        (status = 502, description = "`provider_error`: the provider's discovery document is unusable.", body = Problem, content_type = PROBLEM_JSON),
        ServerProblems,
    ),
    security((), ("bearer" = [])),
)]
async fn start(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    QueryParams(query): QueryParams<StartQuery>,
    headers: HeaderMap,
    who: Result<AuthenticatedUser, ApiError>,
) -> Result<Response, ApiError> {
    let link = match query.mode.unwrap_or_default() {
        StartMode::Login => None,
        StartMode::Link => Some(who?),
    };
    let url = state
        .auth()?
        .oauth_start(&provider, query.redirect_to.as_deref(), link.as_ref())
        .await?;
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    Ok(if wants_json {
        private(Json(AuthorizationBody { url }))
    } else {
        found(&url)
    })
}

/// `GET /auth/oauth/{provider}/callback` query (what the provider appends).
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    /// The authorization code.
    code: Option<String>,
    /// The state the authorization started with.
    state: Option<String>,
    /// The provider's error (`access_denied`, …).
    error: Option<String>,
}

/// Where the provider returns the browser. Always a 302: to the authorization's `redirect_to`
/// with `code=<one-time exchange code>` (sign-in), `linked=<provider>` (link mode) or
/// `error=<code>` — `access_denied`, `invalid_state`, `provider_error`, `unverified_email`,
/// `email_required`, `identity_taken`, `provider_linked`, `account_disabled`,
/// `email_not_verified`, `server_error` (without a usable state, to the allowlist's first entry).
#[utoipa::path(
    get,
    path = CALLBACK_PATH,
    tag = "oauth",
    params(
        ("provider" = String, Path, description = "The provider that sends the browser back.", example = "github"),
        CallbackQuery,
    ),
    responses(
        (status = 302, description = "Back to the app.", headers(("Location" = String, description = "`redirect_to` with `code`, `linked` or `error`."))),
    ),
)]
async fn callback(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    RawQuery(query): RawQuery,
    origin: RequestOrigin,
) -> Result<Response, ApiError> {
    // Whatever the provider appended, the answer is a redirect: a query that does not parse is
    // a callback without a state.
    let query: CallbackQuery =
        serde_urlencoded::from_str(query.as_deref().unwrap_or_default()).unwrap_or_default();
    let params = CallbackParams {
        code: query.code,
        state: query.state,
        error: query.error,
    };
    let location = state
        .auth()?
        .oauth_callback(&provider, params, &origin)
        .await;
    Ok(found(&location))
}

/// `POST /auth/oauth/exchange` body.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ExchangeRequest {
    /// The `code` the callback appended to `redirect_to`.
    #[schema(example = "q5yE2Vd0V8m3kQ8wW5nqk1b8rVhZr0m2pX7o4sLx9aA")]
    code: String,
}

/// Exchanges the callback's one-time code (60 s, single use) for a session: the same token
/// body and refresh cookie as a login.
#[utoipa::path(
    post,
    path = EXCHANGE_PATH,
    tag = "oauth",
    request_body = ExchangeRequest,
    responses(
        (status = 429, response = RateLimited),
        (status = 200, response = tollgate::http::openapi::Tokens),
        (status = 400, description = "`invalid_exchange_code`: unknown, expired or already used.", body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "`account_disabled`.", body = Problem, content_type = PROBLEM_JSON),
        BodyProblems,
        ServerProblems,
    ),
)]
async fn exchange(
    State(state): State<AppState>,
    origin: RequestOrigin,
    JsonBody(req): JsonBody<ExchangeRequest>,
) -> Result<Response, ApiError> {
    let (user, tokens) = state.auth()?.oauth_exchange(&req.code, &origin).await?;
    Ok(token_response(
        StatusCode::OK,
        &tokens,
        Some(&user),
        state.config(),
    ))
}

/// One linked identity.
#[derive(Serialize, utoipa::ToSchema)]
pub struct IdentityBody {
    /// The provider's name.
    #[schema(example = "github")]
    provider: String,
    /// The email the provider gave when the identity was linked.
    #[schema(example = "ada@example.com")]
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    /// Whether the provider said that email is verified.
    email_verified: bool,
    /// When it was linked (RFC 3339).
    #[schema(example = "2026-11-30T09:00:00Z")]
    linked_at: String,
}

impl From<&Identity> for IdentityBody {
    fn from(i: &Identity) -> Self {
        Self {
            provider: i.provider.clone(),
            email: i.email.clone(),
            email_verified: i.email_verified,
            linked_at: rfc3339(i.created_at),
        }
    }
}

/// `GET /auth/identities` answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct IdentitiesBody {
    /// The linked identities, by provider.
    identities: Vec<IdentityBody>,
    /// Whether the account has a password (with none, the last identity cannot be unlinked).
    has_password: bool,
}

/// The signed-in user's linked identities.
#[utoipa::path(
    get,
    path = IDENTITIES_PATH,
    tag = "oauth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The linked identities.", body = IdentitiesBody),
        (status = 401, response = Unauthenticated),
        ServerProblems,
    ),
)]
async fn identities(
    State(state): State<AppState>,
    who: AuthenticatedUser,
) -> Result<Response, ApiError> {
    let (identities, has_password) = state.auth()?.list_identities(&who).await?;
    Ok(private(Json(IdentitiesBody {
        identities: identities.iter().map(IdentityBody::from).collect(),
        has_password,
    })))
}

/// Unlinks the signed-in user's identity at `provider`; refused when it is the last way to sign
/// in (no password, no other identity). Audited (`identity_unlinked`).
#[utoipa::path(
    delete,
    path = IDENTITY_PATH,
    tag = "oauth",
    params(("provider" = String, Path, description = "The provider of the identity.", example = "github")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Unlinked."),
        (status = 401, response = Unauthenticated),
        (status = 404, description = "`identity_not_found`.", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "`last_sign_in_method`: set a password or link another provider first.", body = Problem, content_type = PROBLEM_JSON),
        ServerProblems,
    ),
)]
async fn unlink(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    origin: RequestOrigin,
    who: AuthenticatedUser,
) -> Result<Response, ApiError> {
    state
        .auth()?
        .unlink_identity(&who, &provider, &origin)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
