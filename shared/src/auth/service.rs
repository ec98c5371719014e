//! The account use cases: [`Auth::signup`], [`Auth::login`], [`Auth::refresh_token`],
//! [`Auth::logout`], [`Auth::me`]. Function crates call these and only map input and output.

use super::password::{PasswordHasher, Verification};
use super::refresh::RefreshToken;
use super::tokens::{AccessClaims, KeySet, KeySetError, PublicKeys, TokenError};
use crate::billing::PlanAccess;
use crate::clock::Clock;
use crate::domain::{
    Email, Entitlement, Password, RefreshDecision, RevokeReason, Session, SessionId, SessionPolicy,
    User, UserId, UserStatus, ValidationError,
};
use crate::error::BoxError;
use crate::store::{Conflict, SessionStore, StoreError, UserStore};
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
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            issuer: "http://127.0.0.1:3000".to_owned(),
            audience: "tollgate".to_owned(),
            access_token_ttl: 900,
            session: SessionPolicy::default(),
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

/// The plan facts copied into an access token at issue time.
#[derive(Debug, Clone, PartialEq)]
struct PlanClaims {
    plan: String,
    tier: u32,
    entitlements: BTreeMap<String, serde_json::Value>,
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

/// Verifies access tokens with the public keys and the clock: what every route behind a bearer
/// token needs, and nothing that can issue a token.
#[derive(Clone)]
pub struct AccessVerifier {
    keys: Arc<PublicKeys>,
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
    /// A verifier over `keys`.
    pub fn new(keys: Arc<PublicKeys>, clock: Arc<dyn Clock>) -> Self {
        Self { keys, clock }
    }

    /// The public keys (the JWKS).
    pub fn keys(&self) -> &PublicKeys {
        &self.keys
    }

