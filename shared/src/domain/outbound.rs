//! Outbound events (docs/architecture.md §15): what Tollgate tells the customer's own app when a
//! user's billing changes, so the app need not poll. An event is an item (`HOOK#<id>` / `HOOK`)
//! written in the same transaction as the change that causes it, under a deterministic id, so a
//! second provider event of the same cause adds nothing. A worker delivers it to every
//! configured endpoint, signed with Standard Webhooks
//! (<https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md>),
//! retrying with exponential backoff; after [`OUTBOUND_MAX_ATTEMPTS`] it is `dead` — the
//! dead-letter record an operator replays.
//!
//! The rules here are pure functions of the item and the time (Unix seconds).

use super::UserId;
use serde::{Deserialize, Serialize};

/// Delivery attempts before an event is given up as `dead`: with [`retry_delay`] the last one
/// is about 29 hours after the first (Standard Webhooks suggests retrying with exponential
/// backoff over a day or more).
pub const OUTBOUND_MAX_ATTEMPTS: u32 = 13;
/// How long a delivery claim keeps other workers off an event, in seconds (each endpoint call
/// gives up after 10 s).
pub const OUTBOUND_LEASE_SECONDS: i64 = 60;
/// How long an event is kept (TTL), in seconds: 30 days (replayable while kept).
pub const OUTBOUND_RETENTION_SECONDS: i64 = 30 * 86_400;

/// The event types (the `type` field of the payload).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum OutboundType {
    /// The stored subscription changed (plan, status, period, cancellation).
    #[serde(rename = "subscription.updated")]
    SubscriptionUpdated,
    /// The plan whose entitlements the user holds changed (including to and from `free`).
    #[serde(rename = "entitlements.changed")]
    EntitlementsChanged,
    /// A payment was collected.
    #[serde(rename = "payment.succeeded")]
    PaymentSucceeded,
    /// A payment attempt failed.
    #[serde(rename = "payment.failed")]
    PaymentFailed,
    /// Credits were granted by a purchase or taken back by a refund.
    #[serde(rename = "credits.changed")]
    CreditsChanged,
}

impl OutboundType {
    /// The dotted name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SubscriptionUpdated => "subscription.updated",
            Self::EntitlementsChanged => "entitlements.changed",
            Self::PaymentSucceeded => "payment.succeeded",
            Self::PaymentFailed => "payment.failed",
            Self::CreditsChanged => "credits.changed",
        }
    }
}

/// Where an event is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboundStatus {
    /// Waiting for its next attempt (at `next_attempt_at`).
    Pending,
    /// Claimed by a worker until `lease_until`.
    Sending,
    /// Every endpoint answered 2xx.
    Delivered,
    /// Given up after [`OUTBOUND_MAX_ATTEMPTS`]: the dead-letter record (replayable).
    Dead,
}

/// An outbound event item. Times are Unix seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundEvent {
    /// `msg_<32 hex>`: the Standard Webhooks `webhook-id`, derived from the cause (see
    /// [`outbound_id`]), so receivers can deduplicate and a second cause adds nothing.
    pub id: String,
    /// The event type.
    pub event_type: OutboundType,
    /// The user it concerns.
    pub user_id: UserId,
    /// The JSON body exactly as sent and signed: `{"type", "timestamp", "data"}`.
    pub payload: String,
    /// Where it is.
    pub status: OutboundStatus,
    /// Attempts made (claims taken).
    #[serde(default)]
    pub attempts: u32,
    /// When the next attempt is due.
    pub next_attempt_at: i64,
    /// While `Sending`: until when the claim holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until: Option<i64>,
    /// Names of the endpoints that already accepted it (not sent to again on a retry).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delivered_to: Vec<String>,
    /// Why the last attempt failed (status code or transport error; no secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the change was committed.
    pub created_at: i64,
    /// When it was delivered or given up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
    /// TTL attribute: `created_at` + [`OUTBOUND_RETENTION_SECONDS`].
    pub expires_at: i64,
}

