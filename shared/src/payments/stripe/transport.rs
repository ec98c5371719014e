//! async-stripe's transport seam — the [`StripeClient`] trait of `async-stripe-client-core`,
//! which async-stripe's own clients implement — over reqwest, the HTTP client (rustls with
//! aws-lc) the Whop provider already links.
//!
//! Why not async-stripe's hyper client: it reads every error answer into
//! `stripe_shared::ApiErrors`, which embeds Stripe's full `PaymentIntent`, `PaymentMethod`,
//! `SetupIntent` and payment-source objects; their deserializers were about 2 MB of each billing
//! Lambda's zip and put checkout, subscription-lookup and webhook-processor over the 6 MB budget
//! (BENCHMARKS.md). Everything else stays async-stripe's: request building ([`RequestBuilder`]
//! paths, queries and form encoding), [`RequestStrategy`] with its retry rule
//! (`RequestStrategy::test`: `Stripe-Should-Retry` first, else 409/424/429/5xx) and idempotency
//! keys, the pinned API version ([`stripe_client_core::VERSION`]) and response reading
//! (`CustomizableStripeRequest::send`). Of an error answer this transport reads only what
//! Tollgate reports: the status, and the body's `error.type`, `error.code` and `error.message`
//! (docs.stripe.com/api/errors).
//!
//! [`RequestBuilder`]: stripe_client_core::RequestBuilder

use bytes::Bytes;
use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, USER_AGENT,
};
use secrecy::{ExposeSecret, SecretString};
use stripe_client_core::{
    CustomizedStripeRequest, Outcome, RequestStrategy, StripeClient, StripeClientErr, StripeMethod,
};

/// Stripe's production API origin; requests go to `{origin}/v1{path}`.
pub const DEFAULT_API_BASE: &str = "https://api.stripe.com";

/// A [`StripeClient`] over reqwest. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct Transport {
    http: reqwest::Client,
    /// Origin without a trailing slash, e.g. `https://api.stripe.com`.
    api_base: String,
    /// `Authorization` (marked sensitive), `Stripe-Version`, `User-Agent`.
    headers: HeaderMap,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

/// Why a Stripe call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Stripe answered with a non-2xx status (after the request strategy's retries).
    #[error("stripe answered {status}: {}", .error.message.as_deref().unwrap_or(""))]
    Api {
        /// The HTTP status.
        status: u16,
        /// The error object of the body; all fields `None` if the body was not Stripe's shape.
        error: ApiError,
    },
    /// A 2xx answer that could not be read as the expected object.
    #[error("unexpected stripe response: {0}")]
    Deserialize(String),
    /// No answer: connection, TLS or timeout (after the request strategy's retries).
    #[error("stripe unreachable: {0}")]
    Unreachable(String),
    /// The request could not be formed (a header value that is not valid HTTP).
    #[error("stripe request: {0}")]
    Invalid(String),
}

impl StripeClientErr for CallError {
    fn deserialize_err(msg: impl std::fmt::Display) -> Self {
        Self::Deserialize(msg.to_string())
    }
}

/// The fields of Stripe's error object Tollgate reads (`{"error": {"type", "code", "message"}}`).
#[derive(Debug, Default, miniserde::Deserialize)]
pub struct ApiError {
    /// `api_error`, `card_error`, `idempotency_error`, `invalid_request_error`, …
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// A short machine code such as `resource_missing`, when Stripe gives one.
    pub code: Option<String>,
    /// Stripe's human-readable message (never contains the secret key).
    pub message: Option<String>,
}

#[derive(miniserde::Deserialize)]
struct ErrorBody {
    error: ApiError,
}

impl ApiError {
    fn parse(body: &[u8]) -> Self {
        std::str::from_utf8(body)
            .ok()
            .and_then(|s| miniserde::json::from_str::<ErrorBody>(s).ok())
            .map(|b| b.error)
            .unwrap_or_default()
    }
}

impl Transport {
    /// A transport over `http` (its per-attempt timeout applies unless a request sets one:
    /// [`crate::payments::http_client`]) authenticating with `secret_key` (sent as
    /// `Authorization: Bearer …`, a header marked sensitive) to `api_base` (an origin such as
    /// [`DEFAULT_API_BASE`]; a trailing slash is ignored).
    ///
    /// # Errors
    /// [`CallError::Invalid`] if the key is not a valid header value (the key is not included).
    pub fn new(
        http: reqwest::Client,
        secret_key: &SecretString,
        api_base: &str,
    ) -> Result<Self, CallError> {
        let mut auth =
            HeaderValue::try_from(format!("Bearer {}", secret_key.expose_secret().trim()))
                .map_err(|_| CallError::Invalid("the secret key is not a valid header".into()))?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        headers.insert(
            HeaderName::from_static("stripe-version"),
            HeaderValue::try_from(stripe_client_core::VERSION.as_str())
                .map_err(|_| CallError::Invalid("API version".into()))?,
        );
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!(
                "Tollgate/",
                env!("CARGO_PKG_VERSION"),
                " (async-stripe 1.0.0-rc.10; reqwest)"
            )),
        );
        Ok(Self {
            http,
            api_base: api_base.trim_end_matches('/').to_owned(),
            headers,
        })
    }
}

