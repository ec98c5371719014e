//! `web`: `GET /openapi.json`, the API contract (OpenAPI 3.1) — `docs/openapi.json`, generated
//! from the function crates' route descriptions (`cargo run -p dev-server --bin openapi`) and
//! embedded in the binary. A test keeps the committed file equal to what the code generates, and
//! its paths and methods equal to every function's `ROUTES`. This function reaches no AWS
//! service and reads no secret.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tollgate::{AppState, Needs};
use utoipa::OpenApi as _;

/// The API document's path.
pub const OPENAPI_PATH: &str = "/openapi.json";

/// The `(method, path)` pairs this function serves: the source of truth the SAM template, the
/// OpenAPI document and the local Lambda router are checked against.
pub const ROUTES: &[(&str, &str)] = &[("GET", OPENAPI_PATH)];

/// What this function builds at start-up: nothing.
pub const NEEDS: Needs = Needs::NOTHING;

/// The committed API document.
pub const DOCUMENT: &str = include_str!("../../../docs/openapi.json");

/// This function's routes, with full public paths.
pub fn routes() -> Router<AppState> {
    Router::new().route(OPENAPI_PATH, get(openapi_json))
}

/// This function's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    Doc::openapi()
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(openapi_json))]
struct Doc;

/// The API contract: this document.
#[utoipa::path(
    get,
    path = OPENAPI_PATH,
    tag = "documents",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of every route.", content_type = "application/json", body = Object,
            headers(("cache-control" = String, description = "`public, max-age=300`"))),
    ),
)]
async fn openapi_json() -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        DOCUMENT,
    )
        .into_response()
}