    /// Verifies an access token (signature, `iss`, `aud`, `exp`, `nbf`) and reads its subject.
    ///
    /// # Errors
    /// [`AuthError::InvalidAccessToken`], also for `sub`/`sid` that are not Tollgate ids.
    pub fn verify(&self, token: &str) -> Result<AuthenticatedUser, AuthError> {
        let claims = self
            .keys
            .verify(token, self.clock.now())
            .map_err(|e| match e {
                TokenError::Expired | TokenError::Invalid => AuthError::InvalidAccessToken,
            })?;
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

/// The account service: stores, signing keys, hasher, clock and settings.
pub struct Auth {
    users: Arc<dyn UserStore>,
    sessions: Arc<dyn SessionStore>,
    signer: Option<Arc<KeySet>>,
    hasher: PasswordHasher,
    clock: Arc<dyn Clock>,
    settings: AuthSettings,
    access: PlanAccess,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// Wires the service. Without a `signer` it can check sessions (`me`) but not issue tokens
    /// (signup, login and refresh answer [`AuthError::NoSigningKey`]).
    pub fn new(
        users: Arc<dyn UserStore>,
        sessions: Arc<dyn SessionStore>,
        signer: Option<Arc<KeySet>>,
        clock: Arc<dyn Clock>,
        settings: AuthSettings,
        access: PlanAccess,
    ) -> Self {
        Self {
            users,
            sessions,
            signer,
            hasher: PasswordHasher::new(),
            clock,
            settings,
            access,
        }
    }

    /// Creates an account and its first session.
    ///
    /// # Errors
    /// `Validation` (email syntax, password not 8..=128 characters — every field reported),
    /// `EmailTaken`, `Store`, `NoSigningKey`, `Internal`.
    pub async fn signup(
        &self,
        email: &str,
        password: String,
        user_agent: Option<String>,
    ) -> Result<(User, IssuedTokens), AuthError> {
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
            password_hash,
            status: UserStatus::Active,
            email_verified: false,
            roles: Vec::new(),
            created_at: now,
            updated_at: now,
            version: 1,
        };
        match self.users.create_user(&user).await {
            Ok(()) => {}
            Err(StoreError::Conflict(Conflict::EmailTaken)) => return Err(AuthError::EmailTaken),
            Err(e) => return Err(e.into()),
        }
        let tokens = self.start_session(&user, user_agent).await?;
        tracing::info!(user_id = %user.id, "user signed up");
        Ok((user, tokens))
    }

    /// Checks credentials and starts a session. Unknown emails cost one argon2 verification like
    /// known ones, and both failures are the same `InvalidCredentials`. A hash at old parameters
    /// is replaced after a successful login.
    ///
    /// # Errors
    /// `InvalidCredentials`, `AccountDisabled` (only after a correct password), `Store`,
    /// `NoSigningKey`, `Internal`.
    pub async fn login(
        &self,
        email: &str,
        password: String,
        user_agent: Option<String>,
    ) -> Result<(User, IssuedTokens), AuthError> {
        let user = match Email::parse(email) {
            Ok(email) => match self.users.find_user_id_by_email(email.normalized()).await? {
                Some(id) => self.users.get_user(&id).await?,
                None => None,
            },
            Err(_) => None,
        };
        let Some(mut user) = user else {
            let hasher = self.hasher.clone();
            blocking(move || hasher.verify_dummy(password.as_bytes())).await?;
            return Err(AuthError::InvalidCredentials);
        };
        let hasher = self.hasher.clone();
        let stored = user.password_hash.clone();
        let (verification, password) = blocking(move || {
            let v = hasher.verify(password.as_bytes(), &stored);
            (v, password)
        })
        .await?;
        match verification {
            Verification::Mismatch => return Err(AuthError::InvalidCredentials),
            _ if user.status != UserStatus::Active => return Err(AuthError::AccountDisabled),
            Verification::ValidNeedsRehash => {
                if let Ok(p) = Password::parse(password) {
                    let new_hash = self.hash_password(p).await?;
                    let expected = user.version;
                    let mut updated = user.clone();
                    updated.password_hash = new_hash;
                    updated.version += 1;
                    updated.updated_at = self.clock.now();
                    match self.users.update_user(&updated, expected).await {
                        Ok(()) => user = updated,
                        // A concurrent change wins; the next login rehashes.
                        Err(e) => {
                            tracing::warn!(user_id = %user.id, error = %crate::error::Chain(&e), "password rehash not stored")
                        }
                    }
                }
            }
            Verification::Valid => {}
        }
        let tokens = self.start_session(&user, user_agent).await?;
        Ok((user, tokens))
    }

    /// Exchanges a refresh token for a new access token and a rotated refresh token.
    ///
    /// The live token rotates (compare-and-swap on its hash, so it rotates once). The token rotated
    /// away within `reuse_grace` seconds gets the same successor the first caller got. Any older
    /// remembered token revokes the session.
    ///
    /// # Errors
    /// `InvalidRefreshToken` (malformed, unknown session or secret), `RefreshTokenReused` (session
    /// now revoked), `SessionRevoked`, `SessionExpired`, `AccountDisabled`, `Store`, `NoSigningKey`,
    /// `Internal`.
    pub async fn refresh_token(&self, raw: &str) -> Result<IssuedTokens, AuthError> {
        let token = RefreshToken::parse(raw).ok_or(AuthError::InvalidRefreshToken)?;
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
            match session.decide(&presented, now, &self.settings.session) {
                RefreshDecision::Rotate => {
                    if user.status != UserStatus::Active {
                        return Err(AuthError::AccountDisabled);
                    }
                    let next_token = RefreshToken::generate(user.id, session.id).map_err(|_| {
                        AuthError::Internal(crate::error::message("random source failed"))
                    })?;
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
                    self.sessions
                        .revoke_session(&user.id, &session.id, now, RevokeReason::Reuse)
                        .await?;
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

    /// Revokes the session a refresh token belongs to. Logging out a revoked or expired session
    /// succeeds (idempotent); presenting any token this session remembers is enough.
    ///
    /// # Errors
    /// `InvalidRefreshToken` if the token is malformed or matches nothing in its session;
    /// `Store`.
    pub async fn logout(&self, raw: &str) -> Result<(), AuthError> {
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
        match self
            .sessions
            .revoke_session(&token.user_id, &token.session_id, now, reason)
            .await
        {
            Ok(()) | Err(StoreError::NotFound) => Ok(()),
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
        let (user, session, plan) = tokio::join!(
            self.users.get_user(&who.user_id),
            self.sessions.get_session(&who.user_id, &who.session_id),
            self.plan_claims(&who.user_id)
        );
        let (user, session) = (user?, session?);
        match (user, session) {
            (Some(user), Some(session))
                if session.revoked_at.is_none() && user.status == UserStatus::Active =>
            {
                Ok(Me {
                    user,
                    plan: plan?.plan,
                })
            }
            _ => Err(AuthError::InvalidAccessToken),
        }
    }

    /// The plan, tier and entitlements the user has access to now, copied into access tokens at
    /// issue time.
    async fn plan_claims(&self, user_id: &UserId) -> Result<PlanClaims, AuthError> {
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

    async fn hash_password(&self, password: Password) -> Result<String, AuthError> {
        let hasher = self.hasher.clone();
        blocking(move || hasher.hash(password.expose()))
            .await?
            .map_err(|e| {
                AuthError::Internal(crate::error::message(format!(
                    "password hashing failed: {e}"
                )))
            })
    }

    async fn start_session(
        &self,
        user: &User,
        user_agent: Option<String>,
    ) -> Result<IssuedTokens, AuthError> {
        let now = self.clock.now();
        let token = RefreshToken::generate(user.id, SessionId::new())
            .map_err(|_| AuthError::Internal(crate::error::message("random source failed")))?;
        let session = Session::start(
            user.id,
            token.session_id,
            token.hash(),
            now,
            &self.settings.session,
            user_agent,
        );
        self.sessions.create_session(&session).await?;
        self.issue(user, &session, token.encode(), now).await
    }

    async fn issue(
        &self,
        user: &User,
        session: &Session,
        refresh_token: String,
        now: i64,
    ) -> Result<IssuedTokens, AuthError> {
        let signer = self.signer.as_ref().ok_or(AuthError::NoSigningKey)?;
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
            plan: plan.plan,
            tier: plan.tier,
            entitlements: plan.entitlements,
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

/// Runs CPU-bound work (argon2) off the async workers, inside the caller's span (so its logs
/// keep the request id).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AuthError> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await
        .map_err(|e| AuthError::Internal(Box::new(e)))
}
