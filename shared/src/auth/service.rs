//! The account use cases: [`Auth::signup`], [`Auth::login`], [`Auth::refresh_token`],
//! [`Auth::logout`], [`Auth::me`] here; email verification, password reset and change, sessions,
//! profile, deletion and the audit log in `super::account`; email codes and magic links in
//! `super::passwordless`. Function crates call these and only map input and output.
//!
//! Every change that owes a mail or an audit record writes it in the same atomic
//! [`AccountStore::commit`] as the change itself.

use super::key_ring::KeyRing;
use super::password::{PasswordHasher, Verification};
use super::refresh::RefreshToken;
use super::tokens::{AccessClaims, KeySetError, PublicKeys, TokenError};
use crate::billing::{BillingError, PlanAccess};
use crate::clock::Clock;
use crate::domain::{
    rules, AuditAction, AuditRecord, Email, Entitlement, LoginFailures, MailKind, OutboxMail,
    Password, RefreshDecision, RequestOrigin, RevokeReason, Session, SessionId, SessionOrigin,
    SessionPolicy, SignInMethod, Throttled, User, UserId, UserStatus, ValidationError,
    DEFAULT_AUDIT_RETENTION_SECONDS,
};
use crate::error::BoxError;
use crate::store::{AccountStore, Change, Conflict, SessionStore, StoreError, UserStore};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Why an account operation failed. The HTTP edge maps each case to one status and `code`
/// (`crate::http::ApiError`).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Input failed validation (422 `validation_failed`).
    #[error("validation failed")]
    Validation(Vec<ValidationError>),
    /// The email is already registered (409 `email_taken`).
    #[error("email already registered")]
    EmailTaken,
    /// Unknown email or wrong password — deliberately indistinguishable (401 `invalid_credentials`).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The account is disabled (403 `account_disabled`).
    #[error("account disabled")]
    AccountDisabled,
    /// Missing, malformed or unknown refresh token (401 `invalid_refresh_token`).
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// A rotated refresh token was presented after the grace window; the session is now revoked
    /// (401 `refresh_token_reused`).
    #[error("refresh token reused; session revoked")]
    RefreshTokenReused,
    /// The session passed its idle timeout or absolute lifetime (401 `session_expired`).
    #[error("session expired")]
    SessionExpired,
    /// The session was revoked by logout or reuse detection (401 `session_revoked`).
    #[error("session revoked")]
    SessionRevoked,
    /// Missing, malformed, expired or forged access token, or its session or user is gone (401
    /// `invalid_token`).
    #[error("invalid access token")]
    InvalidAccessToken,
    /// The link's token is unknown, spent, expired, or for another purpose (400 `invalid_link`).
    #[error("invalid or expired link")]
    InvalidLink,
    /// The sign-in code is wrong, expired, or has no tries left (401 `invalid_code`).
    #[error("invalid or expired code")]
    InvalidCode,
    /// The current password given with a change or a deletion is wrong (403 `wrong_password`).
    #[error("wrong password")]
    WrongPassword,
    /// Login needs a verified email (`TOLLGATE_REQUIRE_VERIFIED_EMAIL`) and this one is not
    /// (403 `email_not_verified`).
    #[error("email not verified")]
    EmailNotVerified,
    /// The action needs a recent login (within `TOLLGATE_REAUTH_WINDOW_SECONDS`) or the
    /// password or an email code with the request (403 `reauthentication_required`).
    #[error("recent authentication required")]
    ReauthenticationRequired,
    /// The email is verified already (409 `email_already_verified`).
    #[error("email already verified")]
    EmailAlreadyVerified,
    /// No such live session of this user (404 `session_not_found`).
    #[error("session not found")]
    SessionNotFound,
    /// No identity provider of this name is configured (404 `unknown_provider`).
    #[error("unknown identity provider")]
    UnknownProvider,
    /// `redirect_to` is not on the allowlist (400 `redirect_not_allowed`).
    #[error("redirect target not allowed")]
    RedirectNotAllowed,
    /// The identity provider failed before the browser left Tollgate (its discovery document):
    /// 503 `unavailable` when retryable, else 502 `provider_error`.
    #[error("the identity provider failed")]
    IdentityProvider(#[source] crate::idp::IdpError),
    /// The OAuth exchange code is unknown, spent or expired (400 `invalid_exchange_code`).
    #[error("invalid or expired exchange code")]
    InvalidExchangeCode,
    /// The user has no identity at this provider (404 `identity_not_found`).
    #[error("identity not found")]
    IdentityNotFound,
    /// Too many requests, or failed logins throttle the account (429 `rate_limited` with
    /// `Retry-After`).
    #[error("rate limited")]
    RateLimited(crate::domain::Throttled),
    /// The presented API key is not a key, unknown, revoked or expired (401 `invalid_api_key`).
    #[error("invalid API key")]
    InvalidApiKey,
    /// No live API key of this id belongs to the user (404 `api_key_not_found`).
    #[error("API key not found")]
    ApiKeyNotFound,
    /// The user has `TOLLGATE_MAX_API_KEYS` live keys (409 `api_key_limit_reached`).
    #[error("too many API keys")]
    ApiKeyLimitReached,
    /// A service key was presented where only a user can act (403 `forbidden_for_key`).
    #[error("service keys cannot act here")]
    ForbiddenForKey,
    /// Unlinking would leave no way to sign in (409 `last_sign_in_method`).
    #[error("the last way to sign in cannot be removed")]
    LastSignInMethod,
    /// Cancelling the subscription before deleting the account failed; nothing was deleted.
    #[error("the subscription could not be cancelled")]
    Billing(#[source] BillingError),
    /// The store failed (503 `unavailable` when retryable or a lost race, else 500 `internal`).
    #[error("account store failed")]
    Store(#[from] StoreError),
    /// This function holds no signing key (a deployment mistake: 500 `internal`).
    #[error("tokens cannot be issued here: no signing key")]
    NoSigningKey,
    /// Hashing, signing or the random source failed (500 `internal`).
    #[error("internal failure")]
    Internal(#[source] BoxError),
}

impl From<KeySetError> for AuthError {
    fn from(e: KeySetError) -> Self {
        Self::Internal(Box::new(e))
    }
}

/// Token and session settings: who issues access tokens, for whom, for how long (seconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthSettings {
    /// `iss` claim and OIDC issuer (no trailing slash).
    pub issuer: String,
    /// `aud` claim.
    pub audience: String,
    /// Access-token lifetime, seconds (default 900: 15 min).
    pub access_token_ttl: i64,
    /// Session lifetimes and the reuse grace window.
    pub session: SessionPolicy,
    /// Whether login (password, code or link) needs a verified email (default `false`).
    pub require_verified_email: bool,
    /// Whether an email code or magic link for an email without an account creates one
    /// (default `false`).
    pub passwordless_signup: bool,
    /// How recent a login must be for account deletion without a password or code, seconds
    /// (default 300: 5 min, docs/architecture.md §11).
    pub reauth_window: i64,
    /// How long audit records are kept, seconds (default 400 days).
    pub audit_retention: i64,
    /// Where identity-provider sign-ins may return to (`TOLLGATE_OAUTH_REDIRECT_ALLOWLIST`,
    /// default the app URL).
    pub oauth_redirects: crate::domain::RedirectAllowlist,
    /// Most live API keys per user (`TOLLGATE_MAX_API_KEYS`, default 10).
    pub max_api_keys: usize,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            issuer: "http://127.0.0.1:3000".to_owned(),
            audience: "tollgate".to_owned(),
            access_token_ttl: 900,
            session: SessionPolicy::default(),
            require_verified_email: false,
            passwordless_signup: false,
            reauth_window: 300,
            audit_retention: DEFAULT_AUDIT_RETENTION_SECONDS,
            oauth_redirects: crate::domain::RedirectAllowlist::parse(["http://127.0.0.1:3000"])
                .unwrap_or_default(),
            max_api_keys: 10,
        }
    }
}

