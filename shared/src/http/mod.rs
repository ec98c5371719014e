//! The HTTP edge shared by every function: RFC 9457 problem responses ([`ApiError`]), the JSON
//! body and bearer-token extractors, the token response with the refresh cookie, request
//! telemetry, and the pieces of the OpenAPI document every function's routes share.

pub mod authorizer;
mod error;
mod extract;
pub mod limit;
pub mod openapi;
pub mod telemetry;
mod tokens;

pub use error::{
    method_not_allowed, not_found, ApiError, FieldError, Problem, ProblemCode, UsageCounts,
};
pub use extract::{
    bearer, client_ip_from_socket, ClientIp, JsonBody, OptionalJsonBody, QueryParams,
};
pub use telemetry::{current_request_id, RequestId, REQUEST_ID_HEADER};
pub use tokens::{
    clear_refresh_cookie, refresh_token_from_cookie, token_response, TokenBody, UserBody,
    REFRESH_COOKIE,
};

/// Finishes a function's (or the dev server's merged) router: problem+json 404 and 405 answers,
/// the state, and the request span with its id ([`telemetry::request_span`]). Used by the
/// Lambda entry, the dev server and tests, so every entry point serves the same app.
pub fn app(
    routes: axum::Router<crate::state::AppState>,
    state: crate::state::AppState,
) -> axum::Router {
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone())
        // The route layers of `limit` find the limiter here.
        .layer(axum::Extension(state))
        .layer(axum::middleware::from_fn(telemetry::request_span))
        .layer(axum::middleware::from_fn(client_ip_from_socket))
}
