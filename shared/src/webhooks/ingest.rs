//! Webhook ingest: cap the body, verify the signature over the raw bytes, store the event in the
//! ledger (durably), enqueue a pointer, and only then acknowledge — so an acknowledged event is
//! never lost, and a refused one leaves nothing behind.

use crate::clock::Clock;
use crate::domain::{
    Envelope, EventError, EventStatus, Provider, WebhookEvent, EVENT_RETENTION_SECONDS,
};
use crate::payments::signature::WebhookSecrets;
use crate::payments::{verify_webhook, WebhookError};
use crate::queue::{EventMessage, EventQueue, QueueError};
use crate::store::{EventLedger, StoreError};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Largest webhook body accepted, bytes (256 KiB; Stripe events are far smaller, and a DynamoDB
/// item holds at most 400 KB).
pub const MAX_WEBHOOK_BYTES: usize = 256 * 1024;

/// What ingest did with a verified event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Newly stored (or stored earlier but not processed yet) and enqueued.
    Accepted,
    /// Already processed or ignored: acknowledged without enqueueing again.
    Duplicate,
}

/// Why a webhook was refused. Nothing is stored for any of these except `Store` and `Queue`,
/// where the event may be stored but the provider is asked to retry.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// No webhook secret is configured for this provider (503 `provider_not_configured`: the
    /// provider retries, so events sent before the secret is recorded are not lost).
    #[error("{0} webhooks are not configured")]
    NotConfigured(Provider),
    /// Body over [`MAX_WEBHOOK_BYTES`] (413).
    #[error("webhook body too large")]
    TooLarge,
    /// The signature did not verify, or the verified body is not this provider's event (400
    /// `invalid_signature` / `malformed_event`).
    #[error(transparent)]
    Refused(#[from] WebhookError),
    /// The ledger failed: 503, the provider retries.
    #[error("the webhook could not be stored")]
    Store(#[from] StoreError),
    /// The queue failed after the event was stored: 503, the provider retries and the retry
    /// enqueues it.
    #[error("the webhook could not be enqueued")]
    Queue(#[from] QueueError),
}

/// The ingest use case.
pub struct Ingest {
    ledger: Arc<dyn EventLedger>,
    queue: Arc<dyn EventQueue>,
    secrets: BTreeMap<Provider, WebhookSecrets>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("providers", &self.secrets.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Ingest {
    /// Wires ingest. A provider without secrets in `secrets` answers `NotConfigured`.
    pub fn new(
        ledger: Arc<dyn EventLedger>,
        queue: Arc<dyn EventQueue>,
        secrets: BTreeMap<Provider, WebhookSecrets>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            ledger,
            queue,
            secrets,
            clock,
        }
    }

    /// Verifies, stores and enqueues one webhook delivery of `provider`.
    ///
    /// # Errors
    /// [`IngestError`]; only `Store` and `Queue` may leave a stored event behind (it is then
    /// enqueued again by the provider's retry).
    pub async fn ingest(
        &self,
        provider: Provider,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<IngestOutcome, IngestError> {
        if body.len() > MAX_WEBHOOK_BYTES {
            return Err(IngestError::TooLarge);
        }
        let now = self.clock.now();
        let secrets = self
            .secrets
            .get(&provider)
            .ok_or(IngestError::NotConfigured(provider))?;
        let envelope = verify_webhook(provider, headers, body, secrets, now)?;
        let text = std::str::from_utf8(body)
            .map_err(|_| IngestError::Refused(WebhookError::Event(EventError::NotJson)))?;
        tracing::Span::current().record("event_id", tracing::field::display(&envelope.event_id));
        self.accept(provider, envelope, text).await
    }

    /// Stores an event whose origin is established (a verified delivery, or the provider's own
    /// API for the reconciler) in the ledger and enqueues it — unless it was processed or
    /// ignored before. The one path every event takes into the processor.
    ///
    /// # Errors
    /// `Store`, `Queue` (the event may be stored; the next delivery or run enqueues it).
    pub async fn accept(
        &self,
        provider: Provider,
        envelope: Envelope,
        body: &str,
    ) -> Result<IngestOutcome, IngestError> {
        let now = self.clock.now();
        let event = WebhookEvent {
            provider,
            event_id: envelope.event_id,
            event_type: envelope.event_type,
            body: body.to_owned(),
            group_id: envelope.group_id,
            received_at: now,
            status: EventStatus::Received,
            attempts: 0,
            last_error: None,
            processed_at: None,
            expires_at: now + EVENT_RETENTION_SECONDS,
        };
        let (stored, new) = self.ledger.record_event(&event).await?;
        if !new && stored.status.is_final() {
            tracing::info!(%provider, event_id = %stored.event_id, "duplicate event acknowledged");
            return Ok(IngestOutcome::Duplicate);
        }
        let message = EventMessage {
            provider,
            event_id: stored.event_id.clone(),
        };
        self.queue
            .send(&message, &stored.group_id, stored.event_id.as_str())
            .await?;
        tracing::info!(%provider, event_id = %stored.event_id, event_type = %stored.event_type, new, "event stored and enqueued");
        Ok(IngestOutcome::Accepted)
    }
}
