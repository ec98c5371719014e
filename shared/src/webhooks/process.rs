//! The webhook processor: for each queued pointer, load the ledger event, skip it if done,
//! normalise it, refetch the subscription from the provider, and commit the new state together
//! with the payment and "event processed" in one transaction — through the one apply loop
//! (`crate::billing::apply`), so an older provider state never overwrites a newer one and each
//! event takes effect once.

use crate::billing::notices::{notices, BillingChange};
use crate::billing::{apply_provider_state, Applied, Commit, Fetched};
use crate::clock::Clock;
use crate::domain::{
    cause_purchase, cause_refund, cause_refund_step, AuditRecord, BillingEvent, Catalog,
    CreditEntry, CreditKind, CustomerId, EventEffects, EventId, EventStatus, Notices, Party,
    Payment, PaymentFacts, PaymentId, PaymentStatus, Provider, RefundShare, Subscription,
    SubscriptionId, SubscriptionWrite, UserId, WebhookEvent, MAX_REFUND_STEPS,
};
use crate::error::Chain;
use crate::payments::{normalize_event, ProviderError, Providers};
use crate::queue::EventMessage;
use crate::store::{
    BillingStore, Conflict, CreditStore, EventLedger, EventMark, StoreError, UserStore,
};
use crate::usage::credits::audit_of;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Arc;
use tracing::Instrument as _;

/// How many groups of one batch are processed at once.
pub const GROUP_CONCURRENCY: usize = 8;

/// What processing one message did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessOutcome {
    /// The event took effect now (with a new subscription record or not).
    Processed {
        /// Whether the stored subscription was replaced.
        wrote_subscription: bool,
    },
    /// An event type Tollgate does not act on (or a body it cannot read): recorded as ignored.
    Ignored,
    /// It had already taken effect (or been ignored), or is not in the ledger: nothing to do.
    AlreadyDone,
}

/// Processing failed; the event is marked `failed` and the queue redelivers the message (then
/// the dead-letter queue).
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The ledger or the billing store failed.
    #[error("the store failed")]
    Store(#[from] StoreError),
    /// Refetching the subscription failed.
    #[error("refetching {subscription} from {provider} failed")]
    Provider {
        /// The provider.
        provider: Provider,
        /// The subscription.
        subscription: SubscriptionId,
        /// Why.
        #[source]
        source: ProviderError,
    },
    /// The event's provider has no API key here, so its subscriptions cannot be refetched.
    #[error("{0} has no API key for refetching")]
    NotConfigured(Provider),
    /// No customer claim and no user id in the metadata: checkout has not recorded the user yet.
    #[error("no user for this event yet (no customer claim, no user id in metadata)")]
    UnknownUser,
    /// The user id in the provider's metadata names no user.
    #[error("the user id in the provider metadata does not exist")]
    MissingUser,
    /// The customer's account was deleted (its claim outlives it): the event is ignored.
    #[error("the customer's account was deleted")]
    DeletedUser,
}

impl ProcessError {
    /// Whether a later attempt may succeed without anyone changing anything: store and provider
    /// outages, lost races, and events whose user the checkout has not recorded yet. A missing
    /// API key or a provider refusal needs an operator (the event still reaches the dead-letter
    /// queue, and its alarm, after the queue's receives).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable() || matches!(e, StoreError::Conflict(_)),
            Self::Provider { source, .. } => source.is_retryable(),
            Self::NotConfigured(_) | Self::MissingUser | Self::DeletedUser => false,
            Self::UnknownUser => true,
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
/// subscription per batch).
type FetchCache = HashMap<(Provider, SubscriptionId), Fetched>;

/// The processor use case.
pub struct Processor {
    ledger: Arc<dyn EventLedger>,
    billing: Arc<dyn BillingStore>,
    users: Arc<dyn UserStore>,
    credits: Arc<dyn CreditStore>,
    providers: Providers,
    catalog: Arc<Catalog>,
    clock: Arc<dyn Clock>,
    audit_retention: i64,
}

/// The stores the processor writes and reads.
pub struct ProcessorStores {
    /// The webhook ledger (and the atomic apply of an event's effects).
    pub ledger: Arc<dyn EventLedger>,
    /// Subscriptions and customer claims.
    pub billing: Arc<dyn BillingStore>,
    /// Users (an event's user must exist).
    pub users: Arc<dyn UserStore>,
    /// Credit causes (a purchase's grant, found to refund it).
    pub credits: Arc<dyn CreditStore>,
}

impl std::fmt::Debug for Processor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Processor")
            .field("providers", &self.providers)
            .finish_non_exhaustive()
    }
}

