//! Storage: one trait per aggregate — [`UserStore`], [`SessionStore`], [`AccountStore`] (the
//! atomic account writes of [`Change`]s, one-time secrets, the audit log), [`Outbox`] (the mail
//! outbox), [`BillingStore`], [`EventLedger`], [`RateLimiter`] (request counters), [`UsageStore`]
//! (metered usage), [`CreditStore`] (credit balances and their ledger) — each implemented by the DynamoDB store ([`dynamo`], feature `aws`) and the
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
    ApiKey, AuditRecord, CreditEntry, CustomerId, EmailOtp, EventEffects, EventId, EventStatus,
    Identity, LoginFailures, MailStatus, Notices, OAuthState, OneTimeToken, OutboundEvent,
    OutboundStatus, OutboxMail, Payment, Period, Provider, RateDecision, RateRule, RevokeReason,
    Session, SessionId, Subscription, SubscriptionWrite, TokenHash, TokenPurpose, User, UserId,
    WebhookEvent,
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
    /// The one-time token is gone (spent, expired and deleted, never existed) or is for another
    /// purpose.
    #[error("one-time token already spent")]
    TokenSpent,
    /// The email's sign-in code was replaced, spent, or tried meanwhile.
    #[error("sign-in code changed meanwhile")]
    OtpChanged,
    /// An item with this key exists (an outbox cause already queued, a token hash taken).
    #[error("item already exists")]
    ItemExists,
    /// The outbox item is not in the state the caller expected (not claimed by it any more).
    #[error("mail changed meanwhile")]
    MailChanged,
    /// The identity at the provider is linked to a user already.
    #[error("identity already linked")]
    IdentityTaken,
    /// The user has an identity at this provider already.
    #[error("the user already has an identity at this provider")]
    ProviderLinked,
    /// The identity to unlink is not (any more) linked to this user.
    #[error("identity not linked")]
    IdentityNotLinked,
    /// The authorization state is gone (spent, or never existed).
    #[error("authorization state already spent")]
    StateSpent,
    /// The API key is gone or revoked already.
    #[error("API key not found or revoked")]
    ApiKeyGone,
    /// Counting would pass the usage ceiling.
    #[error("usage limit reached")]
    UsageLimit,
    /// The idempotency key was used for another feature or quantity.
    #[error("idempotency key reused with other parameters")]
    IdempotencyMismatch,
    /// The balance does not cover a spend.
    #[error("insufficient credits")]
    InsufficientCredits,
    /// A paging cursor that no page of this list made.
    #[error("not a cursor of this list")]
    BadCursor,
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

    /// A page of users — at most `limit`, after `cursor` (a cursor an earlier page returned) —
    /// in the store's order (DynamoDB: a `Scan` filtered to profiles, so a page costs reads of
    /// every item it passes; for the admin API, not for hot paths). Returns the page and the
    /// next cursor (`None` at the end).
    ///
    /// # Errors
    /// [`Conflict::BadCursor`] for a cursor no page returned; [`StoreError::Unavailable`] /
    /// [`StoreError::Internal`] on backend failure.
    async fn list_users(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<User>, Option<String>), StoreError>;
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
    async fn put_subscription(&self, write: &SubscriptionWrite) -> Result<(), StoreError> {
        self.put_subscription_with(write, &Notices::default()).await
    }

    /// [`BillingStore::put_subscription`] together with the mails and outbound events the
    /// change owes, in one transaction; a notice whose id is stored already is left as it is.
    ///
    /// # Errors
    /// [`Conflict::StaleVersion`] if the stored version differs; nothing is written then.
    async fn put_subscription_with(
        &self,
        write: &SubscriptionWrite,
        notices: &Notices,
    ) -> Result<(), StoreError>;

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

    /// Whether the user has ever had a trial, with any provider (`USER#<id>` / `TRIAL`, written
    /// with every stored subscription that has a trial end — [`BillingStore::put_subscription`]
    /// and [`EventLedger::apply_event`] — and never removed while the user exists).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn trial_used(&self, user_id: &UserId) -> Result<bool, StoreError>;
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
    /// the expected one; the payment only if not yet recorded; the credit change only if its
    /// cause has not taken effect — else it is left out, as [`CreditStore::apply_credits`]
    /// would) and marks the event `Processed` at `at` (Unix seconds) — only if it is not
    /// processed yet.
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
    /// The reconciler's checkpoint for `provider` (`RECONCILE#<provider>` / `CHECKPOINT`): every
    /// change the provider made before it, Unix seconds, is in the ledger.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn reconcile_checkpoint(&self, provider: Provider) -> Result<Option<i64>, StoreError>;

    /// Moves the checkpoint to `at`, never back (a later value stays).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn set_reconcile_checkpoint(&self, provider: Provider, at: i64)
        -> Result<(), StoreError>;
}

