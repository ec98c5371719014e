//! The embedded store: the same items and keys as DynamoDB in a local [redb] file (or in memory
//! for tests), for the dev server. redb serialises write transactions, so every conditional write
//! is a read-check-write inside one transaction.
//!
//! Durability: commits are made with `Durability::None` and a background task makes one durable
//! commit per second ([`EmbeddedStore::FLUSH_INTERVAL_MS`]); [`EmbeddedStore::flush`] (called on
//! shutdown) persists everything. A hard kill can lose at most about one second of account writes
//! — a trade made for the local dev store only, which keeps refresh cheap enough to benchmark.
//! Webhook events are the exception: [`EventLedger::record_event`] returns only once the event is
//! durable ([`EmbeddedStore::sync`], a group commit), because a provider stops retrying an event
//! once it is acknowledged (docs/architecture.md §7.1).

use super::items::{
    ApiKeyOwner, Checkpoint, CreditBalance, CustomerClaim, EmailClaim, FailuresItem,
    IdempotencyRecord, OutboundDue, TokenRef, TrialMarker, UsageCounter, UserCustomer,
};
use super::keys::{self, Key};
use super::{
    AccountStore, BillingStore, Change, Conflict, CreditApplied, CreditStore, CreditWrite,
    EventLedger, EventMark, MailClaim, MailOutcome, OutboundClaim, OutboundOutcome, OutboundStore,
    Outbox, RateLimiter, SessionStore, StoreError, TrackRequest, Tracked, UsageStore, UserStore,
    REVOKED_API_KEY_RETENTION_SECONDS,
};
use crate::domain::limits::LOGIN_FAILURES_TTL_SECONDS;
use crate::domain::{
    ApiKey, AuditRecord, ClaimDecision, CreditEntry, CustomerId, EmailOtp, EventEffects, EventId,
    EventStatus, Identity, LoginFailures, MailStatus, Notices, OAuthState, OneTimeToken,
    OutboundDecision, OutboundEvent, OutboundStatus, OutboxMail, Payment, Provider, RateDecision,
    RateRule, RevokeReason, Session, SessionId, Subscription, SubscriptionWrite, TokenHash, User,
    UserId, WebhookEvent, OTP_MAX_ATTEMPTS,
};
use crate::domain::{IDEMPOTENCY_TTL_SECONDS, USAGE_RETENTION_SECONDS};
use async_trait::async_trait;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const ITEMS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("items");

/// A redb-backed implementation of every store trait. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    /// Commits made so far (each write transaction adds one after it commits).
    written: Arc<AtomicU64>,
    /// Commits known durable: every commit numbered up to this has been fsync'ed.
    durable: Arc<AtomicU64>,
    /// One durable commit at a time; callers queued behind it usually find their commit covered.
    syncing: Arc<tokio::sync::Mutex<()>>,
    /// The rate windows ([`RateLimiter::hit`]), in this process's memory: see the impl.
    windows: Arc<std::sync::Mutex<HashMap<(String, String), RateCount>>>,
}

/// One rule and key's current window.
#[derive(Clone, Copy, Debug)]
struct RateCount {
    start: i64,
    end: i64,
    count: u64,
}

/// Past this many (rule, key) windows, ended ones are dropped on the next count.
const WINDOWS_BEFORE_SWEEP: usize = 10_000;

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmbeddedStore")
    }
}

fn internal(e: impl Into<crate::error::BoxError>) -> StoreError {
    StoreError::Internal(e.into())
}

impl EmbeddedStore {
    /// How often pending writes are made durable, in milliseconds.
    pub const FLUSH_INTERVAL_MS: u64 = 1_000;

    /// Opens (or creates) the store file at `path`.
    ///
    /// # Errors
    /// [`StoreError::Internal`] if the file cannot be opened or is not a redb database.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(internal)?;
        Self::init(db)
    }

    /// A store that lives in memory only (tests).
    ///
    /// # Errors
    /// [`StoreError::Internal`] if redb cannot initialise.
    pub fn in_memory() -> Result<Self, StoreError> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(internal)?;
        Self::init(db)
    }

    fn init(db: Database) -> Result<Self, StoreError> {
        let txn = db.begin_write().map_err(internal)?;
        txn.open_table(ITEMS).map_err(internal)?;
        txn.commit().map_err(internal)?;
        Ok(Self {
            db: Arc::new(db),
            written: Arc::default(),
            durable: Arc::default(),
            syncing: Arc::default(),
            windows: Arc::default(),
        })
    }

    /// Makes every commit so far durable (one fsync'ed empty commit). Blocks the calling thread
    /// for the fsync: from async code use [`EmbeddedStore::sync`].
    ///
    /// # Errors
    /// [`StoreError::Internal`] if the commit fails.
    pub fn flush(&self) -> Result<(), StoreError> {
        let upto = self.written.load(Ordering::Acquire);
        let txn = self.db.begin_write().map_err(internal)?;
        txn.commit().map_err(internal)?;
        self.durable.fetch_max(upto, Ordering::AcqRel);
        Ok(())
    }

    /// Returns once every commit made before the call is durable. A group commit: callers that
    /// arrive while a durable commit is running wait for it and then, usually, find their own
    /// commit already covered by the next one, so N concurrent callers cost about two fsyncs,
    /// not N. The fsync runs on Tokio's blocking pool.
    ///
    /// # Errors
    /// [`StoreError::Internal`] if the durable commit fails.
    pub async fn sync(&self) -> Result<(), StoreError> {
        let target = self.written.load(Ordering::Acquire);
        if self.durable.load(Ordering::Acquire) >= target {
            return Ok(());
        }
        let _turn = self.syncing.lock().await;
        if self.durable.load(Ordering::Acquire) >= target {
            return Ok(());
        }
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.flush())
            .await
            .map_err(internal)?
    }

    /// Commits made durable so far, and commits made: for tests of [`EmbeddedStore::sync`].
    #[cfg(test)]
    fn commit_counts(&self) -> (u64, u64) {
        (
            self.durable.load(Ordering::Acquire),
            self.written.load(Ordering::Acquire),
        )
    }

    /// Spawns the task that calls [`EmbeddedStore::flush`] every
    /// [`EmbeddedStore::FLUSH_INTERVAL_MS`] milliseconds. Requires a Tokio runtime.
    pub fn spawn_flusher(&self) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let mut tick =
                tokio::time::interval(std::time::Duration::from_millis(Self::FLUSH_INTERVAL_MS));
            loop {
                tick.tick().await;
                let s = store.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || s.flush()).await {
                    tracing::error!(error = %e, "embedded store flush failed");
                }
            }
        })
    }

    fn get<T: DeserializeOwned>(&self, key: &Key) -> Result<Option<T>, StoreError> {
        let txn = self.db.begin_read().map_err(internal)?;
        let table = txn.open_table(ITEMS).map_err(internal)?;
        read(&table, key)
    }

    /// Every item of partition `pk` whose sort key starts with `prefix`, in sort-key order.
    fn list<T: DeserializeOwned>(&self, pk: &str, prefix: &str) -> Result<Vec<T>, StoreError> {
        let txn = self.db.begin_read().map_err(internal)?;
        let table = txn.open_table(ITEMS).map_err(internal)?;
        let mut items = Vec::new();
        for entry in table.range((pk, prefix)..).map_err(internal)? {
            let (k, v) = entry.map_err(internal)?;
            let (item_pk, item_sk) = k.value();
            if item_pk != pk || !item_sk.starts_with(prefix) {
                break;
            }
            items.push(serde_json::from_slice(v.value()).map_err(internal)?);
        }
        Ok(items)
    }

    /// Runs `f` in a write transaction; `f` returning an error aborts it (nothing is written).
    fn write<R>(
        &self,
        f: impl FnOnce(&mut redb::Table<'_, (&str, &str), &[u8]>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut txn = self.db.begin_write().map_err(internal)?;
        txn.set_durability(Durability::None).map_err(internal)?;
        let result = {
            let mut table = txn.open_table(ITEMS).map_err(internal)?;
            f(&mut table)?
        };
        txn.commit().map_err(internal)?;
        self.written.fetch_add(1, Ordering::AcqRel);
        Ok(result)
    }
}

