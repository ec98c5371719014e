//! The embedded store: the same items and keys as DynamoDB in a local [redb] file (or in memory
//! for tests), for the dev server. redb serialises write transactions, so every conditional write
//! is a read-check-write inside one transaction.
//!
//! Durability: commits are made with `Durability::None` and a background task makes one durable
//! commit per second ([`EmbeddedStore::FLUSH_INTERVAL`]); [`EmbeddedStore::flush`] (called on
//! shutdown) persists everything. A hard kill can lose at most about one second of writes — a
//! trade made for the local dev store only, which keeps refresh cheap enough to benchmark.

use super::{keys, BillingStore, EventLedger, SessionStore, StoreError, UserStore};
use crate::billing::records::{EventEffects, EventStatus, WebhookEvent};
use crate::billing::state::{Provider, Subscription};
use crate::domain::{RevokeReason, Session, SessionId, TokenHash, User, UserId};
use async_trait::async_trait;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

const ITEMS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("items");

#[derive(Serialize, Deserialize)]
struct EmailClaim {
    user_id: UserId,
}

#[derive(Serialize, Deserialize)]
struct CustomerClaim {
    user_id: UserId,
}

#[derive(Serialize, Deserialize)]
struct UserCustomer {
    customer_id: String,
}

/// A redb-backed implementation of every store trait. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmbeddedStore")
    }
}

fn internal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(e.to_string())
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
        Ok(Self { db: Arc::new(db) })
    }

    /// Makes every commit so far durable (one fsync'ed empty commit).
    ///
    /// # Errors
    /// [`StoreError::Internal`] if the commit fails.
    pub fn flush(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(internal)?;
        txn.commit().map_err(internal)
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

    fn get<T: DeserializeOwned>(&self, key: &(String, String)) -> Result<Option<T>, StoreError> {
        let txn = self.db.begin_read().map_err(internal)?;
        let table = txn.open_table(ITEMS).map_err(internal)?;
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
        Ok(result)
    }
}

fn exists(
    table: &redb::Table<'_, (&str, &str), &[u8]>,
    key: &(String, String),
) -> Result<bool, StoreError> {
    Ok(table
        .get((key.0.as_str(), key.1.as_str()))
        .map_err(internal)?
        .is_some())
}

fn read<T: DeserializeOwned>(
    table: &redb::Table<'_, (&str, &str), &[u8]>,
    key: &(String, String),
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
    key: &(String, String),
    value: &T,
) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(value).map_err(internal)?;
    table
        .insert((key.0.as_str(), key.1.as_str()), bytes.as_slice())
        .map_err(internal)?;
    Ok(())
}

#[async_trait]
impl UserStore for EmbeddedStore {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let user_key = keys::user(&user.id);
        let claim_key = keys::email_claim(user.email().normalized());
        self.write(|t| {
            if exists(t, &user_key)? || exists(t, &claim_key)? {
                return Err(StoreError::Conflict("email_taken"));
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
            _ => Err(StoreError::Conflict("stale_version")),
        })
    }
}