/// One write of an atomic account change ([`AccountStore::commit`]). Each names the condition
/// that must hold and the [`Conflict`] reported when it does not.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// Stores a new user and claims its normalized email. [`Conflict::EmailTaken`] if the email
    /// is claimed or the id exists.
    CreateUser(User),
    /// Replaces the user if its stored version is `expected_version`.
    /// [`Conflict::StaleVersion`] otherwise (or if it is gone).
    UpdateUser {
        /// The new state (its version already incremented).
        user: User,
        /// The version it must still have.
        expected_version: u64,
    },
    /// Deletes the user and its email claim if the stored version is `expected_version`, which
    /// frees the email. [`Conflict::StaleVersion`] otherwise.
    DeleteUser {
        /// The user as read (its id and email name the items).
        user: User,
        /// The version it must still have.
        expected_version: u64,
    },
    /// Stores a new session. [`Conflict::SessionExists`] if the id is taken.
    CreateSession(Session),
    /// Moves a live session to `epoch` (and records a fresh authentication at
    /// `authenticated_at`): the session kept when the user's epoch is raised. Only if it exists
    /// and is not revoked; [`Conflict::SessionChanged`] otherwise.
    KeepSession {
        /// The owner.
        user_id: UserId,
        /// The session.
        session_id: SessionId,
        /// The user's new epoch.
        epoch: u64,
        /// When the user re-authenticated, if they did.
        authenticated_at: Option<i64>,
    },
    /// Marks a session revoked at `at` (Unix seconds) for `reason`; an already revoked one keeps
    /// its first time and reason. [`Conflict::SessionChanged`] if there is no such session.
    RevokeSession {
        /// The owner.
        user_id: UserId,
        /// The session.
        session_id: SessionId,
        /// When, Unix seconds.
        at: i64,
        /// Why.
        reason: RevokeReason,
    },
    /// Stores a new one-time token — and, for a user's token, a reference under the user
    /// (`TOKENREF#`) so erasing the user deletes it. [`Conflict::ItemExists`] if its hash is
    /// taken.
    PutToken(OneTimeToken),
    /// Deletes the token if it exists with this purpose (spending it once).
    /// [`Conflict::TokenSpent`] otherwise.
    SpendToken {
        /// The token's hash.
        hash: TokenHash,
        /// The purpose it must have.
        purpose: TokenPurpose,
    },
    /// Stores the email's sign-in code, replacing any earlier one (one live code per email).
    PutOtp(EmailOtp),
    /// Deletes the email's code if it is still code `id` with fewer than
    /// [`crate::domain::OTP_MAX_ATTEMPTS`] wrong tries. [`Conflict::OtpChanged`] otherwise.
    SpendOtp {
        /// The normalized email.
        email: String,
        /// The code's id.
        id: String,
    },
    /// Counts a wrong try on code `id`: sets its attempts to `attempts_seen + 1` if it is still
    /// code `id` with `attempts_seen` tries (so concurrent tries each count).
    /// [`Conflict::OtpChanged`] otherwise.
    CountOtpFailure {
        /// The normalized email.
        email: String,
        /// The code's id.
        id: String,
        /// The attempts read before.
        attempts_seen: u32,
    },
    /// Deletes the email's code, whatever it is (account deletion).
    DeleteOtp {
        /// The normalized email.
        email: String,
    },
    /// Queues a mail in the outbox. [`Conflict::ItemExists`] if its cause id is queued already.
    QueueMail(OutboxMail),
    /// Appends an audit record.
    Audit(AuditRecord),
    /// Links an identity: its lookup item (the identity links to one user only:
    /// [`Conflict::IdentityTaken`]) and the user's item for the provider (one per provider:
    /// [`Conflict::ProviderLinked`]).
    LinkIdentity(Identity),
    /// Unlinks the user's identity at `provider` (both items), if it is still `subject`.
    /// [`Conflict::IdentityNotLinked`] otherwise.
    UnlinkIdentity {
        /// The user.
        user_id: UserId,
        /// The provider's name.
        provider: String,
        /// The identity's subject at the provider.
        subject: String,
    },
    /// Stores a new authorization state. [`Conflict::ItemExists`] if its hash is taken.
    PutOAuthState(OAuthState),
    /// Deletes an authorization state if it exists (spending it once).
    /// [`Conflict::StateSpent`] otherwise.
    SpendOAuthState {
        /// SHA-256 of the `state` parameter.
        hash: TokenHash,
    },
    /// Stores a new API key under its owner and the key id's owner lookup.
    /// [`Conflict::ItemExists`] if the key id is taken.
    CreateApiKey(ApiKey),
    /// Marks the user's key revoked at `at` (Unix seconds) and lets the table forget it and its
    /// owner lookup [`REVOKED_API_KEY_RETENTION_SECONDS`] later (TTL), if it exists and is not
    /// revoked. [`Conflict::ApiKeyGone`] otherwise.
    RevokeApiKey {
        /// The owner.
        user_id: UserId,
        /// The key id.
        key_id: String,
        /// When, Unix seconds.
        at: i64,
    },
}