fn exists(table: &redb::Table<'_, (&str, &str), &[u8]>, key: &Key) -> Result<bool, StoreError> {
    Ok(table
        .get((key.0.as_str(), key.1.as_str()))
        .map_err(internal)?
        .is_some())
}

fn read<T: DeserializeOwned>(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    key: &Key,
) -> Result<Option<T>, StoreError> {
    match table
        .get((key.0.as_str(), key.1.as_str()))
        .map_err(internal)?
    {
        Some(v) => serde_json::from_slice(v.value())
            .map(Some)
            .map_err(internal),
        None => Ok(None),
    }
}

fn put<T: Serialize>(
    table: &mut redb::Table<'_, (&str, &str), &[u8]>,
    key: &Key,
    value: &T,
) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(value).map_err(internal)?;
    table
        .insert((key.0.as_str(), key.1.as_str()), bytes.as_slice())
        .map_err(internal)?;
    Ok(())
}

fn delete(table: &mut redb::Table<'_, (&str, &str), &[u8]>, key: &Key) -> Result<(), StoreError> {
    table
        .remove((key.0.as_str(), key.1.as_str()))
        .map_err(internal)?;
    Ok(())
}

/// Applies one [`Change`] inside a write transaction, checking its condition first.
fn apply_change(
    t: &mut redb::Table<'_, (&str, &str), &[u8]>,
    change: &Change,
) -> Result<(), StoreError> {
    let conflict = |c: Conflict| Err(StoreError::Conflict(c));
    match change {
        Change::CreateUser(user) => {
            let user_key = keys::user(&user.id);
            let claim_key = keys::email_claim(user.email().normalized());
            if exists(t, &user_key)? || exists(t, &claim_key)? {
                return conflict(Conflict::EmailTaken);
            }
            put(t, &user_key, user)?;
            put(t, &claim_key, &EmailClaim { user_id: user.id })
        }
        Change::UpdateUser {
            user,
            expected_version,
        } => {
            let key = keys::user(&user.id);
            match read::<User>(t, &key)? {
                Some(stored) if stored.version == *expected_version => put(t, &key, user),
                _ => conflict(Conflict::StaleVersion),
            }
        }
        Change::DeleteUser {
            user,
            expected_version,
        } => {
            let key = keys::user(&user.id);
            match read::<User>(t, &key)? {
                Some(stored) if stored.version == *expected_version => {
                    delete(t, &key)?;
                    delete(t, &keys::email_claim(user.email().normalized()))
                }
                _ => conflict(Conflict::StaleVersion),
            }
        }
        Change::CreateSession(session) => {
            let key = keys::session(&session.user_id, &session.id);
            if exists(t, &key)? {
                return conflict(Conflict::SessionExists);
            }
            put(t, &key, session)
        }
        Change::KeepSession {
            user_id,
            session_id,
            epoch,
            authenticated_at,
        } => {
            let key = keys::session(user_id, session_id);
            match read::<Session>(t, &key)? {
                Some(mut s) if s.revoked_at.is_none() => {
                    s.epoch = *epoch;
                    if authenticated_at.is_some() {
                        s.authenticated_at = *authenticated_at;
                    }
                    put(t, &key, &s)
                }
                _ => conflict(Conflict::SessionChanged),
            }
        }
        Change::RevokeSession {
            user_id,
            session_id,
            at,
            reason,
        } => {
            let key = keys::session(user_id, session_id);
            match read::<Session>(t, &key)? {
                None => conflict(Conflict::SessionChanged),
                Some(s) if s.revoked_at.is_some() => Ok(()),
                Some(mut s) => {
                    s.revoked_at = Some(*at);
                    s.revoked_reason = Some(*reason);
                    put(t, &key, &s)
                }
            }
        }
        Change::PutToken(token) => {
            let key = keys::one_time_token(&token.hash);
            if exists(t, &key)? {
                return conflict(Conflict::ItemExists);
            }
            if let Some(user_id) = &token.user_id {
                let reference = TokenRef {
                    hash: token.hash.clone(),
                    expires_at: token.expires_at,
                };
                put(t, &keys::token_ref(user_id, &token.hash), &reference)?;
            }
            put(t, &key, token)
        }
        Change::SpendToken { hash, purpose } => {
            let key = keys::one_time_token(hash);
            match read::<OneTimeToken>(t, &key)? {
                Some(token) if token.purpose == *purpose => delete(t, &key),
                _ => conflict(Conflict::TokenSpent),
            }
        }
        Change::PutOtp(otp) => put(t, &keys::email_otp(&otp.email), otp),
        Change::SpendOtp { email, id } => {
            let key = keys::email_otp(email);
            match read::<EmailOtp>(t, &key)? {
                Some(otp) if otp.id == *id && otp.attempts < OTP_MAX_ATTEMPTS => delete(t, &key),
                _ => conflict(Conflict::OtpChanged),
            }
        }
        Change::CountOtpFailure {
            email,
            id,
            attempts_seen,
        } => {
            let key = keys::email_otp(email);
            match read::<EmailOtp>(t, &key)? {
                Some(mut otp) if otp.id == *id && otp.attempts == *attempts_seen => {
                    otp.attempts = attempts_seen + 1;
                    put(t, &key, &otp)
                }
                _ => conflict(Conflict::OtpChanged),
            }
        }
        Change::DeleteOtp { email } => delete(t, &keys::email_otp(email)),
        Change::QueueMail(mail) => {
            let key = keys::mail(&mail.id);
            if exists(t, &key)? {
                return conflict(Conflict::ItemExists);
            }
            put(t, &key, mail)
        }
        Change::Audit(record) => put(t, &keys::audit(&record.user_id, &record.id), record),
        Change::LinkIdentity(identity) => {
            let lookup = keys::identity(&identity.provider, &identity.subject);
            let mine = keys::user_identity(&identity.user_id, &identity.provider);
            if exists(t, &lookup)? {
                return conflict(Conflict::IdentityTaken);
            }
            if exists(t, &mine)? {
                return conflict(Conflict::ProviderLinked);
            }
            put(t, &lookup, identity)?;
            put(t, &mine, identity)
        }
        Change::UnlinkIdentity {
            user_id,
            provider,
            subject,
        } => {
            let mine = keys::user_identity(user_id, provider);
            match read::<Identity>(t, &mine)? {
                Some(linked) if linked.subject == *subject => {
                    delete(t, &mine)?;
                    delete(t, &keys::identity(provider, subject))
                }
                _ => conflict(Conflict::IdentityNotLinked),
            }
        }
        Change::PutOAuthState(state) => {
            let key = keys::oauth_state(&state.hash);
            if exists(t, &key)? {
                return conflict(Conflict::ItemExists);
            }
            put(t, &key, state)
        }
        Change::SpendOAuthState { hash } => {
            let key = keys::oauth_state(hash);
            if !exists(t, &key)? {
                return conflict(Conflict::StateSpent);
            }
            delete(t, &key)
        }
        Change::CreateApiKey(key) => {
            let owner = keys::api_key_owner(&key.key_id);
            let item = keys::api_key(&key.user_id, &key.key_id);
            if exists(t, &owner)? || exists(t, &item)? {
                return conflict(Conflict::ItemExists);
            }
            put(
                t,
                &owner,
                &ApiKeyOwner {
                    key_id: key.key_id.clone(),
                    user_id: key.user_id,
                    expires_at: key.expires_at,
                },
            )?;
            put(t, &item, key)
        }
        Change::RevokeApiKey {
            user_id,
            key_id,
            at,
        } => {
            let item = keys::api_key(user_id, key_id);
            match read::<ApiKey>(t, &item)? {
                Some(mut key) if key.revoked_at.is_none() => {
                    key.revoked_at = Some(*at);
                    key.expires_at = Some(at + REVOKED_API_KEY_RETENTION_SECONDS);
                    put(
                        t,
                        &keys::api_key_owner(key_id),
                        &ApiKeyOwner {
                            key_id: key_id.clone(),
                            user_id: *user_id,
                            expires_at: key.expires_at,
                        },
                    )?;
                    put(t, &item, &key)
                }
                _ => conflict(Conflict::ApiKeyGone),
            }
        }
    }
}

