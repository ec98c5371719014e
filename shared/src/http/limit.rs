//! Rate-limit route layers (docs/architecture.md §5c): [`per_ip`] counts a route's requests per
//! client IP ([`ClientIp`]: API Gateway's `sourceIp` or the socket peer, never a header the client
//! sets), [`per_user`] per verified bearer. Each answers over the limit with 429 `rate_limited`,
//! and adds the `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` headers
//! (draft-ietf-httpapi-ratelimit-headers; `Reset` in seconds from now) to every answer of a
//! limited route. Attach with `post(handler).route_layer(from_fn_with_state(rule, per_ip))`.

use super::{ApiError, ClientIp};
use crate::auth::{AuthenticatedUser, Counted};
use crate::domain::Throttled;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderName, HeaderValue};

/// `RateLimit-Limit`: the rule's requests per window.
pub const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
/// `RateLimit-Remaining`: requests left in this window.
pub const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
/// `RateLimit-Reset`: seconds until the window ends.
pub const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

fn set(headers: &mut HeaderMap, name: HeaderName, value: impl ToString) {
    if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
        headers.insert(name, v);
    }
}

/// The headers of a refusal: `Retry-After` (RFC 9110 §10.2.3, seconds) and, when a counted rule
/// refused, the `RateLimit-*` headers with nothing remaining.
pub fn refusal_headers(headers: &mut HeaderMap, t: &Throttled) {
    set(headers, header::RETRY_AFTER, t.retry_after);
    if let Some(limit) = t.limit {
        set(headers, RATELIMIT_LIMIT, limit);
        set(headers, RATELIMIT_REMAINING, 0);
        set(headers, RATELIMIT_RESET, t.retry_after);
    }
}

/// The `RateLimit-*` headers of a counted request.
pub fn counted_headers(headers: &mut HeaderMap, c: &Counted) {
    set(headers, RATELIMIT_LIMIT, c.decision.limit);
    set(headers, RATELIMIT_REMAINING, c.decision.remaining);
    set(headers, RATELIMIT_RESET, c.decision.reset_after(c.now));
}

async fn limited(rule: &'static str, key: Option<String>, req: Request, next: Next) -> Response {
    let limiter = req
        .extensions()
        .get::<AppState>()
        .and_then(AppState::limiter)
        .cloned();
    let counted = match (limiter, key) {
        (Some(limiter), Some(key)) => limiter.count_or_pass(rule, &key).await,
        _ => None,
    };
    if let Some(refusal) = counted.as_ref().and_then(Counted::refusal) {
        return ApiError::RateLimited(refusal).into_response();
    }
    let mut response = next.run(req).await;
    if let Some(c) = &counted {
        counted_headers(response.headers_mut(), c);
    }
    response
}

/// Route layer: counts the request under rule `rule` for the client IP. A request whose IP the
/// edge did not give (in-process tests) is not counted.
pub async fn per_ip(State(rule): State<&'static str>, req: Request, next: Next) -> Response {
    let ip = req.extensions().get::<ClientIp>().map(|c| c.0.clone());
    limited(rule, ip, req, next).await
}

/// Route layer: counts the request under rule `rule` for the bearer's user. The verified
/// subject is kept in the request's extensions, so the handler's [`AuthenticatedUser`] extractor
/// does not verify it again; a request without a valid bearer is not counted (the handler
/// answers 401).
pub async fn per_user(State(rule): State<&'static str>, mut req: Request, next: Next) -> Response {
    let who = match req.extensions().get::<AppState>() {
        Some(state) => super::extract::bearer_user(req.headers(), state).await.ok(),
        None => None,
    };
    let key = who.as_ref().map(|w| w.user_id.to_string());
    if let Some(who) = who {
        req.extensions_mut().insert::<AuthenticatedUser>(who);
    }
    limited(rule, key, req, next).await
}

/// `route` with its requests counted per client IP under `rule` ([`per_ip`]).
pub fn by_ip(
    rule: &'static str,
    route: axum::routing::MethodRouter<AppState>,
) -> axum::routing::MethodRouter<AppState> {
    route.route_layer(axum::middleware::from_fn_with_state(rule, per_ip))
}

/// `route` with its requests counted per bearer user under `rule` ([`per_user`]).
pub fn by_user(
    rule: &'static str,
    route: axum::routing::MethodRouter<AppState>,
) -> axum::routing::MethodRouter<AppState> {
    route.route_layer(axum::middleware::from_fn_with_state(rule, per_user))
}
