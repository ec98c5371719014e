//! Normalisation: each provider's webhook body mapped exhaustively onto one provider-neutral
//! [`Normalized`] meaning. Only the envelope and a few ids are read from the payload — the
//! subscription state itself is always refetched from the provider API, so event order and stale
//! payloads cannot matter (DESIGN §7.2). Unknown types are `ignored`, not errors.

use crate::billing::records::Payment;
use crate::billing::state::{Provider, ProviderSubscription, SubscriptionStatus};
use crate::domain::UserId;
use serde_json::Value;

/// Why a body could not be read as a webhook event.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    /// Not JSON, or not an object.
    #[error("the webhook body is not a JSON object")]
    NotJson,
    /// A required envelope field is missing.
    #[error("the webhook body lacks {0}")]
    Missing(&'static str),
}

/// The envelope facts ingest needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The provider's event id.
    pub event_id: String,
    /// The event type.
    pub event_type: String,
    /// FIFO group: the subscription id, else the customer id, else the event id.
    pub group_id: String,
}

/// A payment fact carried by an event, before the user is resolved. Amounts in minor units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentFacts {
    /// Provider payment / invoice id.
    pub payment_id: String,
    /// Minor currency units.
    pub amount_minor: i64,
    /// ISO 4217, lowercase.
    pub currency: String,
    /// `paid` or `failed`.
    pub status: &'static str,
    /// Unix seconds.
    pub at: i64,
}

impl PaymentFacts {
    /// The payment record for `user_id`.
    pub fn into_payment(
        self,
        user_id: UserId,
        provider: Provider,
        subscription_id: Option<String>,
    ) -> Payment {
        Payment {
            user_id,
            provider,
            payment_id: self.payment_id,
            amount_minor: self.amount_minor,
            currency: self.currency,
            subscription_id,
            status: self.status.to_owned(),
            paid_at: self.at,
        }
    }
}

/// What an event means to Tollgate.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Normalized {
    /// A subscription to refetch and apply.
    pub subscription_id: Option<String>,
    /// The provider customer, if the event names it.
    pub customer_id: Option<String>,
    /// Our user id if the event carries it (`metadata.user_id`, `client_reference_id`); a hint,
    /// checked against the customer claim.
    pub user_hint: Option<String>,
    /// A payment to record.
    pub payment: Option<PaymentFacts>,
    /// Nothing to do: recorded as `ignored`.
    pub ignored: bool,
}

fn parse(body: &[u8]) -> Result<Value, EventError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.is_object() => Ok(v),
        _ => Err(EventError::NotJson),
    }
}