/// Tokens handed to a client after signup, login or refresh.
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    /// The RS256 JWT.
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The refresh token's wire form (`<user id>.<session id>.<secret>`).
    pub refresh_token: String,
    /// Seconds the refresh token may sit unused (the session's idle timeout, capped by its
    /// absolute lifetime): the refresh cookie's `Max-Age`.
    pub refresh_expires_in: i64,
}

/// What `GET /auth/me` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Me {
    /// The user.
    pub user: User,
    /// The plan the user has access to now (`free` without a subscription).
    pub plan: String,
}

/// The plan facts copied into an access token at issue time, and computed afresh for each use
/// of an API key.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanClaims {
    /// The plan in effect (`free` without access).
    pub plan: String,
    /// The plan's tier rank.
    pub tier: u32,
    /// Flags (booleans) and limits (numbers) of the plan.
    pub entitlements: BTreeMap<String, serde_json::Value>,
}

/// The subject of a verified access token: its user and session, and every claim.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthenticatedUser {
    /// `sub`.
    pub user_id: UserId,
    /// `sid`.
    pub session_id: SessionId,
    /// All claims.
    pub claims: AccessClaims,
}

/// Verifies access tokens with the public keys of a [`KeyRing`] and the clock: what every route
/// behind a bearer token needs, and nothing that can issue a token.
#[derive(Clone)]
pub struct AccessVerifier {
    keys: Arc<KeyRing>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for AccessVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessVerifier")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl AccessVerifier {
    /// A verifier over the public keys of `keys`.
    pub fn new(keys: Arc<KeyRing>, clock: Arc<dyn Clock>) -> Self {
        Self { keys, clock }
    }

