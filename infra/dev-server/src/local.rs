//! The `local` payment provider: offline checkout for the dev server only (never built into a
//! Lambda). A checkout returns a URL on this server; opening it completes the checkout by creating
//! a subscription here and posting a correctly signed, Stripe-shaped event to this server's own
//! `POST /webhooks/local` route — so the whole flow (ingest → queue → processor → refetch) runs
//! as it does with Stripe. Cancel, resume and plan changes post `customer.subscription.updated`.
//! State is kept in `<data-dir>/local-provider.json`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use tollgate::billing::{Proration, Provider, ProviderSubscription, SubscriptionStatus};
use tollgate::domain::UserId;
use tollgate::payments::{CheckoutRequest, CheckoutSession, PaymentProvider, ProviderError};
use tollgate::webhooks::signature::sign_stripe;
use tollgate::{Clock, SystemClock};

/// Length of a local billing period, seconds (30 days).
pub const PERIOD_SECONDS: i64 = 30 * 24 * 3600;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Session {
    user_id: UserId,
    price_id: String,
    trial_days: u32,
    success_url: String,
    subscription_id: Option<String>,
}

#[derive(Default, Serialize, Deserialize)]
struct Data {
    sessions: HashMap<String, Session>,
    subscriptions: HashMap<String, ProviderSubscription>,
}

/// The local provider.
pub struct LocalProvider {
    base_url: String,
    webhook_secret: String,
    file: PathBuf,
    data: Mutex<Data>,
    http: reqwest::Client,
}

impl LocalProvider {
    /// A provider whose checkout pages live under `base_url`, signing events with
    /// `webhook_secret`, persisting to `file`.
    pub fn new(base_url: String, webhook_secret: String, file: PathBuf) -> Self {
        let data = std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Self {
            base_url,
            webhook_secret,
            file,
            data: Mutex::new(data),
            http: reqwest::Client::new(),
        }
    }

