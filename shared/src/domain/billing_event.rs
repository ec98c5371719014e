//! What a provider's webhook event means to Tollgate, provider-neutral: each provider's parser
//! (`crate::payments::{stripe, whop}::events`) maps its event types exhaustively onto one
//! [`BillingEvent`]; unknown types become [`BillingEvent::Ignored`], not errors (hyperswitch's
//! rule). Only the envelope and a few ids are read from a payload — the subscription state itself
//! is always refetched from the provider API, so event order and stale payloads cannot matter.

use super::ids::{CustomerId, EventId, PaymentId, Provider, SubscriptionId, UserId};
use super::ledger::{Payment, PaymentStatus};

/// Why a body could not be read as a provider's webhook event.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    /// Not JSON, or not an object.
    #[error("the webhook body is not a JSON object")]
    NotJson,
    /// A required field is missing or has the wrong type (the field's path).
    #[error("the webhook body lacks {0}")]
    Missing(&'static str),
}

/// The envelope facts ingest needs to store and enqueue an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The provider's event id.
    pub event_id: EventId,
    /// The event type.
    pub event_type: String,
    /// FIFO message group: the subscription id, else the customer id, else the event id — so the
    /// events of one subscription are processed in order.
    pub group_id: String,
}

/// Who an event is about, as far as the payload says: the provider customer, and the user id
/// Tollgate put in the provider object's metadata (a hint, checked against the customer claim).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Party {
    /// The provider customer, if the event names it.
    pub customer: Option<CustomerId>,
    /// `metadata.user_id` / `client_reference_id`, if it parses as a user id.
    pub user_hint: Option<UserId>,
}

/// A payment carried by an event, before the user is resolved. Amounts in minor currency units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentFacts {
    /// Provider payment / invoice id.
    pub payment_id: PaymentId,
    /// Minor currency units (cents).
    pub amount_minor: i64,
    /// ISO 4217, lowercase.
    pub currency: String,
    /// Paid or failed.
    pub status: PaymentStatus,
    /// When it happened, Unix seconds.
    pub at: i64,
    /// What was bought, when the event says and it may be a credit pack: Stripe's
    /// `metadata.pack` (set by Tollgate's one-time checkout), Whop's `plan.id`.
    pub product: Option<String>,
}

impl PaymentFacts {
    /// The payment record of `user_id`.
    pub fn into_payment(
        self,
        user_id: UserId,
        provider: Provider,
        subscription_id: Option<SubscriptionId>,
    ) -> Payment {
        Payment {
            user_id,
            provider,
            payment_id: self.payment_id,
            amount_minor: self.amount_minor,
            currency: self.currency,
            subscription_id,
            status: self.status,
            paid_at: self.at,
        }
    }
}

/// The provider-neutral meaning of one webhook event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BillingEvent {
    /// A subscription changed (created, updated, canceled, trial ending, checkout completed in
    /// subscription mode): refetch it and apply the provider's current state.
    SubscriptionChanged {
        /// The provider subscription to refetch.
        subscription: SubscriptionId,
        /// Who it is about.
        party: Party,
    },
    /// A payment succeeded or failed (an invoice, a one-time checkout, a Whop payment); when it
    /// belongs to a subscription, that subscription is refetched too.
    Payment {
        /// The payment.
        payment: PaymentFacts,
        /// Its subscription, if any.
        subscription: Option<SubscriptionId>,
        /// Who it is about.
        party: Party,
    },
    /// A payment was refunded (Stripe `charge.refunded`, Whop `refund.created`): the credits
    /// it bought, if any, are taken back.
    Refund {
        /// The refunded payment (Stripe payment intent, Whop payment).
        payment_id: PaymentId,
        /// Who it is about.
        party: Party,
    },
    /// An event type Tollgate does not act on: recorded as `ignored`, never retried.
    Ignored,
}

impl BillingEvent {
    /// The subscription to refetch, if any.
    pub fn subscription(&self) -> Option<&SubscriptionId> {
        match self {
            Self::SubscriptionChanged { subscription, .. } => Some(subscription),
            Self::Payment { subscription, .. } => subscription.as_ref(),
            Self::Refund { .. } | Self::Ignored => None,
        }
    }

    /// Who the event is about (`None` for ignored events).
    pub fn party(&self) -> Option<&Party> {
        match self {
            Self::SubscriptionChanged { party, .. }
            | Self::Payment { party, .. }
            | Self::Refund { party, .. } => Some(party),
            Self::Ignored => None,
        }
    }
}
