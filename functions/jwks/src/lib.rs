//! `jwks`: `GET /.well-known/jwks.json` (RFC 7517 key set) and
//! `GET /.well-known/openid-configuration` (OpenID Connect Discovery 1.0 §3 metadata, limited to
//! what a resource server needs to verify Tollgate's access tokens). It holds the published JWKS
//! only — never a private key.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tollgate::http::openapi::Internal;
use tollgate::http::ApiError;
use tollgate::{AppState, KeyAccess, Needs};
use utoipa::OpenApi as _;

/// JWKS path.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// OIDC discovery path.
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// The `(method, path)` pairs this function serves: the source of truth the SAM template, the
/// OpenAPI document and the local Lambda router are checked against.
pub const ROUTES: &[(&str, &str)] = &[("GET", JWKS_PATH), ("GET", DISCOVERY_PATH)];

/// What this function builds at start-up: the published JWKS, nothing else.
pub const NEEDS: Needs = Needs {
    keys: KeyAccess::Public,
    accounts: false,
    billing: false,
    ingest: false,
    mail: false,
    oauth: false,
    outbound: false,
};

/// This function's routes, with full public paths.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(JWKS_PATH, get(jwks))
        .route(DISCOVERY_PATH, get(discovery))
}

/// This function's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    Doc::openapi()
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(jwks, discovery),
    components(schemas(KeySetBody, PublicKey, Discovery))
)]
struct Doc;

/// Public keys may be cached for five minutes: rotation publishes a new key well before it signs.
const CACHE: &str = "public, max-age=300";

/// An RFC 7517 JWK Set (the shape of `GET /.well-known/jwks.json`; the handler serialises
/// jsonwebtoken's `JwkSet`, which has this shape).
#[derive(Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // documents the response
struct KeySetBody {
    keys: Vec<PublicKey>,
}

/// One RSA public key (RFC 7517 §4, RFC 7518 §6.3).
#[derive(Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
struct PublicKey {
    /// `RSA`.
    kty: String,
    /// The RFC 7638 thumbprint, as in access tokens' `kid` header.
    kid: String,
    /// `sig`.
    #[serde(rename = "use")]
    use_: String,
    /// `RS256`.
    alg: String,
    /// Modulus, base64url.
    n: String,
    /// Exponent, base64url.
    e: String,
}

/// OpenID Connect discovery metadata (the fields Tollgate publishes).
#[derive(Serialize, utoipa::ToSchema)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
    token_endpoint: String,
    userinfo_endpoint: String,
    id_token_signing_alg_values_supported: Vec<&'static str>,
    token_endpoint_auth_methods_supported: Vec<&'static str>,
    response_types_supported: Vec<&'static str>,
    subject_types_supported: Vec<&'static str>,
    grant_types_supported: Vec<&'static str>,
    claims_supported: Vec<&'static str>,
}

/// The public keys that verify Tollgate's access tokens.
#[utoipa::path(
    get,
    path = JWKS_PATH,
    tag = "keys",
    responses(
        (status = 200, description = "The JWK Set; cache for up to 5 minutes.", body = KeySetBody,
            headers(("cache-control" = String, description = "`public, max-age=300`"))),
        (status = 500, response = Internal),
    ),
)]
async fn jwks(State(state): State<AppState>) -> Result<Response, ApiError> {
    // Loaded again while warm, at most 5 minutes old (`auth::key_ring`), like the cache above.
    let keys = state.verifier()?.keys().await;
    Ok(([(header::CACHE_CONTROL, CACHE)], Json(keys.jwks())).into_response())
}

/// OpenID Connect discovery metadata: the issuer and where its keys are.
#[utoipa::path(
    get,
    path = DISCOVERY_PATH,
    tag = "keys",
    responses(
        (status = 200, description = "The discovery document; cache for up to 5 minutes.", body = Discovery,
            headers(("cache-control" = String, description = "`public, max-age=300`"))),
    ),
)]
async fn discovery(State(state): State<AppState>) -> Response {
    let issuer = &state.config().auth.issuer;
    let doc = Discovery {
        issuer: issuer.clone(),
        jwks_uri: format!("{issuer}{JWKS_PATH}"),
        token_endpoint: format!("{issuer}/auth/login"),
        userinfo_endpoint: format!("{issuer}/auth/me"),
        id_token_signing_alg_values_supported: vec!["RS256"],
        token_endpoint_auth_methods_supported: vec!["none"],
        response_types_supported: vec!["token"],
        subject_types_supported: vec!["public"],
        grant_types_supported: vec!["password", "refresh_token"],
        claims_supported: vec![
            "iss",
            "aud",
            "sub",
            "sid",
            "iat",
            "nbf",
            "exp",
            "jti",
            "plan",
            "tier",
            "entitlements",
        ],
    };
    ([(header::CACHE_CONTROL, CACHE)], Json(doc)).into_response()
}
