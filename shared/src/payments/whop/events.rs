//! Whop's webhook events (docs.whop.com webhooks: `membership.*`, `payment.*`, in the envelope
//! `{id, api_version, type, timestamp, data}`) mapped exhaustively onto the provider-neutral
//! [`BillingEvent`], and Whop's membership object (`Membership` in whopio/whopsdk-typescript) read
//! into a [`ProviderSubscription`].

use crate::domain::{
    BillingEvent, CustomerId, Envelope, EventError, EventId, Party, PaymentFacts, PaymentStatus,
    Provider, ProviderSubscription, SubscriptionId, SubscriptionStatus,
};
use crate::payments::json::{object, text, time};
use serde_json::Value;

/// Reads the envelope; the event id is the body's `id`, else the Standard Webhooks `webhook-id`
/// header. The FIFO group is the membership, else the member, else the event id.
///
/// # Errors
/// [`EventError`] if the body is not a JSON object or lacks an id, `type` or `data`.
pub fn envelope(body: &[u8], webhook_id: Option<&str>) -> Result<Envelope, EventError> {
    let v = object(body)?;
    let event_id = text(&v, "/id")
        .or_else(|| webhook_id.map(str::to_owned))
        .ok_or(EventError::Missing("id"))?;
    let event_type = text(&v, "/type").ok_or(EventError::Missing("type"))?;
    let data = v.get("data").ok_or(EventError::Missing("data"))?;
    let group_id = membership_of(&event_type, data)
        .or_else(|| text(data, "/member/id"))
        .unwrap_or_else(|| event_id.clone());
    Ok(Envelope {
        event_id: EventId::new(event_id),
        event_type,
        group_id,
    })
}

fn membership_of(event_type: &str, data: &Value) -> Option<String> {
    if event_type.starts_with("membership.") {
        text(data, "/id")
    } else {
        text(data, "/membership/id")
    }
}

fn party(d: &Value) -> Party {
    Party {
        customer: text(d, "/member/id").map(CustomerId::new),
        user_hint: text(d, "/metadata/user_id").and_then(|u| u.parse().ok()),
    }
}

/// Maps a Whop event onto its meaning: `membership.*` → the membership changed;
/// `payment.succeeded` / `payment.failed` → a payment of its membership (none for a one-time
/// purchase, `billing_reason = "one_time"`); `refund.created` → a refund of its `payment.id` (as a whole: no share);
/// everything else → ignored. Whop amounts are decimal currency units; they become minor units (× 100, rounded).
///
/// # Errors
/// [`EventError`] if the body is not a Whop event.
pub fn normalize(body: &[u8]) -> Result<BillingEvent, EventError> {
    let v = object(body)?;
    let event_type = text(&v, "/type").ok_or(EventError::Missing("type"))?;
    let d = v.get("data").ok_or(EventError::Missing("data"))?;
    let event = match event_type.as_str() {
        t if t.starts_with("membership.") => match text(d, "/id") {
            Some(id) => BillingEvent::SubscriptionChanged {
                subscription: SubscriptionId::new(id),
                party: party(d),
            },
            None => BillingEvent::Ignored,
        },
        "payment.succeeded" | "payment.failed" => match text(d, "/id") {
            Some(id) => {
                let amount = d.get("total").and_then(Value::as_f64).unwrap_or(0.0);
                BillingEvent::Payment {
                    payment: PaymentFacts {
                        payment_id: id.into(),
                        amount_minor: (amount * 100.0).round() as i64,
                        currency: text(d, "/currency").unwrap_or_default(),
                        status: if event_type == "payment.succeeded" {
                            PaymentStatus::Paid
                        } else {
                            PaymentStatus::Failed
                        },
                        at: time(d, "/paid_at")
                            .or_else(|| time(d, "/created_at"))
                            .unwrap_or(0),
                        product: text(d, "/plan/id"),
                    },
                    // A one-time purchase's membership is not a subscription to refetch.
                    subscription: (text(d, "/billing_reason").as_deref() != Some("one_time"))
                        .then(|| membership_of(&event_type, d))
                        .flatten()
                        .map(SubscriptionId::new),
                    party: party(d),
                }
            }
            None => BillingEvent::Ignored,
        },
        // A refund's `amount` is its own, not the payment's refunded total (and the reconciler's
        // listed payments carry only the total), so a Whop refund takes back the whole grant.
        "refund.created" => match text(d, "/payment/id") {
            Some(id) => BillingEvent::Refund {
                payment_id: id.into(),
                share: None,
                party: party(d),
            },
            None => BillingEvent::Ignored,
        },
        _ => BillingEvent::Ignored,
    };
    Ok(event)
}

/// Reads a Whop membership object. `canceling` is an active membership set to cancel at period
/// end; a trialing membership's trial ends with its renewal period.
///
/// # Errors
/// [`EventError`] if `id`, `status` or `plan.id` is missing or the status unknown.
pub fn membership(d: &Value) -> Result<ProviderSubscription, EventError> {
    let status = text(d, "/status").ok_or(EventError::Missing("status"))?;
    let neutral =
        SubscriptionStatus::from_whop(&status).ok_or(EventError::Missing("a known status"))?;
    Ok(ProviderSubscription {
        provider: Provider::Whop,
        subscription_id: text(d, "/id").ok_or(EventError::Missing("id"))?.into(),
        customer_id: text(d, "/member/id")
            .or_else(|| text(d, "/user/id"))
            .map(CustomerId::new),
        user_id: text(d, "/metadata/user_id").and_then(|u| u.parse().ok()),
        status: neutral,
        price_id: text(d, "/plan/id")
            .ok_or(EventError::Missing("plan.id"))?
            .into(),
        current_period_end: time(d, "/renewal_period_end"),
        cancel_at_period_end: status == "canceling"
            || d.get("cancel_at_period_end")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        trial_end: if neutral == SubscriptionStatus::Trialing {
            time(d, "/renewal_period_end")
        } else {
            None
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(path: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/../tests/fixtures/whop/{path}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture")
    }

    #[test]
    fn every_whop_fixture_normalizes() {
        for name in [
            "membership.activated",
            "membership.cancel_at_period_end_changed",
            "membership.deactivated",
            "membership.trial_ending_soon",
            "payment.succeeded",
            "payment.failed",
        ] {
            let body = fixture(&format!("events/{name}.json"));
            let event = normalize(&body).expect(name);
            assert_eq!(
                event.subscription().map(|s| s.as_str()),
                Some("mem_TestAlice00001"),
                "{name}"
            );
            assert_eq!(
                envelope(&body, None).expect(name).group_id,
                "mem_TestAlice00001",
                "{name}"
            );
        }
        match normalize(&fixture("events/payment.succeeded.json")).expect("pay") {
            BillingEvent::Payment { payment: p, .. } => assert_eq!(
                (p.amount_minor, p.currency.as_str(), p.status),
                (1500, "usd", PaymentStatus::Paid)
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            normalize(&fixture("chat.message.created.sdk-test-payload.json")).expect("ok"),
            BillingEvent::Ignored
        );
    }

    #[test]
    fn the_membership_object_maps_to_the_neutral_state() {
        let event: Value = serde_json::from_slice(&fixture(
            "events/membership.cancel_at_period_end_changed.json",
        ))
        .expect("json");
        let m = membership(&event["data"]).expect("membership");
        assert_eq!(
            (m.status, m.cancel_at_period_end),
            (SubscriptionStatus::Active, true)
        );
        assert_eq!(m.current_period_end, Some(1_795_597_200));
    }
}