/// Writes the subscription if the stored version is the expected one.
fn put_subscription_checked(
    table: &mut redb::Table<'_, (&str, &str), &[u8]>,
    write: &SubscriptionWrite,
) -> Result<(), StoreError> {
    let key = keys::subscription(&write.subscription.user_id);
    let stored = read::<Subscription>(table, &key)?.map(|s| s.version);
    if stored != write.expected_version {
        return Err(StoreError::Conflict(Conflict::StaleVersion));
    }
    if let Some(trial_end) = write.subscription.trial_end {
        let marker = keys::trial_marker(&write.subscription.user_id);
        if !exists(table, &marker)? {
            put(table, &marker, &TrialMarker { trial_end })?;
        }
    }
    put(table, &key, &write.subscription)
}

/// Writes the notices a change owes; one whose id is stored already is left as it is (its cause
/// was noticed by an earlier event).
fn put_notices(
    table: &mut redb::Table<'_, (&str, &str), &[u8]>,
    notices: &Notices,
) -> Result<(), StoreError> {
    for mail in &notices.mails {
        let key = keys::mail(&mail.id);
        if !exists(table, &key)? {
            put(table, &key, mail)?;
        }
    }
    for event in &notices.outbound {
        let key = keys::outbound(&event.id);
        if !exists(table, &key)? {
            put(table, &key, event)?;
            put_due(table, event.next_attempt_at, event)?;
        }
    }
    Ok(())
}

/// The due-index entry of `event`, due at `due_at`.
fn put_due(
    table: &mut redb::Table<'_, (&str, &str), &[u8]>,
    due_at: i64,
    event: &OutboundEvent,
) -> Result<(), StoreError> {
    put(
        table,
        &keys::outbound_due(due_at, &event.id),
        &OutboundDue {
            id: event.id.clone(),
            due_at,
            expires_at: event.expires_at,
        },
    )
}

