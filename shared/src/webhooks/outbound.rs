//! Delivering outbound events (docs/architecture.md §15): claim → sign and POST to every
//! endpoint that wants the type and has not accepted it yet → finish (delivered, retry later
//! with backoff, or dead).
//!
//! **At least once per endpoint.** The event was committed with the change that owes it. An
//! attempt that does not reach every endpoint is scheduled again after
//! [`retry_delay`](crate::domain::retry_delay) (30 s doubling, at most 12 h); a worker that dies
//! mid-attempt leaves a claim that lapses after [`OUTBOUND_LEASE_SECONDS`]. After
//! [`OUTBOUND_MAX_ATTEMPTS`] it is `dead` until an operator replays it. An endpoint that
//! answered 2xx is not sent the event again; receivers deduplicate on `webhook-id` (Standard
//! Webhooks), which is the same on every attempt.

use crate::clock::Clock;
use crate::domain::{
    retry_delay, OutboundEvent, OutboundStatus, OUTBOUND_LEASE_SECONDS, OUTBOUND_MAX_ATTEMPTS,
};
use crate::error::Chain;
use crate::hooks::{sign, Endpoint, HookRequest, HookSender};
use crate::store::{OutboundClaim, OutboundOutcome, OutboundStore, StoreError};
use std::sync::Arc;
use tracing::Instrument as _;

/// How one delivery attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// Every endpoint that wants it has accepted it.
    Delivered,
    /// Some endpoint did not; tried again at this time (Unix seconds).
    Retry {
        /// When the next attempt is due.
        at: i64,
    },
    /// Out of attempts: the dead-letter record stays for an operator to replay.
    Dead,
    /// Not due yet, or another worker holds it, until this time.
    NotNow {
        /// When it may be claimed.
        until: i64,
    },
    /// Delivered or dead already, or no such event.
    AlreadyDone,
}

/// What a sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Events delivered.
    pub delivered: usize,
    /// Events scheduled for a later attempt.
    pub retry: usize,
    /// Events given up (dead).
    pub dead: usize,
}

