//! Sign-in with identity providers (docs/architecture.md §5b): the authorization with PKCE and a
//! single-use state, the callback that resolves and links identities, the one-time exchange code,
//! and the signed-in user's identities.
//!
//! Tokens never travel in a URL: the callback sends the browser back to the app with a one-time
//! code (60 s, single use), which the app exchanges at `POST /auth/oauth/exchange` for the same
//! token body and refresh cookie as a login. The callback never answers with an error page: every
//! outcome is a redirect, to the authorization's `redirect_to` (or, without a usable state, the
//! allowlist's first entry) with `error=<code>`.

use super::one_time::{link_token_hash, random_b64, LinkToken};
use super::service::{Auth, AuthError, AuthenticatedUser, IssuedTokens, MapAudit};
use crate::domain::{
    resolve, AuditAction, Identity, OAuthMode, OAuthState, OneTimeToken, RequestOrigin, Resolution,
    SignInMethod, TokenHash, TokenPurpose, User, UserId, UserStatus, OAUTH_STATE_LIFETIME_SECONDS,
};
use crate::idp::{Authorization, IdpError};
use crate::store::{Change, Conflict, StoreError};

/// The callback's query parameters.
#[derive(Clone, Debug, Default)]
pub struct CallbackParams {
    /// The authorization code.
    pub code: Option<String>,
    /// The state the authorization started with.
    pub state: Option<String>,
    /// The provider's error (`access_denied`, …), when it did not authorize.
    pub error: Option<String>,
}

/// Why a callback did not sign anyone in: the `error` the app receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallbackError {
    /// The person declined at the provider (`access_denied`).
    AccessDenied,
    /// The state is missing, unknown, expired, already used, or for another provider.
    InvalidState,
    /// The provider answered with another error, refused the code, or its answer did not verify.
    ProviderError,
    /// An account has this email, but the provider does not vouch for it: nothing was linked or
    /// created.
    UnverifiedEmail,
    /// The provider gave no (verified) email for a new identity: no account was created.
    EmailRequired,
    /// The identity is linked to another account.
    IdentityTaken,
    /// The user already has an identity at this provider.
    ProviderLinked,
    /// The account is disabled.
    AccountDisabled,
    /// Login needs a verified email (`TOLLGATE_REQUIRE_VERIFIED_EMAIL`) and this one is not.
    EmailNotVerified,
    /// Tollgate failed (the store or the random source); try again.
    ServerError,
}

impl CallbackError {
    /// The value of the `error` query parameter.
    pub fn code(self) -> &'static str {
        match self {
            Self::AccessDenied => "access_denied",
            Self::InvalidState => "invalid_state",
            Self::ProviderError => "provider_error",
            Self::UnverifiedEmail => "unverified_email",
            Self::EmailRequired => "email_required",
            Self::IdentityTaken => "identity_taken",
            Self::ProviderLinked => "provider_linked",
            Self::AccountDisabled => "account_disabled",
            Self::EmailNotVerified => "email_not_verified",
            Self::ServerError => "server_error",
        }
    }
}

/// The stored key of an authorization's `state`: its SHA-256 (the state itself never rests in
/// the store).
pub fn state_hash(state: &str) -> TokenHash {
    super::one_time::hash_text(state)
}