/// How long a revoked API key's item is kept (for the audit trail) before the TTL deletes it:
/// 30 days, seconds.
pub const REVOKED_API_KEY_RETENTION_SECONDS: i64 = 30 * 86_400;

/// Account writes that must happen together, and the account items besides users and sessions:
/// one-time tokens (`TOKEN#…`), sign-in codes (`OTP#…`), the audit log (`USER#<id>` /
/// `AUDIT#…`).
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Applies every change or none (one DynamoDB `TransactWriteItems`; one redb write
    /// transaction). At most one change per item.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] with the first failing change's conflict (see [`Change`]);
    /// nothing is written then. [`StoreError::Unavailable`] / [`StoreError::Internal`] on
    /// backend failure.
    async fn commit(&self, changes: &[Change]) -> Result<(), StoreError>;

    /// Reads a one-time token by its hash (strongly consistent). Expired tokens may still be
    /// returned until the table's TTL deletes them: check [`OneTimeToken::usable_for`].
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn get_token(&self, hash: &TokenHash) -> Result<Option<OneTimeToken>, StoreError>;

    /// Reads the live sign-in code of a normalized email (strongly consistent).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn get_otp(&self, normalized_email: &str) -> Result<Option<EmailOtp>, StoreError>;

    /// A page of the user's audit records, newest first: at most `limit`, each older than the
    /// record `before` (an id from an earlier page) when given.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn list_audit(
        &self,
        user_id: &UserId,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError>;

    /// The user an identity at a provider is linked to (strongly consistent).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn get_identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<Identity>, StoreError>;

    /// The user's linked identities, by provider name.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn list_identities(&self, user_id: &UserId) -> Result<Vec<Identity>, StoreError>;

    /// An authorization in progress, by the hash of its `state` (strongly consistent). Expired
    /// ones may still be returned until the TTL deletes them: check `expires_at`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn get_oauth_state(&self, hash: &TokenHash) -> Result<Option<OAuthState>, StoreError>;

    /// An API key by its key id: the owner lookup, then the key under the owner (strongly
    /// consistent). Revoked and expired keys are returned as stored: check
    /// [`ApiKey::check`](crate::domain::ApiKey::check).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn get_api_key(&self, key_id: &str) -> Result<Option<ApiKey>, StoreError>;

    /// The user's API keys, revoked ones included, by key id.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn list_api_keys(&self, user_id: &UserId) -> Result<Vec<ApiKey>, StoreError>;

    /// Records that the key was used at `at` (Unix seconds), if the key still exists. Callers
    /// write at most once a minute ([`ApiKey::touch_due`](crate::domain::ApiKey::touch_due)).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure; a key deleted
    /// meanwhile is not an error.
    async fn touch_api_key(
        &self,
        user_id: &UserId,
        key_id: &str,
        at: i64,
    ) -> Result<(), StoreError>;

    /// Deletes every item of the user's partition except payments and audit records (sessions,
    /// subscription, customer links, token references, identities, API keys) and the one-time
    /// tokens, identity lookups and key lookups those name: the clean-up after [`Change::DeleteUser`]. Returns how many items of the partition
    /// it deleted. Idempotent.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn erase_user_items(&self, user_id: &UserId) -> Result<usize, StoreError>;
}

