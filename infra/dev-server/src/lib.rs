//! The local API: every function's router merged on one port, on the embedded store.

use axum::Router;
use tollgate::AppState;

/// Every function's routes, merged (the same routers the Lambdas serve).
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(signup::routes())
        .merge(login::routes())
        .merge(token_refresh::routes())
        .merge(jwks::routes())
        .merge(subscription_lookup::routes())
}

/// The whole local app with `state`: routes, problem+json fallbacks and request logging.
pub fn app(state: AppState) -> Router {
    tollgate::http_app(routes(), state).layer(axum::middleware::from_fn(log_request))
}

async fn log_request(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    tracing::debug!(%method, %path, status = response.status().as_u16(), micros = started.elapsed().as_micros() as u64, "request");
    response
}
