//! API keys (docs/architecture.md §5c): create (the key shown once), list, revoke, and
//! authenticate a presented key as its user with the user's *current* plan.

use super::one_time::{hash_text, random_b64};
use super::service::{Auth, AuthError, AuthenticatedUser, MapAudit, PlanClaims};
use crate::domain::{
    api_key_id, ApiKey, ApiKeyKind, AuditAction, RequestOrigin, User, UserId, UserStatus,
    ValidationError, API_KEY_NAME_MAX, API_KEY_PREFIX, API_KEY_SECRET_BYTES,
};
use crate::store::{Change, Conflict, StoreError};

/// Who a presented API key acts for: the key, its owner (active) and the owner's plan now.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyPrincipal {
    /// The key as stored.
    pub key: ApiKey,
    /// Its owner.
    pub user: User,
    /// The owner's plan, tier and entitlements at this moment (not at the key's creation).
    pub plan: PlanClaims,
}

/// A key just created: the stored item and the key itself, which is shown this once.
#[derive(Clone, Debug, PartialEq)]
pub struct CreatedKey {
    /// The stored key (its hash only).
    pub key: ApiKey,
    /// `tg_<key id>_<secret>`: give it to the user now; it cannot be shown again.
    pub secret: String,
}

fn key_id() -> Result<String, AuthError> {
    let mut bytes = [0u8; 8];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| super::service::random_failed())?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn invalid(field: &'static str, message: &str) -> AuthError {
    AuthError::Validation(vec![ValidationError {
        field,
        message: message.to_owned(),
    }])
}

