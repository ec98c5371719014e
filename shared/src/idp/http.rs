//! The HTTP client of the `oauth2` and `openidconnect` crates: their `AsyncHttpClient` over the
//! project's one reqwest (rustls on aws-lc), so the oauth function carries no second HTTP stack.
//! Redirects are not followed (the OAuth 2.0 Security BCP, RFC 9700 §4.11: a token endpoint
//! redirect must not carry the code elsewhere) and each call gives up after 10 s.

use super::IdpError;
use crate::error::message;
use oauth2::{HttpRequest, HttpResponse, PkceCodeChallenge, PkceCodeVerifier, RequestTokenError};
use std::future::Future;
use std::pin::Pin;

/// A reqwest client for identity-provider calls. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Http(reqwest::Client);

/// A call that failed before an HTTP answer, or whose answer could not be read.
#[derive(Debug, thiserror::Error)]
#[error("identity provider HTTP call failed")]
pub struct HttpError(#[source] reqwest::Error);

impl Http {
    /// The client: no redirects, 10 s per call.
    ///
    /// # Errors
    /// If the TLS backend cannot initialise.
    pub fn new() -> Result<Self, HttpError> {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(10))
            .user_agent("tollgate")
            .build()
            .map(Self)
            .map_err(HttpError)
    }

    /// The underlying client, for the plain REST calls (GitHub's `/user`).
    pub fn client(&self) -> &reqwest::Client {
        &self.0
    }
}

impl<'c> oauth2::AsyncHttpClient<'c> for Http {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let request = reqwest::Request::try_from(request).map_err(HttpError)?;
            let response = self.0.execute(request).await.map_err(HttpError)?;
            let mut builder = http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let body = response.bytes().await.map_err(HttpError)?;
            // Status and headers come from a parsed response: always a valid http::Response.
            Ok(builder
                .body(body.to_vec())
                .unwrap_or_else(|_| http::Response::new(Vec::new())))
        })
    }
}

/// The S256 challenge (RFC 7636 §4.2) of a stored PKCE `verifier`.
pub fn pkce_challenge(verifier: &str) -> PkceCodeChallenge {
    PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(verifier.to_owned()))
}

/// Maps a failed code exchange at `provider`: no answer → [`IdpError::Unavailable`]; an answer
/// that refuses (RFC 6749 §5.2 `invalid_grant`, a PKCE mismatch) or cannot be read →
/// [`IdpError::Refused`].
pub fn token_error<RE, T>(provider: &str, error: RequestTokenError<RE, T>) -> IdpError
where
    RE: std::error::Error + Send + Sync + 'static,
    T: oauth2::ErrorResponse + Send + Sync + 'static,
{
    match error {
        RequestTokenError::Request(inner) => IdpError::Unavailable(Box::new(inner)),
        other => IdpError::refused(message(format!("{provider} refused the code: {other}"))),
    }
}