/// Delivers outbound events. Cheap to share.
pub struct OutboundDispatcher {
    store: Arc<dyn OutboundStore>,
    sender: Arc<dyn HookSender>,
    endpoints: Arc<Vec<Endpoint>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for OutboundDispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundDispatcher")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl OutboundDispatcher {
    /// Wires the dispatcher to the configured `endpoints` (none: events are marked delivered
    /// with nothing sent).
    pub fn new(
        store: Arc<dyn OutboundStore>,
        sender: Arc<dyn HookSender>,
        endpoints: Vec<Endpoint>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            sender,
            endpoints: Arc::new(endpoints),
            clock,
        }
    }

    /// One delivery attempt of event `id`, if it is due.
    ///
    /// # Errors
    /// [`StoreError`]: the event is left as it was (its claim lapses if one was taken).
    pub async fn deliver(&self, id: &str) -> Result<Attempt, StoreError> {
        let now = self.clock.now();
        let event = match self
            .store
            .claim_outbound(id, now, OUTBOUND_LEASE_SECONDS)
            .await?
        {
            OutboundClaim::Done => return Ok(Attempt::AlreadyDone),
            OutboundClaim::Wait { until } => return Ok(Attempt::NotNow { until }),
            OutboundClaim::Claimed(event) => event,
        };
        let span = tracing::info_span!("outbound", event_id = %event.id, event_type = event.event_type.as_str(), attempt = event.attempts);
        // Instrumented, not entered: the guard of `span.enter()` must not live across an
        // `.await` (the task may resume on another thread).
        self.attempt(event).instrument(span).await
    }

    /// Posts a claimed event to every endpoint still to reach and finishes the attempt
    /// (inside its span).
    async fn attempt(&self, event: OutboundEvent) -> Result<Attempt, StoreError> {
        let mut delivered_to = event.delivered_to.clone();
        let mut errors = Vec::new();
        for endpoint in self.endpoints.iter().filter(|e| e.wants(event.event_type)) {
            if delivered_to.contains(&endpoint.name) {
                continue;
            }
            match self.post(endpoint, &event).await {
                Ok(()) => delivered_to.push(endpoint.name.clone()),
                Err(why) => errors.push(format!("{}: {why}", endpoint.name)),
            }
        }
        let at = self.clock.now();
        let (status, next, attempt) = if errors.is_empty() {
            (
                OutboundStatus::Delivered,
                event.next_attempt_at,
                Attempt::Delivered,
            )
        } else if event.attempts >= OUTBOUND_MAX_ATTEMPTS {
            (OutboundStatus::Dead, event.next_attempt_at, Attempt::Dead)
        } else {
            let next = at + retry_delay(event.attempts);
            (OutboundStatus::Pending, next, Attempt::Retry { at: next })
        };
        let error = (!errors.is_empty()).then(|| errors.join("; "));
        match &attempt {
            Attempt::Delivered => tracing::info!("outbound event delivered"),
            Attempt::Dead => tracing::error!(
                error = error.as_deref().unwrap_or_default(),
                "outbound event given up: dead-letter record kept for replay"
            ),
            _ => tracing::warn!(
                error = error.as_deref().unwrap_or_default(),
                next_attempt_at = next,
                "outbound event not delivered everywhere; retrying later"
            ),
        }
        let outcome = OutboundOutcome {
            status,
            delivered_to,
            next_attempt_at: next,
            claimed_due: event.next_attempt_at,
            error,
            at,
        };
        self.store
            .finish_outbound(&event.id, event.attempts, &outcome)
            .await?;
        Ok(attempt)
    }

    /// Attempts every event that is due (pending past its time, or claimed by a worker whose
    /// lease ran out), earliest first, at most `limit` — read from the due index, not by a
    /// scan: what the scheduled sweep and the dev server's worker run.
    ///
    /// # Errors
    /// [`StoreError`] if the events cannot be listed.
    pub async fn sweep(&self, limit: usize) -> Result<SweepReport, StoreError> {
        let now = self.clock.now();
        let mut report = SweepReport::default();
        for id in self.store.due_outbound(now, limit).await? {
            match self.deliver(&id).await {
                Ok(Attempt::Delivered) => report.delivered += 1,
                Ok(Attempt::Retry { .. }) => report.retry += 1,
                Ok(Attempt::Dead) => report.dead += 1,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(event_id = %id, error = %Chain(&e), "outbound event not attempted");
                    report.retry += 1;
                }
            }
        }
        Ok(report)
    }

    /// Replays a dead event now (attempts from zero; endpoints that accepted it are skipped).
    /// Returns the attempt, or `None` if it was not dead.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn replay(&self, id: &str) -> Result<Option<Attempt>, StoreError> {
        if !self.store.replay_outbound(id, self.clock.now()).await? {
            return Ok(None);
        }
        tracing::info!(event_id = id, "dead outbound event replayed by an operator");
        self.deliver(id).await.map(Some)
    }

    /// The dead-letter records, oldest first, at most `limit`.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn dead(&self, limit: usize) -> Result<Vec<OutboundEvent>, StoreError> {
        self.store.list_outbound(OutboundStatus::Dead, limit).await
    }

    /// Signs and POSTs `event` to `endpoint`; `Err` says why it was not accepted.
    async fn post(&self, endpoint: &Endpoint, event: &OutboundEvent) -> Result<(), String> {
        let timestamp = self.clock.now();
        let signature = sign(&endpoint.secret, &event.id, timestamp, &event.payload)
            .ok_or_else(|| "malformed signing secret".to_owned())?;
        let request = HookRequest {
            url: endpoint.url.clone(),
            id: event.id.clone(),
            timestamp,
            signature,
            body: event.payload.clone(),
        };
        match self.sender.post(&request).await {
            Ok(status) if (200..300).contains(&status) => Ok(()),
            Ok(status) => Err(format!("HTTP {status}")),
            Err(e) => Err(Chain(&e).to_string()),
        }
    }
}