#[async_trait]
impl SessionStore for EmbeddedStore {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        let key = keys::session(&session.user_id, &session.id);
        self.write(|t| {
            if exists(t, &key)? {
                return Err(StoreError::Conflict("session_exists"));
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
            _ => Err(StoreError::Conflict("session_changed")),
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
        let pk = keys::user_pk(user_id);
        let txn = self.db.begin_read().map_err(internal)?;
        let table = txn.open_table(ITEMS).map_err(internal)?;
        let start = (pk.as_str(), keys::SESSION_PREFIX);
        let mut sessions = Vec::new();
        for entry in table.range(start..).map_err(internal)? {
            let (k, v) = entry.map_err(internal)?;
            let (item_pk, item_sk) = k.value();
            if item_pk != pk || !item_sk.starts_with(keys::SESSION_PREFIX) {
                break;
            }
            sessions.push(serde_json::from_slice(v.value()).map_err(internal)?);
        }
        Ok(sessions)
    }
}

#[async_trait]
impl BillingStore for EmbeddedStore {
    async fn get_subscription(&self, user_id: &UserId) -> Result<Option<Subscription>, StoreError> {
        self.get(&keys::subscription(user_id))
    }

    async fn put_subscription(
        &self,
        subscription: &Subscription,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let key = keys::subscription(&subscription.user_id);
        self.write(|t| {
            let stored = read::<Subscription>(t, &key)?.map(|s| s.version);
            if stored != expected_version {
                return Err(StoreError::Conflict("stale_version"));
            }
            put(t, &key, subscription)
        })
    }

    async fn claim_customer(
        &self,
        provider: Provider,
        customer_id: &str,
        user_id: &UserId,
    ) -> Result<UserId, StoreError> {
        let claim = keys::customer_claim(provider.as_str(), customer_id);
        let mine = keys::user_customer(user_id, provider.as_str());
        self.write(|t| match read::<CustomerClaim>(t, &claim)? {
            Some(existing) => Ok(existing.user_id),
            None => {
                put(t, &claim, &CustomerClaim { user_id: *user_id })?;
                put(
                    t,
                    &mine,
                    &UserCustomer {
                        customer_id: customer_id.to_owned(),
                    },
                )?;
                Ok(*user_id)
            }
        })
    }

    async fn find_customer(
        &self,
        provider: Provider,
        customer_id: &str,
    ) -> Result<Option<UserId>, StoreError> {
        Ok(self
            .get::<CustomerClaim>(&keys::customer_claim(provider.as_str(), customer_id))?
            .map(|c| c.user_id))
    }

    async fn customer_of(
        &self,
        provider: Provider,
        user_id: &UserId,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .get::<UserCustomer>(&keys::user_customer(user_id, provider.as_str()))?
            .map(|c| c.customer_id))
    }
}

#[async_trait]
impl EventLedger for EmbeddedStore {
    async fn record_event(&self, event: &WebhookEvent) -> Result<(WebhookEvent, bool), StoreError> {
        let key = keys::event(event.provider.as_str(), &event.event_id);
        self.write(|t| match read::<WebhookEvent>(t, &key)? {
            Some(existing) => Ok((existing, false)),
            None => {
                put(t, &key, event)?;
                Ok((event.clone(), true))
            }
        })
    }

    async fn get_event(
        &self,
        provider: Provider,
        event_id: &str,
    ) -> Result<Option<WebhookEvent>, StoreError> {
        self.get(&keys::event(provider.as_str(), event_id))
    }

    async fn mark_event(
        &self,
        provider: Provider,
        event_id: &str,
        status: EventStatus,
        attempts: u32,
        error: Option<String>,
        at: i64,
    ) -> Result<(), StoreError> {
        let key = keys::event(provider.as_str(), event_id);
        self.write(|t| match read::<WebhookEvent>(t, &key)? {
            None => Err(StoreError::NotFound),
            Some(e) if e.status == EventStatus::Processed => Ok(()),
            Some(mut e) => {
                e.status = status;
                e.attempts = attempts;
                e.last_error = error;
                if status == EventStatus::Ignored {
                    e.processed_at = Some(at);
                }
                put(t, &key, &e)
            }
        })
    }

    async fn apply_event(
        &self,
        provider: Provider,
        event_id: &str,
        effects: &EventEffects,
        at: i64,
    ) -> Result<(), StoreError> {
        let key = keys::event(provider.as_str(), event_id);
        self.write(|t| {
            let mut event = match read::<WebhookEvent>(t, &key)? {
                None => return Err(StoreError::NotFound),
                Some(e) if e.status == EventStatus::Processed => {
                    return Err(StoreError::Conflict("already_processed"))
                }
                Some(e) => e,
            };
            if let Some((sub, expected)) = &effects.subscription {
                let sub_key = keys::subscription(&sub.user_id);
                let stored = read::<Subscription>(t, &sub_key)?.map(|s| s.version);
                if stored != *expected {
                    return Err(StoreError::Conflict("stale_version"));
                }
                put(t, &sub_key, sub)?;
            }
            if let Some(p) = &effects.payment {
                put(
                    t,
                    &keys::payment(&p.user_id, p.paid_at, p.provider.as_str(), &p.payment_id),
                    p,
                )?;
            }
            event.status = EventStatus::Processed;
            event.processed_at = Some(at);
            event.last_error = None;
            put(t, &key, &event)
        })
    }
}