    fn save(&self, data: &Data) {
        if let Ok(bytes) = serde_json::to_vec_pretty(data) {
            if let Err(e) = std::fs::write(&self.file, bytes) {
                tracing::warn!(error = %e, "could not persist the local provider state");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Completes checkout `session_id`: creates the subscription (trialing if the plan has trial
    /// days) and posts `checkout.session.completed` to this server. Returns the success URL.
    ///
    /// # Errors
    /// `NotFound` for an unknown session; `Unavailable` if the webhook post fails.
    pub async fn complete(&self, session_id: &str) -> Result<String, ProviderError> {
        let now = SystemClock.now();
        let (session, subscription) = {
            let mut data = self.lock();
            let mut session = data
                .sessions
                .get(session_id)
                .cloned()
                .ok_or(ProviderError::NotFound)?;
            let subscription_id = session
                .subscription_id
                .clone()
                .unwrap_or_else(|| format!("sub_local_{}", uuid::Uuid::now_v7().simple()));
            let sub = data
                .subscriptions
                .entry(subscription_id.clone())
                .or_insert_with(|| ProviderSubscription {
                    provider: Provider::Local,
                    subscription_id: subscription_id.clone(),
                    customer_id: format!(
                        "cus_local_{}",
                        session.user_id.to_string().replace('-', "")
                    ),
                    user_id: Some(session.user_id),
                    status: if session.trial_days > 0 {
                        SubscriptionStatus::Trialing
                    } else {
                        SubscriptionStatus::Active
                    },
                    price_id: session.price_id.clone(),
                    current_period_end: Some(
                        now + if session.trial_days > 0 {
                            i64::from(session.trial_days) * 86_400
                        } else {
                            PERIOD_SECONDS
                        },
                    ),
                    cancel_at_period_end: false,
                    trial_end: (session.trial_days > 0)
                        .then(|| now + i64::from(session.trial_days) * 86_400),
                });
            let sub = sub.clone();
            session.subscription_id = Some(subscription_id);
            data.sessions.insert(session_id.to_owned(), session.clone());
            self.save(&data);
            (session, sub)
        };
        let object = json!({
            "id": session_id,
            "object": "checkout.session",
            "mode": "subscription",
            "status": "complete",
            "payment_status": "paid",
            "client_reference_id": session.user_id.to_string(),
            "customer": subscription.customer_id,
            "subscription": subscription.subscription_id,
            "metadata": {"user_id": session.user_id.to_string()},
        });
        self.post_event("checkout.session.completed", object)
            .await?;
        Ok(session
            .success_url
            .replace("{CHECKOUT_SESSION_ID}", session_id))
    }

    async fn post_event(
        &self,
        event_type: &str,
        object: serde_json::Value,
    ) -> Result<(), ProviderError> {
        let now = SystemClock.now();
        let body = serde_json::to_vec(&json!({
            "id": format!("evt_local_{}", uuid::Uuid::now_v7().simple()),
            "object": "event",
            "type": event_type,
            "created": now,
            "livemode": false,
            "data": {"object": object},
        }))
        .map_err(|e| ProviderError::Rejected(e.to_string()))?;
        let signature = sign_stripe(&body, &self.webhook_secret, now);
        let res = self
            .http
            .post(format!("{}/webhooks/local", self.base_url))
            .header("content-type", "application/json")
            .header("stripe-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                ProviderError::Unavailable(format!("posting the local webhook failed: {e}"))
            })?;
        if !res.status().is_success() {
            return Err(ProviderError::Unavailable(format!(
                "the local webhook answered {}",
                res.status()
            )));
        }
        Ok(())
    }

    async fn update(
        &self,
        subscription_id: &str,
        change: impl FnOnce(&mut ProviderSubscription),
    ) -> Result<(), ProviderError> {
        let sub = {
            let mut data = self.lock();
            let sub = data
                .subscriptions
                .get_mut(subscription_id)
                .ok_or(ProviderError::NotFound)?;
            change(sub);
            let sub = sub.clone();
            self.save(&data);
            sub
        };
        let object = json!({
            "id": sub.subscription_id,
            "object": "subscription",
            "customer": sub.customer_id,
            "status": sub.status.as_str(),
            "metadata": {"user_id": sub.user_id.map(|u| u.to_string())},
        });
        self.post_event("customer.subscription.updated", object)
            .await
    }
}

#[async_trait]
impl PaymentProvider for LocalProvider {
    fn provider(&self) -> Provider {
        Provider::Local
    }

    async fn create_customer(
        &self,
        user_id: &UserId,
        _email: &str,
        _key: &str,
    ) -> Result<Option<String>, ProviderError> {
        Ok(Some(format!(
            "cus_local_{}",
            user_id.to_string().replace('-', "")
        )))
    }

    async fn create_checkout(
        &self,
        request: &CheckoutRequest,
    ) -> Result<CheckoutSession, ProviderError> {
        let id = format!("cs_local_{}", uuid::Uuid::now_v7().simple());
        let mut data = self.lock();
        data.sessions.insert(
            id.clone(),
            Session {
                user_id: request.user_id,
                price_id: request.price_id.clone(),
                trial_days: request.trial_days,
                success_url: request.success_url.clone(),
                subscription_id: None,
            },
        );
        self.save(&data);
        Ok(CheckoutSession {
            url: format!("{}/dev/checkout/{id}/complete", self.base_url),
            id,
        })
    }

    async fn create_portal(
        &self,
        _customer_id: &str,
        subscription_id: &str,
        _return_url: &str,
    ) -> Result<String, ProviderError> {
        Ok(format!("{}/dev/portal/{subscription_id}", self.base_url))
    }

    async fn fetch_subscription(
        &self,
        subscription_id: &str,
    ) -> Result<ProviderSubscription, ProviderError> {
        self.lock()
            .subscriptions
            .get(subscription_id)
            .cloned()
            .ok_or(ProviderError::NotFound)
    }

    async fn fetch_checkout_subscription(
        &self,
        session_id: &str,
    ) -> Result<Option<String>, ProviderError> {
        Ok(self
            .lock()
            .sessions
            .get(session_id)
            .ok_or(ProviderError::NotFound)?
            .subscription_id
            .clone())
    }

    async fn set_cancel_at_period_end(
        &self,
        subscription_id: &str,
        cancel: bool,
    ) -> Result<(), ProviderError> {
        self.update(subscription_id, |s| s.cancel_at_period_end = cancel)
            .await
    }

    async fn change_price(
        &self,
        subscription_id: &str,
        price_id: &str,
        _proration: Proration,
    ) -> Result<(), ProviderError> {
        let price = price_id.to_owned();
        self.update(subscription_id, move |s| s.price_id = price)
            .await
    }
}
