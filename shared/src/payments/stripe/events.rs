//! Stripe's webhook events (docs.stripe.com/api/events/types) mapped exhaustively onto the
//! provider-neutral [`BillingEvent`], and Stripe's subscription object read into a
//! [`ProviderSubscription`]. Only the envelope and a few ids are read from a payload.

use crate::domain::{
    BillingEvent, CustomerId, Envelope, EventError, EventId, Party, PaymentFacts, PaymentStatus,
    Provider, ProviderSubscription, RefundShare, SubscriptionId, SubscriptionStatus,
};
use crate::payments::json::{int, object, text};
use serde_json::Value;

/// The event types [`normalize`] acts on: what the reconciler lists (`GET /v1/events`,
/// `types[]`: at most 20) and what a deployment's webhook endpoint should subscribe to.
pub const HANDLED_TYPES: [&str; 12] = [
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "customer.subscription.trial_will_end",
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "charge.refunded",
];

/// Reads the envelope `{id, type, data: {object}}`; the FIFO group is the subscription the
/// object belongs to, else its customer, else the event id.
///
/// # Errors
/// [`EventError`] if the body is not a JSON object or lacks `id`, `type` or `data.object`.
pub fn envelope(body: &[u8]) -> Result<Envelope, EventError> {
    let v = object(body)?;
    let event_id = text(&v, "/id").ok_or(EventError::Missing("id"))?;
    let event_type = text(&v, "/type").ok_or(EventError::Missing("type"))?;
    let object = v
        .pointer("/data/object")
        .ok_or(EventError::Missing("data.object"))?;
    let group_id = subscription_of(object)
        .or_else(|| text(object, "/customer"))
        .unwrap_or_else(|| event_id.clone());
    Ok(Envelope {
        event_id: EventId::new(event_id),
        event_type,
        group_id,
    })
}

/// The subscription an event's object belongs to: a subscription's own id, an invoice's parent
/// subscription (API ≥ 2025-03-31: `parent.subscription_details.subscription`), else a plain
/// `subscription` field.
fn subscription_of(object: &Value) -> Option<String> {
    match object.get("object").and_then(Value::as_str) {
        Some("subscription") => text(object, "/id"),
        Some("invoice") => text(object, "/parent/subscription_details/subscription")
            .or_else(|| text(object, "/subscription")),
        _ => text(object, "/subscription"),
    }
}

fn party(o: &Value, hint: Option<String>) -> Party {
    Party {
        customer: text(o, "/customer").map(CustomerId::new),
        user_hint: hint.and_then(|h| h.parse().ok()),
    }
}