fn s(v: &Value, pointer: &str) -> Option<String> {
    match v.pointer(pointer) {
        Some(Value::String(x)) if !x.is_empty() => Some(x.clone()),
        // Expanded objects: take their id.
        Some(Value::Object(o)) => o.get("id").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

fn unix_of_rfc3339(v: &Value, pointer: &str) -> Option<i64> {
    let text = v.pointer(pointer)?.as_str()?;
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// Reads the Stripe envelope `{id, type, data: {object}}`.
///
/// # Errors
/// [`EventError`] if the body is not a JSON object or lacks `id`, `type` or `data.object`.
pub fn stripe_envelope(body: &[u8]) -> Result<Envelope, EventError> {
    let v = parse(body)?;
    let event_id = s(&v, "/id").ok_or(EventError::Missing("id"))?;
    let event_type = s(&v, "/type").ok_or(EventError::Missing("type"))?;
    let object = v
        .pointer("/data/object")
        .ok_or(EventError::Missing("data.object"))?;
    let group_id = stripe_subscription_of(object)
        .or_else(|| s(object, "/customer"))
        .unwrap_or_else(|| event_id.clone());
    Ok(Envelope {
        event_id,
        event_type,
        group_id,
    })
}

fn stripe_subscription_of(object: &Value) -> Option<String> {
    match object.get("object").and_then(Value::as_str) {
        Some("subscription") => s(object, "/id"),
        Some("invoice") => s(object, "/parent/subscription_details/subscription")
            .or_else(|| s(object, "/subscription")),
        _ => s(object, "/subscription"),
    }
}

/// Maps a Stripe event (docs.stripe.com/api/events/types) onto its meaning.
///
/// # Errors
/// [`EventError`] if the body is not a Stripe event.
pub fn normalize_stripe(body: &[u8]) -> Result<Normalized, EventError> {
    let v = parse(body)?;
    let event_type = s(&v, "/type").ok_or(EventError::Missing("type"))?;
    let o = v
        .pointer("/data/object")
        .ok_or(EventError::Missing("data.object"))?;
    let customer_id = s(o, "/customer");
    let n = match event_type.as_str() {
        t if t.starts_with("customer.subscription.") => Normalized {
            subscription_id: s(o, "/id"),
            customer_id,
            user_hint: s(o, "/metadata/user_id"),
            ..Default::default()
        },
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            let user_hint = s(o, "/client_reference_id").or_else(|| s(o, "/metadata/user_id"));
            match o.get("mode").and_then(Value::as_str) {
                Some("subscription") => Normalized {
                    subscription_id: s(o, "/subscription"),
                    customer_id,
                    user_hint,
                    ..Default::default()
                },
                Some("payment")
                    if o.get("payment_status").and_then(Value::as_str) != Some("unpaid") =>
                {
                    Normalized {
                        customer_id,
                        user_hint,
                        payment: Some(PaymentFacts {
                            payment_id: s(o, "/payment_intent")
                                .or_else(|| s(o, "/id"))
                                .unwrap_or_default(),
                            amount_minor: o
                                .get("amount_total")
                                .and_then(Value::as_i64)
                                .unwrap_or(0),
                            currency: s(o, "/currency").unwrap_or_default(),
                            status: "paid",
                            at: o.get("created").and_then(Value::as_i64).unwrap_or(0),
                        }),
                        ..Default::default()
                    }
                }
                _ => Normalized {
                    ignored: true,
                    ..Default::default()
                },
            }
        }
        "invoice.paid" | "invoice.payment_succeeded" | "invoice.payment_failed" => {
            let paid = event_type != "invoice.payment_failed";
            Normalized {
                subscription_id: stripe_subscription_of(o),
                customer_id,
                user_hint: s(o, "/parent/subscription_details/metadata/user_id"),
                payment: Some(PaymentFacts {
                    payment_id: s(o, "/id").unwrap_or_default(),
                    amount_minor: o
                        .get(if paid { "amount_paid" } else { "amount_due" })
                        .and_then(Value::as_i64)
                        .unwrap_or(0),
                    currency: s(o, "/currency").unwrap_or_default(),
                    status: if paid { "paid" } else { "failed" },
                    at: o
                        .pointer("/status_transitions/paid_at")
                        .and_then(Value::as_i64)
                        .or_else(|| o.get("created").and_then(Value::as_i64))
                        .unwrap_or(0),
                }),
                ..Default::default()
            }
        }
        _ => Normalized {
            ignored: true,
            ..Default::default()
        },
    };
    Ok(n)
}

/// Reads the Whop envelope `{id, type, data}` (Standard Webhooks; the `webhook-id` header is
/// used when the body has no `id`).
///
/// # Errors
/// [`EventError`] if the body is not a JSON object or lacks an id, `type` or `data`.
pub fn whop_envelope(body: &[u8], webhook_id: Option<&str>) -> Result<Envelope, EventError> {
    let v = parse(body)?;
    let event_id = s(&v, "/id")
        .or_else(|| webhook_id.map(str::to_owned))
        .ok_or(EventError::Missing("id"))?;
    let event_type = s(&v, "/type").ok_or(EventError::Missing("type"))?;
    let data = v.get("data").ok_or(EventError::Missing("data"))?;
    let group_id = whop_membership_of(&event_type, data)
        .or_else(|| s(data, "/member/id"))
        .unwrap_or_else(|| event_id.clone());
    Ok(Envelope {
        event_id,
        event_type,
        group_id,
    })
}

fn whop_membership_of(event_type: &str, data: &Value) -> Option<String> {
    if event_type.starts_with("membership.") {
        s(data, "/id")
    } else {
        s(data, "/membership/id")
    }
}

/// Maps a Whop event (docs.whop.com webhooks: `membership.*`, `payment.*`) onto its meaning.
/// Whop amounts are decimal currency units; they are converted to minor units (× 100, rounded).
///
/// # Errors
/// [`EventError`] if the body is not a Whop event.
pub fn normalize_whop(body: &[u8]) -> Result<Normalized, EventError> {
    let v = parse(body)?;
    let event_type = s(&v, "/type").ok_or(EventError::Missing("type"))?;
    let d = v.get("data").ok_or(EventError::Missing("data"))?;
    let n = match event_type.as_str() {
        t if t.starts_with("membership.") => Normalized {
            subscription_id: s(d, "/id"),
            customer_id: s(d, "/member/id"),
            user_hint: s(d, "/metadata/user_id"),
            ..Default::default()
        },
        "payment.succeeded" | "payment.failed" => {
            let paid = event_type == "payment.succeeded";
            let amount = d.get("total").and_then(Value::as_f64).unwrap_or(0.0);
            Normalized {
                subscription_id: whop_membership_of(&event_type, d),
                customer_id: s(d, "/member/id"),
                user_hint: s(d, "/metadata/user_id"),
                payment: Some(PaymentFacts {
                    payment_id: s(d, "/id").unwrap_or_default(),
                    amount_minor: (amount * 100.0).round() as i64,
                    currency: s(d, "/currency").unwrap_or_default(),
                    status: if paid { "paid" } else { "failed" },
                    at: unix_of_rfc3339(d, "/paid_at")
                        .or_else(|| unix_of_rfc3339(d, "/created_at"))
                        .unwrap_or(0),
                }),
                ..Default::default()
            }
        }
        _ => Normalized {
            ignored: true,
            ..Default::default()
        },
    };
    Ok(n)
}

/// Reads a Stripe subscription object (API ≥ 2025-03-31: the period end lives on the items,
/// `items.data[].current_period_end`; older versions have it on the subscription).
///
/// # Errors
/// [`EventError`] if `id`, `customer`, `status` or an item price is missing, or the status is
/// not one of Stripe's.
pub fn stripe_subscription(o: &Value) -> Result<ProviderSubscription, EventError> {
    let status = s(o, "/status").ok_or(EventError::Missing("status"))?;
    let item = o
        .pointer("/items/data/0")
        .ok_or(EventError::Missing("items.data[0]"))?;
    Ok(ProviderSubscription {
        provider: Provider::Stripe,
        subscription_id: s(o, "/id").ok_or(EventError::Missing("id"))?,
        customer_id: s(o, "/customer").ok_or(EventError::Missing("customer"))?,
        user_id: s(o, "/metadata/user_id").and_then(|u| u.parse().ok()),
        status: SubscriptionStatus::from_stripe(&status)
            .ok_or(EventError::Missing("a known status"))?,
        price_id: s(item, "/price").ok_or(EventError::Missing("items.data[0].price"))?,
        current_period_end: item
            .get("current_period_end")
            .and_then(Value::as_i64)
            .or_else(|| o.get("current_period_end").and_then(Value::as_i64)),
        cancel_at_period_end: o
            .get("cancel_at_period_end")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        trial_end: o.get("trial_end").and_then(Value::as_i64),
    })
}

/// Reads a Whop membership object (`Membership` in whopio/whopsdk-typescript).
///
/// # Errors
/// [`EventError`] if `id`, `status` or `plan.id` is missing or the status unknown.
pub fn whop_membership(d: &Value) -> Result<ProviderSubscription, EventError> {
    let status = s(d, "/status").ok_or(EventError::Missing("status"))?;
    let neutral =
        SubscriptionStatus::from_whop(&status).ok_or(EventError::Missing("a known status"))?;
    Ok(ProviderSubscription {
        provider: Provider::Whop,
        subscription_id: s(d, "/id").ok_or(EventError::Missing("id"))?,
        customer_id: s(d, "/member/id")
            .or_else(|| s(d, "/user/id"))
            .unwrap_or_default(),
        user_id: s(d, "/metadata/user_id").and_then(|u| u.parse().ok()),
        status: neutral,
        price_id: s(d, "/plan/id").ok_or(EventError::Missing("plan.id"))?,
        current_period_end: unix_of_rfc3339(d, "/renewal_period_end"),
        cancel_at_period_end: status == "canceling"
            || d.get("cancel_at_period_end")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        trial_end: if neutral == SubscriptionStatus::Trialing {
            unix_of_rfc3339(d, "/renewal_period_end")
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
            "{}/../../shared/fixtures/{path}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture")
    }

    #[test]
    fn every_stripe_fixture_normalizes() {
        let cases = [
            (
                "checkout.session.completed.subscription",
                Some("sub_1TestSubscr0000001"),
                false,
                false,
            ),
            ("checkout.session.completed.payment", None, true, false),
            (
                "customer.subscription.created",
                Some("sub_1TestSubscr0000001"),
                false,
                false,
            ),
            (
                "customer.subscription.deleted",
                Some("sub_1TestSubscr0000001"),
                false,
                false,
            ),
            (
                "customer.subscription.trial_will_end",
                Some("sub_1TestSubscr0000001"),
                false,
                false,
            ),
            (
                "customer.subscription.updated.activated",
                Some("sub_1TestSubscr0000001"),
                false,
                false,
            ),
            (
                "customer.subscription.updated.cancel_at_period_end",
                Some("sub_1TestSubscr0000001"),
                false,
                false,
            ),
            (
                "customer.subscription.updated.past_due",
                Some("sub_1TestSubscr0000001"),
                false,
                false,
            ),
            (
                "customer.subscription.updated.plan_change",
                Some("sub_1TestSubscr0000001"),
                false,
                false,
            ),
            ("invoice.paid", Some("sub_1TestSubscr0000001"), true, false),
            (
                "invoice.payment_failed",
                Some("sub_1TestSubscr0000001"),
                true,
                false,
            ),
        ];
        for (name, sub, payment, ignored) in cases {
            let body = fixture(&format!("stripe/events/{name}.json"));
            let n = normalize_stripe(&body).expect(name);
            assert_eq!(n.subscription_id.as_deref(), sub, "{name}");
            assert_eq!(n.payment.is_some(), payment, "{name}");
            assert_eq!(n.ignored, ignored, "{name}");
            assert_eq!(n.user_hint.as_deref(), Some("user_7f3c2a"), "{name}");
            let env = stripe_envelope(&body).expect(name);
            assert!(env.event_id.starts_with("evt_"), "{name}");
            let want_group = sub.unwrap_or("cus_TestAlice000001");
            assert_eq!(env.group_id, want_group, "{name}");
        }
        let invoice =
            normalize_stripe(&fixture("stripe/events/invoice.paid.json")).expect("invoice");
        let p = invoice.payment.expect("payment");
        assert_eq!(
            (p.amount_minor, p.currency.as_str(), p.status, p.at),
            (1500, "usd", "paid", 1_795_595_700)
        );
    }

    #[test]
    fn unknown_stripe_types_are_ignored_not_errors() {
        let n = normalize_stripe(
            br#"{"id":"evt_1","type":"charge.refunded","data":{"object":{"object":"charge"}}}"#,
        )
        .expect("ok");
        assert!(n.ignored);
        assert_eq!(
            stripe_envelope(br#"{"id":"evt_1","type":"x","data":{"object":{}}}"#)
                .expect("ok")
                .group_id,
            "evt_1"
        );
        assert_eq!(normalize_stripe(b"[]"), Err(EventError::NotJson));
        assert_eq!(
            stripe_envelope(br#"{"type":"x"}"#),
            Err(EventError::Missing("id"))
        );
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
            let body = fixture(&format!("whop/events/{name}.json"));
            let n = normalize_whop(&body).expect(name);
            assert_eq!(
                n.subscription_id.as_deref(),
                Some("mem_TestAlice00001"),
                "{name}"
            );
            assert_eq!(
                whop_envelope(&body, None).expect(name).group_id,
                "mem_TestAlice00001",
                "{name}"
            );
            assert!(!n.ignored);
        }
        let p = normalize_whop(&fixture("whop/events/payment.succeeded.json"))
            .expect("pay")
            .payment
            .expect("payment");
        assert_eq!(
            (p.amount_minor, p.currency.as_str(), p.status),
            (1500, "usd", "paid")
        );
        assert!(
            normalize_whop(&fixture("whop/chat.message.created.sdk-test-payload.json"))
                .expect("ok")
                .ignored
        );
    }

    #[test]
    fn provider_objects_map_to_the_neutral_state() {
        let event: Value = serde_json::from_slice(&fixture(
            "stripe/events/customer.subscription.updated.cancel_at_period_end.json",
        ))
        .expect("json");
        let sub = stripe_subscription(&event["data"]["object"]).expect("sub");
        assert_eq!(
            (sub.status, sub.cancel_at_period_end, sub.price_id.as_str()),
            (SubscriptionStatus::Active, true, "price_1TestProMonthly01")
        );
        assert!(sub.current_period_end.is_some());
        let event: Value = serde_json::from_slice(&fixture(
            "whop/events/membership.cancel_at_period_end_changed.json",
        ))
        .expect("json");
        let m = whop_membership(&event["data"]).expect("membership");
        assert_eq!(
            (m.status, m.cancel_at_period_end),
            (SubscriptionStatus::Active, true)
        );
        assert_eq!(m.current_period_end, Some(1_795_597_200));
    }
}
