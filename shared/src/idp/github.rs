//! GitHub sign-in: OAuth 2.0 authorization code with PKCE (S256) through the `oauth2` crate
//! (docs.github.com, "Authorizing OAuth apps"), then the person from the REST API:
//! `GET /user` (the numeric `id` is the subject; `name`) and `GET /user/emails` — only the
//! **primary and verified** address counts (a verified but secondary address, or an unverified
//! primary one, is ignored). Scopes `read:user user:email`. The client credentials go in the
//! token request's body, as GitHub documents (`client_id`, `client_secret`, `code`,
//! `redirect_uri`, `code_verifier`).

use super::http::{pkce_challenge, token_error, Http};
use super::{Authorization, IdentityProvider, IdpError};
use crate::domain::ProviderIdentity;
use crate::error::message;
use async_trait::async_trait;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse, TokenUrl,
};
use serde::Deserialize;

/// GitHub's public endpoints.
pub const DEFAULT_WEB_BASE: &str = "https://github.com";
/// GitHub's REST API.
pub const DEFAULT_API_BASE: &str = "https://api.github.com";

/// Where GitHub is, and this app's credentials there.
#[derive(Clone, Debug)]
pub struct GitHubConfig {
    /// The OAuth app's client id.
    pub client_id: String,
    /// The OAuth app's client secret.
    pub client_secret: secrecy::SecretString,
    /// `https://github.com` (authorize and token endpoints live under `/login/oauth/`).
    pub web_base: String,
    /// `https://api.github.com`.
    pub api_base: String,
}

/// GitHub as an [`IdentityProvider`] named `github`.
pub struct GitHub {
    config: GitHubConfig,
    http: Http,
}

impl std::fmt::Debug for GitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHub")
            .field("client_id", &self.config.client_id)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct User {
    id: u64,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct Email {
    email: String,
    primary: bool,
    verified: bool,
}

impl GitHub {
    /// GitHub with `config`, calling it through `http`.
    pub fn new(config: GitHubConfig, http: Http) -> Self {
        Self { config, http }
    }

    fn client(
        &self,
        redirect_uri: &str,
    ) -> Result<
        BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>,
        IdpError,
    > {
        use secrecy::ExposeSecret;
        let base = self.config.web_base.trim_end_matches('/');
        Ok(
            BasicClient::new(ClientId::new(self.config.client_id.clone()))
                .set_client_secret(ClientSecret::new(
                    self.config.client_secret.expose_secret().to_owned(),
                ))
                .set_auth_uri(
                    AuthUrl::new(format!("{base}/login/oauth/authorize"))
                        .map_err(IdpError::refused)?,
                )
                .set_token_uri(
                    TokenUrl::new(format!("{base}/login/oauth/access_token"))
                        .map_err(IdpError::refused)?,
                )
                .set_redirect_uri(
                    RedirectUrl::new(redirect_uri.to_owned()).map_err(IdpError::refused)?,
                )
                .set_auth_type(AuthType::RequestBody),
        )
    }

    async fn get<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        token: &str,
    ) -> Result<T, IdpError> {
        let url = format!("{}{path}", self.config.api_base.trim_end_matches('/'));
        let response = self
            .http
            .client()
            .get(url)
            .bearer_auth(token)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
            .send()
            .await
            .map_err(|e| IdpError::Unavailable(Box::new(e)))?;
        let status = response.status();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(IdpError::Unavailable(message(format!(
                "GitHub {path} answered {status}"
            ))));
        }
        if !status.is_success() {
            return Err(IdpError::refused(message(format!(
                "GitHub {path} answered {status}"
            ))));
        }
        response.json::<T>().await.map_err(IdpError::refused)
    }
}

#[async_trait]
impl IdentityProvider for GitHub {
    fn name(&self) -> &str {
        "github"
    }

    async fn authorize_url(&self, a: &Authorization<'_>) -> Result<String, IdpError> {
        let challenge = pkce_challenge(a.pkce_verifier);
        let state = a.state.to_owned();
        let (url, _) = self
            .client(a.redirect_uri)?
            .authorize_url(move || CsrfToken::new(state))
            .add_scope(Scope::new("read:user".into()))
            .add_scope(Scope::new("user:email".into()))
            .set_pkce_challenge(challenge)
            .url();
        Ok(url.into())
    }

    async fn identity(
        &self,
        code: &str,
        a: &Authorization<'_>,
    ) -> Result<ProviderIdentity, IdpError> {
        let token = self
            .client(a.redirect_uri)?
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(a.pkce_verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|e| token_error("GitHub", e))?;
        let access = token.access_token().secret().to_owned();
        let user: User = self.get("/user", &access).await?;
        let emails: Vec<Email> = self.get("/user/emails", &access).await?;
        let email = emails
            .into_iter()
            .find(|e| e.primary && e.verified)
            .map(|e| e.email);
        Ok(ProviderIdentity {
            subject: user.id.to_string(),
            email_verified: email.is_some(),
            email,
            name: user.name,
        })
    }
}