/// Maps a Stripe event onto its meaning:
/// - `customer.subscription.*` → the subscription changed;
/// - `checkout.session.completed` / `.async_payment_succeeded` → in `subscription` mode the
///   subscription changed; in `payment` mode (paid) a payment; otherwise ignored;
/// - `invoice.paid` / `.payment_succeeded` / `.payment_failed` → a payment of the invoice's
///   subscription (amount paid, or due when failed);
/// - `charge.refunded` → a refund of the charge's payment intent (any refund, full or partial:
///   docs.stripe.com/api/events/types#event_types-charge.refunded), with the share refunded so
///   far when `amount_refunded` is below `amount` (a partial refund);
/// - everything else → ignored.
///
/// # Errors
/// [`EventError`] if the body is not a Stripe event.
pub fn normalize(body: &[u8]) -> Result<BillingEvent, EventError> {
    let v = object(body)?;
    let event_type = text(&v, "/type").ok_or(EventError::Missing("type"))?;
    let o = v
        .pointer("/data/object")
        .ok_or(EventError::Missing("data.object"))?;
    let subscription_changed = |id: Option<String>, party: Party| match id {
        Some(id) => BillingEvent::SubscriptionChanged {
            subscription: SubscriptionId::new(id),
            party,
        },
        None => BillingEvent::Ignored,
    };
    let event = match event_type.as_str() {
        t if t.starts_with("customer.subscription.") => {
            subscription_changed(text(o, "/id"), party(o, text(o, "/metadata/user_id")))
        }
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            let hint = text(o, "/client_reference_id").or_else(|| text(o, "/metadata/user_id"));
            match o.get("mode").and_then(Value::as_str) {
                Some("subscription") => {
                    subscription_changed(text(o, "/subscription"), party(o, hint))
                }
                Some("payment")
                    if o.get("payment_status").and_then(Value::as_str) != Some("unpaid") =>
                {
                    match text(o, "/payment_intent").or_else(|| text(o, "/id")) {
                        Some(id) => BillingEvent::Payment {
                            payment: PaymentFacts {
                                payment_id: id.into(),
                                amount_minor: int(o, "/amount_total").unwrap_or(0),
                                currency: text(o, "/currency").unwrap_or_default(),
                                status: PaymentStatus::Paid,
                                at: int(o, "/created").unwrap_or(0),
                                product: text(o, "/metadata/pack"),
                            },
                            subscription: None,
                            party: party(o, hint),
                        },
                        None => BillingEvent::Ignored,
                    }
                }
                _ => BillingEvent::Ignored,
            }
        }
        "invoice.paid" | "invoice.payment_succeeded" | "invoice.payment_failed" => {
            let paid = event_type != "invoice.payment_failed";
            match text(o, "/id") {
                Some(id) => BillingEvent::Payment {
                    payment: PaymentFacts {
                        payment_id: id.into(),
                        amount_minor: int(o, if paid { "/amount_paid" } else { "/amount_due" })
                            .unwrap_or(0),
                        currency: text(o, "/currency").unwrap_or_default(),
                        status: if paid {
                            PaymentStatus::Paid
                        } else {
                            PaymentStatus::Failed
                        },
                        at: int(o, "/status_transitions/paid_at")
                            .or_else(|| int(o, "/created"))
                            .unwrap_or(0),
                        product: None,
                    },
                    subscription: subscription_of(o).map(SubscriptionId::new),
                    party: party(o, text(o, "/parent/subscription_details/metadata/user_id")),
                },
                None => BillingEvent::Ignored,
            }
        }
        "charge.refunded" => match text(o, "/payment_intent").or_else(|| text(o, "/id")) {
            Some(id) => BillingEvent::Refund {
                payment_id: id.into(),
                share: match (int(o, "/amount_refunded"), int(o, "/amount")) {
                    (Some(refunded), Some(amount)) => RefundShare::partial(refunded, amount),
                    _ => None,
                },
                party: party(o, text(o, "/metadata/user_id")),
            },
            None => BillingEvent::Ignored,
        },
        _ => BillingEvent::Ignored,
    };
    Ok(event)
}

