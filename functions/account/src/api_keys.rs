//! `POST /auth/api-keys`, `GET /auth/api-keys`, `DELETE /auth/api-keys/{id}`: a signed-in user's
//! API keys (docs/architecture.md §5c). The key is answered once, at creation; the store keeps
//! only its SHA-256.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use tollgate::auth::{AuthError, AuthenticatedUser};
use tollgate::domain::time::unix_of_rfc3339;
use tollgate::domain::{rfc3339, ApiKey, ApiKeyKind, RequestOrigin, ValidationError};
use tollgate::http::openapi::{
    BodyProblems, RateLimited, ServerProblems, Unauthenticated, ValidationFailed, PROBLEM_JSON,
};
use tollgate::http::{ApiError, JsonBody, Problem};
use tollgate::AppState;
use utoipa::OpenApi as _;

/// `POST` and `GET /auth/api-keys`.
pub const API_KEYS_PATH: &str = "/auth/api-keys";
/// `DELETE /auth/api-keys/{id}`.
pub const API_KEY_PATH: &str = "/auth/api-keys/{id}";

/// This part's OpenAPI paths.
pub fn openapi() -> utoipa::openapi::OpenApi {
    Doc::openapi()
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(create, list, revoke),
    components(schemas(CreateRequest, KeyBody, CreatedBody, KeysBody))
)]
struct Doc;

/// `POST /auth/api-keys` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    /// A name to tell keys apart (1–100 characters).
    #[schema(example = "CI deploys", min_length = 1, max_length = 100)]
    name: String,
    /// When the key stops working, RFC 3339 (absent: never).
    #[schema(example = "2027-06-30T00:00:00Z")]
    expires_at: Option<String>,
}

/// An API key as lists show it (never the key itself).
#[derive(Serialize, utoipa::ToSchema)]
pub struct KeyBody {
    /// The key id (16 hex digits): the `{id}` of `DELETE /auth/api-keys/{id}`.
    id: String,
    /// The key's public start, `tg_<id>`, to recognise it.
    prefix: String,
    /// Its name.
    name: String,
    /// `user` (acts as you) or `service` (operator-created).
    #[schema(value_type = String, example = "user")]
    kind: &'static str,
    /// Created, RFC 3339.
    created_at: String,
    /// Last used (to the minute), RFC 3339; `null` if never.
    last_used_at: Option<String>,
    /// Expiry, RFC 3339; `null` if none.
    expires_at: Option<String>,
}

impl From<&ApiKey> for KeyBody {
    fn from(k: &ApiKey) -> Self {
        Self {
            id: k.key_id.clone(),
            prefix: k.prefix(),
            name: k.name.clone(),
            kind: match k.kind {
                ApiKeyKind::User => "user",
                ApiKeyKind::Service => "service",
            },
            created_at: rfc3339(k.created_at),
            last_used_at: k.last_used_at.map(rfc3339),
            expires_at: k.expires_at.map(rfc3339),
        }
    }
}

/// `POST /auth/api-keys` answer: the key, once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedBody {
    /// The key's details.
    #[serde(flatten)]
    details: KeyBody,
    /// The key, `tg_<id>_<secret>`: send it as `Authorization: Bearer <key>`. Shown only now.
    #[schema(example = "tg_0f3a9c1d2b4e5f60_Yp3u0Hq4oJ2xk9Vw8m7Lr6Nt5Bs4Cz3Da2Eb1Fc0Gd9")]
    key: String,
}

/// `GET /auth/api-keys` answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct KeysBody {
    /// Live keys (not revoked, not expired), oldest first.
    keys: Vec<KeyBody>,
}

fn parse_expiry(value: Option<String>) -> Result<Option<i64>, ApiError> {
    value
        .map(|v| {
            unix_of_rfc3339(&v).ok_or_else(|| {
                ApiError::from(AuthError::Validation(vec![ValidationError {
                    field: "expires_at",
                    message: "must be an RFC 3339 time".into(),
                }]))
            })
        })
        .transpose()
}

/// Creates an API key that acts as the signed-in user, with their plan at each use. The key is
/// in this answer only. Audited (`api_key_created`).
#[utoipa::path(
    post,
    path = API_KEYS_PATH,
    tag = "account",
    request_body = CreateRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The key, shown once.", body = CreatedBody),
        (status = 401, response = Unauthenticated),
        (status = 409, description = "`api_key_limit_reached`: as many live keys as allowed (`TOLLGATE_MAX_API_KEYS`); revoke one.", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, response = ValidationFailed),
        (status = 429, response = RateLimited),
        BodyProblems,
        ServerProblems,
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    origin: RequestOrigin,
    who: AuthenticatedUser,
    JsonBody(body): JsonBody<CreateRequest>,
) -> Result<Response, ApiError> {
    let expires_at = parse_expiry(body.expires_at)?;
    let auth = state.auth()?;
    auth.current(&who).await?;
    let created = auth
        .create_api_key(
            &who.user_id,
            ApiKeyKind::User,
            &body.name,
            expires_at,
            &origin,
        )
        .await?;
    let body = CreatedBody {
        details: KeyBody::from(&created.key),
        key: created.secret,
    };
    Ok(super::no_store((StatusCode::CREATED, Json(body))))
}

/// The signed-in user's live API keys (names and prefixes; never the keys).
#[utoipa::path(
    get,
    path = API_KEYS_PATH,
    tag = "account",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Live keys, oldest first.", body = KeysBody),
        (status = 401, response = Unauthenticated),
        ServerProblems,
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    who: AuthenticatedUser,
) -> Result<Response, ApiError> {
    let keys = state.auth()?.list_api_keys(&who).await?;
    let keys = keys.iter().map(KeyBody::from).collect();
    Ok(super::no_store(Json(KeysBody { keys })))
}

/// Revokes one of the signed-in user's API keys: refused from the next request on, everywhere.
/// Audited (`api_key_revoked`).
#[utoipa::path(
    delete,
    path = API_KEY_PATH,
    tag = "account",
    params(("id" = String, Path, description = "The key id (from `GET /auth/api-keys`).")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Revoked."),
        (status = 401, response = Unauthenticated),
        (status = 404, description = "`api_key_not_found`: no such live key of this user.", body = Problem, content_type = PROBLEM_JSON),
        ServerProblems,
    ),
)]
pub async fn revoke(
    State(state): State<AppState>,
    origin: RequestOrigin,
    who: AuthenticatedUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    state.auth()?.revoke_api_key(&who, &id, &origin).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