impl Processor {
    /// Wires the processor; audit records of credit changes are kept `audit_retention` seconds.
    pub fn new(
        stores: ProcessorStores,
        providers: Providers,
        catalog: Arc<Catalog>,
        clock: Arc<dyn Clock>,
        audit_retention: i64,
    ) -> Self {
        Self {
            ledger: stores.ledger,
            billing: stores.billing,
            users: stores.users,
            credits: stores.credits,
            providers,
            catalog,
            clock,
            audit_retention,
        }
    }

    /// Processes a batch. Groups run concurrently (at most [`GROUP_CONCURRENCY`]); records of one
    /// group run in order, and after a failure every later record of that group is reported
    /// failed without being tried (so order is kept on redelivery). Each record runs in a
    /// `sqs_record` span carrying its message, provider, event and (once known) user ids.
    /// Returns the message ids that failed — the Lambda's `batchItemFailures`.
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
            tasks.spawn(
                async move {
                    let _permit = semaphore.acquire_owned().await;
                    let mut cache = FetchCache::new();
                    for (i, item) in group.iter().enumerate() {
                        let span = record_span(&item.message_id, &item.message);
                        let result = this
                            .process(&item.message, &mut cache)
                            .instrument(span.clone())
                            .await;
                        if let Err(e) = result {
                            span.in_scope(|| tracing::warn!(error = %Chain(&e), retryable = e.is_retryable(), "webhook processing failed; reporting it and the rest of its group"));
                            return group[i..].iter().map(|it| it.message_id.clone()).collect();
                        }
                    }
                    Vec::new()
                }
                .in_current_span(),
            );
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

    /// Processes one pointer message (in a `sqs_record`-like span of its own).
    ///
    /// # Errors
    /// [`ProcessError`] when it should be retried or needs an operator; the event is marked
    /// `failed` with the attempt count.
    pub async fn process_one(
        &self,
        message: &EventMessage,
    ) -> Result<ProcessOutcome, ProcessError> {
        self.process(message, &mut FetchCache::new())
            .instrument(record_span("", message))
            .await
    }

    async fn process(
        &self,
        message: &EventMessage,
        cache: &mut FetchCache,
    ) -> Result<ProcessOutcome, ProcessError> {
        let Some(event) = self
            .ledger
            .get_event(message.provider, &message.event_id)
            .await?
        else {
            tracing::error!("queued event is not in the ledger; dropping the pointer");
            return Ok(ProcessOutcome::AlreadyDone);
        };
        if event.status.is_final() {
            return Ok(ProcessOutcome::AlreadyDone);
        }
        let attempts = event.attempts + 1;
        let meaning = match normalize_event(event.provider, event.body.as_bytes()) {
            Ok(BillingEvent::Ignored) => None,
            Ok(meaning) => Some(Ok(meaning)),
            Err(e) => Some(Err(e)),
        };
        let meaning = match meaning {
            Some(Ok(meaning)) => meaning,
            unusable => {
                let error = unusable.and_then(Result::err).map(|e| e.to_string());
                self.mark(&event, EventStatus::Ignored, attempts, error)
                    .await?;
                return Ok(ProcessOutcome::Ignored);
            }
        };
        match self.apply(&event, &meaning, cache).await {
            Ok(outcome) => Ok(outcome),
            Err(ProcessError::DeletedUser) => {
                let why = ProcessError::DeletedUser.to_string();
                self.mark(&event, EventStatus::Ignored, attempts, Some(why))
                    .await?;
                Ok(ProcessOutcome::Ignored)
            }
            Err(e) => {
                let error = Chain(&e).to_string();
                let mark = self
                    .mark(&event, EventStatus::Failed, attempts, Some(error))
                    .await;
                if let Err(m) = mark {
                    tracing::warn!(error = %Chain(&m), "could not record the failure in the ledger");
                }
                Err(e)
            }
        }
    }