/// Applies a credit write inside a write transaction: nothing if its cause took effect
/// (`guard`: the cause record is checked and written; a track's spend is guarded by the track's
/// idempotency key instead) or if `require_funds` and the balance does not cover it.
fn apply_credit_write(
    t: &mut redb::Table<'_, (&str, &str), &[u8]>,
    w: &CreditWrite,
    guard: bool,
) -> Result<CreditApplied, StoreError> {
    let e = &w.entry;
    let balance_key = keys::credit_balance(&e.user_id);
    let balance = read::<CreditBalance>(t, &balance_key)?.map_or(0, |b| b.balance);
    let cause_key = keys::credit_cause(&e.cause);
    if guard && exists(t, &cause_key)? {
        return Ok(CreditApplied::Duplicate { balance });
    }
    let next = balance
        .checked_add(e.amount)
        .ok_or_else(|| internal(crate::error::message("credit balance overflow")))?;
    if w.require_funds && e.amount < 0 && next < 0 {
        return Ok(CreditApplied::Insufficient { balance });
    }
    put(t, &balance_key, &CreditBalance { balance: next })?;
    if guard {
        put(t, &cause_key, e)?;
    }
    put(t, &keys::credit_entry(&e.user_id, e.at, &e.cause), e)?;
    put(t, &keys::audit(&w.audit.user_id, &w.audit.id), &w.audit)?;
    put_notices(t, &w.notices)?;
    Ok(CreditApplied::Applied { balance: next })
}

#[async_trait]
impl UserStore for EmbeddedStore {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let user_key = keys::user(&user.id);
        let claim_key = keys::email_claim(user.email().normalized());
        self.write(|t| {
            if exists(t, &user_key)? || exists(t, &claim_key)? {
                return Err(StoreError::Conflict(Conflict::EmailTaken));
            }
            put(t, &user_key, user)?;
            put(t, &claim_key, &EmailClaim { user_id: user.id })
        })
    }

    async fn get_user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        self.get(&keys::user(id))
    }

    async fn find_user_id_by_email(
        &self,
        normalized_email: &str,
    ) -> Result<Option<UserId>, StoreError> {
        Ok(self
            .get::<EmailClaim>(&keys::email_claim(normalized_email))?
            .map(|c| c.user_id))
    }

    async fn update_user(&self, user: &User, expected_version: u64) -> Result<(), StoreError> {
        let key = keys::user(&user.id);
        self.write(|t| match read::<User>(t, &key)? {
            Some(stored) if stored.version == expected_version => put(t, &key, user),
            _ => Err(StoreError::Conflict(Conflict::StaleVersion)),
        })
    }

    async fn list_users(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<User>, Option<String>), StoreError> {
        let start = match cursor {
            Some(c) => {
                Some(keys::decode_cursor(c).ok_or(StoreError::Conflict(Conflict::BadCursor))?)
            }
            None => None,
        };
        let txn = self.db.begin_read().map_err(internal)?;
        let table = txn.open_table(ITEMS).map_err(internal)?;
        let first = start
            .as_ref()
            .map_or(("USER#", ""), |(pk, sk)| (pk.as_str(), sk.as_str()));
        let mut users = Vec::new();
        let mut last = None;
        for entry in table.range(first..).map_err(internal)? {
            let (k, v) = entry.map_err(internal)?;
            let (pk, sk) = k.value();
            if start
                .as_ref()
                .is_some_and(|(spk, ssk)| spk == pk && ssk == sk)
            {
                continue; // the cursor's own item: exclusive
            }
            if !pk.starts_with("USER#") {
                break;
            }
            if sk != keys::PROFILE {
                continue;
            }
            users.push(serde_json::from_slice::<User>(v.value()).map_err(internal)?);
            last = Some((pk.to_owned(), sk.to_owned()));
            if users.len() >= limit {
                break;
            }
        }
        let next = (users.len() >= limit)
            .then(|| last.as_ref().map(keys::encode_cursor))
            .flatten();
        Ok((users, next))
    }
}

#[async_trait]
impl SessionStore for EmbeddedStore {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        let key = keys::session(&session.user_id, &session.id);
        self.write(|t| {
            if exists(t, &key)? {
                return Err(StoreError::Conflict(Conflict::SessionExists));
            }
            put(t, &key, session)
        })
    }

    async fn get_session(
        &self,
        user_id: &UserId,
        id: &SessionId,
    ) -> Result<Option<Session>, StoreError> {
        self.get(&keys::session(user_id, id))
    }

    async fn rotate_session(
        &self,
        next: &Session,
        expected_current: &TokenHash,
    ) -> Result<(), StoreError> {
        let key = keys::session(&next.user_id, &next.id);
        self.write(|t| match read::<Session>(t, &key)? {
            Some(stored)
                if stored.revoked_at.is_none() && stored.current_hash == *expected_current =>
            {
                put(t, &key, next)
            }
            _ => Err(StoreError::Conflict(Conflict::SessionChanged)),
        })
    }

    async fn revoke_session(
        &self,
        user_id: &UserId,
        id: &SessionId,
        at: i64,
        reason: RevokeReason,
    ) -> Result<(), StoreError> {
        let key = keys::session(user_id, id);
        self.write(|t| match read::<Session>(t, &key)? {
            None => Err(StoreError::NotFound),
            Some(s) if s.revoked_at.is_some() => Ok(()),
            Some(mut s) => {
                s.revoked_at = Some(at);
                s.revoked_reason = Some(reason);
                put(t, &key, &s)
            }
        })
    }

    async fn list_sessions(&self, user_id: &UserId) -> Result<Vec<Session>, StoreError> {
        self.list(&keys::user_pk(user_id), keys::SESSION_PREFIX)
    }
}

#[async_trait]
impl AccountStore for EmbeddedStore {
    async fn commit(&self, changes: &[Change]) -> Result<(), StoreError> {
        self.write(|t| changes.iter().try_for_each(|c| apply_change(t, c)))?;
        // A change that owes a mail is durable before the caller answers (the mail must go out
        // even if the process is killed now); other account writes ride the flusher.
        if changes.iter().any(|c| matches!(c, Change::QueueMail(_))) {
            self.sync().await?;
        }
        Ok(())
    }

    async fn get_token(&self, hash: &TokenHash) -> Result<Option<OneTimeToken>, StoreError> {
        self.get(&keys::one_time_token(hash))
    }

    async fn get_otp(&self, normalized_email: &str) -> Result<Option<EmailOtp>, StoreError> {
        self.get(&keys::email_otp(normalized_email))
    }

