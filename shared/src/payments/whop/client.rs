//! Whop through its REST API (`https://api.whop.com/api/v1`, bearer API key; base URL
//! configurable with `WHOP_API_BASE` so tests and doubles can stand in).
//!
//! Endpoints (docs.whop.com/api-reference): `POST /checkout_configurations` (`plan_id`,
//! `metadata`, `redirect_url` → `purchase_url`), `GET /memberships/{id}`,
//! `POST /memberships/{id}/cancel` (`cancellation_mode: at_period_end`),
//! `POST /memberships/{id}/uncancel`. Whop has no customer objects and no API plan change.

use super::events::membership;
use crate::domain::{
    CheckoutSessionId, CustomerId, PriceId, Proration, Provider, ProviderSubscription,
    SubscriptionId, UserId,
};
use crate::error::message;
use crate::payments::{
    path_segment, CheckoutRequest, CheckoutSession, EventPage, PaymentProvider, ProviderError,
};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

/// Whop's production API base.
pub const DEFAULT_API_BASE: &str = "https://api.whop.com/api/v1";

/// The Whop provider. Cheap to clone.
#[derive(Clone)]
pub struct WhopProvider {
    http: reqwest::Client,
    base: String,
    api_key: SecretString,
}

impl std::fmt::Debug for WhopProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhopProvider")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl WhopProvider {
    /// A client over `http` ([`crate::payments::http_client`]) for `base` (a trailing slash is ignored)
    /// with `api_key`.
    pub fn new(http: reqwest::Client, base: &str, api_key: SecretString) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            api_key,
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Value, ProviderError> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.api_key.expose_secret());
        if let Some(key) = idempotency_key {
            req = req.header("Idempotency-Key", key);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req
            .send()
            .await
            .map_err(|e| ProviderError::Unavailable(Box::new(e.without_url())))?;
        let status = res.status();
        let text = res
            .text()
            .await
            .map_err(|e| ProviderError::Unavailable(Box::new(e.without_url())))?;
        match status.as_u16() {
            200..=299 => {
                serde_json::from_str(&text).map_err(|e| ProviderError::Unavailable(Box::new(e)))
            }
            404 => Err(ProviderError::NotFound),
            429 | 500..=599 => Err(ProviderError::Unavailable(message(format!(
                "whop answered {status}"
            )))),
            _ => Err(ProviderError::Rejected(message(format!(
                "whop answered {status}: {}",
                text.chars().take(300).collect::<String>()
            )))),
        }
    }
}

/// A membership's update time: Unix seconds, or RFC 3339 (Whop's API answers both shapes).
fn updated_at(membership: &Value) -> Option<i64> {
    time_of(membership, "updated_at")
}

/// A time field of a Whop object: Unix seconds, or RFC 3339.
fn time_of(object: &Value, field: &str) -> Option<i64> {
    match object.get(field) {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .ok()
                .map(time::OffsetDateTime::unix_timestamp)
        }
        _ => None,
    }
}

/// The events a listed payment stands for, as `(event id, type, data, time)`: a paid payment →
/// `payment.succeeded`; a failed one (`substatus = "failed"`, or `failure_message` set while
/// not paid) → `payment.failed`; a refunded one (`refunded_at` set) → also `refund.created`
/// with `data.payment.id`. The ids (`reconcile_<payment>_<paid|failed|refunded>`) make each
/// state one event. Only payments that changed at or after `since` (paid, failed or refunded
/// then) are listed.
fn payment_events(p: &Value, since: i64) -> Vec<(String, &'static str, Value, i64)> {
    let Some(id) = p.get("id").and_then(Value::as_str) else {
        return Vec::new();
    };
    let status = p.get("status").and_then(Value::as_str).unwrap_or_default();
    let substatus = p
        .get("substatus")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let failed = status != "paid"
        && (substatus == "failed" || p.get("failure_message").is_some_and(|m| !m.is_null()));
    let mut events = Vec::new();
    let changed = |t: Option<i64>| t.filter(|t| *t >= since);
    if let Some(at) = changed(time_of(p, "paid_at").or_else(|| time_of(p, "created_at")))
        .filter(|_| status == "paid")
    {
        events.push((
            format!("reconcile_{id}_paid"),
            "payment.succeeded",
            p.clone(),
            at,
        ));
    }
    if let Some(at) =
        changed(time_of(p, "last_payment_attempt").or_else(|| time_of(p, "created_at")))
            .filter(|_| failed)
    {
        events.push((
            format!("reconcile_{id}_failed"),
            "payment.failed",
            p.clone(),
            at,
        ));
    }
    if let Some(at) = changed(time_of(p, "refunded_at")) {
        events.push((
            format!("reconcile_{id}_refunded"),
            "refund.created",
            json!({"id": format!("reconcile_{id}"), "payment": p}),
            at,
        ));
    }
    events
}