impl Auth {
    /// Creates an API key of `kind` for `owner` named `name`, expiring at `expires_at` (Unix
    /// seconds) if given: the key, the `api_key_created` audit record and a compare-and-swap of
    /// the owner's version in one write, so concurrent creations never pass `max_api_keys`.
    ///
    /// # Errors
    /// `Validation` (name empty or longer than 100 characters, expiry not in the future),
    /// `ApiKeyLimitReached` (the owner has `max_api_keys` live keys), `InvalidAccessToken` (no
    /// such owner), `Store` (also a write that kept losing to concurrent changes: retryable),
    /// `Internal`.
    pub async fn create_api_key(
        &self,
        owner: &UserId,
        kind: ApiKeyKind,
        name: &str,
        expires_at: Option<i64>,
        origin: &RequestOrigin,
    ) -> Result<CreatedKey, AuthError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > API_KEY_NAME_MAX {
            return Err(invalid("name", "must be 1 to 100 characters"));
        }
        let now = self.clock.now();
        if expires_at.is_some_and(|e| e <= now) {
            return Err(invalid("expires_at", "must be in the future"));
        }
        // The count is guarded by the owner's item: the key is written with the owner's version
        // moved on (compare-and-swap), so of concurrent creations that each counted a free place
        // only one commits per version; the others count again (and may find the limit reached).
        for _ in 0..super::account::VERSION_RETRIES {
            let user = self
                .users
                .get_user(owner)
                .await?
                .ok_or(AuthError::InvalidAccessToken)?;
            let live = self
                .accounts
                .list_api_keys(owner)
                .await?
                .into_iter()
                .filter(|k| k.check(&k.hash, now).is_ok())
                .count();
            if live >= self.settings.max_api_keys {
                return Err(AuthError::ApiKeyLimitReached);
            }
            let id = key_id()?;
            let secret = format!("{API_KEY_PREFIX}{id}_{}", random_b64(API_KEY_SECRET_BYTES)?);
            let key = ApiKey {
                key_id: id,
                user_id: *owner,
                kind,
                name: name.to_owned(),
                hash: hash_text(&secret),
                created_at: now,
                last_used_at: None,
                expires_at,
                revoked_at: None,
            };
            let audit = self
                .audit(*owner, AuditAction::ApiKeyCreated, origin, now)
                .map_audit(|r| {
                    r.with_detail(format!(
                        "{} ({})",
                        key.prefix(),
                        match kind {
                            ApiKeyKind::User => "user",
                            ApiKeyKind::Service => "service",
                        }
                    ))
                });
            // The same user, one version on (its profile and `updated_at` unchanged).
            let mut guard = user.clone();
            guard.version = user.version + 1;
            let changes = [
                Change::CreateApiKey(key.clone()),
                Change::UpdateUser {
                    user: guard,
                    expected_version: user.version,
                },
                audit,
            ];
            match self.accounts.commit(&changes).await {
                Ok(()) => return Ok(CreatedKey { key, secret }),
                Err(StoreError::Conflict(Conflict::StaleVersion)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(super::account::lost_race())
    }

    /// The caller's live keys (not revoked, not expired), oldest first.
    ///
    /// # Errors
    /// `InvalidAccessToken` (user or session gone), `Store`.
    pub async fn list_api_keys(&self, who: &AuthenticatedUser) -> Result<Vec<ApiKey>, AuthError> {
        self.current(who).await?;
        let now = self.clock.now();
        let mut keys: Vec<ApiKey> = self
            .accounts
            .list_api_keys(&who.user_id)
            .await?
            .into_iter()
            .filter(|k| k.check(&k.hash, now).is_ok())
            .collect();
        keys.sort_by_key(|k| k.created_at);
        Ok(keys)
    }

    /// Revokes one of the caller's keys: refused from the next request on, on every instance
    /// (each use reads the key). Audited (`api_key_revoked`).
    ///
    /// # Errors
    /// `ApiKeyNotFound` (no such live key of this user), `InvalidAccessToken`, `Store`.
    pub async fn revoke_api_key(
        &self,
        who: &AuthenticatedUser,
        key_id: &str,
        origin: &RequestOrigin,
    ) -> Result<(), AuthError> {
        self.current(who).await?;
        let now = self.clock.now();
        let audit = self
            .audit(who.user_id, AuditAction::ApiKeyRevoked, origin, now)
            .map_audit(|r| r.with_detail(format!("{API_KEY_PREFIX}{key_id}")));
        let revoke = Change::RevokeApiKey {
            user_id: who.user_id,
            key_id: key_id.to_owned(),
            at: now,
        };
        match self.accounts.commit(&[revoke, audit]).await {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict(Conflict::ApiKeyGone)) => Err(AuthError::ApiKeyNotFound),
            Err(e) => Err(e.into()),
        }
    }

    /// Authenticates a presented key: known, hash equal (constant time), not revoked, not
    /// expired, owner active — then the owner's plan now. Writes `last_used_at` at most once a
    /// minute (a failure to write it is logged, not returned).
    ///
    /// # Errors
    /// `InvalidApiKey` (not a key, unknown, mismatched, revoked or expired), `AccountDisabled`,
    /// `Store`.
    pub async fn authenticate_key(&self, presented: &str) -> Result<KeyPrincipal, AuthError> {
        let id = api_key_id(presented).ok_or(AuthError::InvalidApiKey)?;
        let key = self
            .accounts
            .get_api_key(id)
            .await?
            .ok_or(AuthError::InvalidApiKey)?;
        let now = self.clock.now();
        key.check(&hash_text(presented), now)
            .map_err(|_| AuthError::InvalidApiKey)?;
        let (user, plan) = tokio::join!(
            self.users.get_user(&key.user_id),
            self.plan_claims(&key.user_id)
        );
        let user = user?.ok_or(AuthError::InvalidApiKey)?;
        if user.status != UserStatus::Active {
            return Err(AuthError::AccountDisabled);
        }
        if key.touch_due(now) {
            if let Err(e) = self
                .accounts
                .touch_api_key(&key.user_id, &key.key_id, now)
                .await
            {
                tracing::warn!(key = %key.prefix(), error = %crate::error::Chain(&e), "last_used_at not written");
            }
        }
        Ok(KeyPrincipal {
            key,
            user,
            plan: plan?,
        })
    }
}

/// Who calls a read route that takes either credential (`/auth/me`, `/billing/subscription`):
/// the subject of a verified access token, or a user's API key with the user's plan now.
#[derive(Clone, Debug, PartialEq)]
pub enum Caller {
    /// An access token.
    Token(Box<AuthenticatedUser>),
    /// A user key (service keys are refused where a user must act).
    Key(Box<KeyPrincipal>),
}

/// Like [`Caller`], but a service key is accepted too (the usage API: a service key acts for
/// any user it names).
#[derive(Clone, Debug, PartialEq)]
pub struct AnyCaller(pub Caller);

impl Caller {
    /// The user acted for.
    pub fn user_id(&self) -> UserId {
        match self {
            Self::Token(who) => who.user_id,
            Self::Key(p) => p.user.id,
        }
    }
}