    async fn mark(
        &self,
        event: &WebhookEvent,
        status: EventStatus,
        attempts: u32,
        error: Option<String>,
    ) -> Result<(), StoreError> {
        let mark = EventMark {
            status,
            attempts,
            error,
            at: self.clock.now(),
        };
        self.ledger
            .mark_event(event.provider, &event.event_id, &mark)
            .await
    }

    async fn apply(
        &self,
        event: &WebhookEvent,
        meaning: &BillingEvent,
        cache: &mut FetchCache,
    ) -> Result<ProcessOutcome, ProcessError> {
        let provider = event.provider;
        if let BillingEvent::Refund {
            payment_id,
            share,
            party,
        } = meaning
        {
            return self.refund(event, payment_id, *share, party).await;
        }
        let fetched = match meaning.subscription() {
            Some(id) => Some(self.fetch(provider, id, cache).await?),
            None => None,
        };
        let party = meaning.party().cloned().unwrap_or_default();
        let user_id = self
            .resolve_user(provider, fetched.as_ref(), &party)
            .await?;
        tracing::Span::current().record("user_id", tracing::field::display(&user_id));
        let payment = match meaning {
            BillingEvent::Payment {
                payment,
                subscription,
                ..
            } => Some(
                payment
                    .clone()
                    .into_payment(user_id, provider, subscription.clone()),
            ),
            _ => None,
        };
        let credits = match meaning {
            BillingEvent::Payment {
                payment,
                subscription: None,
                ..
            } => self.purchase(provider, user_id, payment).await?,
            _ => None,
        };
        let commit = ThroughLedger {
            ledger: self.ledger.as_ref(),
            catalog: &self.catalog,
            user_id,
            provider,
            event_id: &event.event_id,
            payment,
            credits,
            at: self.clock.now(),
        };
        let applied = apply_provider_state(
            self.billing.as_ref(),
            &self.catalog,
            user_id,
            fetched.as_ref(),
            &commit,
        )
        .await?;
        Ok(match applied {
            Applied::Written { subscription } => {
                tracing::info!(event_type = %event.event_type, wrote_subscription = subscription, "webhook applied");
                ProcessOutcome::Processed {
                    wrote_subscription: subscription,
                }
            }
            Applied::AlreadyProcessed => ProcessOutcome::AlreadyDone,
        })
    }

    /// The grant of a paid one-time payment that bought a credit pack (`None` for any other
    /// payment, and for one refunded before it was granted).
    async fn purchase(
        &self,
        provider: Provider,
        user_id: UserId,
        payment: &PaymentFacts,
    ) -> Result<Option<(CreditEntry, AuditRecord)>, ProcessError> {
        if payment.status != PaymentStatus::Paid {
            return Ok(None);
        }
        let pack = payment.product.as_deref().and_then(|p| match provider {
            Provider::Stripe => self.catalog.pack(p),
            Provider::Whop => self.catalog.pack_by_price(provider, &p.into()),
        });
        let Some(pack) = pack else {
            return Ok(None);
        };
        let refunded = cause_refund(provider, &payment.payment_id);
        if self.credits.credit_cause(&refunded).await?.is_some() {
            tracing::info!(pack = %pack.id, "the payment was refunded before its credits were granted");
            return Ok(None);
        }
        let mut entry = CreditEntry::new(
            user_id,
            cause_purchase(provider, &payment.payment_id),
            CreditKind::Purchase,
            i64::try_from(pack.credits).unwrap_or(i64::MAX),
            self.clock.now(),
        );
        entry.pack = Some(pack.id.clone());
        entry.provider = Some(provider);
        entry.payment_id = Some(payment.payment_id.clone());
        let audit = audit_of(&entry, self.audit_retention);
        Ok(Some((entry, audit)))
    }

