//! Webhook ingest (DESIGN §7.1): cap the body, verify the signature over the raw bytes, store the
//! event in the ledger, enqueue a pointer, and only then acknowledge.

use super::events::{stripe_envelope, whop_envelope, Envelope, EventError};
use super::signature::{verify_standard_webhooks, verify_stripe, SignatureError, WebhookSecrets};
use crate::billing::records::{EventStatus, WebhookEvent, EVENT_RETENTION_SECONDS};
use crate::billing::state::Provider;
use crate::clock::Clock;
use crate::queue::{EventMessage, EventQueue};
use crate::store::{EventLedger, StoreError};
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

/// Why a webhook was refused. Nothing is stored for any of these except `Unavailable`, where
/// the event may be stored but the provider is asked to retry.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// No webhook secret is configured for this provider (503 `provider_not_configured`).
    #[error("{0} webhooks are not configured")]
    NotConfigured(&'static str),
    /// Body over [`MAX_WEBHOOK_BYTES`] (413).
    #[error("webhook body too large")]
    TooLarge,
    /// The signature did not verify (400 `invalid_signature`).
    #[error("signature verification failed: {0}")]
    BadSignature(#[from] SignatureError),
    /// Verified, but not an event of this provider (400 `malformed_event`).
    #[error("malformed event: {0}")]
    Malformed(#[from] EventError),
    /// The ledger or queue failed: 503, the provider retries.
    #[error("webhook could not be stored: {0}")]
    Unavailable(String),
}

impl From<StoreError> for IngestError {
    fn from(e: StoreError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// The ingest use case.
pub struct Ingest {
    ledger: Arc<dyn EventLedger>,
    queue: Option<Arc<dyn EventQueue>>,
    stripe_secrets: Option<WebhookSecrets>,
    whop_secrets: Option<WebhookSecrets>,
    local_secrets: Option<WebhookSecrets>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest").finish_non_exhaustive()
    }
}

impl Ingest {
    /// Wires ingest. A provider without secrets answers `NotConfigured`; without a queue every
    /// webhook answers `Unavailable` after being stored.
    pub fn new(
        ledger: Arc<dyn EventLedger>,
        queue: Option<Arc<dyn EventQueue>>,
        stripe_secrets: Option<WebhookSecrets>,
        whop_secrets: Option<WebhookSecrets>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            ledger,
            queue,
            stripe_secrets,
            whop_secrets,
            local_secrets: None,
            clock,
        }
    }

    /// Accepts the dev server's `local` provider events: Stripe-shaped bodies signed with the
    /// Stripe scheme under `secrets`. Never configured in a Lambda.
    pub fn with_local_secrets(mut self, secrets: WebhookSecrets) -> Self {
        self.local_secrets = Some(secrets);
        self
    }

    /// Verifies, stores and enqueues one webhook delivery.
    ///
    /// # Errors
    /// [`IngestError`]; only `Unavailable` may leave a stored event behind (it is then enqueued
    /// again by the provider's retry).
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
        let envelope: Envelope = match provider {
            Provider::Stripe => {
                let secrets = self
                    .stripe_secrets
                    .as_ref()
                    .ok_or(IngestError::NotConfigured("Stripe"))?;
                let header = headers
                    .get("stripe-signature")
                    .and_then(|v| v.to_str().ok());
                let verified = verify_stripe(header, body, secrets, now)?;
                stripe_envelope(verified.body())?
            }
            Provider::Whop => {
                let secrets = self
                    .whop_secrets
                    .as_ref()
                    .ok_or(IngestError::NotConfigured("Whop"))?;
                let verified = verify_standard_webhooks(headers, body, secrets, now)?;
                whop_envelope(verified.body(), verified.webhook_id())?
            }
            Provider::Local => {
                let secrets = self
                    .local_secrets
                    .as_ref()
                    .ok_or(IngestError::NotConfigured("the local provider"))?;
                let header = headers
                    .get("stripe-signature")
                    .and_then(|v| v.to_str().ok());
                let verified = verify_stripe(header, body, secrets, now)?;
                stripe_envelope(verified.body())?
            }
        };
        let text =
            std::str::from_utf8(body).map_err(|_| IngestError::Malformed(EventError::NotJson))?;
        let event = WebhookEvent {
            provider,
            event_id: envelope.event_id.clone(),
            event_type: envelope.event_type.clone(),
            body: text.to_owned(),
            group_id: envelope.group_id.clone(),
            received_at: now,
            status: EventStatus::Received,
            attempts: 0,
            last_error: None,
            processed_at: None,
            expires_at: now + EVENT_RETENTION_SECONDS,
        };
        let (stored, new) = self.ledger.record_event(&event).await?;
        if !new && matches!(stored.status, EventStatus::Processed | EventStatus::Ignored) {
            tracing::info!(provider = provider.as_str(), event_id = %stored.event_id, "duplicate webhook acknowledged");
            return Ok(IngestOutcome::Duplicate);
        }
        let queue = self
            .queue
            .as_ref()
            .ok_or_else(|| IngestError::Unavailable("no queue configured".into()))?;
        let message = EventMessage {
            provider,
            event_id: stored.event_id.clone(),
        };
        queue
            .send(&message, &stored.group_id, &stored.event_id)
            .await
            .map_err(|e| IngestError::Unavailable(e.to_string()))?;
        tracing::info!(provider = provider.as_str(), event_id = %stored.event_id, event_type = %stored.event_type, new, "webhook stored and enqueued");
        Ok(IngestOutcome::Accepted)
    }
}
