//! Identity providers for sign-in (docs/architecture.md §5b): the [`IdentityProvider`] trait —
//! build the authorization URL (PKCE S256, `state`, OIDC `nonce`), exchange a callback's code for
//! the person's verified identity — with GitHub ([`github`], OAuth 2.0 + its REST API) and any
//! OpenID Connect provider by issuer URL ([`oidc`]; Google is one) behind feature `oauth`, built
//! on the `oauth2` and `openidconnect` crates over one reqwest client ([`http`]).

#[cfg(feature = "oauth")]
pub mod github;
#[cfg(feature = "oauth")]
pub mod http;
#[cfg(feature = "oauth")]
pub mod oidc;

use crate::domain::ProviderIdentity;
use crate::error::BoxError;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What an authorization carries to the provider and back.
#[derive(Clone, Copy, Debug)]
pub struct Authorization<'a> {
    /// The `state` parameter (random; only its hash is stored).
    pub state: &'a str,
    /// The PKCE code verifier (RFC 7636 §4.1: 43–128 unreserved characters); the provider gets
    /// its S256 challenge, the code exchange the verifier itself.
    pub pkce_verifier: &'a str,
    /// The OIDC nonce the ID token must carry (ignored by plain OAuth 2.0 providers).
    pub nonce: &'a str,
    /// The callback URL registered at the provider: `<issuer>/auth/oauth/<name>/callback`.
    pub redirect_uri: &'a str,
}

/// Why a provider step failed.
#[derive(Debug, thiserror::Error)]
pub enum IdpError {
    /// The provider refused (a bad or used code, a PKCE mismatch) or its answer does not hold up
    /// (an ID token with a bad signature, another audience, another nonce, expired). Not retried:
    /// the person starts over.
    #[error("the identity provider refused, or its answer did not verify")]
    Refused(#[source] BoxError),
    /// The provider is unreachable or failed: trying again later may work.
    #[error("the identity provider is unavailable")]
    Unavailable(#[source] BoxError),
}

impl IdpError {
    /// [`IdpError::Refused`] with `e` as its source.
    pub fn refused(e: impl Into<BoxError>) -> Self {
        Self::Refused(e.into())
    }
}

/// One identity provider.
#[async_trait]
pub trait IdentityProvider: Send + Sync {
    /// Its configured name (`github`, `google`, an OIDC provider's name): in routes and keys.
    fn name(&self) -> &str;

    /// The URL to send the browser to.
    ///
    /// # Errors
    /// [`IdpError`] (an OIDC provider's discovery document may have to be fetched first).
    async fn authorize_url(&self, authorization: &Authorization<'_>) -> Result<String, IdpError>;

    /// Exchanges the callback's `code` (with the PKCE verifier) and returns who signed in,
    /// verified: for OIDC the ID token's signature (the provider's JWKS), `iss`, `aud`, `exp`
    /// and `nonce`.
    ///
    /// # Errors
    /// [`IdpError`].
    async fn identity(
        &self,
        code: &str,
        authorization: &Authorization<'_>,
    ) -> Result<ProviderIdentity, IdpError>;
}

/// The configured identity providers, by name.
#[derive(Clone, Default)]
pub struct IdentityProviders(BTreeMap<String, Arc<dyn IdentityProvider>>);

impl std::fmt::Debug for IdentityProviders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl IdentityProviders {
    /// These providers plus `provider` (replacing one of the same name).
    pub fn with(mut self, provider: Arc<dyn IdentityProvider>) -> Self {
        self.0.insert(provider.name().to_owned(), provider);
        self
    }

    /// The provider called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn IdentityProvider>> {
        self.0.get(name)
    }

    /// The configured names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }

    /// Whether none is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
