//! Storage: one trait per aggregate ([`UserStore`], [`SessionStore`]), each implemented by the
//! DynamoDB store (production, feature `aws`) and the embedded store (local, feature `embedded`).
//! Both keep the same items under the same keys ([`keys`]) and honour the same conditions; the
//! conformance suite in `tests/` runs one set of cases against both.

#[cfg(feature = "aws")]
pub mod dynamo;
#[cfg(feature = "embedded")]
pub mod embedded;
pub mod keys;

use crate::billing::records::{EventEffects, EventStatus, WebhookEvent};
use crate::billing::state::{Provider, Subscription};
use crate::domain::{RevokeReason, Session, SessionId, TokenHash, User, UserId};
use async_trait::async_trait;

/// A storage failure, classified so callers know whether to retry.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A condition did not hold (unique email taken, stale version, token already rotated).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The item does not exist.
    #[error("not found")]
    NotFound,
    /// The backend is throttled, timed out or unreachable: retrying may succeed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A stored item does not decode, or the backend failed in a way retrying will not fix.
    #[error("store error: {0}")]
    Internal(String),
}

/// Users and their email claims (`USER#<id>`/`PROFILE`, `EMAIL#<normalized>`/`EMAIL`).
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Stores `user` and claims its normalized email in one atomic write.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] (`"email_taken"`) if the email is claimed or the id exists;
    /// nothing is written then.
    async fn create_user(&self, user: &User) -> Result<(), StoreError>;

    /// Reads a user by id (strongly consistent).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn get_user(&self, id: &UserId) -> Result<Option<User>, StoreError>;

    /// Resolves a normalized (lowercase) email through its claim.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn find_user_id_by_email(
        &self,
        normalized_email: &str,
    ) -> Result<Option<UserId>, StoreError>;

    /// Replaces `user` if the stored version equals `expected_version`.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] (`"stale_version"`) if the user is missing or was changed meanwhile.
    async fn update_user(&self, user: &User, expected_version: u64) -> Result<(), StoreError>;
}

/// Sessions (`USER#<id>`/`SESSION#<sid>`): one refresh-token family each.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] (`"session_exists"`) if the id is taken.
    async fn create_session(&self, session: &Session) -> Result<(), StoreError>;

    /// Reads a session (strongly consistent).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn get_session(
        &self,
        user_id: &UserId,
        id: &SessionId,
    ) -> Result<Option<Session>, StoreError>;

    /// Replaces the session with `next` if the stored one is not revoked and its current hash
    /// equals `expected_current` — the compare-and-swap that makes each token rotate once.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] (`"session_changed"`) if the session is missing, revoked, or was
    /// rotated meanwhile; nothing is written then.
    async fn rotate_session(
        &self,
        next: &Session,
        expected_current: &TokenHash,
    ) -> Result<(), StoreError>;

    /// Marks the session revoked at `at` (Unix seconds) for `reason`. Revoking a revoked session
    /// succeeds and keeps the first time and reason.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such session.
    async fn revoke_session(
        &self,
        user_id: &UserId,
        id: &SessionId,
        at: i64,
        reason: RevokeReason,
    ) -> Result<(), StoreError>;

    /// All sessions of a user, revoked ones included, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn list_sessions(&self, user_id: &UserId) -> Result<Vec<Session>, StoreError>;
}

/// Subscriptions and customer claims (`USER#<id>`/`SUBSCRIPTION`,
/// `CUSTOMER#<provider>#<id>`/`CUSTOMER`).
#[async_trait]
pub trait BillingStore: Send + Sync {
    /// The user's subscription (strongly consistent).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn get_subscription(&self, user_id: &UserId) -> Result<Option<Subscription>, StoreError>;

    /// Writes `subscription` if the stored version is `expected_version` (`None`: nothing stored).
    /// For changes made outside the webhook pipeline (the checkout redirect sync).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] (`"stale_version"`) if the stored version differs.
    async fn put_subscription(
        &self,
        subscription: &Subscription,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError>;

    /// Claims a provider customer for a user, once. Returns the owner: `user_id` if the claim is
    /// new or already theirs, the other owner otherwise.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn claim_customer(
        &self,
        provider: Provider,
        customer_id: &str,
        user_id: &UserId,
    ) -> Result<UserId, StoreError>;

    /// The user who owns a provider customer.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn find_customer(
        &self,
        provider: Provider,
        customer_id: &str,
    ) -> Result<Option<UserId>, StoreError>;

    /// The provider customer id claimed for `user_id`, if any (`USER#<id>`/`CUSTOMER#<provider>`).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn customer_of(
        &self,
        provider: Provider,
        user_id: &UserId,
    ) -> Result<Option<String>, StoreError>;
}

/// The webhook event ledger (`EVENT#<provider>#<id>`/`EVENT`): each event takes effect once.
#[async_trait]
pub trait EventLedger: Send + Sync {
    /// Stores `event` unless one with its id exists. Returns the stored event and whether it was
    /// new; an existing event is returned unchanged.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn record_event(&self, event: &WebhookEvent) -> Result<(WebhookEvent, bool), StoreError>;

    /// Reads an event (strongly consistent).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn get_event(
        &self,
        provider: Provider,
        event_id: &str,
    ) -> Result<Option<WebhookEvent>, StoreError>;

    /// Marks an event `Ignored` or `Failed` (with the attempt count and error), unless it is
    /// already `Processed` (then nothing changes and this succeeds).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such event.
    async fn mark_event(
        &self,
        provider: Provider,
        event_id: &str,
        status: EventStatus,
        attempts: u32,
        error: Option<String>,
        at: i64,
    ) -> Result<(), StoreError>;

    /// In one atomic write: applies `effects` (the subscription only if its stored version is
    /// the expected one; the payment only if not yet recorded) and marks the event `Processed` —
    /// only if it is not processed yet.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if the event was already processed or the subscription version
    /// moved; nothing is written then. [`StoreError::NotFound`] if the event is missing.
    async fn apply_event(
        &self,
        provider: Provider,
        event_id: &str,
        effects: &EventEffects,
        at: i64,
    ) -> Result<(), StoreError>;
}