    async fn list_audit(
        &self,
        user_id: &UserId,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let pk = keys::user_pk(user_id);
        let end = match before {
            Some(id) => keys::audit(user_id, id).1,
            // The first sort key after every `AUDIT#…` ('$' follows '#').
            None => "AUDIT$".to_owned(),
        };
        let txn = self.db.begin_read().map_err(internal)?;
        let table = txn.open_table(ITEMS).map_err(internal)?;
        let mut page = Vec::new();
        let range = table
            .range((pk.as_str(), keys::AUDIT_PREFIX)..(pk.as_str(), end.as_str()))
            .map_err(internal)?;
        for entry in range.rev().take(limit) {
            let (_, v) = entry.map_err(internal)?;
            page.push(serde_json::from_slice(v.value()).map_err(internal)?);
        }
        Ok(page)
    }

    async fn get_identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<Identity>, StoreError> {
        self.get(&keys::identity(provider, subject))
    }

    async fn list_identities(&self, user_id: &UserId) -> Result<Vec<Identity>, StoreError> {
        self.list(&keys::user_pk(user_id), keys::IDENTITY_PREFIX)
    }

    async fn get_oauth_state(&self, hash: &TokenHash) -> Result<Option<OAuthState>, StoreError> {
        self.get(&keys::oauth_state(hash))
    }

    async fn get_api_key(&self, key_id: &str) -> Result<Option<ApiKey>, StoreError> {
        let txn = self.db.begin_read().map_err(internal)?;
        let table = txn.open_table(ITEMS).map_err(internal)?;
        match read::<ApiKeyOwner>(&table, &keys::api_key_owner(key_id))? {
            Some(owner) => read(&table, &keys::api_key(&owner.user_id, key_id)),
            None => Ok(None),
        }
    }

    async fn list_api_keys(&self, user_id: &UserId) -> Result<Vec<ApiKey>, StoreError> {
        self.list(&keys::user_pk(user_id), keys::API_KEY_PREFIX)
    }

    async fn touch_api_key(
        &self,
        user_id: &UserId,
        key_id: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        let item = keys::api_key(user_id, key_id);
        self.write(|t| match read::<ApiKey>(t, &item)? {
            Some(mut key) => {
                key.last_used_at = Some(at);
                put(t, &item, &key)
            }
            None => Ok(()),
        })
    }

    async fn erase_user_items(&self, user_id: &UserId) -> Result<usize, StoreError> {
        let pk = keys::user_pk(user_id);
        // (sort key, the item outside the partition it names: a token, an identity lookup)
        let doomed: Vec<(String, Option<Key>)> = {
            let txn = self.db.begin_read().map_err(internal)?;
            let table = txn.open_table(ITEMS).map_err(internal)?;
            let mut doomed = Vec::new();
            for entry in table.range((pk.as_str(), "")..).map_err(internal)? {
                let (k, v) = entry.map_err(internal)?;
                let (item_pk, sk) = k.value();
                if item_pk != pk {
                    break;
                }
                if super::kept_after_erase(sk) {
                    continue;
                }
                let named = if let Some(hash) = sk.strip_prefix(keys::TOKEN_REF_PREFIX) {
                    Some(keys::one_time_token(&TokenHash(hash.to_owned())))
                } else if let Some(key_id) = sk.strip_prefix(keys::API_KEY_PREFIX) {
                    Some(keys::api_key_owner(key_id))
                } else if sk.starts_with(keys::IDENTITY_PREFIX) {
                    let identity: Identity = serde_json::from_slice(v.value()).map_err(internal)?;
                    Some(keys::identity(&identity.provider, &identity.subject))
                } else {
                    None
                };
                doomed.push((sk.to_owned(), named));
            }
            doomed
        };
        self.write(|t| {
            for (sk, named) in &doomed {
                if let Some(key) = named {
                    delete(t, key)?;
                }
                delete(t, &(pk.clone(), sk.clone()))?;
            }
            Ok(doomed.len())
        })
    }
}

/// Rate windows are counted in this process's memory under one lock: the embedded store is one
/// process by construction (redb holds its file's lock), so the count is exact — the same
/// semantics as DynamoDB's conditional `ADD` — at a fraction of a write transaction's cost. They
/// are not persisted (a restart starts every window afresh, as DynamoDB's TTL would a little
/// later). Failed-login records are items in the file like every other.
#[async_trait]
impl RateLimiter for EmbeddedStore {
    async fn hit(
        &self,
        name: &str,
        rule: &RateRule,
        key: &str,
        now: i64,
    ) -> Result<RateDecision, StoreError> {
        let (start, end) = (rule.window_start(now), rule.window_end(now));
        let mut windows = self
            .windows
            .lock()
            .map_err(|_| internal(crate::error::message("rate windows lock poisoned")))?;
        if windows.len() > WINDOWS_BEFORE_SWEEP {
            windows.retain(|_, w| w.end > now);
        }
        let window = windows
            .entry((name.to_owned(), key.to_owned()))
            .or_insert(RateCount {
                start,
                end,
                count: 0,
            });
        if window.start != start {
            *window = RateCount {
                start,
                end,
                count: 0,
            };
        }
        let count = if window.count >= u64::from(rule.limit) {
            None
        } else {
            window.count += 1;
            Some(window.count)
        };
        Ok(RateDecision::from_count(rule, now, count))
    }

    async fn login_failures(&self, key: &str) -> Result<Option<LoginFailures>, StoreError> {
        Ok(self
            .get::<FailuresItem>(&keys::login_failures(key))?
            .map(LoginFailures::from))
    }

    async fn record_login_failure(&self, key: &str, now: i64) -> Result<LoginFailures, StoreError> {
        let item = keys::login_failures(key);
        self.write(|t| {
            // A record past its TTL is gone in DynamoDB (eventually): start again from one.
            let count = read::<FailuresItem>(t, &item)?
                .filter(|f| f.expires_at > now)
                .map_or(0, |f| f.count);
            let next = FailuresItem {
                count: count.saturating_add(1),
                last_failed_at: now,
                expires_at: now + LOGIN_FAILURES_TTL_SECONDS,
            };
            put(t, &item, &next)?;
            Ok(LoginFailures {
                count: next.count,
                last_failed_at: now,
            })
        })
    }

