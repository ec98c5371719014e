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
    match membership.get("updated_at") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .ok()
                .map(time::OffsetDateTime::unix_timestamp)
        }
        _ => None,
    }
}

impl WhopProvider {
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
        let info = page.get("page_info");
        let next = info
            .and_then(|i| i.get("has_next_page"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
            .then(|| {
                info.and_then(|i| i.get("end_cursor"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .flatten();
        Ok(EventPage { events, next })
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

    async fn list_events(
        &self,
        since: i64,
        cursor: Option<&str>,
    ) -> Result<EventPage, ProviderError> {
        self.memberships_page(since, cursor).await
    }
}