/// What a worker may do with an event at a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboundDecision {
    /// Take it: pending and due, or its worker's lease ran out.
    Claim,
    /// Not yet: pending until this time, or held by another worker until this time.
    Wait {
        /// When it may be claimed.
        until: i64,
    },
    /// Nothing left to do: delivered or dead.
    Done,
}

/// The `webhook-id` of the event a cause owes: `msg_` and the first 32 hex digits of the
/// SHA-256 of the cause (`subscription.updated:stripe:sub_1:7`…), so it is the same however many
/// provider events carry the cause.
pub fn outbound_id(cause: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cause.as_bytes());
    let hex: String = digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("msg_{hex}")
}

/// The pause before attempt `attempts + 1`, seconds, after `attempts` failed ones: 30 s doubling
/// per attempt, at most 12 h (exponential backoff).
pub fn retry_delay(attempts: u32) -> i64 {
    let exp = attempts.saturating_sub(1).min(16);
    (30_i64 << exp).min(12 * 3600)
}

impl OutboundEvent {
    /// A new pending event of `event_type` for `user_id`, owed by `cause`, with `data` as the
    /// payload's `data`, due at once.
    pub fn new(
        cause: &str,
        event_type: OutboundType,
        user_id: UserId,
        data: serde_json::Value,
        now: i64,
    ) -> Self {
        let payload = serde_json::json!({
            "type": event_type.as_str(),
            "timestamp": super::rfc3339(now),
            "data": data,
        })
        .to_string();
        Self {
            id: outbound_id(cause),
            event_type,
            user_id,
            payload,
            status: OutboundStatus::Pending,
            attempts: 0,
            next_attempt_at: now,
            lease_until: None,
            delivered_to: Vec::new(),
            last_error: None,
            created_at: now,
            finished_at: None,
            expires_at: now.saturating_add(OUTBOUND_RETENTION_SECONDS),
        }
    }

    /// Whether a worker may claim it at `now`.
    pub fn decision(&self, now: i64) -> OutboundDecision {
        match self.status {
            OutboundStatus::Pending if self.next_attempt_at <= now => OutboundDecision::Claim,
            OutboundStatus::Pending => OutboundDecision::Wait {
                until: self.next_attempt_at,
            },
            OutboundStatus::Sending => match self.lease_until {
                Some(until) if until > now => OutboundDecision::Wait { until },
                _ => OutboundDecision::Claim,
            },
            OutboundStatus::Delivered | OutboundStatus::Dead => OutboundDecision::Done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_cause() {
        assert_eq!(outbound_id("a"), outbound_id("a"));
        assert_ne!(outbound_id("a"), outbound_id("b"));
        assert_eq!(outbound_id("a").len(), 36);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(retry_delay(1), 30);
        assert_eq!(retry_delay(2), 60);
        assert_eq!(retry_delay(5), 480);
        assert_eq!(retry_delay(40), 12 * 3600);
        let total: i64 = (1..OUTBOUND_MAX_ATTEMPTS).map(retry_delay).sum();
        assert!(total > 86_400, "retries span more than a day: {total}");
    }

    #[test]
    fn a_pending_event_waits_for_its_time_and_a_claim_for_its_lease() {
        let mut e = OutboundEvent::new(
            "c",
            OutboundType::PaymentFailed,
            UserId::new(),
            serde_json::json!({}),
            100,
        );
        assert_eq!(e.decision(100), OutboundDecision::Claim);
        e.next_attempt_at = 200;
        assert_eq!(e.decision(150), OutboundDecision::Wait { until: 200 });
        e.status = OutboundStatus::Sending;
        e.lease_until = Some(300);
        assert_eq!(e.decision(250), OutboundDecision::Wait { until: 300 });
        assert_eq!(e.decision(300), OutboundDecision::Claim);
        e.status = OutboundStatus::Dead;
        assert_eq!(e.decision(1_000), OutboundDecision::Done);
        let body: serde_json::Value = serde_json::from_str(&e.payload).expect("json");
        assert_eq!(body["type"], "payment.failed");
    }
}