    async fn clear_login_failures(&self, key: &str) -> Result<(), StoreError> {
        let item = keys::login_failures(key);
        self.write(|t| delete(t, &item))
    }
}

#[async_trait]
impl UsageStore for EmbeddedStore {
    async fn track(&self, r: &TrackRequest<'_>) -> Result<Tracked, StoreError> {
        let counter = keys::usage(&r.user_id, r.feature, r.period.start);
        let idem = keys::usage_idempotency(&r.user_id, r.idempotency_key);
        self.write(|t| {
            let used = read::<UsageCounter>(t, &counter)?.map_or(0, |c| c.used);
            // A key past its TTL is gone in DynamoDB (eventually): not seen.
            if let Some(seen) =
                read::<IdempotencyRecord>(t, &idem)?.filter(|k| k.expires_at > r.now)
            {
                if seen.feature != r.feature || seen.quantity != r.quantity {
                    return Err(StoreError::Conflict(Conflict::IdempotencyMismatch));
                }
                return Ok(Tracked::Replayed { used });
            }
            let next = used.saturating_add(r.quantity);
            if r.ceiling.is_some_and(|c| next > c) {
                return Ok(Tracked::LimitReached { used });
            }
            if let Some(spend) = r.spend {
                if let CreditApplied::Insufficient { balance } =
                    apply_credit_write(t, spend, false)?
                {
                    return Ok(Tracked::InsufficientCredits { used, balance });
                }
            }
            put(
                t,
                &counter,
                &UsageCounter {
                    feature: r.feature.to_owned(),
                    period_start: r.period.start,
                    used: next,
                    expires_at: r.period.end + USAGE_RETENTION_SECONDS,
                },
            )?;
            put(
                t,
                &idem,
                &IdempotencyRecord {
                    feature: r.feature.to_owned(),
                    quantity: r.quantity,
                    created_at: r.now,
                    expires_at: r.now + IDEMPOTENCY_TTL_SECONDS,
                },
            )?;
            Ok(Tracked::Counted { used: next })
        })
    }

    async fn used(
        &self,
        user_id: &UserId,
        feature: &str,
        period_start: i64,
    ) -> Result<u64, StoreError> {
        Ok(self
            .get::<UsageCounter>(&keys::usage(user_id, feature, period_start))?
            .map_or(0, |c| c.used))
    }
}

#[async_trait]
impl CreditStore for EmbeddedStore {
    async fn apply_credits(&self, write: &CreditWrite) -> Result<CreditApplied, StoreError> {
        self.write(|t| apply_credit_write(t, write, true))
    }

    async fn credit_balance(&self, user_id: &UserId) -> Result<i64, StoreError> {
        Ok(self
            .get::<CreditBalance>(&keys::credit_balance(user_id))?
            .map_or(0, |b| b.balance))
    }

    async fn credit_history(
        &self,
        user_id: &UserId,
        before: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<CreditEntry>, Option<String>), StoreError> {
        let cursor = keys::credit_cursor;
        let mut all: Vec<CreditEntry> = self.list(&keys::user_pk(user_id), keys::CREDIT_PREFIX)?;
        all.reverse();
        let mut page: Vec<CreditEntry> = all
            .into_iter()
            .filter(|e| before.is_none_or(|b| cursor(e).as_str() < b))
            .take(limit.saturating_add(1))
            .collect();
        let next = if page.len() > limit {
            page.truncate(limit);
            page.last().map(cursor)
        } else {
            None
        };
        Ok((page, next))
    }

    async fn credit_cause(&self, cause: &str) -> Result<Option<CreditEntry>, StoreError> {
        self.get(&keys::credit_cause(cause))
    }
}

#[async_trait]
impl Outbox for EmbeddedStore {
    async fn get_mail(&self, id: &str) -> Result<Option<OutboxMail>, StoreError> {
        self.get(&keys::mail(id))
    }

    async fn claim_mail(&self, id: &str, now: i64, lease: i64) -> Result<MailClaim, StoreError> {
        let key = keys::mail(id);
        self.write(|t| match read::<OutboxMail>(t, &key)? {
            None => Ok(MailClaim::Done),
            Some(mut mail) => match mail.claim_decision(now) {
                ClaimDecision::Done => Ok(MailClaim::Done),
                ClaimDecision::Busy { until } => Ok(MailClaim::Busy { until }),
                ClaimDecision::Claim => {
                    mail.status = MailStatus::Sending;
                    mail.attempts += 1;
                    mail.lease_until = Some(now + lease);
                    put(t, &key, &mail)?;
                    Ok(MailClaim::Claimed(mail))
                }
            },
        })
    }

    async fn finish_mail(
        &self,
        id: &str,
        attempt: u32,
        outcome: &MailOutcome,
    ) -> Result<(), StoreError> {
        let key = keys::mail(id);
        self.write(|t| match read::<OutboxMail>(t, &key)? {
            Some(mut mail) if mail.status == MailStatus::Sending && mail.attempts == attempt => {
                mail.status = outcome.status;
                mail.finished_at = Some(outcome.at);
                mail.lease_until = None;
                mail.message_id = outcome.message_id.clone();
                if outcome.note.is_some() {
                    mail.last_error = outcome.note.clone();
                }
                put(t, &key, &mail)
            }
            _ => Err(StoreError::Conflict(Conflict::MailChanged)),
        })?;
        self.sync().await
    }

    async fn release_mail(&self, id: &str, attempt: u32, error: &str) -> Result<(), StoreError> {
        let key = keys::mail(id);
        self.write(|t| match read::<OutboxMail>(t, &key)? {
            Some(mut mail) if mail.status == MailStatus::Sending && mail.attempts == attempt => {
                mail.status = MailStatus::Pending;
                mail.lease_until = None;
                mail.last_error = Some(error.to_owned());
                put(t, &key, &mail)
            }
            _ => Err(StoreError::Conflict(Conflict::MailChanged)),
        })
    }

