//! API Gateway's authorizer step, played in-process for the dev server (docs/architecture.md
//! §5c): a route layer that runs [`Auth::authorize`](crate::auth::Auth::authorize) — the same use
//! case as the `authorizer` function — and hands the route the [`AuthorizerContext`] as API
//! Gateway would. Where API Gateway answers a refusal with a bare 403, this answers problem+json:
//! 401 `invalid_token` without a credential, 403 `not_authorized` for a refused one, 429
//! `rate_limited` (with `Retry-After`) past the plan's request rate.

use super::limit::counted_headers;
use super::ApiError;
use crate::auth::authorizer::{AuthorizerContext, Refusal};
use crate::state::AppState;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Route layer (`route_layer(axum::middleware::from_fn(authorizer::emulate))`): authorizes the
/// request or answers the refusal.
pub async fn emulate(mut req: Request, next: Next) -> Response {
    let Some(state) = req.extensions().get::<AppState>().cloned() else {
        return ApiError::NotAuthorized.into_response();
    };
    let (auth, verifier) = match (state.auth(), state.verifier()) {
        (Ok(auth), Ok(verifier)) => (auth, verifier),
        (Err(e), _) | (_, Err(e)) => return ApiError::NotBuilt(e).into_response(),
    };
    let credential = super::bearer(req.headers()).ok();
    match auth.authorize(verifier, credential).await {
        Ok(authorized) => {
            req.extensions_mut()
                .insert(AuthorizerContext::from(&authorized));
            let mut response = next.run(req).await;
            if let Some(rate) = &authorized.rate {
                counted_headers(response.headers_mut(), rate);
            }
            response
        }
        Err(Refusal::NoCredential) => ApiError::MissingBearer.into_response(),
        Err(Refusal::RateLimited(t)) => ApiError::RateLimited(t).into_response(),
        Err(refusal) => {
            tracing::info!(reason = refusal.reason(), detail = %refusal, "refused");
            ApiError::NotAuthorized.into_response()
        }
    }
}
