//! The webhook event ledger's records and the payment records (docs/architecture.md, "Webhook
//! pipeline"): what is stored per received event, and what one processed event writes.

use super::ids::{EventId, PaymentId, Provider, SubscriptionId, UserId};
use super::subscription::Subscription;
use serde::{Deserialize, Serialize};

/// How long webhook events are kept in the ledger: 90 days, in seconds (the table's TTL).
pub const EVENT_RETENTION_SECONDS: i64 = 90 * 24 * 3600;

/// Where a webhook event is in the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    /// Stored and enqueued, not yet processed.
    Received,
    /// Took effect (exactly once).
    Processed,
    /// An event type Tollgate does not act on: acknowledged, recorded, never retried.
    Ignored,
    /// The last processing attempt failed; the queue retries it (then the dead-letter queue).
    Failed,
}

impl EventStatus {
    /// Whether the event is done with: processed or ignored (a redelivery changes nothing).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Processed | Self::Ignored)
    }
}

/// A webhook event as stored in the ledger (`EVENT#<provider>#<event id>` / `EVENT`). Times are
/// Unix seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEvent {
    /// Provider.
    pub provider: Provider,
    /// Provider's event id (Stripe `evt_…`; Whop's envelope id or `webhook-id`).
    pub event_id: EventId,
    /// Provider's event type (`customer.subscription.updated`, `membership.activated`, …).
    pub event_type: String,
    /// The raw body exactly as received and verified (UTF-8).
    pub body: String,
    /// The FIFO message group: the provider subscription, else customer, else event id.
    pub group_id: String,
    /// When first received.
    pub received_at: i64,
    /// Pipeline status.
    pub status: EventStatus,
    /// Processing attempts so far.
    #[serde(default)]
    pub attempts: u32,
    /// The last processing error (no secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When it took effect or was ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed_at: Option<i64>,
    /// TTL: `received_at + EVENT_RETENTION_SECONDS`.
    pub expires_at: i64,
}

/// Whether a payment went through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Money was collected.
    Paid,
    /// A charge attempt failed (the subscription may go `past_due`).
    Failed,
}

/// A one-time or recurring payment (`USER#<id>` / `PAYMENT#<time>#<provider>#<id>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// Payer.
    pub user_id: UserId,
    /// Provider.
    pub provider: Provider,
    /// Provider payment / invoice id (unique per provider).
    pub payment_id: PaymentId,
    /// Amount in minor currency units (cents).
    pub amount_minor: i64,
    /// ISO 4217 currency code, lowercase.
    pub currency: String,
    /// Related provider subscription, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<SubscriptionId>,
    /// Paid or failed.
    pub status: PaymentStatus,
    /// When it happened, Unix seconds.
    pub paid_at: i64,
}

/// The subscription a processed event writes, and the stored version it replaces (`None`:
/// nothing stored yet) — the compare-and-swap guard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionWrite {
    /// The new record.
    pub subscription: Subscription,
    /// The version it replaces.
    pub expected_version: Option<u64>,
}

/// Everything one processed event changes, committed atomically with marking it processed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventEffects {
    /// The new subscription, if the provider state is newer than the stored one.
    pub subscription: Option<SubscriptionWrite>,
    /// A payment to record.
    pub payment: Option<Payment>,
    /// A credit change (a pack's grant, a refund's claw-back) with its audit record: `(entry,
    /// audit)`; applied once per cause.
    pub credits: Option<(super::credits::CreditEntry, super::audit::AuditRecord)>,
    /// The mails and outbound events the change owes.
    pub notices: Notices,
}

/// What a billing change owes the user (billing mails in the outbox) and the customer's app
/// (outbound events), written in the same transaction as the change. Every item's id is its
/// cause, and an item whose id is already stored is left as it is: a second provider event of
/// the same cause adds nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notices {
    /// Billing mails (`MAIL#<cause>`).
    pub mails: Vec<super::mail::OutboxMail>,
    /// Outbound events (`HOOK#<id>`).
    pub outbound: Vec<super::outbound::OutboundEvent>,
}

impl Notices {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.mails.is_empty() && self.outbound.is_empty()
    }
}