/// Whop's cursor of the page after `page` (`page_info.end_cursor` while `has_next_page`).
fn next_cursor(page: &Value) -> Option<String> {
    let info = page.get("page_info");
    info.and_then(|i| i.get("has_next_page"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
        .then(|| {
            info.and_then(|i| i.get("end_cursor"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .flatten()
}

/// The reconciler's cursor: which list (memberships, then payments) and Whop's page cursor.
const MEMBERSHIPS: &str = "memberships:";
const PAYMENTS: &str = "payments:";

impl WhopProvider {
    /// `GET /payments?first=100[&after=…]`: one page of the company's payments; those paid,
    /// failed or refunded at or after `since` become the events [`payment_events`] names. Like
    /// memberships, the list has no "changed since" filter
    /// (docs.whop.com/api-reference/payments/list-payments), so every page is read.
    async fn payments_page(
        &self,
        since: i64,
        cursor: Option<&str>,
    ) -> Result<EventPage, ProviderError> {
        let mut path = "/payments?first=100".to_owned();
        if let Some(after) = cursor.filter(|c| !c.is_empty()) {
            path.push_str("&after=");
            path.push_str(
                &url::form_urlencoded::byte_serialize(after.as_bytes()).collect::<String>(),
            );
        }
        let page = self.call(reqwest::Method::GET, &path, None, None).await?;
        let mut events = Vec::new();
        for p in page
            .get("data")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for (id, event_type, data, at) in payment_events(p, since) {
                events.push(
                    json!({
                        "id": id,
                        "api_version": "v1",
                        "type": event_type,
                        "timestamp": crate::domain::rfc3339(at),
                        "data": data,
                    })
                    .to_string(),
                );
            }
        }
        Ok(EventPage {
            events,
            next: next_cursor(&page),
        })
    }

    /// `GET /memberships?first=100[&after=…]`: one page of the company's memberships; those
    /// updated at or after `since` become `membership.reconciled` events (id
    /// `reconcile_<membership>_<updated at>`, so each change is one event). Whop's list has no
    /// "updated since" filter (docs.whop.com/api-reference/memberships/list-membership), so every
    /// page is read.
    async fn memberships_page(
        &self,
        since: i64,
        cursor: Option<&str>,
    ) -> Result<EventPage, ProviderError> {
        let mut path = "/memberships?first=100".to_owned();
        if let Some(after) = cursor {
            path.push_str("&after=");
            path.push_str(
                &url::form_urlencoded::byte_serialize(after.as_bytes()).collect::<String>(),
            );
        }
        let page = self.call(reqwest::Method::GET, &path, None, None).await?;
        let mut events = Vec::new();
        for m in page
            .get("data")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(id), Some(at)) = (m.get("id").and_then(Value::as_str), updated_at(m)) else {
                continue;
            };
            if at < since {
                continue;
            }
            events.push(
                json!({
                    "id": format!("reconcile_{id}_{at}"),
                    "api_version": "v1",
                    "type": "membership.reconciled",
                    "timestamp": crate::domain::rfc3339(at),
                    "data": m,
                })
                .to_string(),
            );
        }
        Ok(EventPage {
            events,
            next: next_cursor(&page),
        })
    }

    /// `GET /memberships/{id}`.
    async fn get_membership(&self, subscription: &SubscriptionId) -> Result<Value, ProviderError> {
        self.call(
            reqwest::Method::GET,
            &format!("/memberships/{}", path_segment(subscription.as_str())?),
            None,
            None,
        )
        .await
    }
}

#[async_trait]
impl PaymentProvider for WhopProvider {
    fn provider(&self) -> Provider {
        Provider::Whop
    }

    async fn create_customer(
        &self,
        _user_id: &UserId,
        _email: &str,
        _idempotency_key: &str,
    ) -> Result<Option<CustomerId>, ProviderError> {
        Ok(None)
    }

    async fn create_checkout(
        &self,
        request: &CheckoutRequest,
    ) -> Result<CheckoutSession, ProviderError> {
        let mut metadata = json!({"user_id": request.user_id.to_string()});
        if let Some(pack) = &request.pack {
            metadata["pack"] = json!(pack.pack_id);
        }
        let body = json!({
            "plan_id": request.price_id.as_str(),
            "metadata": metadata,
            "redirect_url": request.success_url.replace("{CHECKOUT_SESSION_ID}", ""),
        });
        let v = self
            .call(
                reqwest::Method::POST,
                "/checkout_configurations",
                Some(body),
                Some(&request.idempotency_key),
            )
            .await?;
        let id = CheckoutSessionId::new(v.get("id").and_then(Value::as_str).unwrap_or_default());
        let url = v
            .get("purchase_url")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ProviderError::Rejected(message("whop checkout configuration has no purchase_url"))
            })?
            .to_owned();
        Ok(CheckoutSession { id, url })
    }

    async fn create_portal(
        &self,
        _customer: Option<&CustomerId>,
        subscription: &SubscriptionId,
        _return_url: &str,
    ) -> Result<String, ProviderError> {
        let v = self.get_membership(subscription).await?;
        v.get("manage_url")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ProviderError::Rejected(message("whop membership has no manage_url")))
    }

    async fn fetch_subscription(
        &self,
        subscription: &SubscriptionId,
    ) -> Result<ProviderSubscription, ProviderError> {
        let v = self.get_membership(subscription).await?;
        membership(&v).map_err(|e| ProviderError::Rejected(Box::new(e)))
    }

    async fn fetch_checkout_subscription(
        &self,
        _session: &CheckoutSessionId,
    ) -> Result<Option<SubscriptionId>, ProviderError> {
        // A checkout configuration does not point at the membership it creates; the webhook does.
        Ok(None)
    }

    async fn set_cancel_at_period_end(
        &self,
        subscription: &SubscriptionId,
        cancel: bool,
    ) -> Result<(), ProviderError> {
        let subscription_id = path_segment(subscription.as_str())?;
        let (path, body) = if cancel {
            (
                format!("/memberships/{subscription_id}/cancel"),
                Some(json!({"cancellation_mode": "at_period_end"})),
            )
        } else {
            (format!("/memberships/{subscription_id}/uncancel"), None)
        };
        self.call(reqwest::Method::POST, &path, body, None)
            .await
            .map(|_| ())
    }

    async fn cancel_now(&self, subscription: &SubscriptionId) -> Result<(), ProviderError> {
        let subscription_id = path_segment(subscription.as_str())?;
        self.call(
            reqwest::Method::POST,
            &format!("/memberships/{subscription_id}/cancel"),
            Some(json!({"cancellation_mode": "immediate"})),
            None,
        )
        .await
        .map(|_| ())
    }

    async fn change_price(
        &self,
        _subscription: &SubscriptionId,
        _price: &PriceId,
        _proration: Proration,
    ) -> Result<(), ProviderError> {
        Err(ProviderError::Rejected(message(
            "Whop memberships cannot change plan through the API; cancel and check out the new plan",
        )))
    }

    /// Every membership changed since, then every payment paid, failed or refunded since
    /// (the cursor says which list and where in it: `memberships:<after>`, `payments:<after>`).
    async fn list_events(
        &self,
        since: i64,
        cursor: Option<&str>,
    ) -> Result<EventPage, ProviderError> {
        let cursor = cursor.unwrap_or(MEMBERSHIPS);
        if let Some(after) = cursor.strip_prefix(PAYMENTS) {
            let mut page = self.payments_page(since, Some(after)).await?;
            page.next = page.next.map(|n| format!("{PAYMENTS}{n}"));
            return Ok(page);
        }
        let after = cursor.strip_prefix(MEMBERSHIPS).unwrap_or(cursor);
        let mut page = self
            .memberships_page(since, Some(after).filter(|a| !a.is_empty()))
            .await?;
        page.next = Some(match page.next {
            Some(n) => format!("{MEMBERSHIPS}{n}"),
            None => PAYMENTS.to_owned(),
        });
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_payments_become_one_event_per_state_changed_since() {
        let ids = |p: Value| -> Vec<(String, &'static str)> {
            payment_events(&p, 1_000)
                .into_iter()
                .map(|(id, t, _, _)| (id, t))
                .collect()
        };
        assert_eq!(
            ids(json!({"id": "pay_1", "status": "paid", "paid_at": 1_500})),
            [("reconcile_pay_1_paid".to_owned(), "payment.succeeded")]
        );
        assert_eq!(
            ids(json!({"id": "pay_2", "status": "paid", "paid_at": 500})),
            [],
            "paid before the checkpoint"
        );
        assert_eq!(
            ids(
                json!({"id": "pay_3", "status": "open", "substatus": "failed",
                       "last_payment_attempt": "1970-01-01T00:20:00Z"})
            ),
            [("reconcile_pay_3_failed".to_owned(), "payment.failed")]
        );
        let refunded = payment_events(
            &json!({"id": "pay_4", "status": "paid", "paid_at": 500, "refunded_at": 2_000}),
            1_000,
        );
        assert_eq!(refunded.len(), 1);
        assert_eq!(refunded[0].1, "refund.created");
        assert_eq!(
            refunded[0].2["payment"]["id"], "pay_4",
            "what the refund normalizes by"
        );
        assert_eq!(refunded[0].3, 2_000);
    }
}