    /// The public keys (the JWKS) to publish now (loaded again when older than
    /// [`super::key_ring::KEY_RELOAD_SECONDS`]).
    pub async fn keys(&self) -> Arc<PublicKeys> {
        self.keys.current().await.public
    }

    /// Verifies an access token (signature, `iss`, `aud`, `exp`, `nbf`) and reads its subject.
    /// A token signed by a key the verifier does not hold yet (a rotation since the keys were
    /// loaded) makes it load the keys again and try once more ([`KeyRing::after_unknown_key`]).
    ///
    /// # Errors
    /// [`AuthError::InvalidAccessToken`], also for `sub`/`sid` that are not Tollgate ids.
    pub async fn verify(&self, token: &str) -> Result<AuthenticatedUser, AuthError> {
        let now = self.clock.now();
        let claims = match self.keys.current().await.public.verify(token, now) {
            Err(TokenError::UnknownKey) => match self.keys.after_unknown_key().await {
                Some(keys) => keys.public.verify(token, now),
                None => Err(TokenError::UnknownKey),
            },
            checked => checked,
        }
        .map_err(|_| AuthError::InvalidAccessToken)?;
        let user_id = claims
            .sub
            .parse()
            .map_err(|_| AuthError::InvalidAccessToken)?;
        let session_id = claims
            .sid
            .parse()
            .map_err(|_| AuthError::InvalidAccessToken)?;
        Ok(AuthenticatedUser {
            user_id,
            session_id,
            claims,
        })
    }
}

/// What signup did.
#[derive(Debug, Clone)]
pub enum SignupOutcome {
    /// The account exists and its first session started.
    SignedIn(User, IssuedTokens),
    /// The account exists; login waits for the email to be verified
    /// (`TOLLGATE_REQUIRE_VERIFIED_EMAIL`), so no session was started.
    VerificationRequired(User),
}

/// The account service: stores, signing keys, hasher, clock and settings.
pub struct Auth {
    pub(super) users: Arc<dyn UserStore>,
    pub(super) sessions: Arc<dyn SessionStore>,
    pub(super) accounts: Arc<dyn AccountStore>,
    signer: Option<Arc<KeyRing>>,
    pub(super) hasher: PasswordHasher,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) settings: AuthSettings,
    access: PlanAccess,
    pub(super) identity_providers: crate::idp::IdentityProviders,
    pub(super) limiter: Option<super::limits::Limiter>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

/// The stores the account use cases write to.
#[derive(Clone)]
pub struct AccountStores {
    /// Users and email claims.
    pub users: Arc<dyn UserStore>,
    /// Sessions.
    pub sessions: Arc<dyn SessionStore>,
    /// Atomic account changes, one-time secrets, the audit log.
    pub accounts: Arc<dyn AccountStore>,
}

impl Auth {
    /// Wires the service. Without a `signer` (or one whose keys hold no signing set) it can
    /// check sessions (`me`) but not issue tokens (signup, login and refresh answer
    /// [`AuthError::NoSigningKey`]). Tokens are signed with the ring's current signing set.
    pub fn new(
        stores: AccountStores,
        signer: Option<Arc<KeyRing>>,
        clock: Arc<dyn Clock>,
        settings: AuthSettings,
        access: PlanAccess,
    ) -> Self {
        Self {
            users: stores.users,
            sessions: stores.sessions,
            accounts: stores.accounts,
            signer,
            hasher: PasswordHasher::new(),
            clock,
            settings,
            access,
            identity_providers: Default::default(),
            limiter: None,
        }
    }

    /// The same service, counting requests and failed logins with `limiter`.
    pub fn with_limiter(mut self, limiter: super::limits::Limiter) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// The limiter, if limits are on.
    pub fn limiter(&self) -> Option<&super::limits::Limiter> {
        self.limiter.as_ref()
    }

    /// Counts one request of `key` under the account rule `name` (no-op without a limiter or
    /// with the rule off; fails open when the counters are unreachable).
    ///
    /// # Errors
    /// [`AuthError::RateLimited`] over the limit.
    pub(super) async fn limit(&self, name: &'static str, key: &str) -> Result<(), AuthError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        match limiter
            .count_or_pass(name, key)
            .await
            .and_then(|c| c.refusal())
        {
            Some(refusal) => Err(AuthError::RateLimited(refusal)),
            None => Ok(()),
        }
    }

