//! Request extractors: JSON bodies with the project's limits and errors, bearer authentication
//! ([`AuthenticatedUser`]), and where a request came from ([`RequestOrigin`]:
//! client IP and `User-Agent`, for audit records and the sessions list).

use super::ApiError;
use crate::auth::authorizer::AuthorizerContext;
use crate::auth::{AnyCaller, AuthError, AuthenticatedUser, Caller};
use crate::domain::RequestOrigin;
use crate::domain::{api_key_id, ApiKeyKind};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use http::{header, request::Parts, HeaderMap};
use serde::de::DeserializeOwned;

/// A JSON body: `Content-Type: application/json` required (415), at most
/// `TOLLGATE_MAX_BODY_BYTES` (413), a syntactically valid JSON object of the expected shape (400).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

/// Like [`JsonBody`], but an empty body (no `Content-Length` or zero bytes) is `None` — for
/// routes that also accept their input in a cookie. A body of whitespace only is not empty: it
/// is not JSON, so it is refused (400 `malformed_json`, or 415 without the JSON content type).
#[derive(Debug)]
pub struct OptionalJsonBody<T>(pub Option<T>);

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

async fn read_body(req: Request, limit: usize) -> Result<(HeaderMap, Bytes), ApiError> {
    let (parts, body) = req.into_parts();
    if let Some(len) = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > limit {
            return Err(ApiError::PayloadTooLarge);
        }
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(err) = source {
            if err.is::<http_body_util::LengthLimitError>() {
                return ApiError::PayloadTooLarge;
            }
            source = err.source();
        }
        ApiError::MalformedJson("the body could not be read".into())
    })?;
    Ok((parts.headers, bytes))
}

/// Every request body of the API is a JSON object: a bare array, string, number or `null` is
/// refused before serde sees it (serde would read an array as a struct's fields in order, so
/// `[null, null]` would pass for an object of two optional fields).
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::MalformedJson(
            "the body must be a JSON object".into(),
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        // serde_json's message names the position and expected shape, never values.
        ApiError::MalformedJson(e.to_string())
    })
}

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let (_, bytes) = read_body(req, state.config().max_body_bytes).await?;
        parse(&bytes).map(JsonBody)
    }
}

impl<T: DeserializeOwned> FromRequest<AppState> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let json = is_json(req.headers());
        let (_, bytes) = read_body(req, state.config().max_body_bytes).await?;
        if bytes.is_empty() {
            return Ok(OptionalJsonBody(None));
        }
        if !json {
            return Err(ApiError::UnsupportedMediaType);
        }
        parse(&bytes).map(|v| OptionalJsonBody(Some(v)))
    }
}

/// The query string deserialised as `T`; a query that does not fit is 422 `validation_failed`
/// as problem+json (axum's own `Query` answers plain text).
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query)
            .map(QueryParams)
            .map_err(|e| ApiError::InvalidQuery(format!("the query string is invalid: {e}")))
    }
}

/// The bearer credential of `headers` (`Authorization: Bearer <credential>`).
///
/// # Errors
/// [`ApiError::MissingBearer`] when the header is missing or not `Bearer`.
pub fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::MissingBearer)?;
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or(ApiError::MissingBearer)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::MissingBearer);
    }
    Ok(token.trim())
}

/// The subject of the bearer access token in `headers`, verified with the public keys.
///
/// # Errors
/// [`ApiError::MissingBearer`], or `invalid_token` when the token is invalid or expired.
pub(crate) async fn bearer_user(
    headers: &HeaderMap,
    state: &AppState,
) -> Result<AuthenticatedUser, ApiError> {
    let token = bearer(headers)?;
    Ok(state.verifier()?.verify(token).await?)
}

/// The subject of the request's `Authorization: Bearer <access token>`, verified with the public
/// keys: rejects with 401 `invalid_token` when the header is missing, not `Bearer`, or the token
/// is invalid or expired. Records the user id in the request span. A subject a route layer
/// verified already ([`super::limit::per_user`]) is taken from the request's extensions.
impl FromRequestParts<AppState> for AuthenticatedUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let who = match parts.extensions.remove::<AuthenticatedUser>() {
            Some(who) => who,
            None => bearer_user(&parts.headers, state).await?,
        };
        tracing::Span::current().record("user_id", tracing::field::display(&who.user_id));
        Ok(who)
    }
}

/// The caller of a read route: `Authorization: Bearer` with an access token (verified with the
/// public keys) or a user's API key (`tg_…`: looked up, checked, its owner active, with the
/// owner's current plan). A service key is refused with 403 `forbidden_for_key`.
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        caller(parts, state, false).await
    }
}

/// Like [`Caller`], also accepting a service key (the usage API).
impl FromRequestParts<AppState> for AnyCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        caller(parts, state, true).await.map(AnyCaller)
    }
}

async fn caller(parts: &Parts, state: &AppState, service: bool) -> Result<Caller, ApiError> {
    let token = bearer(&parts.headers)?;
    let caller = if api_key_id(token).is_some() {
        let principal = state.auth()?.authenticate_key(token).await?;
        if principal.key.kind != ApiKeyKind::User && !service {
            return Err(AuthError::ForbiddenForKey.into());
        }
        Caller::Key(Box::new(principal))
    } else {
        Caller::Token(Box::new(state.verifier()?.verify(token).await?))
    };
    tracing::Span::current().record("user_id", tracing::field::display(&caller.user_id()));
    Ok(caller)
}

/// The Lambda authorizer's context of a route behind the Tollgate authorizer (API Gateway's
/// `requestContext.authorizer.lambda`; on the dev server, set by [`super::authorizer`]'s
/// emulation). Rejects with 401 `invalid_token` when the request did not pass the authorizer.
impl<S: Send + Sync> FromRequestParts<S> for AuthorizerContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<AuthorizerContext>()
            .cloned()
            .ok_or(ApiError::MissingBearer)
    }
}

/// The client's IP as the edge determined it — API Gateway's `requestContext.http.sourceIp` in
/// Lambda ([`crate::lambda::app`]), the TCP peer address on the dev server — never a header the
/// client sets (`X-Forwarded-For` is the client's to forge). A request extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientIp(pub String);

/// Records the TCP peer address as the [`ClientIp`] when the server provides it (axum's
/// `ConnectInfo`, the dev server) and no outer layer set one already.
pub async fn client_ip_from_socket(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if req.extensions().get::<ClientIp>().is_none() {
        let peer = req
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        if let Some(ip) = peer {
            req.extensions_mut().insert(ClientIp(ip));
        }
    }
    next.run(req).await
}

/// Where the request came from: the [`ClientIp`] (if the edge knows it) and the `User-Agent`.
impl<S: Send + Sync> FromRequestParts<S> for RequestOrigin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestOrigin {
            ip: parts.extensions.get::<ClientIp>().map(|c| c.0.clone()),
            user_agent: parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        })
    }
}
