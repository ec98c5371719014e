//! What a billing change owes (docs/architecture.md §15): billing mails to the user and outbound
//! events to the customer's app, decided here once for every writer of billing state — the
//! webhook processor and the direct syncs (checkout redirect, resync) — and written in the same
//! transaction as the change ([`Notices`]).
//!
//! Every notice's id is its cause, so "once per cause" holds however many provider events carry
//! it (Stripe sends `invoice.paid` and `invoice.payment_succeeded` for one payment; a checkout
//! completes by redirect and by webhook):
//!
//! | notice | when | cause |
//! |---|---|---|
//! | mail `payment_receipt`, event `payment.succeeded` | a paid payment (the mail only within 7 days of it) | `receipt:` / `payment.succeeded:<provider>:<payment id>` |
//! | mail `payment_failed`, event `payment.failed` | a failed payment | `payment_failed:` / `payment.failed:<provider>:<payment id>` |
//! | mail `trial_ending` | the subscription is trialing and its trial ends within [`TRIAL_ENDING_NOTICE_SECONDS`] (Stripe's `trial_will_end` lead) | `trial_ending:<provider>:<subscription>:<trial end>` |
//! | mail `subscription_canceled` | a write sets cancel-at-period-end, or ends a subscription not set to cancel | `canceled:<provider>:<subscription>:<end>` |
//! | mail `plan_changed` | a write moves an existing subscription to another plan | `plan_changed:<provider>:<subscription>:<version>` |
//! | event `subscription.updated` | a write that changes what the app sees (provider, id, plan, interval, status, period end, cancellation, trial end) | `subscription.updated:<provider>:<subscription>:<version>` |
//! | event `entitlements.changed` | a write changes the plan whose entitlements the user holds | `entitlements.changed:<provider>:<subscription>:<version>` |
//! | event `credits.changed` | a purchase's grant or a refund's claw-back (here); a plan's allowance or an operator's adjustment (`crate::usage::credits`) | `credits.changed:<credit cause>` |
//!
//! "The plan whose entitlements the user holds" is the subscription's plan while its status is
//! `active`, `trialing` or `past_due`, else `free`. Access that ends by time alone (a grace
//! period running out) is computed at read time and sends nothing; the provider's own event at
//! that point (`customer.subscription.deleted`, a status change) does.

use crate::domain::{
    rfc3339, Catalog, CreditEntry, MailKind, Notices, OutboundEvent, OutboundType, OutboxMail,
    Payment, PaymentStatus, Subscription, SubscriptionStatus, UserId, FREE_PLAN,
    MAIL_RETENTION_SECONDS, TRIAL_ENDING_NOTICE_SECONDS,
};
use serde_json::json;

/// One billing change: the stored subscription before it, the one written (if any), and the
/// payment and credit change it records. Times are Unix seconds.
#[derive(Clone, Copy, Debug)]
pub struct BillingChange<'a> {
    /// Whose billing changed.
    pub user_id: UserId,
    /// The stored subscription before the change.
    pub previous: Option<&'a Subscription>,
    /// The subscription written by the change (`None`: the stored one stays).
    pub written: Option<&'a Subscription>,
    /// A payment the change records.
    pub payment: Option<&'a Payment>,
    /// A credit change it records (a pack's grant, a refund's claw-back).
    pub credits: Option<&'a CreditEntry>,
    /// When.
    pub now: i64,
}