    /// The same service, signing in with `providers` too.
    pub fn with_identity_providers(mut self, providers: crate::idp::IdentityProviders) -> Self {
        self.identity_providers = providers;
        self
    }

    /// The configured identity providers.
    pub fn identity_providers(&self) -> &crate::idp::IdentityProviders {
        &self.identity_providers
    }

    /// The plan catalog.
    pub fn catalog(&self) -> &Arc<crate::domain::Catalog> {
        self.access.catalog()
    }

    /// The settings.
    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    /// Creates an account, queues its verification mail and — unless login needs a verified
    /// email — starts its first session, all in one atomic write with the `signed_up` audit
    /// record.
    ///
    /// # Errors
    /// `Validation` (email syntax, password not 8..=128 characters or a common password —
    /// every field reported), `EmailTaken`, `Store`, `NoSigningKey`, `Internal`.
    pub async fn signup(
        &self,
        email: &str,
        password: String,
        origin: &RequestOrigin,
    ) -> Result<SignupOutcome, AuthError> {
        let (email, password) = match (Email::parse(email), Password::parse(password)) {
            (Ok(e), Ok(p)) => (e, p),
            (e, p) => {
                let errors = [e.err(), p.err()].into_iter().flatten().collect();
                return Err(AuthError::Validation(errors));
            }
        };
        // Cheap early answer; the conditional write below is what enforces uniqueness.
        if self
            .users
            .find_user_id_by_email(email.normalized())
            .await?
            .is_some()
        {
            return Err(AuthError::EmailTaken);
        }
        let password_hash = self.hash_password(password).await?;
        let now = self.clock.now();
        let user = User {
            id: UserId::new(),
            email: email.as_str().to_owned(),
            password_hash: Some(password_hash),
            status: UserStatus::Active,
            email_verified: false,
            name: None,
            roles: Vec::new(),
            session_epoch: 0,
            created_at: now,
            updated_at: now,
            version: 1,
        };
        let mut changes = vec![
            Change::CreateUser(user.clone()),
            Change::QueueMail(OutboxMail::new(
                MailKind::VerifyEmail,
                &user.email,
                Some(user.id),
                now,
            )),
            self.audit(user.id, AuditAction::SignedUp, origin, now),
        ];
        let started = if self.settings.require_verified_email {
            None
        } else {
            let (session, token) = self.new_session(&user, SignInMethod::Signup, origin, now)?;
            changes.push(Change::CreateSession(session.clone()));
            Some((session, token))
        };
        match self.accounts.commit(&changes).await {
            Ok(()) => {}
            Err(StoreError::Conflict(Conflict::EmailTaken)) => return Err(AuthError::EmailTaken),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(user_id = %user.id, "user signed up");
        match started {
            Some((session, token)) => {
                let tokens = self.issue(&user, &session, token.encode(), now).await?;
                Ok(SignupOutcome::SignedIn(user, tokens))
            }
            None => Ok(SignupOutcome::VerificationRequired(user)),
        }
    }

    /// Checks credentials and starts a session. Unknown emails cost one argon2 verification like
    /// known ones, and both failures are the same `InvalidCredentials`; a failure on a known
    /// account is audited. A hash at old parameters is replaced after a successful login.
    ///
    /// # Errors
    /// `InvalidCredentials`, `AccountDisabled` and `EmailNotVerified` (only after a correct
    /// password), `Store`, `NoSigningKey`, `Internal`.
    pub async fn login(
        &self,
        email: &str,
        password: String,
        origin: &RequestOrigin,
    ) -> Result<(User, IssuedTokens), AuthError> {
        // One account key whether or not the email parses or exists: the same counters, the
        // same answers, the same store round trips (a claim read, then a profile read — of a
        // random id when the email has no account — then one failure write).
        let account = Email::parse(email)
            .map(|e| e.normalized().to_owned())
            .unwrap_or_else(|_| email.trim().to_lowercase());
        self.limit(rules::LOGIN_ACCOUNT, &account).await?;
        let (claim, throttle) = tokio::join!(
            self.users.find_user_id_by_email(&account),
            self.login_wait(&account)
        );
        let user = match claim? {
            Some(id) => self.users.get_user(&id).await?,
            None => {
                self.users.get_user(&UserId::new()).await?;
                None
            }
        };
        let (failures, wait) = throttle;
        if let Some(wait) = wait {
            return Err(AuthError::RateLimited(Throttled {
                retry_after: wait,
                limit: None,
            }));
        }
        let stored = user.as_ref().and_then(|u| u.password_hash.clone());
        let (Some(mut user), Some(stored)) = (user, stored) else {
            let hasher = self.hasher.clone();
            blocking(move || hasher.verify_dummy(password.as_bytes())).await?;
            self.login_failed(&account, failures, None, origin, "unknown email")
                .await;
            return Err(AuthError::InvalidCredentials);
        };
        let hasher = self.hasher.clone();
        let (verification, password) = blocking(move || {
            let v = hasher.verify(password.as_bytes(), &stored);
            (v, password)
        })
        .await?;
        let now = self.clock.now();
        let refused = match verification {
            Verification::Mismatch => Some((AuthError::InvalidCredentials, "wrong password")),
            _ if user.status != UserStatus::Active => {
                Some((AuthError::AccountDisabled, "account disabled"))
            }
            _ if self.settings.require_verified_email && !user.email_verified => {
                Some((AuthError::EmailNotVerified, "email not verified"))
            }
            _ => None,
        };
        if let Some((error, why)) = refused {
            if verification == Verification::Mismatch {
                self.login_failed(&account, failures, Some(&user), origin, why)
                    .await;
            } else {
                let record = self
                    .audit(user.id, AuditAction::LoginFailed, origin, now)
                    .map_audit(|r| r.with_detail(why));
                if let Err(e) = self.accounts.commit(&[record]).await {
                    tracing::warn!(user_id = %user.id, error = %crate::error::Chain(&e), "failed login not audited");
                }
            }
            return Err(error);
        }
        if verification == Verification::ValidNeedsRehash {
            if let Ok(p) = Password::existing(password) {
                let new_hash = self.hash_password(p).await?;
                let updated = user.updated(now, |u| u.password_hash = Some(new_hash));
                match self.users.update_user(&updated, user.version).await {
                    Ok(()) => user = updated,
                    // A concurrent change wins; the next login rehashes.
                    Err(e) => {
                        tracing::warn!(user_id = %user.id, error = %crate::error::Chain(&e), "password rehash not stored")
                    }
                }
            }
        }
        let tokens = self
            .sign_in(&user, SignInMethod::Password, origin, Vec::new(), None)
            .await?;
        if failures.is_some_and(|f| f.count > 0) {
            if let Some(limiter) = &self.limiter {
                if let Err(e) = limiter.login_succeeded(&account).await {
                    tracing::warn!(user_id = %user.id, error = %crate::error::Chain(&e), "failed logins not reset");
                }
            }
        }
        Ok((user, tokens))
    }

    /// The wait owed by earlier failures of `account` (none without a limiter; fails open).
    async fn login_wait(&self, account: &str) -> (Option<LoginFailures>, Option<i64>) {
        let Some(limiter) = &self.limiter else {
            return (None, None);
        };
        limiter.login_wait(account).await.unwrap_or_else(|e| {
            tracing::warn!(error = %crate::error::Chain(&e), "failed logins unreadable; login not throttled");
            (None, None)
        })
    }

    /// Records a failed password login of `account` and, for an existing `user`, audits it
    /// (with `login_throttled` when this failure, the one after `previous`, starts or lengthens a
    /// delay) — both writes at once, so a known and an unknown email wait the same one round
    /// trip.
    async fn login_failed(
        &self,
        account: &str,
        previous: Option<LoginFailures>,
        user: Option<&User>,
        origin: &RequestOrigin,
        why: &str,
    ) {
        let now = self.clock.now();
        let count = async {
            match &self.limiter {
                Some(l) => l.login_failed(account).await.map(drop),
                None => Ok(()),
            }
        };
        let audit = async {
            let Some(user) = user else {
                return Ok(());
            };
            let mut records = vec![self
                .audit(user.id, AuditAction::LoginFailed, origin, now)
                .map_audit(|r| r.with_detail(why))];
            let failures = previous.map_or(1, |f| f.count.saturating_add(1));
            let delay = LoginFailures::delay(failures);
            if self.limiter.is_some() && delay > 0 {
                records.push(
                    self.audit(user.id, AuditAction::LoginThrottled, origin, now)
                        .map_audit(|r| {
                            r.with_detail(format!(
                                "{failures} failed logins; next attempt in {delay} s"
                            ))
                        }),
                );
            }
            self.accounts.commit(&records).await
        };
        let (counted, audited) = tokio::join!(count, audit);
        if let Err(e) = audited {
            tracing::warn!(error = %crate::error::Chain(&e), "failed login not audited");
        }
        if let Err(e) = counted {
            tracing::warn!(error = %crate::error::Chain(&e), "failed login not counted");
        }
    }

    /// Exchanges a refresh token for a new access token and a rotated refresh token.
    ///
    /// The live token rotates (compare-and-swap on its hash, so it rotates once). The token rotated
    /// away within `reuse_grace` seconds gets the same successor the first caller got. Any older
    /// remembered token revokes the session (audited). A session whose user's epoch moved on
    /// (log out everywhere, password reset or change) is revoked.
    ///
    /// # Errors
    /// `InvalidRefreshToken` (malformed, unknown session or secret), `RefreshTokenReused` (session
    /// now revoked), `SessionRevoked`, `SessionExpired`, `AccountDisabled`, `Store`, `NoSigningKey`,
    /// `Internal`.
    pub async fn refresh_token(
        &self,
        raw: &str,
        origin: &RequestOrigin,
    ) -> Result<IssuedTokens, AuthError> {
        let token = RefreshToken::parse(raw).ok_or(AuthError::InvalidRefreshToken)?;
        self.limit(rules::REFRESH_ACCOUNT, &token.user_id.to_string())
            .await?;
        let presented = token.hash();
        let (session, user) = tokio::join!(
            self.sessions.get_session(&token.user_id, &token.session_id),
            self.users.get_user(&token.user_id)
        );
        let (mut session, user) = match (session?, user?) {
            (Some(s), Some(u)) => (s, u),
            _ => return Err(AuthError::InvalidRefreshToken),
        };
        // At most two rounds: a lost compare-and-swap means another request rotated this very
        // token a moment ago, and the second round sees it as the previous token (grace).
        for _ in 0..2 {
            let now = self.clock.now();
            let decision = session.decide(&presented, now, &self.settings.session);
            if session.revoked_by_epoch(user.session_epoch)
                && !matches!(decision, RefreshDecision::Unknown)
            {
                return Err(AuthError::SessionRevoked);
            }
            match decision {
                RefreshDecision::Rotate => {
                    if user.status != UserStatus::Active {
                        return Err(AuthError::AccountDisabled);
                    }
                    let next_token =
                        RefreshToken::generate(user.id, session.id).map_err(|_| random_failed())?;
                    let next = session.rotated(
                        next_token.hash(),
                        token.seal_successor(&next_token),
                        now,
                        &self.settings.session,
                    );
                    match self.sessions.rotate_session(&next, &presented).await {
                        Ok(()) => return self.issue(&user, &next, next_token.encode(), now).await,
                        Err(StoreError::Conflict(Conflict::SessionChanged)) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                RefreshDecision::GraceReplay => {
                    if user.status != UserStatus::Active {
                        return Err(AuthError::AccountDisabled);
                    }
                    let successor = session
                        .sealed_successor
                        .as_deref()
                        .and_then(|sealed| token.open_successor(sealed, &session.current_hash))
                        .ok_or(AuthError::InvalidRefreshToken)?;
                    tracing::info!(user_id = %user.id, session_id = %session.id, "refresh within grace window: same successor handed out");
                    return self.issue(&user, &session, successor.encode(), now).await;
                }
                RefreshDecision::Reuse => {
                    let revoke = Change::RevokeSession {
                        user_id: user.id,
                        session_id: session.id,
                        at: now,
                        reason: RevokeReason::Reuse,
                    };
                    let record = self
                        .audit(user.id, AuditAction::RefreshTokenReused, origin, now)
                        .map_audit(|r| r.with_session(session.id));
                    self.accounts.commit(&[revoke, record]).await?;
                    tracing::warn!(user_id = %user.id, session_id = %session.id, "refresh token reuse detected: session revoked");
                    return Err(AuthError::RefreshTokenReused);
                }
                RefreshDecision::Revoked => return Err(AuthError::SessionRevoked),
                RefreshDecision::Expired => return Err(AuthError::SessionExpired),
                RefreshDecision::Unknown => return Err(AuthError::InvalidRefreshToken),
            }
            session = self
                .sessions
                .get_session(&token.user_id, &token.session_id)
                .await?
                .ok_or(AuthError::InvalidRefreshToken)?;
        }
        // Changed again between the two rounds: a retry will see where it settled.
        Err(AuthError::Store(StoreError::Conflict(
            Conflict::SessionChanged,
        )))
    }

    /// Revokes the session a refresh token belongs to (audited). Logging out a revoked or expired
    /// session succeeds (idempotent); presenting any token this session remembers is enough.
    ///
    /// # Errors
    /// `InvalidRefreshToken` if the token is malformed or matches nothing in its session;
    /// `Store`.
    pub async fn logout(&self, raw: &str, origin: &RequestOrigin) -> Result<(), AuthError> {
        let token = RefreshToken::parse(raw).ok_or(AuthError::InvalidRefreshToken)?;
        let session = self
            .sessions
            .get_session(&token.user_id, &token.session_id)
            .await?
            .ok_or(AuthError::InvalidRefreshToken)?;
        let now = self.clock.now();
        let reason = match session.decide(&token.hash(), now, &self.settings.session) {
            RefreshDecision::Unknown => return Err(AuthError::InvalidRefreshToken),
            RefreshDecision::Revoked => return Ok(()),
            RefreshDecision::Reuse => RevokeReason::Reuse,
            RefreshDecision::Rotate | RefreshDecision::GraceReplay | RefreshDecision::Expired => {
                RevokeReason::Logout
            }
        };
        let revoke = Change::RevokeSession {
            user_id: token.user_id,
            session_id: token.session_id,
            at: now,
            reason,
        };
        let record = self
            .audit(token.user_id, AuditAction::LoggedOut, origin, now)
            .map_audit(|r| r.with_session(token.session_id));
        match self.accounts.commit(&[revoke, record]).await {
            Ok(()) | Err(StoreError::Conflict(Conflict::SessionChanged)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The current user behind a verified access token. Also checks the token's session, so a
    /// logged-out session stops working here at once (other services verifying the JWT alone
    /// accept it until `exp`).
    ///
    /// # Errors
    /// `InvalidAccessToken` if the user or session is gone or revoked; `Store`.
    pub async fn me(&self, who: &AuthenticatedUser) -> Result<Me, AuthError> {
        let (current, plan) = tokio::join!(self.current(who), self.plan_claims(&who.user_id));
        let (user, _) = current?;
        Ok(Me {
            user,
            plan: plan?.plan,
        })
    }

    /// The user and session behind a verified access token, both live: the user active, the
    /// session neither revoked (directly or by the user's epoch) nor expired. Every account
    /// route acting on "me" starts here.
    ///
    /// # Errors
    /// `InvalidAccessToken` otherwise; `Store`.
    pub async fn current(&self, who: &AuthenticatedUser) -> Result<(User, Session), AuthError> {
        let (user, session) = tokio::join!(
            self.users.get_user(&who.user_id),
            self.sessions.get_session(&who.user_id, &who.session_id),
        );
        match (user?, session?) {
            (Some(user), Some(session))
                if user.status == UserStatus::Active
                    && session.is_active(
                        self.clock.now(),
                        user.session_epoch,
                        &self.settings.session,
                    ) =>
            {
                Ok((user, session))
            }
            _ => Err(AuthError::InvalidAccessToken),
        }
    }

    /// The plan, tier and entitlements the user has access to now, copied into access tokens at
    /// issue time.
    pub(super) async fn plan_claims(&self, user_id: &UserId) -> Result<PlanClaims, AuthError> {
        let access = self.access.of(user_id, self.clock.now()).await?;
        Ok(PlanClaims {
            plan: access.plan,
            tier: access.tier,
            entitlements: access
                .entitlements
                .into_iter()
                .map(|(k, v)| {
                    let value = match v {
                        Entitlement::Flag(b) => serde_json::Value::Bool(b),
                        Entitlement::Limit(n) => serde_json::Value::from(n),
                    };
                    (k, value)
                })
                .collect(),
        })
    }

    /// The id of the user with `email` (any case), if any: for operator commands.
    ///
    /// # Errors
    /// `Validation` (not an address), `Store`.
    pub async fn user_id_by_email(&self, email: &str) -> Result<Option<UserId>, AuthError> {
        let email = Email::parse(email).map_err(|e| AuthError::Validation(vec![e]))?;
        Ok(self.users.find_user_id_by_email(email.normalized()).await?)
    }

    /// The user owning a normalized email, if any (claim, then profile).
    pub(super) async fn user_by_email(
        &self,
        normalized_email: &str,
    ) -> Result<Option<User>, AuthError> {
        match self.users.find_user_id_by_email(normalized_email).await? {
            Some(id) => Ok(self.users.get_user(&id).await?),
            None => Ok(None),
        }
    }

    pub(super) async fn hash_password(&self, password: Password) -> Result<String, AuthError> {
        let hasher = self.hasher.clone();
        blocking(move || hasher.hash(password.expose()))
            .await?
            .map_err(|e| {
                AuthError::Internal(crate::error::message(format!(
                    "password hashing failed: {e}"
                )))
            })
    }

    /// Whether `password` is the user's (argon2 off the async workers; a user without a password
    /// never matches, after the same work).
    pub(super) async fn password_matches(
        &self,
        user: &User,
        password: String,
    ) -> Result<bool, AuthError> {
        let hasher = self.hasher.clone();
        let stored = user.password_hash.clone();
        blocking(move || match stored {
            Some(phc) => hasher.verify(password.as_bytes(), &phc) != Verification::Mismatch,
            None => {
                hasher.verify_dummy(password.as_bytes());
                false
            }
        })
        .await
    }

    /// An audit record of `action` on `user_id`'s account, as a change to commit.
    pub(super) fn audit(
        &self,
        user_id: UserId,
        action: AuditAction,
        origin: &RequestOrigin,
        now: i64,
    ) -> Change {
        Change::Audit(AuditRecord::new(
            user_id,
            action,
            origin,
            now,
            self.settings.audit_retention,
        ))
    }

    /// A new session of `user` and its first refresh token (not stored yet).
    pub(super) fn new_session(
        &self,
        user: &User,
        method: SignInMethod,
        origin: &RequestOrigin,
        now: i64,
    ) -> Result<(Session, RefreshToken), AuthError> {
        let token =
            RefreshToken::generate(user.id, SessionId::new()).map_err(|_| random_failed())?;
        let session = Session::start(
            user.id,
            token.session_id,
            token.hash(),
            now,
            &self.settings.session,
            SessionOrigin {
                user_agent: origin.user_agent.clone(),
                ip: origin.ip.clone(),
                method: Some(method),
                epoch: user.session_epoch,
            },
        );
        Ok((session, token))
    }

    /// Starts a session for `user` signed in by `method`, committing it with `extra` changes
    /// (spending the code or link that signed them in) and the audit record of the method (with
    /// `detail`, e.g. the identity provider), and issues its tokens.
    pub(super) async fn sign_in(
        &self,
        user: &User,
        method: SignInMethod,
        origin: &RequestOrigin,
        extra: Vec<Change>,
        detail: Option<&str>,
    ) -> Result<IssuedTokens, AuthError> {
        if self
            .signer
            .as_ref()
            .and_then(|r| r.held().signing)
            .is_none()
        {
            return Err(AuthError::NoSigningKey);
        }
        let now = self.clock.now();
        let (session, token) = self.new_session(user, method, origin, now)?;
        let action = match method {
            SignInMethod::Signup => AuditAction::SignedUp,
            SignInMethod::Password => AuditAction::LoginSucceeded,
            SignInMethod::EmailCode => AuditAction::CodeUsed,
            SignInMethod::MagicLink => AuditAction::MagicLinkUsed,
            SignInMethod::OAuth => AuditAction::OAuthSignIn,
        };
        let mut changes = extra;
        changes.push(Change::CreateSession(session.clone()));
        changes.push(self.audit(user.id, action, origin, now).map_audit(|r| {
            let r = r.with_session(session.id);
            match detail {
                Some(d) => r.with_detail(d),
                None => r,
            }
        }));
        self.accounts.commit(&changes).await?;
        self.issue(user, &session, token.encode(), now).await
    }

    async fn issue(
        &self,
        user: &User,
        session: &Session,
        refresh_token: String,
        now: i64,
    ) -> Result<IssuedTokens, AuthError> {
        let signer = match &self.signer {
            Some(ring) => ring.current().await.signing,
            None => None,
        }
        .ok_or(AuthError::NoSigningKey)?;
        let plan = self.plan_claims(&user.id).await?;
        let claims = AccessClaims {
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone(),
            sub: user.id.to_string(),
            sid: session.id.to_string(),
            iat: now,
            nbf: now,
            exp: now + self.settings.access_token_ttl,
            jti: uuid::Uuid::now_v7().to_string(),
            email_verified: user.email_verified,
            plan: plan.plan,
            tier: plan.tier,
            entitlements: plan.entitlements,
            roles: user.roles.clone(),
        };
        let access_token = signer.sign(&claims)?;
        Ok(IssuedTokens {
            access_token,
            expires_in: self.settings.access_token_ttl,
            refresh_token,
            refresh_expires_in: (session.expires_at - now).max(0),
        })
    }
}

/// Edits the audit record inside a [`Change::Audit`] (other changes pass through).
pub(super) trait MapAudit {
    /// Applies `f` to the record.
    fn map_audit(self, f: impl FnOnce(AuditRecord) -> AuditRecord) -> Self;
}

impl MapAudit for Change {
    fn map_audit(self, f: impl FnOnce(AuditRecord) -> AuditRecord) -> Self {
        match self {
            Change::Audit(r) => Change::Audit(f(r)),
            other => other,
        }
    }
}

pub(super) fn random_failed() -> AuthError {
    AuthError::Internal(crate::error::message("random source failed"))
}

/// Runs CPU-bound work (argon2) off the async workers, inside the caller's span (so its logs
/// keep the request id).
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AuthError> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await
        .map_err(|e| AuthError::Internal(Box::new(e)))
}