    async fn pending_mail(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        let txn = self.db.begin_read().map_err(internal)?;
        let table = txn.open_table(ITEMS).map_err(internal)?;
        let mut found: Vec<OutboxMail> = Vec::new();
        // Every `MAIL#…` partition ('$' follows '#').
        for entry in table
            .range((keys::MAIL_PREFIX, "")..("MAIL$", ""))
            .map_err(internal)?
        {
            let (_, v) = entry.map_err(internal)?;
            let mail: OutboxMail = serde_json::from_slice(v.value()).map_err(internal)?;
            if matches!(mail.status, MailStatus::Pending | MailStatus::Sending) {
                found.push(mail);
            }
        }
        found.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(found.into_iter().take(limit).map(|m| m.id).collect())
    }
}

#[async_trait]
impl OutboundStore for EmbeddedStore {
    async fn get_outbound(&self, id: &str) -> Result<Option<OutboundEvent>, StoreError> {
        self.get(&keys::outbound(id))
    }

    async fn claim_outbound(
        &self,
        id: &str,
        now: i64,
        lease: i64,
    ) -> Result<OutboundClaim, StoreError> {
        let key = keys::outbound(id);
        self.write(|t| match read::<OutboundEvent>(t, &key)? {
            None => Ok(OutboundClaim::Done),
            Some(mut event) => match event.decision(now) {
                OutboundDecision::Done => Ok(OutboundClaim::Done),
                OutboundDecision::Wait { until } => Ok(OutboundClaim::Wait { until }),
                OutboundDecision::Claim => {
                    event.status = OutboundStatus::Sending;
                    event.attempts += 1;
                    event.lease_until = Some(now + lease);
                    put(t, &key, &event)?;
                    Ok(OutboundClaim::Claimed(event))
                }
            },
        })
    }

    async fn finish_outbound(
        &self,
        id: &str,
        attempt: u32,
        outcome: &OutboundOutcome,
    ) -> Result<(), StoreError> {
        let key = keys::outbound(id);
        self.write(|t| match read::<OutboundEvent>(t, &key)? {
            Some(mut event)
                if event.status == OutboundStatus::Sending && event.attempts == attempt =>
            {
                event.status = outcome.status;
                event.lease_until = None;
                event.delivered_to = outcome.delivered_to.clone();
                event.next_attempt_at = outcome.next_attempt_at;
                if outcome.error.is_some() {
                    event.last_error = outcome.error.clone();
                }
                let due = keys::outbound_due(outcome.claimed_due, id);
                t.remove((due.0.as_str(), due.1.as_str()))
                    .map_err(internal)?;
                if outcome.status == OutboundStatus::Pending {
                    put_due(t, outcome.next_attempt_at, &event)?;
                } else {
                    event.finished_at = Some(outcome.at);
                }
                put(t, &key, &event)
            }
            _ => Err(StoreError::Conflict(Conflict::MailChanged)),
        })
    }

    async fn due_outbound(&self, now: i64, limit: usize) -> Result<Vec<String>, StoreError> {
        let txn = self.db.begin_read().map_err(internal)?;
        let table = txn.open_table(ITEMS).map_err(internal)?;
        let until = keys::outbound_due_until(now);
        let mut ids = Vec::new();
        for entry in table
            .range((keys::OUTBOUND_DUE_PK, "")..=(keys::OUTBOUND_DUE_PK, until.as_str()))
            .map_err(internal)?
        {
            if ids.len() >= limit {
                break;
            }
            let (_, v) = entry.map_err(internal)?;
            let due: OutboundDue = serde_json::from_slice(v.value()).map_err(internal)?;
            ids.push(due.id);
        }
        Ok(ids)
    }

    async fn list_outbound(
        &self,
        status: OutboundStatus,
        limit: usize,
    ) -> Result<Vec<OutboundEvent>, StoreError> {
        let txn = self.db.begin_read().map_err(internal)?;
        let table = txn.open_table(ITEMS).map_err(internal)?;
        let mut found: Vec<OutboundEvent> = Vec::new();
        // Every `HOOK#…` partition ('$' follows '#').
        for entry in table
            .range((keys::HOOK_PREFIX, "")..("HOOK$", ""))
            .map_err(internal)?
        {
            let (_, v) = entry.map_err(internal)?;
            let event: OutboundEvent = serde_json::from_slice(v.value()).map_err(internal)?;
            if event.status == status {
                found.push(event);
            }
        }
        found.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        found.truncate(limit);
        Ok(found)
    }

    async fn replay_outbound(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let key = keys::outbound(id);
        self.write(|t| match read::<OutboundEvent>(t, &key)? {
            Some(mut event) if event.status == OutboundStatus::Dead => {
                event.status = OutboundStatus::Pending;
                event.attempts = 0;
                event.next_attempt_at = now;
                event.finished_at = None;
                put(t, &key, &event)?;
                put_due(t, now, &event)?;
                Ok(true)
            }
            _ => Ok(false),
        })
    }
}

#[async_trait]
impl BillingStore for EmbeddedStore {
    async fn get_subscription(&self, user_id: &UserId) -> Result<Option<Subscription>, StoreError> {
        self.get(&keys::subscription(user_id))
    }

    async fn put_subscription_with(
        &self,
        write: &SubscriptionWrite,
        notices: &Notices,
    ) -> Result<(), StoreError> {
        self.write(|t| {
            put_subscription_checked(t, write)?;
            put_notices(t, notices)
        })
    }

    async fn claim_customer(
        &self,
        provider: Provider,
        customer: &CustomerId,
        user_id: &UserId,
    ) -> Result<UserId, StoreError> {
        let claim = keys::customer_claim(provider, customer);
        let mine = keys::user_customer(user_id, provider);
        self.write(|t| match read::<CustomerClaim>(t, &claim)? {
            Some(existing) => Ok(existing.user_id),
            None => {
                put(t, &claim, &CustomerClaim { user_id: *user_id })?;
                put(
                    t,
                    &mine,
                    &UserCustomer {
                        customer_id: customer.clone(),
                    },
                )?;
                Ok(*user_id)
            }
        })
    }

    async fn find_customer(
        &self,
        provider: Provider,
        customer: &CustomerId,
    ) -> Result<Option<UserId>, StoreError> {
        Ok(self
            .get::<CustomerClaim>(&keys::customer_claim(provider, customer))?
            .map(|c| c.user_id))
    }

