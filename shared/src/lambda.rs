//! The Lambda entry helper: every function's `main.rs` is one call to [`run_http`].

use crate::state::AppState;
use axum::Router;

/// Initialises JSON logs (`RUST_LOG`, default `info`), builds [`AppState::from_env`] once per cold
/// start, and serves `routes` through `lambda_http` (API Gateway HTTP API, payload v2).
///
/// # Errors
/// Start-up errors (configuration, secrets, keys) end the init phase with the error logged.
pub async fn run_http(routes: Router<AppState>) -> Result<(), lambda_http::Error> {
    init_tracing();
    let state = AppState::from_env().await.map_err(|e| {
        tracing::error!(error = %e, "start-up failed");
        e
    })?;
    lambda_http::run(crate::http_app(routes, state)).await
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_current_span(false)
        .without_time() // CloudWatch stamps each line
        .try_init();
}