/// What [`AccountStore::erase_user_items`] keeps of a user's partition: payments (without
/// personal data, for the books), audit records (they expire by TTL) and a profile that is
/// still there (never erased from under a live account).
pub fn kept_after_erase(sort_key: &str) -> bool {
    sort_key.starts_with(keys::PAYMENT_PREFIX)
        || sort_key.starts_with(keys::AUDIT_PREFIX)
        || sort_key == keys::PROFILE
}

/// Request counters and failed-login records (`RATE#…`), shared by every instance: the only
/// rate state there is (never process memory, which Lambda's many instances would split).
/// Callers pass keys already hashed.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts one request for `key` under rule `name` in the fixed window holding `now` — only
    /// if the window's count is below the limit (DynamoDB: `UpdateItem ADD` with a condition, so
    /// concurrent callers on any instance never pass the limit together). A refused request is
    /// not counted.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn hit(
        &self,
        name: &str,
        rule: &RateRule,
        key: &str,
        now: i64,
    ) -> Result<RateDecision, StoreError>;

    /// The failed logins recorded for `key`, if any (strongly consistent). Records older than
    /// [`LOGIN_FAILURES_TTL_SECONDS`](crate::domain::limits::LOGIN_FAILURES_TTL_SECONDS) may
    /// still be returned until the TTL deletes them; callers treat them as absent.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn login_failures(&self, key: &str) -> Result<Option<LoginFailures>, StoreError>;

    /// Adds one failed login for `key` at `now` (atomic increment; a record past its TTL starts
    /// again from one) and returns the record as it now stands.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn record_login_failure(&self, key: &str, now: i64) -> Result<LoginFailures, StoreError>;

    /// Forgets `key`'s failed logins (a successful login). Idempotent.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn clear_login_failures(&self, key: &str) -> Result<(), StoreError>;
}

/// One track of a metered feature ([`UsageStore::track`]).
#[derive(Clone, Copy, Debug)]
pub struct TrackRequest<'a> {
    /// The user counted.
    pub user_id: UserId,
    /// The metered feature (`[a-z0-9_]`, from the catalog).
    pub feature: &'a str,
    /// The period the count belongs to (its start names the counter; its end plus
    /// [`USAGE_RETENTION_SECONDS`](crate::domain::USAGE_RETENTION_SECONDS) is the counter's TTL).
    pub period: Period,
    /// Units to add (at least 1).
    pub quantity: u64,
    /// The count may not pass this (`None`: no ceiling — unlimited, or overage allowed).
    pub ceiling: Option<u64>,
    /// The caller's idempotency key, scoped to the user.
    pub idempotency_key: &'a str,
    /// Credits the track spends, in the same atomic write (its entry's `amount` is negative):
    /// the balance must cover it.
    pub spend: Option<&'a CreditWrite>,
    /// Now, Unix seconds.
    pub now: i64,
}

/// What a track did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tracked {
    /// Counted; the count after it.
    Counted {
        /// Units counted this period, this track included.
        used: u64,
    },
    /// The idempotency key was used before for the same feature and quantity: nothing counted
    /// again; the count as it stands.
    Replayed {
        /// Units counted this period.
        used: u64,
    },
    /// Counting would pass the ceiling: nothing changed (and the key is not remembered, so a
    /// retry after an upgrade can count).
    LimitReached {
        /// Units counted this period.
        used: u64,
    },
    /// The balance does not cover the spend: nothing changed (the key is not remembered).
    InsufficientCredits {
        /// Units counted this period.
        used: u64,
        /// The balance, credits.
        balance: i64,
    },
}

/// Usage counters (`USER#<id>` / `USAGE#<feature>#<period start>`) and the idempotency keys of
/// tracks (`IDEM#usage#<user id>#<key>` / `IDEM`).
#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Counts `quantity` units in one atomic write with the idempotency key and the spend, if
    /// any: the count never passes the ceiling (DynamoDB: `ADD` with the condition
    /// `used <= ceiling - quantity`, in the same `TransactWriteItems` as the key's conditional
    /// put), the balance never goes below zero by a spend (`balance >= cost`; the entry and its
    /// audit record written alongside), and a key seen before counts and spends nothing.
    ///
    /// # Errors
    /// [`Conflict::IdempotencyMismatch`] if the key was used for another feature or quantity;
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn track(&self, request: &TrackRequest<'_>) -> Result<Tracked, StoreError>;

    /// Units of `feature` counted for the user in the period starting at `period_start`
    /// (strongly consistent; 0 when nothing was counted).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn used(
        &self,
        user_id: &UserId,
        feature: &str,
        period_start: i64,
    ) -> Result<u64, StoreError>;
}