/// Reads a Stripe subscription object (API ≥ 2025-03-31: the period end lives on the items,
/// `items.data[].current_period_end`; older versions have it on the subscription).
///
/// # Errors
/// [`EventError`] if `id`, `status` or an item price is missing, or the status is not one of
/// Stripe's.
pub fn subscription(o: &Value) -> Result<ProviderSubscription, EventError> {
    let status = text(o, "/status").ok_or(EventError::Missing("status"))?;
    let item = o
        .pointer("/items/data/0")
        .ok_or(EventError::Missing("items.data[0]"))?;
    Ok(ProviderSubscription {
        provider: Provider::Stripe,
        subscription_id: text(o, "/id").ok_or(EventError::Missing("id"))?.into(),
        customer_id: text(o, "/customer").map(CustomerId::new),
        user_id: text(o, "/metadata/user_id").and_then(|u| u.parse().ok()),
        status: SubscriptionStatus::from_stripe(&status)
            .ok_or(EventError::Missing("a known status"))?,
        price_id: text(item, "/price")
            .ok_or(EventError::Missing("items.data[0].price"))?
            .into(),
        current_period_end: int(item, "/current_period_end")
            .or_else(|| int(o, "/current_period_end")),
        cancel_at_period_end: o
            .get("cancel_at_period_end")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        trial_end: int(o, "/trial_end"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UserId;

    fn fixture(path: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/../tests/fixtures/stripe/{path}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture")
    }

    const SUB: &str = "sub_1TestSubscr0000001";

    #[test]
    fn every_stripe_fixture_normalizes() {
        // (file, subscription to refetch, carries a payment)
        let cases = [
            ("checkout.session.completed.subscription", Some(SUB), false),
            ("checkout.session.completed.payment", None, true),
            ("customer.subscription.created", Some(SUB), false),
            ("customer.subscription.deleted", Some(SUB), false),
            ("customer.subscription.trial_will_end", Some(SUB), false),
            ("customer.subscription.updated.activated", Some(SUB), false),
            (
                "customer.subscription.updated.cancel_at_period_end",
                Some(SUB),
                false,
            ),
            ("customer.subscription.updated.past_due", Some(SUB), false),
            (
                "customer.subscription.updated.plan_change",
                Some(SUB),
                false,
            ),
            ("invoice.paid", Some(SUB), true),
            ("invoice.payment_failed", Some(SUB), true),
        ];
        for (name, sub, payment) in cases {
            let body = fixture(&format!("events/{name}.json"));
            let event = normalize(&body).expect(name);
            assert_eq!(event.subscription().map(|s| s.as_str()), sub, "{name}");
            assert_eq!(
                matches!(event, BillingEvent::Payment { .. }),
                payment,
                "{name}"
            );
            let party = event.party().expect("not ignored");
            assert_eq!(
                party.customer.as_ref().map(|c| c.as_str()),
                Some("cus_TestAlice000001"),
                "{name}"
            );
            // The fixtures' `user_7f3c2a` is not a Tollgate user id: no hint.
            assert_eq!(party.user_hint, None, "{name}");
            let env = envelope(&body).expect(name);
            assert!(env.event_id.as_str().starts_with("evt_"), "{name}");
            assert_eq!(env.group_id, sub.unwrap_or("cus_TestAlice000001"), "{name}");
        }
        match normalize(&fixture("events/invoice.paid.json")).expect("invoice") {
            BillingEvent::Payment { payment: p, .. } => assert_eq!(
                (p.amount_minor, p.currency.as_str(), p.status, p.at),
                (1500, "usd", PaymentStatus::Paid, 1_795_595_700)
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_tollgate_user_id_in_the_metadata_is_the_hint() {
        let user = UserId::new();
        let body = format!(
            r#"{{"id":"evt_1","type":"customer.subscription.updated","data":{{"object":{{"object":"subscription","id":"sub_1","customer":"cus_1","metadata":{{"user_id":"{user}"}}}}}}}}"#
        );
        let event = normalize(body.as_bytes()).expect("event");
        assert_eq!(event.party().and_then(|p| p.user_hint), Some(user));
    }

    #[test]
    fn unknown_stripe_types_are_ignored_not_errors() {
        let event = normalize(
            br#"{"id":"evt_1","type":"charge.refunded","data":{"object":{"object":"charge"}}}"#,
        )
        .expect("ok");
        assert_eq!(event, BillingEvent::Ignored);
        assert_eq!(
            envelope(br#"{"id":"evt_1","type":"x","data":{"object":{}}}"#)
                .expect("ok")
                .group_id,
            "evt_1"
        );
        assert_eq!(normalize(b"[]"), Err(EventError::NotJson));
        assert_eq!(envelope(br#"{"type":"x"}"#), Err(EventError::Missing("id")));
    }

    #[test]
    fn the_subscription_object_maps_to_the_neutral_state() {
        let event: Value = serde_json::from_slice(&fixture(
            "events/customer.subscription.updated.cancel_at_period_end.json",
        ))
        .expect("json");
        let sub = subscription(&event["data"]["object"]).expect("sub");
        assert_eq!(
            (sub.status, sub.cancel_at_period_end, sub.price_id.as_str()),
            (SubscriptionStatus::Active, true, "price_1TestProMonthly01")
        );
        assert!(sub.current_period_end.is_some());
    }
}