/// The notices `change` owes (see the module docs for the rules).
pub fn notices(change: &BillingChange<'_>, catalog: &Catalog) -> Notices {
    let mut n = Notices::default();
    let user = change.user_id;
    let now = change.now;
    let plan_name = |id: &str| {
        catalog
            .plan(id)
            .map_or_else(|| id.to_owned(), |p| p.name.clone())
    };
    if let Some(p) = change.payment {
        let (cause, kind, event_type) = match p.status {
            PaymentStatus::Paid => (
                "receipt",
                MailKind::PaymentReceipt,
                OutboundType::PaymentSucceeded,
            ),
            PaymentStatus::Failed => (
                "payment_failed",
                MailKind::PaymentFailed,
                OutboundType::PaymentFailed,
            ),
        };
        let description = match (
            &p.subscription_id,
            change.credits.and_then(|c| c.pack.as_deref()),
        ) {
            (_, Some(pack)) => {
                let name = catalog.pack(pack).map_or(pack, |p| p.name.as_str());
                format!("the {name} credit pack")
            }
            (Some(_), None) => match change.written.or(change.previous) {
                Some(s) => format!("the {} plan", plan_name(&s.plan)),
                None => "your subscription".to_owned(),
            },
            (None, None) => "a one-time purchase".to_owned(),
        };
        // A late replay (the reconciler's first run, an operator's resync) of an old payment
        // gets no mail; the outbound event still goes.
        if now - p.paid_at <= MAIL_RETENTION_SECONDS {
            n.mails.push(
                OutboxMail::billing(
                    kind,
                    format!("{cause}:{}:{}", p.provider, p.payment_id),
                    user,
                    now,
                )
                .with("amount", format_amount(p.amount_minor, &p.currency))
                .with("description", description)
                .with("payment_id", p.payment_id.to_string()),
            );
        }
        n.outbound.push(OutboundEvent::new(
            &format!("{}:{}:{}", event_type.as_str(), p.provider, p.payment_id),
            event_type,
            user,
            json!({
                "user_id": user,
                "provider": p.provider,
                "payment_id": p.payment_id,
                "amount": p.amount_minor,
                "currency": p.currency,
                "subscription_id": p.subscription_id,
                "at": p.paid_at,
            }),
            now,
        ));
    }
    if let Some(c) = change.credits {
        n.outbound.push(credits_changed(c, now));
    }
    if let Some(current) = change.written.or(change.previous) {
        if let Some(end) = current.trial_end.filter(|end| {
            current.status == SubscriptionStatus::Trialing
                && !current.cancel_at_period_end
                && *end > now
                && *end - now <= TRIAL_ENDING_NOTICE_SECONDS
        }) {
            n.mails.push(
                OutboxMail::billing(
                    MailKind::TrialEnding,
                    format!(
                        "trial_ending:{}:{}:{end}",
                        current.provider, current.subscription_id
                    ),
                    user,
                    now,
                )
                .with("plan", plan_name(&current.plan))
                .with("trial_end", day(end)),
            );
        }
    }
    let Some(next) = change.written else {
        return n;
    };
    let key = format!("{}:{}", next.provider, next.subscription_id);
    let version = next.version;
    let prev = change.previous;
    let scheduled = next.cancel_at_period_end && !prev.is_some_and(|p| p.cancel_at_period_end);
    let ended = next.status == SubscriptionStatus::Canceled
        && prev
            .is_some_and(|p| p.status != SubscriptionStatus::Canceled && !p.cancel_at_period_end);
    if scheduled || ended {
        let end = if ended { None } else { next.current_period_end };
        n.mails.push(
            OutboxMail::billing(
                MailKind::SubscriptionCanceled,
                format!("canceled:{key}:{}", end.unwrap_or(0)),
                user,
                now,
            )
            .with("plan", plan_name(&next.plan))
            .with("ends_at", end.map(day).unwrap_or_default()),
        );
    }
    if let Some(p) = prev.filter(|p| p.plan != next.plan && grants(next)) {
        n.mails.push(
            OutboxMail::billing(
                MailKind::PlanChanged,
                format!("plan_changed:{key}:{version}"),
                user,
                now,
            )
            .with("from_plan", plan_name(&p.plan))
            .with("to_plan", plan_name(&next.plan)),
        );
    }
    if prev.is_none_or(|p| visible_change(p, next)) {
        n.outbound.push(OutboundEvent::new(
            &format!("subscription.updated:{key}:{version}"),
            OutboundType::SubscriptionUpdated,
            user,
            json!({
                "user_id": user,
                "provider": next.provider,
                "subscription_id": next.subscription_id,
                "plan": next.plan,
                "interval": next.interval,
                "status": next.status,
                "current_period_end": next.current_period_end,
                "cancel_at_period_end": next.cancel_at_period_end,
                "trial_end": next.trial_end,
            }),
            now,
        ));
    }
    let held_before = prev.map_or(FREE_PLAN, entitled_plan);
    let held_now = entitled_plan(next);
    if held_before != held_now {
        let entitlements = catalog
            .plan(held_now)
            .map(|p| p.entitlements.clone())
            .unwrap_or_default();
        n.outbound.push(OutboundEvent::new(
            &format!("entitlements.changed:{key}:{version}"),
            OutboundType::EntitlementsChanged,
            user,
            json!({
                "user_id": user,
                "plan": held_now,
                "previous_plan": held_before,
                "entitlements": entitlements,
            }),
            now,
        ));
    }
    n
}