    /// A refund: takes back the credits its payment bought, once per part refunded. A refund
    /// of the whole payment (no `share`) takes back the whole grant; a partial one takes back
    /// `share.credits_of(grant)` in total (rounded up), less what earlier parts took — so
    /// Stripe's `charge.refunded` for each partial refund, which carries the refunded total,
    /// takes back exactly the grant once the whole payment is refunded, and a delayed event
    /// with a smaller total takes nothing. Credits already spent are taken too (the balance may
    /// go below zero). The claw-backs are steps under [`cause_refund_step`], written in order
    /// (the processor handles one customer's events in order; a step written concurrently by
    /// another worker is a duplicate cause and not applied twice). A refund that arrives before
    /// its purchase leaves a zero entry under the first step's cause, so the purchase then
    /// grants nothing. A refund of a payment that bought no credits, for no known user,
    /// changes nothing.
    async fn refund(
        &self,
        event: &WebhookEvent,
        payment_id: &PaymentId,
        share: Option<RefundShare>,
        party: &Party,
    ) -> Result<ProcessOutcome, ProcessError> {
        let provider = event.provider;
        let grant = self
            .credits
            .credit_cause(&cause_purchase(provider, payment_id))
            .await?;
        let user_id = match &grant {
            Some(g) if self.users.get_user(&g.user_id).await?.is_none() => {
                return Err(ProcessError::DeletedUser)
            }
            Some(g) => Some(g.user_id),
            None => match self.resolve_user(provider, None, party).await {
                Ok(user) => Some(user),
                Err(ProcessError::UnknownUser | ProcessError::MissingUser) => None,
                Err(e) => return Err(e),
            },
        };
        let (step, taken) = self.refund_steps(provider, payment_id).await?;
        let take = match &grant {
            // Nothing granted yet: a zero first step forfeits the purchase.
            None if step == 1 => Some(0),
            None => None,
            Some(g) => {
                let target = share.map_or(g.amount.max(0), |s| s.credits_of(g.amount));
                let more = target.saturating_sub(taken);
                (more > 0 && step <= MAX_REFUND_STEPS).then_some(more)
            }
        };
        if step > MAX_REFUND_STEPS {
            tracing::warn!(payment = %payment_id, "a payment refunded in too many parts: no further claw-back");
        }
        let credits = user_id.zip(take).map(|(user_id, take)| {
            let mut entry = CreditEntry::new(
                user_id,
                cause_refund_step(provider, payment_id, step),
                CreditKind::Refund,
                -take,
                self.clock.now(),
            );
            entry.pack = grant.as_ref().and_then(|g| g.pack.clone());
            entry.provider = Some(provider);
            entry.payment_id = Some(payment_id.clone());
            entry.refunded_minor = share.map(|s| s.refunded_minor);
            let audit = audit_of(&entry, self.audit_retention);
            (entry, audit)
        });
        let notices = match &credits {
            Some((entry, _)) if entry.amount != 0 => notices(
                &BillingChange {
                    user_id: entry.user_id,
                    previous: None,
                    written: None,
                    payment: None,
                    credits: Some(entry),
                    now: self.clock.now(),
                },
                &self.catalog,
            ),
            _ => Notices::default(),
        };
        let effects = EventEffects {
            credits,
            notices,
            ..EventEffects::default()
        };
        match self
            .ledger
            .apply_event(provider, &event.event_id, &effects, self.clock.now())
            .await
        {
            Ok(()) => {
                tracing::info!(
                    event_type = %event.event_type,
                    clawed_back = effects.credits.as_ref().map_or(0, |(e, _)| -e.amount),
                    step,
                    "refund applied"
                );
                Ok(ProcessOutcome::Processed {
                    wrote_subscription: false,
                })
            }
            Err(StoreError::Conflict(Conflict::AlreadyProcessed)) => {
                Ok(ProcessOutcome::AlreadyDone)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The claw-backs of a payment so far: the first step not yet written (1-based) and the
    /// credits taken by the steps before it. Reads the steps in order, up to
    /// [`MAX_REFUND_STEPS`] (a handful of reads for a payment refunded in parts, one otherwise).
    async fn refund_steps(
        &self,
        provider: Provider,
        payment_id: &PaymentId,
    ) -> Result<(u32, i64), ProcessError> {
        let mut taken = 0_i64;
        for step in 1..=MAX_REFUND_STEPS {
            match self
                .credits
                .credit_cause(&cause_refund_step(provider, payment_id, step))
                .await?
            {
                Some(entry) => taken = taken.saturating_sub(entry.amount),
                None => return Ok((step, taken)),
            }
        }
        Ok((MAX_REFUND_STEPS + 1, taken))
    }

    async fn fetch(
        &self,
        provider: Provider,
        subscription: &SubscriptionId,
        cache: &mut FetchCache,
    ) -> Result<Fetched, ProcessError> {
        let key = (provider, subscription.clone());
        if let Some(hit) = cache.get(&key) {
            return Ok(hit.clone());
        }
        let client = self
            .providers
            .get(provider)
            .ok_or(ProcessError::NotConfigured(provider))?;
        // Stamped before the request is sent: see `Subscription::source_fetched_at_us`.
        let sent_at_us = self.clock.now_micros();
        let state = client
            .fetch_subscription(subscription)
            .await
            .map_err(|source| ProcessError::Provider {
                provider,
                subscription: subscription.clone(),
                source,
            })?;
        let fetched = Fetched { state, sent_at_us };
        cache.insert(key, fetched.clone());
        Ok(fetched)
    }

    /// The user an event belongs to: the customer claim first (what checkout recorded); else the
    /// user id the provider object carries in its metadata, if that user exists — and then the
    /// customer is claimed for them, so later events find it.
    async fn resolve_user(
        &self,
        provider: Provider,
        fetched: Option<&Fetched>,
        party: &Party,
    ) -> Result<UserId, ProcessError> {
        let customer: Option<&CustomerId> = fetched
            .and_then(|f| f.state.customer_id.as_ref())
            .or(party.customer.as_ref());
        if let Some(customer) = customer {
            if let Some(owner) = self.billing.find_customer(provider, customer).await? {
                // The claim outlives a deleted account (docs/architecture.md §11): nothing of
                // its later billing is written.
                if self.users.get_user(&owner).await?.is_none() {
                    return Err(ProcessError::DeletedUser);
                }
                return Ok(owner);
            }
        }
        let hint = fetched
            .and_then(|f| f.state.user_id)
            .or(party.user_hint)
            .ok_or(ProcessError::UnknownUser)?;
        if self.users.get_user(&hint).await?.is_none() {
            return Err(ProcessError::MissingUser);
        }
        match customer {
            Some(customer) => Ok(self
                .billing
                .claim_customer(provider, customer, &hint)
                .await?),
            None => Ok(hint),
        }
    }
}

/// Commits an event's effects — the subscription write, its payment — and marks it processed,
/// in one transaction of the ledger.
struct ThroughLedger<'a> {
    ledger: &'a dyn EventLedger,
    catalog: &'a Catalog,
    user_id: UserId,
    provider: Provider,
    event_id: &'a EventId,
    payment: Option<Payment>,
    credits: Option<(CreditEntry, AuditRecord)>,
    at: i64,
}

#[async_trait]
impl Commit for ThroughLedger<'_> {
    async fn commit(
        &self,
        previous: Option<&Subscription>,
        subscription: Option<SubscriptionWrite>,
    ) -> Result<(), StoreError> {
        let change = BillingChange {
            user_id: self.user_id,
            previous,
            written: subscription.as_ref().map(|w| &w.subscription),
            payment: self.payment.as_ref(),
            credits: self.credits.as_ref().map(|(entry, _)| entry),
            now: self.at,
        };
        let notices = notices(&change, self.catalog);
        let effects = EventEffects {
            subscription,
            payment: self.payment.clone(),
            credits: self.credits.clone(),
            notices,
        };
        self.ledger
            .apply_event(self.provider, self.event_id, &effects, self.at)
            .await
    }
}

/// The span one queue record is processed in.
fn record_span(message_id: &str, message: &EventMessage) -> tracing::Span {
    tracing::info_span!(
        "sqs_record",
        message_id,
        provider = %message.provider,
        event_id = %message.event_id,
        user_id = tracing::field::Empty,
    )
}
