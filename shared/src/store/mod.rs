//! Storage: one trait per aggregate — [`UserStore`], [`SessionStore`], [`BillingStore`],
//! [`EventLedger`] — each implemented by the DynamoDB store ([`dynamo`], feature `aws`) and the
//! embedded store ([`embedded`], feature `embedded`). Both keep the same items ([`items`]) under
//! the same keys ([`keys`]) and honour the same conditions; one conformance suite
//! (`tests/tests/store_conformance.rs`) runs every case against both.

#[cfg(feature = "aws")]
pub mod dynamo;
#[cfg(feature = "embedded")]
pub mod embedded;
pub mod items;
pub mod keys;

use crate::domain::{
    CustomerId, EventEffects, EventId, EventStatus, Payment, Provider, RevokeReason, Session,
    SessionId, Subscription, SubscriptionWrite, TokenHash, User, UserId, WebhookEvent,
};
use crate::error::BoxError;
use async_trait::async_trait;

/// Which condition of a conditional write did not hold. Callers match on it to decide what to
/// do (retry the read-modify-write, answer 409, treat as already done).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// The email is claimed by another user (or the user id exists).
    #[error("email already taken")]
    EmailTaken,
    /// A session with this id exists.
    #[error("session already exists")]
    SessionExists,
    /// The session is missing, revoked, or its token was rotated meanwhile.
    #[error("session changed meanwhile")]
    SessionChanged,
    /// The stored version is not the expected one: someone else wrote first.
    #[error("stale version")]
    StaleVersion,
    /// The webhook event was already processed.
    #[error("event already processed")]
    AlreadyProcessed,
}

/// A storage failure, classified so callers know whether to retry.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A condition did not hold; nothing was written.
    #[error("conflict: {0}")]
    Conflict(Conflict),
    /// The item does not exist.
    #[error("not found")]
    NotFound,
    /// The backend is throttled, timed out or unreachable: retrying may succeed.
    #[error("store unavailable")]
    Unavailable(#[source] BoxError),
    /// A stored item does not decode, or the backend failed in a way retrying will not fix.
    #[error("store failed")]
    Internal(#[source] BoxError),
}

impl StoreError {
    /// Whether retrying the same call may succeed (throttling, timeouts, transport failures).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// A permanent failure with `cause` as its source.
    pub fn internal(cause: impl Into<BoxError>) -> Self {
        Self::Internal(cause.into())
    }
}

/// Users and their email claims (`USER#<id>`/`PROFILE`, `EMAIL#<normalized>`/`EMAIL`).
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Stores `user` and claims its normalized email in one atomic write.
    ///
    /// # Errors
    /// [`Conflict::EmailTaken`] if the email is claimed or the id exists; nothing is written
    /// then. [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
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
    /// [`Conflict::StaleVersion`] if the user is missing or was changed meanwhile.
    async fn update_user(&self, user: &User, expected_version: u64) -> Result<(), StoreError>;
}

/// Sessions (`USER#<id>`/`SESSION#<sid>`): one refresh-token family each.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session.
    ///
    /// # Errors
    /// [`Conflict::SessionExists`] if the id is taken.
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
    /// [`Conflict::SessionChanged`] if the session is missing, revoked, or was rotated
    /// meanwhile; nothing is written then.
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
/// `CUSTOMER#<provider>#<id>`/`CUSTOMER`, `USER#<id>`/`CUSTOMER#<provider>`).
#[async_trait]
pub trait BillingStore: Send + Sync {
    /// The user's subscription (strongly consistent).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn get_subscription(&self, user_id: &UserId) -> Result<Option<Subscription>, StoreError>;

    /// Writes the subscription if the stored version is the expected one (`None`: nothing
    /// stored). For changes made outside the webhook pipeline (the checkout redirect sync).
    ///
    /// # Errors
    /// [`Conflict::StaleVersion`] if the stored version differs; nothing is written then.
    async fn put_subscription(&self, write: &SubscriptionWrite) -> Result<(), StoreError>;

    /// Claims a provider customer for a user, once. Returns the owner: `user_id` if the claim is
    /// new or already theirs, the other owner otherwise (the claim never moves).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn claim_customer(
        &self,
        provider: Provider,
        customer: &CustomerId,
        user_id: &UserId,
    ) -> Result<UserId, StoreError>;

    /// The user who owns a provider customer.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn find_customer(
        &self,
        provider: Provider,
        customer: &CustomerId,
    ) -> Result<Option<UserId>, StoreError>;

    /// A user's payments, oldest first (`USER#<id>` / `PAYMENT#…`, sorted by time).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn list_payments(&self, user_id: &UserId) -> Result<Vec<Payment>, StoreError>;

    /// The provider customer claimed for `user_id`, if any.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn customer_of(
        &self,
        provider: Provider,
        user_id: &UserId,
    ) -> Result<Option<CustomerId>, StoreError>;
}

/// How a processing attempt that did not take effect is recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventMark {
    /// `Ignored` (never retried) or `Failed` (the queue retries).
    pub status: EventStatus,
    /// Processing attempts so far, this one included.
    pub attempts: u32,
    /// What went wrong (no secrets), for `Failed`; why it was ignored, for `Ignored`.
    pub error: Option<String>,
    /// When, Unix seconds.
    pub at: i64,
}

/// The webhook event ledger (`EVENT#<provider>#<id>`/`EVENT`): each event takes effect once.
#[async_trait]
pub trait EventLedger: Send + Sync {
    /// Stores `event` unless one with its id exists, durably before returning (the caller
    /// acknowledges the provider next). Returns the stored event and whether it was new; an
    /// existing event is returned unchanged.
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
        event_id: &EventId,
    ) -> Result<Option<WebhookEvent>, StoreError>;

    /// Records `mark` on the event, unless it is already `Processed` (then nothing changes and
    /// this succeeds).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such event.
    async fn mark_event(
        &self,
        provider: Provider,
        event_id: &EventId,
        mark: &EventMark,
    ) -> Result<(), StoreError>;

    /// In one atomic write: applies `effects` (the subscription only if its stored version is
    /// the expected one; the payment only if not yet recorded) and marks the event `Processed`
    /// at `at` (Unix seconds) — only if it is not processed yet.
    ///
    /// # Errors
    /// [`Conflict::AlreadyProcessed`] if the event was already processed;
    /// [`Conflict::StaleVersion`] if the subscription version moved; nothing is written then.
    /// [`StoreError::NotFound`] if the event is missing.
    async fn apply_event(
        &self,
        provider: Provider,
        event_id: &EventId,
        effects: &EventEffects,
        at: i64,
    ) -> Result<(), StoreError>;
}
