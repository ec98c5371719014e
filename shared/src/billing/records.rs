//! Stored billing records besides the subscription: webhook events (the ledger), customer
//! claims and payments.

use super::state::{Provider, Subscription};
use crate::domain::UserId;
use serde::{Deserialize, Serialize};

/// How long webhook events are kept in the ledger: 90 days, in seconds (DESIGN §4, TTL).
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
    /// The last processing attempt failed; the queue retries it (then the DLQ).
    Failed,
}

/// A webhook event as stored in the ledger (`EVENT#<provider>#<event id>` / `EVENT`). Times are
/// Unix seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEvent {
    /// Provider.
    pub provider: Provider,
    /// Provider's event id (Stripe `evt_…`; Whop's `webhook-id` / envelope id).
    pub event_id: String,
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

/// A one-time or recurring payment (`USER#<id>` / `PAYMENT#<time>#<id>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// Payer.
    pub user_id: UserId,
    /// Provider.
    pub provider: Provider,
    /// Provider payment / invoice id (unique per provider).
    pub payment_id: String,
    /// Amount in minor currency units (cents).
    pub amount_minor: i64,
    /// ISO 4217 currency code, lowercase.
    pub currency: String,
    /// Related provider subscription, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    /// `paid` or `failed`.
    pub status: String,
    /// When it happened, Unix seconds.
    pub paid_at: i64,
}

/// Everything one processed event changes, committed atomically with marking it processed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventEffects {
    /// The new subscription and the version it replaces (`None`: none stored yet).
    pub subscription: Option<(Subscription, Option<u64>)>,
    /// A payment to record.
    pub payment: Option<Payment>,
}
