//! `jwks`: `GET /.well-known/jwks.json` (RFC 7517 key set) and
//! `GET /.well-known/openid-configuration` (OpenID Connect Discovery 1.0 §3 metadata, limited to
//! what a resource server needs to verify Tollgate's access tokens).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tollgate::AppState;

/// JWKS path.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// OIDC discovery path.
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// The `(method, path)` pairs this function serves: the source of truth the SAM template is
/// checked against.
pub const ROUTES: &[(&str, &str)] = &[("GET", JWKS_PATH), ("GET", DISCOVERY_PATH)];

/// This function's routes, with full public paths.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(JWKS_PATH, get(jwks))
        .route(DISCOVERY_PATH, get(discovery))
}

/// Public keys may be cached for five minutes: rotation publishes a new key well before it signs.
const CACHE: &str = "public, max-age=300";

async fn jwks(State(state): State<AppState>) -> Response {
    (
        [(header::CACHE_CONTROL, CACHE)],
        Json(state.auth().keys().jwks()),
    )
        .into_response()
}

async fn discovery(State(state): State<AppState>) -> Response {
    let issuer = &state.config().issuer;
    let doc = json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}{JWKS_PATH}"),
        "token_endpoint": format!("{issuer}/auth/login"),
        "userinfo_endpoint": format!("{issuer}/auth/me"),
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "grant_types_supported": ["password", "refresh_token"],
        "claims_supported": ["iss", "aud", "sub", "sid", "iat", "nbf", "exp", "jti", "plan", "tier", "entitlements"],
    });
    ([(header::CACHE_CONTROL, CACHE)], Json(doc)).into_response()
}
