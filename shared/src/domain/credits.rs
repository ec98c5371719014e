//! Credits (docs/architecture.md §5e): a balance per user that one-time purchases (credit packs),
//! monthly plan allowances and operators add to, and metered features spend. Every change is an
//! entry of the user's credit ledger, written in the same atomic write as the balance, and named
//! by a *cause* that is unique across the table — so a purchase delivered three times, an
//! allowance read twice, or a track retried grants or spends once. Pure; times are Unix seconds.

use super::catalog::{DisplayPrice, WhopPlan};
use super::ids::{PaymentId, PriceId, Provider, UserId};
use serde::{Deserialize, Serialize};

/// A credit pack: credits sold once (`[[credit_packs]]` in the catalog). The provider holds the
/// real price (a Stripe one-time price, a Whop one-time plan); `price` is what a pricing page
/// shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreditPack {
    /// Stable id: lowercase letters, digits, `-` and `_` (`credits_1000`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Credits granted per purchase (at least 1).
    pub credits: u64,
    /// The price a pricing page shows (minor currency units).
    pub price: DisplayPrice,
    /// The Stripe one-time price (`price_…`).
    #[serde(default)]
    pub stripe: Option<PackStripe>,
    /// The Whop one-time plan.
    #[serde(default)]
    pub whop: Option<WhopPlan>,
}

/// A pack's Stripe price.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackStripe {
    /// A one-time price id (`price_…`), checked out with `mode=payment`.
    pub price: PriceId,
}

/// When a metered feature spends credits (`spend` in `[plans.metered]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreditSpend {
    /// Only tracks that do not fit the period's remaining allowance (the plan's limit) spend
    /// credits; they are then counted past the limit.
    #[default]
    BeyondLimit,
    /// Every track spends credits (the limit, if any, still applies).
    Always,
}

/// What changed a balance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreditKind {
    /// A credit pack was paid for.
    Purchase,
    /// The plan's monthly allowance for a period.
    Allowance,
    /// A metered feature spent credits.
    Spend,
    /// A purchase was refunded: its credits were taken back.
    Refund,
    /// An operator granted or removed credits.
    Adjustment,
}

impl CreditKind {
    /// The snake_case name, as stored and as the API shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Purchase => "purchase",
            Self::Allowance => "allowance",
            Self::Spend => "spend",
            Self::Refund => "refund",
            Self::Adjustment => "adjustment",
        }
    }
}

/// One entry of a user's credit ledger (`USER#<id>` / `CREDIT#<at>#<cause>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditEntry {
    /// Whose balance.
    pub user_id: UserId,
    /// What caused it, unique across the table (see the `cause_*` functions): the entry's
    /// idempotency key.
    pub cause: String,
    /// What kind of change.
    pub kind: CreditKind,
    /// Credits added (positive) or taken (negative).
    pub amount: i64,
    /// When, Unix seconds.
    pub at: i64,
    /// The pack bought or refunded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pack: Option<String>,
    /// The feature that spent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature: Option<String>,
    /// Units of the feature tracked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u64>,
    /// The payment's provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
    /// The provider payment (Stripe payment intent, Whop payment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<PaymentId>,
    /// The operator who made an adjustment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<UserId>,
    /// A short, secret-free reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// A refund's claw-back of a payment refunded in parts: how much of the payment had been
    /// refunded when it was taken (minor units; every refund so far together). Absent for a
    /// full refund and for every other kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refunded_minor: Option<i64>,
}

impl CreditEntry {
    /// An entry of `kind` for `amount` credits caused by `cause`, with no details.
    pub fn new(user_id: UserId, cause: String, kind: CreditKind, amount: i64, at: i64) -> Self {
        Self {
            user_id,
            cause,
            kind,
            amount,
            at,
            pack: None,
            feature: None,
            quantity: None,
            provider: None,
            payment_id: None,
            actor: None,
            note: None,
            refunded_minor: None,
        }
    }
}

/// The cause of a pack purchase: one per provider payment, whichever event reports it.
pub fn cause_purchase(provider: Provider, payment: &PaymentId) -> String {
    format!("purchase:{provider}:{payment}")
}

/// The cause of a refund's claw-back: one per refunded payment — its first (or only)
/// claw-back; a payment refunded in parts has one more per later part ([`cause_refund_step`]).
pub fn cause_refund(provider: Provider, payment: &PaymentId) -> String {
    format!("refund:{provider}:{payment}")
}

/// Most claw-backs one payment can have (a payment refunded in more parts keeps the credits of
/// the parts after this many; Stripe allows many partial refunds, real ones are a handful).
pub const MAX_REFUND_STEPS: u32 = 32;

/// The cause of the `step`-th claw-back of one payment (1-based): step 1 is
/// [`cause_refund`], later ones `refund:<provider>:<payment>#<step>`. The steps are written in
/// order, so the claw-backs of a payment so far are steps 1, 2, … up to the first missing one.
pub fn cause_refund_step(provider: Provider, payment: &PaymentId, step: u32) -> String {
    if step <= 1 {
        cause_refund(provider, payment)
    } else {
        format!("refund:{provider}:{payment}#{step}")
    }
}

/// The cause of a plan's allowance for the period starting at `period_start`.
pub fn cause_allowance(user_id: &UserId, period_start: i64) -> String {
    format!("allowance:{user_id}:{period_start}")
}

/// The cause of a track's spend: the track's idempotency key, scoped to the user.
pub fn cause_spend(user_id: &UserId, idempotency_key: &str) -> String {
    format!("spend:{user_id}:{idempotency_key}")
}

/// Credits a track of `quantity` units costs at `per_unit` credits a unit (`None` on overflow).
pub fn spend_cost(quantity: u64, per_unit: u64) -> Option<i64> {
    quantity
        .checked_mul(per_unit)
        .and_then(|c| i64::try_from(c).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_name_their_source_and_never_collide_across_kinds() {
        let user = UserId::new();
        let pay = PaymentId::from("pi_1");
        let causes = [
            cause_purchase(Provider::Stripe, &pay),
            cause_refund(Provider::Stripe, &pay),
            cause_refund_step(Provider::Stripe, &pay, 2),
            cause_refund_step(Provider::Stripe, &pay, 3),
            cause_purchase(Provider::Whop, &pay),
            cause_allowance(&user, 1_700_000_000),
            cause_spend(&user, "k1"),
        ];
        let mut unique = causes.to_vec();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), causes.len());
        assert_eq!(causes[0], "purchase:stripe:pi_1");
        assert_eq!(
            cause_refund_step(Provider::Stripe, &pay, 1),
            cause_refund(Provider::Stripe, &pay),
            "a payment's first claw-back keeps the cause a full refund has"
        );
        assert_eq!(causes[2], "refund:stripe:pi_1#2");
    }

    #[test]
    fn spend_cost_refuses_overflow() {
        assert_eq!(spend_cost(3, 2), Some(6));
        assert_eq!(spend_cost(u64::MAX, 2), None);
        assert_eq!(spend_cost(u64::MAX / 2 + 1, 1), None, "past i64");
    }

    #[test]
    fn spend_defaults_to_beyond_the_limit() {
        #[derive(Deserialize)]
        struct F {
            #[serde(default)]
            spend: CreditSpend,
        }
        let f: F = toml::from_str("").expect("default");
        assert_eq!(f.spend, CreditSpend::BeyondLimit);
        let f: F = toml::from_str("spend = \"always\"").expect("always");
        assert_eq!(f.spend, CreditSpend::Always);
    }
}