/// One change of a credit balance: the ledger entry, whether the balance must cover it, and the
/// audit record written with it.
#[derive(Clone, Debug, PartialEq)]
pub struct CreditWrite {
    /// The entry (its `cause` is the idempotency key; `amount` signed).
    pub entry: CreditEntry,
    /// Refuse the change unless the balance stays at or above zero (spends). Without it a
    /// negative amount may take the balance below zero (a refund of credits already spent: the
    /// user owes them, and spends are refused until the balance is positive again).
    pub require_funds: bool,
    /// The audit record of the change.
    pub audit: AuditRecord,
    /// What the change owes the customer's app (`credits.changed`), written with it when it
    /// applies (never for a duplicate or a refused spend).
    pub notices: Notices,
}

/// What [`CreditStore::apply_credits`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreditApplied {
    /// Applied; the balance after it.
    Applied {
        /// Credits.
        balance: i64,
    },
    /// Its cause took effect before: nothing changed; the balance now.
    Duplicate {
        /// Credits.
        balance: i64,
    },
    /// The balance does not cover it (`require_funds`): nothing changed.
    Insufficient {
        /// Credits.
        balance: i64,
    },
}

/// Credit balances (`USER#<id>` / `CREDITS`), their ledger (`USER#<id>` /
/// `CREDIT#<at, 10 digits>#<cause>`) and each cause's record (`CREDITCAUSE#<cause>` /
/// `CREDITCAUSE`, holding the entry) that makes a cause take effect once.
#[async_trait]
pub trait CreditStore: Send + Sync {
    /// In one atomic write: records the cause (only if new), adds `entry.amount` to the balance
    /// (with `require_funds`, only if the balance covers it — DynamoDB: `ADD` with the
    /// condition `balance >= :cost`), appends the entry and the audit record.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn apply_credits(&self, write: &CreditWrite) -> Result<CreditApplied, StoreError>;

    /// The user's balance (strongly consistent; 0 when nothing was ever granted).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn credit_balance(&self, user_id: &UserId) -> Result<i64, StoreError>;

    /// A page of the user's ledger, newest first: at most `limit` entries whose sort key is
    /// below `before` (a cursor from an earlier page). Returns the page and the next cursor
    /// (`None` on the last page).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn credit_history(
        &self,
        user_id: &UserId,
        before: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<CreditEntry>, Option<String>), StoreError>;

    /// The entry a cause wrote, if it took effect (finds a purchase's grant to refund it).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn credit_cause(&self, cause: &str) -> Result<Option<CreditEntry>, StoreError>;
}

/// The result of trying to claim an outbound event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutboundClaim {
    /// Claimed: the event as it now stands (`Sending`, attempts counted, leased).
    Claimed(OutboundEvent),
    /// Not now: not due yet, or held by another worker, until this time (Unix seconds).
    Wait {
        /// When it may be claimed.
        until: i64,
    },
    /// Nothing to do: delivered, dead, or no such event.
    Done,
}

/// How a claimed outbound attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundOutcome {
    /// `Delivered`, `Dead`, or `Pending` (retry at `next_attempt_at`).
    pub status: OutboundStatus,
    /// Endpoints that have accepted it so far (names).
    pub delivered_to: Vec<String>,
    /// When the next attempt is due (`Pending`), Unix seconds.
    pub next_attempt_at: i64,
    /// When the claimed attempt was due (the claimed event's `next_attempt_at`): where its
    /// due-index entry is, moved or removed with this outcome.
    pub claimed_due: i64,
    /// Why the attempt failed (no secrets).
    pub error: Option<String>,
    /// When, Unix seconds.
    pub at: i64,
}

/// Outbound events (`HOOK#<id>` / `HOOK`): written with the change that owes them
/// ([`EventLedger::apply_event`], [`BillingStore::put_subscription_with`]); workers claim,
/// deliver and finish them here; an operator lists and replays the dead ones.
#[async_trait]
pub trait OutboundStore: Send + Sync {
    /// Reads an event (strongly consistent).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn get_outbound(&self, id: &str) -> Result<Option<OutboundEvent>, StoreError>;