    async fn list_payments(&self, user_id: &UserId) -> Result<Vec<Payment>, StoreError> {
        self.list(&keys::user_pk(user_id), keys::PAYMENT_PREFIX)
    }

    async fn customer_of(
        &self,
        provider: Provider,
        user_id: &UserId,
    ) -> Result<Option<CustomerId>, StoreError> {
        Ok(self
            .get::<UserCustomer>(&keys::user_customer(user_id, provider))?
            .map(|c| c.customer_id))
    }

    async fn trial_used(&self, user_id: &UserId) -> Result<bool, StoreError> {
        Ok(self
            .get::<TrialMarker>(&keys::trial_marker(user_id))?
            .is_some())
    }
}

#[async_trait]
impl EventLedger for EmbeddedStore {
    async fn record_event(&self, event: &WebhookEvent) -> Result<(WebhookEvent, bool), StoreError> {
        let key = keys::event(event.provider, &event.event_id);
        let recorded = self.write(|t| match read::<WebhookEvent>(t, &key)? {
            Some(existing) => Ok((existing, false)),
            None => {
                put(t, &key, event)?;
                Ok((event.clone(), true))
            }
        })?;
        // Durable before ingest acknowledges (also for a duplicate whose first copy may still be
        // in an unsynced commit).
        self.sync().await?;
        Ok(recorded)
    }

    async fn get_event(
        &self,
        provider: Provider,
        event_id: &EventId,
    ) -> Result<Option<WebhookEvent>, StoreError> {
        self.get(&keys::event(provider, event_id))
    }

    async fn mark_event(
        &self,
        provider: Provider,
        event_id: &EventId,
        mark: &EventMark,
    ) -> Result<(), StoreError> {
        let key = keys::event(provider, event_id);
        self.write(|t| match read::<WebhookEvent>(t, &key)? {
            None => Err(StoreError::NotFound),
            Some(e) if e.status == EventStatus::Processed => Ok(()),
            Some(mut e) => {
                e.status = mark.status;
                e.attempts = mark.attempts;
                e.last_error = mark.error.clone();
                if mark.status == EventStatus::Ignored {
                    e.processed_at = Some(mark.at);
                }
                put(t, &key, &e)
            }
        })
    }

    async fn apply_event(
        &self,
        provider: Provider,
        event_id: &EventId,
        effects: &EventEffects,
        at: i64,
    ) -> Result<(), StoreError> {
        let key = keys::event(provider, event_id);
        self.write(|t| {
            let mut event = match read::<WebhookEvent>(t, &key)? {
                None => return Err(StoreError::NotFound),
                Some(e) if e.status == EventStatus::Processed => {
                    return Err(StoreError::Conflict(Conflict::AlreadyProcessed))
                }
                Some(e) => e,
            };
            if let Some(write) = &effects.subscription {
                put_subscription_checked(t, write)?;
            }
            if let Some(p) = &effects.payment {
                put(
                    t,
                    &keys::payment(&p.user_id, p.paid_at, p.provider, &p.payment_id),
                    p,
                )?;
            }
            if let Some((entry, audit)) = &effects.credits {
                let write = CreditWrite {
                    entry: entry.clone(),
                    require_funds: false,
                    audit: audit.clone(),
                    // The event's own notices carry its `credits.changed`.
                    notices: Notices::default(),
                };
                apply_credit_write(t, &write, true)?;
            }
            put_notices(t, &effects.notices)?;
            event.status = EventStatus::Processed;
            event.processed_at = Some(at);
            event.last_error = None;
            put(t, &key, &event)
        })
    }
    async fn reconcile_checkpoint(&self, provider: Provider) -> Result<Option<i64>, StoreError> {
        Ok(self
            .get::<Checkpoint>(&keys::reconcile_checkpoint(provider))?
            .map(|c| c.reconciled_to))
    }

    async fn set_reconcile_checkpoint(
        &self,
        provider: Provider,
        at: i64,
    ) -> Result<(), StoreError> {
        let key = keys::reconcile_checkpoint(provider);
        self.write(|t| {
            if read::<Checkpoint>(t, &key)?.is_some_and(|c| c.reconciled_to >= at) {
                return Ok(());
            }
            put(t, &key, &Checkpoint { reconciled_to: at })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EVENT_RETENTION_SECONDS;

    fn event(id: &str) -> WebhookEvent {
        WebhookEvent {
            provider: Provider::Stripe,
            event_id: id.into(),
            event_type: "customer.subscription.updated".into(),
            body: "{}".into(),
            group_id: "sub_1".into(),
            received_at: 1_000,
            status: EventStatus::Received,
            attempts: 0,
            last_error: None,
            processed_at: None,
            expires_at: 1_000 + EVENT_RETENTION_SECONDS,
        }
    }

    #[tokio::test]
    async fn recorded_events_are_durable_before_record_returns() {
        let store = EmbeddedStore::in_memory().expect("store");
        store.record_event(&event("evt_1")).await.expect("record");
        let (durable, written) = store.commit_counts();
        assert_eq!(
            durable, written,
            "record_event returned before its commit was durable"
        );
        // An ordinary write is not synced at once (the flusher or `flush` does it later).
        store
            .mark_event(
                Provider::Stripe,
                &"evt_1".into(),
                &EventMark {
                    status: EventStatus::Failed,
                    attempts: 1,
                    error: None,
                    at: 5,
                },
            )
            .await
            .expect("mark");
        let (durable, written) = store.commit_counts();
        assert!(durable < written);
        // A duplicate delivery is durable too, and is reported as not new.
        let (_, new) = store
            .record_event(&event("evt_1"))
            .await
            .expect("record again");
        assert!(!new);
        let (durable, written) = store.commit_counts();
        assert_eq!(durable, written);
    }

    #[tokio::test]
    async fn concurrent_syncs_share_durable_commits() {
        let store = EmbeddedStore::in_memory().expect("store");
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                let s = store.clone();
                tokio::spawn(async move { s.record_event(&event(&format!("evt_{i}"))).await })
            })
            .collect();
        for t in tasks {
            t.await.expect("join").expect("record");
        }
        let (durable, written) = store.commit_counts();
        assert_eq!(durable, written);
    }
}
