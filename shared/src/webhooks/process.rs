//! The webhook processor (DESIGN §7.2): for each queued pointer, load the ledger event, skip it if
//! processed, normalise it, refetch the subscription from the provider, and commit the new state
//! together with marking the event processed — guarded so an older provider state never
//! overwrites a newer one and each event takes effect once.

use super::events::{normalize_stripe, normalize_whop, Normalized};
use crate::billing::catalog::Catalog;
use crate::billing::records::{EventEffects, EventStatus, WebhookEvent};
use crate::billing::state::{should_replace, Provider, ProviderSubscription, Subscription};
use crate::clock::Clock;
use crate::domain::UserId;
use crate::payments::{ProviderError, Providers};
use crate::queue::EventMessage;
use crate::store::{BillingStore, EventLedger, StoreError, UserStore};
use std::collections::HashMap;
use std::sync::Arc;

/// How many groups of one batch are processed at once.
pub const GROUP_CONCURRENCY: usize = 8;

/// What processing one message did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessOutcome {
    /// The event took effect now.
    Processed,
    /// An event type Tollgate does not act on: recorded as ignored.
    Ignored,
    /// It had already taken effect (or been ignored): nothing to do.
    AlreadyDone,
}

/// Processing failed; the queue redelivers the message (then the DLQ).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ProcessError {
    /// What went wrong (no secrets).
    pub message: String,
}

impl ProcessError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// One message of a batch: the queue's message id, the pointer and its FIFO group.
#[derive(Clone, Debug)]
pub struct BatchItem {
    /// The queue's id for the message (reported back on failure).
    pub message_id: String,
    /// The pointer.
    pub message: EventMessage,
    /// FIFO group id (records of one group are processed in order).
    pub group_id: String,
}

/// Fetched provider states shared by the events of one group in a batch (one fetch per
/// subscription per batch). Values carry the fetch's send time in Unix microseconds.
type FetchCache = HashMap<(Provider, String), (ProviderSubscription, i64)>;

/// The processor use case.
pub struct Processor {
    ledger: Arc<dyn EventLedger>,
    billing: Arc<dyn BillingStore>,
    users: Arc<dyn UserStore>,
    providers: Providers,
    catalog: Arc<Catalog>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Processor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Processor")
            .field("providers", &self.providers)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: StoreError) -> ProcessError {
    ProcessError::new(format!("store: {e}"))
}