    /// Claims the event for `lease` seconds from `now` if it is pending and due, or its worker's
    /// lease ran out (conditional write: of concurrent claimers exactly one gets it), counting
    /// an attempt.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn claim_outbound(
        &self,
        id: &str,
        now: i64,
        lease: i64,
    ) -> Result<OutboundClaim, StoreError>;

    /// Ends a claimed attempt with `outcome`, if the event is still `Sending` with the claim's
    /// attempt count `attempt`; in the same write its due-index entry moves to the next attempt
    /// (`Pending`) or goes (`Delivered`, `Dead`).
    ///
    /// # Errors
    /// [`Conflict::MailChanged`] if the claim is no longer the caller's.
    async fn finish_outbound(
        &self,
        id: &str,
        attempt: u32,
        outcome: &OutboundOutcome,
    ) -> Result<(), StoreError>;

    /// Ids of the events whose attempt is due at or before `now` — pending past their time, or
    /// claimed by a worker that may have died (its claim is checked when it is claimed) — the
    /// earliest first, at most `limit`: what a sweep attempts. A query of the due index
    /// (`HOOKDUE`), never a scan.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn due_outbound(&self, now: i64, limit: usize) -> Result<Vec<String>, StoreError>;

    /// Events in `status`, oldest first, at most `limit`: an operator lists the `Dead` ones (and
    /// tests any). The embedded store reads its `HOOK#` range; DynamoDB scans the table with a
    /// filter (an operator's command, not a hot path).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn list_outbound(
        &self,
        status: OutboundStatus,
        limit: usize,
    ) -> Result<Vec<OutboundEvent>, StoreError>;

    /// Replays a dead event: `Pending`, due at `now` (back in the due index), attempts from zero
    /// (endpoints that accepted it already are not sent to again). Returns whether it was dead.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn replay_outbound(&self, id: &str, now: i64) -> Result<bool, StoreError>;
}

/// The result of trying to claim an outbox item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MailClaim {
    /// Claimed: the item as it now stands (`Sending`, attempts counted, leased).
    Claimed(OutboxMail),
    /// Another sender holds it until this time (Unix seconds).
    Busy {
        /// End of the other sender's lease.
        until: i64,
    },
    /// Nothing to do: sent, skipped, failed, or no such item.
    Done,
}

/// How a claimed mail ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailOutcome {
    /// `Sent`, `Skipped` or `Failed`.
    pub status: MailStatus,
    /// The mail service's message id, when sent.
    pub message_id: Option<String>,
    /// Why it failed or was skipped (no secrets).
    pub note: Option<String>,
    /// When, Unix seconds.
    pub at: i64,
}

/// The mail outbox (`MAIL#<cause id>` / `MAIL`): items are written by [`Change::QueueMail`] with
/// the change that owes them; senders claim, send and finish them here.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Reads an outbox item (strongly consistent).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn get_mail(&self, id: &str) -> Result<Option<OutboxMail>, StoreError>;

    /// Claims the item for `lease` seconds from `now` if it is pending or its lease ran out
    /// (conditional write: of concurrent claimers exactly one gets it), counting an attempt.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn claim_mail(&self, id: &str, now: i64, lease: i64) -> Result<MailClaim, StoreError>;

    /// Ends a claimed item with `outcome`, if it is still `Sending` with the claim's attempt
    /// count `attempt` (so a sender whose lease ran out and was replaced cannot overwrite the
    /// replacement's result).
    ///
    /// # Errors
    /// [`Conflict::MailChanged`] if the claim is no longer the caller's.
    async fn finish_mail(
        &self,
        id: &str,
        attempt: u32,
        outcome: &MailOutcome,
    ) -> Result<(), StoreError>;

    /// Hands a claimed item back as `Pending` after a failed send (so the next attempt need
    /// not wait for the lease), recording `error`; same claim check as
    /// [`Outbox::finish_mail`].
    ///
    /// # Errors
    /// [`Conflict::MailChanged`] if the claim is no longer the caller's.
    async fn release_mail(&self, id: &str, attempt: u32, error: &str) -> Result<(), StoreError>;

    /// Ids of items still to send (`Pending`, or `Sending` whose sender may have died), oldest
    /// first, at most `limit`: what a sweep drains after a crash. The embedded store reads its
    /// `MAIL#` range; DynamoDB scans the table (an operator's command, not a hot path).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] / [`StoreError::Internal`] on backend failure.
    async fn pending_mail(&self, limit: usize) -> Result<Vec<String>, StoreError>;
}