/// Logs a failure of Tollgate itself during a callback; the browser gets `server_error`.
fn server(e: &(dyn std::error::Error + 'static)) -> CallbackError {
    tracing::error!(error = %crate::error::Chain(e), "OAuth callback failed");
    CallbackError::ServerError
}

/// `url` with `key=value` appended to its query.
fn with_param(mut url: url::Url, key: &str, value: &str) -> String {
    url.query_pairs_mut().append_pair(key, value);
    url.into()
}

impl Auth {
    /// The callback URL registered at a provider: `<issuer>/auth/oauth/<name>/callback`.
    pub fn oauth_callback_uri(&self, provider: &str) -> String {
        format!("{}/auth/oauth/{provider}/callback", self.settings.issuer)
    }

    /// Starts an authorization at `provider` that returns to `redirect_to` (default: the
    /// allowlist's first entry): checks the target against the allowlist before anything leaves
    /// Tollgate, stores the single-use state (PKCE verifier, nonce, target, mode; 10 min) and
    /// returns the provider's authorization URL. With `link`, the identity will be linked to that
    /// signed-in user instead of signing in.
    ///
    /// # Errors
    /// `UnknownProvider`, `RedirectNotAllowed`, `InvalidAccessToken` (link mode, session gone),
    /// `IdentityProvider` (an OIDC provider's discovery failed), `Store`, `Internal`.
    pub async fn oauth_start(
        &self,
        provider: &str,
        redirect_to: Option<&str>,
        link: Option<&AuthenticatedUser>,
    ) -> Result<String, AuthError> {
        let idp = self
            .identity_providers
            .get(provider)
            .ok_or(AuthError::UnknownProvider)?
            .clone();
        let allowlist = &self.settings.oauth_redirects;
        let target = match redirect_to {
            Some(target) => allowlist.allows(target),
            None => allowlist.default_target().cloned(),
        }
        .ok_or(AuthError::RedirectNotAllowed)?;
        let mode = match link {
            Some(who) => {
                let (user, _) = self.current(who).await?;
                OAuthMode::Link { user_id: user.id }
            }
            None => OAuthMode::Login,
        };
        let state = random_b64(32)?;
        let verifier = random_b64(32)?;
        let nonce = random_b64(16)?;
        let callback = self.oauth_callback_uri(provider);
        let url = idp
            .authorize_url(&Authorization {
                state: &state,
                pkce_verifier: &verifier,
                nonce: &nonce,
                redirect_uri: &callback,
            })
            .await
            .map_err(AuthError::IdentityProvider)?;
        let now = self.clock.now();
        let stored = OAuthState {
            hash: state_hash(&state),
            provider: provider.to_owned(),
            pkce_verifier: verifier,
            nonce,
            redirect_to: target.into(),
            mode,
            created_at: now,
            expires_at: now + OAUTH_STATE_LIFETIME_SECONDS,
        };
        self.accounts
            .commit(&[Change::PutOAuthState(stored)])
            .await?;
        Ok(url)
    }

    /// Finishes an authorization: checks and spends the state, exchanges the code (with the PKCE
    /// verifier) for the verified identity, resolves whom it signs in (or links it), and returns
    /// where to send the browser — `redirect_to` with `code=<one-time exchange code>` (or
    /// `linked=<provider>` in link mode), or with `error=<code>` ([`CallbackError`]). Never
    /// fails: every outcome is a redirect.
    pub async fn oauth_callback(
        &self,
        provider: &str,
        params: CallbackParams,
        origin: &RequestOrigin,
    ) -> String {
        let fallback = || {
            self.settings
                .oauth_redirects
                .default_target()
                .cloned()
                .or_else(|| url::Url::parse(&self.settings.issuer).ok())
        };
        let fail = |target: Option<url::Url>, error: CallbackError| match target {
            Some(url) => with_param(url, "error", error.code()),
            None => format!("/?error={}", error.code()),
        };
        let Some(state) = params.state.as_deref().filter(|s| !s.is_empty()) else {
            return fail(fallback(), CallbackError::InvalidState);
        };
        let stored = match self.spend_state(provider, state).await {
            Ok(Some(stored)) => stored,
            Ok(None) => return fail(fallback(), CallbackError::InvalidState),
            Err(e) => {
                tracing::error!(error = %crate::error::Chain(&e), "OAuth state unreadable");
                return fail(fallback(), CallbackError::ServerError);
            }
        };
        let target = url::Url::parse(&stored.redirect_to).ok();
        if let Some(error) = &params.error {
            let code = if error == "access_denied" {
                CallbackError::AccessDenied
            } else {
                CallbackError::ProviderError
            };
            return fail(target, code);
        }
        let Some(code) = params.code.as_deref().filter(|c| !c.is_empty()) else {
            return fail(target, CallbackError::ProviderError);
        };
        match self.finish_authorization(&stored, code, origin).await {
            Ok(Finished::SignIn(code)) => match target {
                Some(url) => with_param(url, "code", &code),
                None => fail(None, CallbackError::ServerError),
            },
            Ok(Finished::Linked) => match target {
                Some(url) => with_param(url, "linked", provider),
                None => fail(None, CallbackError::ServerError),
            },
            Err(error) => fail(target, error),
        }
    }

    /// The stored state of `state` for `provider`, spent (a conditional delete: one callback
    /// only); `None` if unknown, expired, already spent or for another provider.
    async fn spend_state(
        &self,
        provider: &str,
        state: &str,
    ) -> Result<Option<OAuthState>, StoreError> {
        let hash = state_hash(state);
        let Some(stored) = self.accounts.get_oauth_state(&hash).await? else {
            return Ok(None);
        };
        match self
            .accounts
            .commit(&[Change::SpendOAuthState { hash }])
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict(Conflict::StateSpent)) => return Ok(None),
            Err(e) => return Err(e),
        }
        let usable = stored.provider == provider && self.clock.now() < stored.expires_at;
        Ok(usable.then_some(stored))
    }

    async fn finish_authorization(
        &self,
        stored: &OAuthState,
        code: &str,
        origin: &RequestOrigin,
    ) -> Result<Finished, CallbackError> {
        let idp = self
            .identity_providers
            .get(&stored.provider)
            .ok_or(CallbackError::ProviderError)?
            .clone();
        let callback = self.oauth_callback_uri(&stored.provider);
        let identity = idp
            .identity(
                code,
                &Authorization {
                    state: "",
                    pkce_verifier: &stored.pkce_verifier,
                    nonce: &stored.nonce,
                    redirect_uri: &callback,
                },
            )
            .await
            .map_err(|e| {
                match &e {
                    IdpError::Refused(_) => tracing::warn!(provider = %stored.provider, error = %crate::error::Chain(&e), "identity provider refused"),
                    IdpError::Unavailable(_) => tracing::error!(provider = %stored.provider, error = %crate::error::Chain(&e), "identity provider unavailable"),
                }
                CallbackError::ProviderError
            })?;
        let now = self.clock.now();
        let linked = self
            .accounts
            .get_identity(&stored.provider, &identity.subject)
            .await
            .map_err(|e| server(&e))?;
        let record = |user_id, action| {
            self.audit(user_id, action, origin, now)
                .map_audit(|r| r.with_detail(stored.provider.clone()))
        };
        let new_identity = |user_id| Identity {
            provider: stored.provider.clone(),
            subject: identity.subject.clone(),
            user_id,
            email: identity.email.clone(),
            email_verified: identity.email_verified,
            created_at: now,
        };
        if let OAuthMode::Link { user_id } = stored.mode {
            return match linked {
                Some(existing) if existing.user_id == user_id => Ok(Finished::Linked),
                Some(_) => Err(CallbackError::IdentityTaken),
                None => {
                    let changes = [
                        Change::LinkIdentity(new_identity(user_id)),
                        record(user_id, AuditAction::IdentityLinked),
                    ];
                    match self.accounts.commit(&changes).await {
                        Ok(()) => Ok(Finished::Linked),
                        Err(StoreError::Conflict(Conflict::IdentityTaken)) => {
                            Err(CallbackError::IdentityTaken)
                        }
                        Err(StoreError::Conflict(Conflict::ProviderLinked)) => {
                            Err(CallbackError::ProviderLinked)
                        }
                        Err(e) => Err(server(&e)),
                    }
                }
            };
        }
        let account = match &identity.email {
            Some(email) => match crate::domain::Email::parse(email) {
                Ok(email) => self
                    .user_by_email(email.normalized())
                    .await
                    .map_err(|e| server(&e))?,
                Err(_) => None,
            },
            None => None,
        };
        let user: User = match resolve(linked.map(|l| l.user_id), account.as_ref(), &identity) {
            Resolution::Returning(user_id) => self
                .users
                .get_user(&user_id)
                .await
                .map_err(|e| server(&e))?
                .ok_or(CallbackError::ServerError)?,
            Resolution::LinkToAccount(_) => {
                let user = account.ok_or(CallbackError::ServerError)?;
                let mut changes = vec![
                    Change::LinkIdentity(new_identity(user.id)),
                    record(user.id, AuditAction::IdentityLinked),
                ];
                // The provider vouched for the email: the account's email is verified now. Whoever
                // created the account without proving the email may not keep a way in (the
                // pre-account-hijacking defence, Sudhodanan & Paverd, USENIX Security 2022): its
                // password is dropped and its sessions end.
                let user = if user.email_verified {
                    user
                } else {
                    let verified = user.updated(now, |u| {
                        u.email_verified = true;
                        u.password_hash = None;
                        u.session_epoch += 1;
                    });
                    changes.push(Change::UpdateUser {
                        user: verified.clone(),
                        expected_version: user.version,
                    });
                    verified
                };
                self.commit_identity(&changes).await?;
                user
            }
            Resolution::NewAccount => {
                let email = identity.email.clone().ok_or(CallbackError::EmailRequired)?;
                let email = crate::domain::Email::parse(&email)
                    .map_err(|_| CallbackError::EmailRequired)?;
                let user = User {
                    id: UserId::new(),
                    email: email.as_str().to_owned(),
                    password_hash: None,
                    status: UserStatus::Active,
                    email_verified: identity.email_verified,
                    name: identity.name.clone(),
                    roles: Vec::new(),
                    session_epoch: 0,
                    created_at: now,
                    updated_at: now,
                    version: 1,
                };
                let changes = [
                    Change::CreateUser(user.clone()),
                    Change::LinkIdentity(new_identity(user.id)),
                    record(user.id, AuditAction::SignedUp),
                ];
                self.commit_identity(&changes).await?;
                user
            }
            Resolution::UnverifiedEmail => return Err(CallbackError::UnverifiedEmail),
            Resolution::NoEmail => return Err(CallbackError::EmailRequired),
        };
        if user.status != UserStatus::Active {
            return Err(CallbackError::AccountDisabled);
        }
        if self.settings.require_verified_email && !user.email_verified {
            return Err(CallbackError::EmailNotVerified);
        }
        let exchange = LinkToken::generate().map_err(|_| CallbackError::ServerError)?;
        let token = OneTimeToken {
            hash: exchange.hash.clone(),
            purpose: TokenPurpose::OAuthExchange,
            user_id: Some(user.id),
            email: user.email().normalized().to_owned(),
            epoch: user.session_epoch,
            note: Some(stored.provider.clone()),
            created_at: now,
            expires_at: now + TokenPurpose::OAuthExchange.lifetime(),
        };
        self.accounts
            .commit(&[Change::PutToken(token)])
            .await
            .map_err(|e| server(&e))?;
        Ok(Finished::SignIn(exchange.token))
    }

    async fn commit_identity(&self, changes: &[Change]) -> Result<(), CallbackError> {
        match self.accounts.commit(changes).await {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict(Conflict::IdentityTaken)) => Err(CallbackError::IdentityTaken),
            Err(StoreError::Conflict(Conflict::ProviderLinked)) => {
                Err(CallbackError::ProviderLinked)
            }
            // Someone signed up with this email a moment ago: start over.
            Err(StoreError::Conflict(_)) => Err(CallbackError::ServerError),
            Err(e) => {
                tracing::error!(error = %crate::error::Chain(&e), "OAuth callback could not store the identity");
                Err(CallbackError::ServerError)
            }
        }
    }

    /// The changes that unlink `user`'s identities whose provider did not vouch for the email,
    /// with their audit records — for the moment Tollgate's own mail first proves who holds the
    /// account's email (a verification link, a password reset, an email code or magic link).
    /// Such an identity may belong to someone who created the account with another person's
    /// address (pre-account hijacking, Sudhodanan & Paverd, USENIX Security 2022); the mailbox
    /// owner keeps the account, and the caller ends its sessions when any is unlinked. Empty when
    /// the email is verified already.
    ///
    /// # Errors
    /// `Store`.
    pub(super) async fn unproven_identities(
        &self,
        user: &User,
        origin: &RequestOrigin,
        now: i64,
    ) -> Result<Vec<Change>, AuthError> {
        if user.email_verified {
            return Ok(Vec::new());
        }
        let identities = self.accounts.list_identities(&user.id).await?;
        let mut changes = Vec::new();
        for identity in identities.into_iter().filter(|i| !i.email_verified) {
            changes.push(
                self.audit(user.id, AuditAction::IdentityUnlinked, origin, now)
                    .map_audit(|r| r.with_detail(identity.provider.clone())),
            );
            changes.push(Change::UnlinkIdentity {
                user_id: user.id,
                provider: identity.provider,
                subject: identity.subject,
            });
        }
        Ok(changes)
    }

    /// Exchanges the callback's one-time code (60 s, single use) for a session: the same tokens
    /// as a login.
    ///
    /// # Errors
    /// `InvalidExchangeCode` (unknown, spent, expired), `AccountDisabled`, `Store`,
    /// `NoSigningKey`, `Internal`.
    pub async fn oauth_exchange(
        &self,
        code: &str,
        origin: &RequestOrigin,
    ) -> Result<(User, IssuedTokens), AuthError> {
        let hash = link_token_hash(code).ok_or(AuthError::InvalidExchangeCode)?;
        let now = self.clock.now();
        let stored = self
            .accounts
            .get_token(&hash)
            .await?
            .filter(|t| t.usable_for(TokenPurpose::OAuthExchange, now))
            .ok_or(AuthError::InvalidExchangeCode)?;
        let user = match stored.user_id {
            Some(id) => self.users.get_user(&id).await?,
            None => None,
        }
        .ok_or(AuthError::InvalidExchangeCode)?;
        if user.status != UserStatus::Active {
            return Err(AuthError::AccountDisabled);
        }
        let spend = Change::SpendToken {
            hash,
            purpose: TokenPurpose::OAuthExchange,
        };
        match self
            .sign_in(
                &user,
                SignInMethod::OAuth,
                origin,
                vec![spend],
                stored.note.as_deref(),
            )
            .await
        {
            Ok(tokens) => Ok((user, tokens)),
            Err(AuthError::Store(StoreError::Conflict(Conflict::TokenSpent))) => {
                Err(AuthError::InvalidExchangeCode)
            }
            Err(e) => Err(e),
        }
    }

    /// The signed-in user's linked identities, and whether the account has a password.
    ///
    /// # Errors
    /// `InvalidAccessToken`, `Store`.
    pub async fn list_identities(
        &self,
        who: &AuthenticatedUser,
    ) -> Result<(Vec<Identity>, bool), AuthError> {
        let (user, _) = self.current(who).await?;
        let identities = self.accounts.list_identities(&user.id).await?;
        Ok((identities, user.password_hash.is_some()))
    }

    /// Unlinks the signed-in user's identity at `provider` — refused when it is the last way to
    /// sign in (no password and no other identity). Audited.
    ///
    /// # Errors
    /// `IdentityNotFound`, `LastSignInMethod`, `InvalidAccessToken`, `Store`.
    pub async fn unlink_identity(
        &self,
        who: &AuthenticatedUser,
        provider: &str,
        origin: &RequestOrigin,
    ) -> Result<(), AuthError> {
        let (user, session) = self.current(who).await?;
        let identities = self.accounts.list_identities(&user.id).await?;
        let target = identities
            .iter()
            .find(|i| i.provider == provider)
            .ok_or(AuthError::IdentityNotFound)?;
        if user.password_hash.is_none() && identities.len() == 1 {
            return Err(AuthError::LastSignInMethod);
        }
        let now = self.clock.now();
        let changes = [
            Change::UnlinkIdentity {
                user_id: user.id,
                provider: provider.to_owned(),
                subject: target.subject.clone(),
            },
            self.audit(user.id, AuditAction::IdentityUnlinked, origin, now)
                .map_audit(|r| r.with_session(session.id).with_detail(provider)),
        ];
        match self.accounts.commit(&changes).await {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict(Conflict::IdentityNotLinked)) => {
                Err(AuthError::IdentityNotFound)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// How a callback's authorization ended, when it did.
enum Finished {
    /// Signed in: the one-time exchange code for the app.
    SignIn(String),
    /// Linked to the signed-in user.
    Linked,
}