impl Processor {
    /// Wires the processor.
    pub fn new(
        ledger: Arc<dyn EventLedger>,
        billing: Arc<dyn BillingStore>,
        users: Arc<dyn UserStore>,
        providers: Providers,
        catalog: Arc<Catalog>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            ledger,
            billing,
            users,
            providers,
            catalog,
            clock,
        }
    }

    /// Processes a batch. Groups run concurrently (at most [`GROUP_CONCURRENCY`]); records of one
    /// group run in order, and after a failure every later record of that group is reported
    /// failed without being tried (so order is kept on redelivery). Returns the message ids that
    /// failed — the Lambda's `batchItemFailures`.
    pub async fn process_batch(self: &Arc<Self>, items: Vec<BatchItem>) -> Vec<String> {
        let mut groups: Vec<(String, Vec<BatchItem>)> = Vec::new();
        for item in items {
            match groups.iter_mut().find(|(g, _)| *g == item.group_id) {
                Some((_, v)) => v.push(item),
                None => groups.push((item.group_id.clone(), vec![item])),
            }
        }
        let semaphore = Arc::new(tokio::sync::Semaphore::new(GROUP_CONCURRENCY));
        let mut tasks = tokio::task::JoinSet::new();
        for (_, group) in groups {
            let this = self.clone();
            let semaphore = semaphore.clone();
            tasks.spawn(async move {
                let _permit = semaphore.acquire_owned().await;
                let mut cache = FetchCache::new();
                let mut failed = Vec::new();
                for (i, item) in group.iter().enumerate() {
                    if let Err(e) = this.process(&item.message, &mut cache).await {
                        tracing::warn!(event_id = %item.message.event_id, error = %e, "webhook processing failed; reporting it and the rest of its group");
                        failed.extend(group[i..].iter().map(|it| it.message_id.clone()));
                        break;
                    }
                }
                failed
            });
        }
        let mut failed = Vec::new();
        while let Some(result) = tasks.join_next().await {
            match result {
                Ok(ids) => failed.extend(ids),
                Err(e) => tracing::error!(error = %e, "a processing task panicked"),
            }
        }
        failed
    }

    /// Processes one pointer message.
    ///
    /// # Errors
    /// [`ProcessError`] when it should be retried (store or provider unavailable, user not yet
    /// known); the event is marked `failed` with the attempt count.
    pub async fn process_one(
        &self,
        message: &EventMessage,
    ) -> Result<ProcessOutcome, ProcessError> {
        self.process(message, &mut FetchCache::new()).await
    }

    async fn process(
        &self,
        message: &EventMessage,
        cache: &mut FetchCache,
    ) -> Result<ProcessOutcome, ProcessError> {
        let Some(event) = self
            .ledger
            .get_event(message.provider, &message.event_id)
            .await
            .map_err(unavailable)?
        else {
            tracing::error!(event_id = %message.event_id, "queued event is not in the ledger; dropping the pointer");
            return Ok(ProcessOutcome::AlreadyDone);
        };
        if matches!(event.status, EventStatus::Processed | EventStatus::Ignored) {
            return Ok(ProcessOutcome::AlreadyDone);
        }
        let attempts = event.attempts + 1;
        let normalized = match event.provider {
            Provider::Stripe | Provider::Local => normalize_stripe(event.body.as_bytes()),
            Provider::Whop => normalize_whop(event.body.as_bytes()),
        };
        let now = self.clock.now();
        let normalized = match normalized {
            Ok(n) if !n.ignored => n,
            other => {
                let error = other.err().map(|e| e.to_string());
                self.ledger
                    .mark_event(
                        event.provider,
                        &event.event_id,
                        EventStatus::Ignored,
                        attempts,
                        error,
                        now,
                    )
                    .await
                    .map_err(unavailable)?;
                return Ok(ProcessOutcome::Ignored);
            }
        };
        match self.apply(&event, &normalized, cache).await {
            Ok(outcome) => Ok(outcome),
            Err(e) => {
                let _ = self
                    .ledger
                    .mark_event(
                        event.provider,
                        &event.event_id,
                        EventStatus::Failed,
                        attempts,
                        Some(e.message.clone()),
                        now,
                    )
                    .await;
                Err(e)
            }
        }
    }

    async fn apply(
        &self,
        event: &WebhookEvent,
        n: &Normalized,
        cache: &mut FetchCache,
    ) -> Result<ProcessOutcome, ProcessError> {
        let provider = event.provider;
        let fetched = match &n.subscription_id {
            Some(id) => Some(self.fetch(provider, id, cache).await?),
            None => None,
        };
        let customer_id = fetched
            .as_ref()
            .map(|(f, _)| f.customer_id.clone())
            .filter(|c| !c.is_empty())
            .or_else(|| n.customer_id.clone());
        let hint = fetched
            .as_ref()
            .and_then(|(f, _)| f.user_id)
            .or_else(|| n.user_hint.as_deref().and_then(|h| h.parse().ok()));
        let user_id = self
            .resolve_user(provider, customer_id.as_deref(), hint)
            .await?;
        // A lost compare-and-swap means another writer moved the subscription: read it again.
        for _ in 0..5 {
            let stored = self
                .billing
                .get_subscription(&user_id)
                .await
                .map_err(unavailable)?;
            let subscription = match &fetched {
                Some((f, at_us)) if should_replace(stored.as_ref(), f, *at_us) => Some((
                    Subscription::from_provider(user_id, f, stored.as_ref(), &self.catalog, *at_us),
                    stored.as_ref().map(|s| s.version),
                )),
                _ => None,
            };
            let effects = EventEffects {
                subscription,
                payment: n
                    .payment
                    .clone()
                    .map(|p| p.into_payment(user_id, provider, n.subscription_id.clone())),
            };
            match self
                .ledger
                .apply_event(provider, &event.event_id, &effects, self.clock.now())
                .await
            {
                Ok(()) => {
                    tracing::info!(provider = provider.as_str(), event_id = %event.event_id, user_id = %user_id, wrote_subscription = effects.subscription.is_some(), "webhook applied");
                    return Ok(ProcessOutcome::Processed);
                }
                Err(StoreError::Conflict("already_processed")) => {
                    return Ok(ProcessOutcome::AlreadyDone)
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(unavailable(e)),
            }
        }
        Err(ProcessError::new("subscription kept changing; retry"))
    }

    async fn fetch(
        &self,
        provider: Provider,
        subscription_id: &str,
        cache: &mut FetchCache,
    ) -> Result<(ProviderSubscription, i64), ProcessError> {
        let key = (provider, subscription_id.to_owned());
        if let Some(hit) = cache.get(&key) {
            return Ok(hit.clone());
        }
        let client = self.providers.get(provider).ok_or_else(|| {
            ProcessError::new(format!(
                "{} is not configured for refetching",
                provider.as_str()
            ))
        })?;
        // Stamped before the request is sent: see `Subscription::source_fetched_at_us`.
        let at_us = self.clock.now_micros();
        let fetched =
            client
                .fetch_subscription(subscription_id)
                .await
                .map_err(|e: ProviderError| {
                    ProcessError::new(format!("refetch {subscription_id}: {e}"))
                })?;
        cache.insert(key, (fetched.clone(), at_us));
        Ok((fetched, at_us))
    }

    /// The user an event belongs to: the customer claim first (what checkout recorded); else the
    /// user id the provider object carries in its metadata, if that user exists — and then the
    /// customer is claimed for them, so later events find it.
    async fn resolve_user(
        &self,
        provider: Provider,
        customer_id: Option<&str>,
        hint: Option<UserId>,
    ) -> Result<UserId, ProcessError> {
        if let Some(customer) = customer_id {
            if let Some(owner) = self
                .billing
                .find_customer(provider, customer)
                .await
                .map_err(unavailable)?
            {
                return Ok(owner);
            }
        }
        let Some(hint) = hint else {
            return Err(ProcessError::new(
                "no user for this event yet (no customer claim, no user id in metadata)",
            ));
        };
        if self
            .users
            .get_user(&hint)
            .await
            .map_err(unavailable)?
            .is_none()
        {
            return Err(ProcessError::new(
                "the user id in the provider metadata does not exist",
            ));
        }
        match customer_id {
            Some(customer) => self
                .billing
                .claim_customer(provider, customer, &hint)
                .await
                .map_err(unavailable),
            None => Ok(hint),
        }
    }
}

/// Reads an SQS batch: each record's body must be an [`EventMessage`] and carry a
/// `MessageGroupId`. Returns the items to process and the message ids of records that do not
/// parse (reported failed so they reach the DLQ instead of being lost).
#[cfg(feature = "aws")]
pub fn batch_from_sqs(
    event: aws_lambda_events::event::sqs::SqsEvent,
) -> (Vec<BatchItem>, Vec<String>) {
    let mut items = Vec::new();
    let mut failed = Vec::new();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let message = record
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str::<EventMessage>(b).ok());
        let group = record.attributes.get("MessageGroupId").cloned();
        match (message, group) {
            (Some(message), Some(group_id)) => items.push(BatchItem {
                message_id: id,
                message,
                group_id,
            }),
            (Some(message), None) => items.push(BatchItem {
                message_id: id,
                group_id: message.event_id.clone(),
                message,
            }),
            _ => {
                tracing::error!(message_id = %id, "unreadable SQS record: reporting it failed");
                failed.push(id);
            }
        }
    }
    (items, failed)
}