impl StripeClient for Transport {
    type Err = CallError;

    /// Sends `{api_base}/v1{path}[?query]` with the form body if any, under the request's
    /// strategy (default [`RequestStrategy::Once`]); returns the 2xx body.
    async fn execute(&self, request: CustomizedStripeRequest) -> Result<Bytes, CallError> {
        let (req, config) = request.into_pieces();
        let strategy = config.request_strategy.unwrap_or(RequestStrategy::Once);
        let mut url = format!("{}/v1{}", self.api_base, req.path);
        if let Some(query) = &req.query {
            url.push('?');
            url.push_str(query);
        }
        let method = match req.method {
            StripeMethod::Get => reqwest::Method::GET,
            StripeMethod::Post => reqwest::Method::POST,
            StripeMethod::Delete => reqwest::Method::DELETE,
        };
        let mut headers = self.headers.clone();
        if let Some(key) = strategy.get_key() {
            headers.insert(
                HeaderName::from_static("idempotency-key"),
                HeaderValue::try_from(key.as_str())
                    .map_err(|_| CallError::Invalid("idempotency key".into()))?,
            );
        }
        if let Some(account) = &config.account_id {
            headers.insert(
                HeaderName::from_static("stripe-account"),
                HeaderValue::try_from(account.as_str())
                    .map_err(|_| CallError::Invalid("account id".into()))?,
            );
        }
        if req.body.is_some() {
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
        }

        let mut tries = 0u32;
        let mut last_status: Option<u16> = None;
        let mut last_should_retry: Option<bool> = None;
        let mut last_error = CallError::Invalid("the request strategy allows no attempt".into());
        loop {
            match strategy.test(last_status, last_should_retry, tries) {
                Outcome::Stop => return Err(last_error),
                Outcome::Continue(backoff) => {
                    if let Some(delay) = backoff {
                        tokio::time::sleep(delay).await;
                    }
                }
            }
            tries += 1;
            let mut attempt = self
                .http
                .request(method.clone(), &url)
                .headers(headers.clone());
            if let Some(body) = &req.body {
                attempt = attempt.body(body.clone());
            }
            if let Some(timeout) = config.timeout {
                attempt = attempt.timeout(timeout);
            }
            let response = match attempt.send().await {
                Ok(r) => r,
                Err(e) => {
                    last_error = CallError::Unreachable(e.without_url().to_string());
                    continue;
                }
            };
            let status = response.status().as_u16();
            let should_retry = response
                .headers()
                .get("stripe-should-retry")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            let body = match response.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    last_error = CallError::Unreachable(e.without_url().to_string());
                    continue;
                }
            };
            if (200..300).contains(&status) {
                return Ok(body);
            }
            tracing::warn!(status, attempt = tries, "stripe answered an error");
            last_error = CallError::Api {
                status,
                error: ApiError::parse(&body),
            };
            last_status = Some(status);
            last_should_retry = should_retry;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stripes_error_object_and_tolerates_other_bodies() {
        let e = ApiError::parse(
            br#"{"error":{"type":"invalid_request_error","code":"resource_missing",
                "message":"No such subscription: 'sub_x'","param":"id","doc_url":"https://x"}}"#,
        );
        assert_eq!(e.kind.as_deref(), Some("invalid_request_error"));
        assert_eq!(e.code.as_deref(), Some("resource_missing"));
        assert_eq!(e.message.as_deref(), Some("No such subscription: 'sub_x'"));
        for other in [
            &b"<html>bad gateway</html>"[..],
            b"",
            b"{\"error\":1}",
            b"\xff",
        ] {
            let e = ApiError::parse(other);
            assert!(e.kind.is_none() && e.code.is_none() && e.message.is_none());
        }
    }

    #[test]
    fn the_secret_key_is_sensitive_and_absent_from_debug() {
        let t = Transport::new(
            reqwest::Client::new(),
            &SecretString::from("sk_test_secret123"),
            "http://x/",
        )
        .expect("transport");
        assert!(t.headers[AUTHORIZATION].is_sensitive());
        assert_eq!(t.api_base, "http://x");
        assert!(!format!("{t:?}").contains("secret123"));
    }
}
