//! Any OpenID Connect provider by issuer URL (Google, Microsoft, GitLab, Keycloak, Auth0, a
//! company IdP) through the `openidconnect` crate: discovery (`<issuer>/.well-known/
//! openid-configuration`, cached per process), authorization code with PKCE (S256) and a nonce,
//! and the ID token verified against the provider's JWKS — signature, `iss`, `aud`, `exp` and
//! `nonce` (OpenID Connect Core 1.0 §3.1.3.7). The email counts as verified only if the token
//! says `email_verified: true`. When the signature check fails (a rotated signing key), the
//! discovery document and JWKS are fetched again once and the token checked again.

use super::http::{pkce_challenge, token_error, Http};
use super::{Authorization, IdentityProvider, IdpError};
use crate::domain::ProviderIdentity;
use crate::error::message;
use async_trait::async_trait;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    Nonce, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use secrecy::ExposeSecret;
use std::sync::Arc;
use tokio::sync::RwLock;

/// Google's issuer.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";

/// One OpenID Connect provider's configuration.
#[derive(Clone, Debug)]
pub struct OidcConfig {
    /// Its name in routes (`google`, `keycloak`, …).
    pub name: String,
    /// The issuer URL (discovery is `<issuer>/.well-known/openid-configuration`).
    pub issuer: String,
    /// This app's client id there.
    pub client_id: String,
    /// The client secret (`None`: a public client, PKCE only).
    pub client_secret: Option<secrecy::SecretString>,
    /// Scopes besides `openid` (default `email profile`).
    pub scopes: Vec<String>,
}

/// An OpenID Connect provider as an [`IdentityProvider`].
pub struct Oidc {
    config: OidcConfig,
    http: Http,
    metadata: RwLock<Option<Arc<CoreProviderMetadata>>>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("name", &self.config.name)
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

/// A client for `metadata` with the callback `redirect_uri` (the type is openidconnect's, with
/// the endpoint typestates discovery leaves).
macro_rules! client {
    ($self:expr, $metadata:expr, $redirect_uri:expr) => {
        CoreClient::from_provider_metadata(
            $metadata.as_ref().clone(),
            ClientId::new($self.config.client_id.clone()),
            $self
                .config
                .client_secret
                .as_ref()
                .map(|s| ClientSecret::new(s.expose_secret().to_owned())),
        )
        .set_redirect_uri(RedirectUrl::new($redirect_uri.to_owned()).map_err(IdpError::refused)?)
    };
}

impl Oidc {
    /// The provider of `config`, calling it through `http`. Discovery happens on first use.
    pub fn new(config: OidcConfig, http: Http) -> Self {
        Self {
            config,
            http,
            metadata: RwLock::new(None),
        }
    }

    /// The discovery document (with the JWKS), fetched once, or again when `refresh`.
    async fn metadata(&self, refresh: bool) -> Result<Arc<CoreProviderMetadata>, IdpError> {
        if !refresh {
            if let Some(m) = self.metadata.read().await.as_ref() {
                return Ok(m.clone());
            }
        }
        let issuer = IssuerUrl::new(self.config.issuer.clone()).map_err(IdpError::refused)?;
        let fetched = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| IdpError::Unavailable(Box::new(e)))?;
        let fetched = Arc::new(fetched);
        *self.metadata.write().await = Some(fetched.clone());
        Ok(fetched)
    }

    fn verify(
        &self,
        metadata: &Arc<CoreProviderMetadata>,
        id_token: &openidconnect::core::CoreIdToken,
        a: &Authorization<'_>,
    ) -> Result<Result<ProviderIdentity, ClaimsVerificationError>, IdpError> {
        let client = client!(self, metadata, a.redirect_uri);
        let verifier = client.id_token_verifier();
        Ok(id_token
            .claims(&verifier, &Nonce::new(a.nonce.to_owned()))
            .map(|claims| ProviderIdentity {
                subject: claims.subject().to_string(),
                email: claims.email().map(|e| e.to_string()),
                email_verified: claims.email_verified().unwrap_or(false),
                name: claims
                    .name()
                    .and_then(|n| n.get(None))
                    .map(|n| n.to_string()),
            }))
    }
}

#[async_trait]
impl IdentityProvider for Oidc {
    fn name(&self) -> &str {
        &self.config.name
    }

    async fn authorize_url(&self, a: &Authorization<'_>) -> Result<String, IdpError> {
        let metadata = self.metadata(false).await?;
        let client = client!(self, metadata, a.redirect_uri);
        let challenge = pkce_challenge(a.pkce_verifier);
        let (state, nonce) = (a.state.to_owned(), a.nonce.to_owned());
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || CsrfToken::new(state),
                move || Nonce::new(nonce),
            )
            .set_pkce_challenge(challenge);
        for scope in &self.config.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, _, _) = request.url();
        Ok(url.into())
    }

    async fn identity(
        &self,
        code: &str,
        a: &Authorization<'_>,
    ) -> Result<ProviderIdentity, IdpError> {
        let metadata = self.metadata(false).await?;
        let response = {
            let client = client!(self, metadata, a.redirect_uri);
            client
                .exchange_code(AuthorizationCode::new(code.to_owned()))
                .map_err(IdpError::refused)?
                .set_pkce_verifier(PkceCodeVerifier::new(a.pkce_verifier.to_owned()))
                .request_async(&self.http)
                .await
                .map_err(|e| token_error(&self.config.name, e))?
        };
        let id_token = response
            .id_token()
            .ok_or_else(|| IdpError::refused(message("the token response has no ID token")))?;
        match self.verify(&metadata, id_token, a)? {
            Ok(identity) => Ok(identity),
            // A key the cached JWKS does not have (rotation): fetch it again, check once more.
            Err(ClaimsVerificationError::SignatureVerification(_)) => {
                let fresh = self.metadata(true).await?;
                self.verify(&fresh, id_token, a)?.map_err(IdpError::refused)
            }
            Err(e) => Err(IdpError::refused(e)),
        }
    }
}
