//! Tollgate core: the rules every Tollgate Lambda shares.
//!
//! Modules by capability (see `../shared/DESIGN.md` §2):
//! - [`domain`]: pure types and rules (no I/O; time is passed in as Unix seconds).
//! - [`auth`]: password hashing, access tokens (RS256 JWT + JWKS), refresh-token sessions, and the
//!   account use cases (`signup`, `login`, `refresh_token`, `logout`, `me`).
//! - [`store`]: the storage traits (`UserStore`, `SessionStore`) with their DynamoDB and embedded
//!   implementations and the single-table key layout.
//! - [`secrets`]: the `SecretSource` trait (Secrets Manager, environment, files).
//! - [`http`]: RFC 9457 problem responses, request extractors and cookies.
//! - [`state`]: `AppState`, built once per cold start or for local use.
//! - [`lambda`] (feature `aws`): the Lambda entry helper every function's `main.rs` calls.

pub mod auth;
pub mod billing;
pub mod clock;
pub mod config;
pub mod domain;
pub mod http;
#[cfg(feature = "aws")]
pub mod lambda;
pub mod payments;
pub mod queue;
pub mod secrets;
pub mod state;
pub mod store;
pub mod webhooks;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::Config;
pub use state::AppState;

use axum::Router;

/// Finishes a function's (or the dev server's merged) router: problem+json 404 and 405 answers,
/// then the state. Used by [`lambda::run_http`], the dev server and tests, so every entry point
/// serves the same app.
pub fn http_app(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .fallback(http::not_found)
        .method_not_allowed_fallback(http::method_not_allowed)
        .with_state(state)
}