/// The `credits.changed` event of a credit entry (cause `credits.changed:<entry cause>`):
/// `{user_id, amount, kind, pack, cause}` — for a pack's grant, a refund's claw-back, a plan's
/// allowance and an operator's adjustment (not for spends: a track is not an event worth a
/// request to the app).
pub fn credits_changed(entry: &CreditEntry, now: i64) -> OutboundEvent {
    OutboundEvent::new(
        &format!("credits.changed:{}", entry.cause),
        OutboundType::CreditsChanged,
        entry.user_id,
        json!({
            "user_id": entry.user_id,
            "amount": entry.amount,
            "kind": entry.kind,
            "pack": entry.pack,
            "cause": entry.cause,
        }),
        now,
    )
}

/// Whether what the customer's app sees of a subscription changed (every refetch writes a new
/// version, most with the same content).
fn visible_change(a: &Subscription, b: &Subscription) -> bool {
    (
        &a.provider,
        &a.subscription_id,
        &a.plan,
        &a.interval,
        a.status,
        a.current_period_end,
        a.cancel_at_period_end,
        a.trial_end,
    ) != (
        &b.provider,
        &b.subscription_id,
        &b.plan,
        &b.interval,
        b.status,
        b.current_period_end,
        b.cancel_at_period_end,
        b.trial_end,
    )
}

/// Whether the subscription's status grants its plan (leaving time aside).
fn grants(s: &Subscription) -> bool {
    matches!(
        s.status,
        SubscriptionStatus::Active | SubscriptionStatus::Trialing | SubscriptionStatus::PastDue
    )
}

/// The plan whose entitlements the subscription gives: its own while its status grants it, else
/// `free`.
fn entitled_plan(s: &Subscription) -> &str {
    if grants(s) {
        &s.plan
    } else {
        FREE_PLAN
    }
}

/// `YYYY-MM-DD` (UTC) of a Unix time.
fn day(t: i64) -> String {
    rfc3339(t).chars().take(10).collect()
}

/// Currencies without minor units, whose amounts Stripe gives in whole units
/// (<https://docs.stripe.com/currencies#zero-decimal>).
const ZERO_DECIMAL: [&str; 16] = [
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];

/// An amount in minor currency units as text: `1900`, `usd` → `19.00 USD`; `500`, `jpy` →
/// `500 JPY`.
pub fn format_amount(minor: i64, currency: &str) -> String {
    let code = currency.to_ascii_uppercase();
    if ZERO_DECIMAL.contains(&currency.to_ascii_lowercase().as_str()) {
        return format!("{minor} {code}");
    }
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{}.{:02} {code}", abs / 100, abs % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_follow_the_currency_exponent() {
        assert_eq!(format_amount(1900, "usd"), "19.00 USD");
        assert_eq!(format_amount(5, "eur"), "0.05 EUR");
        assert_eq!(format_amount(-250, "usd"), "-2.50 USD");
        assert_eq!(format_amount(500, "jpy"), "500 JPY");
    }

    #[test]
    fn days_are_utc_dates() {
        assert_eq!(day(0), "1970-01-01");
    }
}
