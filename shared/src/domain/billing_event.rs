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
    /// it bought, if any, are taken back — in proportion to the part refunded when the event
    /// says how much ([`RefundShare`]), else all of them.
    Refund {
        /// The refunded payment (Stripe payment intent, Whop payment).
        payment_id: PaymentId,
        /// How much of the payment has been refunded so far (`None`: the whole payment, or
        /// not stated).
        share: Option<RefundShare>,
        /// Who it is about.
        party: Party,
    },
    /// An event type Tollgate does not act on: recorded as `ignored`, never retried.
    Ignored,
}

/// How much of a payment has been refunded, as one refund event reports it: Stripe's charge
/// carries `amount_refunded`, the total of every refund so far, beside `amount`
/// (docs.stripe.com/api/charges/object). Both in minor currency units, `0 < refunded_minor <
/// amount_minor` (a refund of the whole payment has no share: it takes back everything).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefundShare {
    /// Refunded so far, all refunds of the payment together (minor units).
    pub refunded_minor: i64,
    /// The payment's amount (minor units).
    pub amount_minor: i64,
}

impl RefundShare {
    /// The share of `refunded_minor` out of `amount_minor`, or `None` (a full refund) when
    /// nothing is left unrefunded or the amounts make no sense (not positive, or more refunded
    /// than paid).
    pub fn partial(refunded_minor: i64, amount_minor: i64) -> Option<Self> {
        (refunded_minor > 0 && amount_minor > 0 && refunded_minor < amount_minor).then_some(Self {
            refunded_minor,
            amount_minor,
        })
    }

    /// Credits of a grant of `granted` that this share takes back in total (not only this
    /// refund's part): `ceil(granted × refunded / amount)`, so credits are never left for money
    /// returned, and the refunds of a whole payment take back exactly the grant.
    pub fn credits_of(self, granted: i64) -> i64 {
        let granted = u128::try_from(granted).unwrap_or(0);
        let refunded = u128::try_from(self.refunded_minor).unwrap_or(0);
        let amount = u128::try_from(self.amount_minor).unwrap_or(1).max(1);
        let taken = (granted * refunded).div_ceil(amount).min(granted);
        i64::try_from(taken).unwrap_or(i64::MAX)
    }
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

#[cfg(test)]
mod tests {
    use super::RefundShare;

    #[test]
    fn a_share_is_partial_only_when_something_is_left() {
        assert!(RefundShare::partial(500, 1500).is_some());
        assert_eq!(
            RefundShare::partial(1500, 1500),
            None,
            "all of it: a full refund"
        );
        assert_eq!(
            RefundShare::partial(2000, 1500),
            None,
            "more than paid: a full refund"
        );
        assert_eq!(RefundShare::partial(0, 1500), None);
        assert_eq!(RefundShare::partial(500, 0), None);
        assert_eq!(RefundShare::partial(-1, 1500), None);
    }

    #[test]
    fn credits_taken_round_up_and_never_exceed_the_grant() {
        let third = RefundShare::partial(500, 1500).expect("partial");
        assert_eq!(third.credits_of(1000), 334, "333.3 rounds up");
        assert_eq!(third.credits_of(999), 333, "exact");
        let cent = RefundShare::partial(1, 1500).expect("partial");
        assert_eq!(cent.credits_of(1000), 1, "any money back takes a credit");
        let most = RefundShare::partial(1499, 1500).expect("partial");
        assert_eq!(most.credits_of(1000), 1000);
        assert_eq!(third.credits_of(0), 0);
        assert_eq!(third.credits_of(-5), 0, "a negative grant takes nothing");
        let huge = RefundShare::partial(i64::MAX - 1, i64::MAX).expect("partial");
        assert_eq!(huge.credits_of(i64::MAX), i64::MAX - 1, "no overflow");
    }
}
