//! The offline Stripe stand-in: when no `STRIPE_SECRET_KEY` is set, the dev server answers
//! Stripe's part itself (dev server only; never built into a Lambda, and no branch of the core
//! knows it). A checkout returns a URL on this server; opening it completes the checkout by
//! creating a subscription here and posting a correctly signed Stripe event to this server's own
//! `POST /webhooks/stripe` — so the whole flow (ingest → queue → processor → refetch) runs as it
//! does with Stripe, through the same code. Its ids say where they come from (`cs_local_…`,
//! `sub_local_…`, `cus_local_…`, `evt_local_…`). Cancel, resume and plan changes post
//! `customer.subscription.updated`. State is kept in `<data-dir>/local-provider.json`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use tollgate::domain::{
    CheckoutSessionId, CustomerId, PriceId, Proration, Provider, ProviderSubscription,
    SubscriptionId, SubscriptionStatus, UserId,
};
use tollgate::error::message;
use tollgate::payments::stripe::signature::sign;
use tollgate::payments::{
    CheckoutRequest, CheckoutSession, EventPage, PaymentProvider, ProviderError,
};
use tollgate::{Clock, SystemClock};

/// Length of a local billing period, seconds (30 days).
pub const PERIOD_SECONDS: i64 = 30 * 24 * 3600;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Session {
    user_id: UserId,
    price_id: PriceId,
    trial_days: u32,
    success_url: String,
    subscription_id: Option<SubscriptionId>,
    /// A one-time purchase: `(pack id, amount, currency)`.
    #[serde(default)]
    pack: Option<(String, u64, String)>,
    /// The one-time purchase's payment intent, once paid.
    #[serde(default)]
    payment_intent: Option<String>,
}

#[derive(Default, Serialize, Deserialize)]
struct Data {
    sessions: HashMap<String, Session>,
    subscriptions: HashMap<String, ProviderSubscription>,
    /// Every event posted, oldest first, as `(created, body)`: what `GET /v1/events` would list
    /// (the reconciler reads it).
    #[serde(default)]
    events: Vec<(i64, String)>,
}

/// The stand-in.
pub struct OfflineStripe {
    base_url: String,
    webhook_secret: String,
    file: PathBuf,
    data: Mutex<Data>,
    http: reqwest::Client,
}

impl OfflineStripe {
    /// A stand-in whose checkout pages live under `base_url`, signing events with
    /// `webhook_secret` (which the server's Stripe webhook secrets must include), persisting to
    /// `file`. An unreadable file starts empty.
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
                tracing::warn!(error = %e, "could not persist the offline Stripe state");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Completes checkout `session_id`: creates the subscription (trialing if the plan has trial
    /// days) and posts `checkout.session.completed` to this server — or, for a credit pack,
    /// posts a paid `checkout.session.completed` in `payment` mode. Returns the success URL.
    ///
    /// # Errors
    /// `NotFound` for an unknown session; `Unavailable` if the webhook post fails.
    pub async fn complete(&self, session_id: &str) -> Result<String, ProviderError> {
        let one_time = self.lock().sessions.get(session_id).cloned();
        if let Some(session @ Session { pack: Some(_), .. }) = one_time {
            return self.complete_payment(session_id, session).await;
        }
        let now = SystemClock.now();
        let (session, subscription) = {
            let mut data = self.lock();
            let mut session = data
                .sessions
                .get(session_id)
                .cloned()
                .ok_or(ProviderError::NotFound)?;
            let subscription_id = session.subscription_id.clone().unwrap_or_else(|| {
                SubscriptionId::new(format!("sub_local_{}", uuid::Uuid::now_v7().simple()))
            });
            let sub = data
                .subscriptions
                .entry(subscription_id.to_string())
                .or_insert_with(|| ProviderSubscription {
                    provider: Provider::Stripe,
                    subscription_id: subscription_id.clone(),
                    customer_id: Some(customer_of(&session.user_id)),
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

    /// Completes a credit pack's one-time checkout: one payment intent per session (completing
    /// twice posts the same payment again, which grants once).
    async fn complete_payment(
        &self,
        session_id: &str,
        mut session: Session,
    ) -> Result<String, ProviderError> {
        let Some((pack, amount, currency)) = session.pack.clone() else {
            return Err(ProviderError::NotFound);
        };
        let intent = session
            .payment_intent
            .clone()
            .unwrap_or_else(|| format!("pi_local_{}", uuid::Uuid::now_v7().simple()));
        session.payment_intent = Some(intent.clone());
        {
            let mut data = self.lock();
            data.sessions.insert(session_id.to_owned(), session.clone());
            self.save(&data);
        }
        let object = json!({
            "id": session_id,
            "object": "checkout.session",
            "mode": "payment",
            "status": "complete",
            "payment_status": "paid",
            "payment_intent": intent,
            "amount_total": amount,
            "currency": currency,
            "created": SystemClock.now(),
            "client_reference_id": session.user_id.to_string(),
            "customer": customer_of(&session.user_id),
            "metadata": {"user_id": session.user_id.to_string(), "pack": pack},
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
        .map_err(|e| ProviderError::Rejected(Box::new(e)))?;
        {
            let mut data = self.lock();
            data.events
                .push((now, String::from_utf8_lossy(&body).into_owned()));
            self.save(&data);
        }
        let signature = sign(&body, &self.webhook_secret, now);
        let res = self
            .http
            .post(format!("{}/webhooks/stripe", self.base_url))
            .header("content-type", "application/json")
            .header("stripe-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| ProviderError::Unavailable(Box::new(e)))?;
        if !res.status().is_success() {
            return Err(ProviderError::Unavailable(message(format!(
                "the dev server's own webhook answered {}",
                res.status()
            ))));
        }
        Ok(())
    }

    async fn update(
        &self,
        subscription: &SubscriptionId,
        change: impl FnOnce(&mut ProviderSubscription),
    ) -> Result<(), ProviderError> {
        let sub = {
            let mut data = self.lock();
            let sub = data
                .subscriptions
                .get_mut(subscription.as_str())
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

fn customer_of(user_id: &UserId) -> CustomerId {
    CustomerId::new(format!(
        "cus_local_{}",
        user_id.to_string().replace('-', "")
    ))
}

#[async_trait]
impl PaymentProvider for OfflineStripe {
    fn provider(&self) -> Provider {
        Provider::Stripe
    }

    async fn create_customer(
        &self,
        user_id: &UserId,
        _email: &str,
        _key: &str,
    ) -> Result<Option<CustomerId>, ProviderError> {
        Ok(Some(customer_of(user_id)))
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
                pack: request
                    .pack
                    .as_ref()
                    .map(|p| (p.pack_id.clone(), p.amount_minor, p.currency.clone())),
                payment_intent: None,
            },
        );
        self.save(&data);
        Ok(CheckoutSession {
            url: format!("{}/dev/checkout/{id}/complete", self.base_url),
            id: CheckoutSessionId::new(id),
        })
    }

    async fn create_portal(
        &self,
        _customer: Option<&CustomerId>,
        subscription: &SubscriptionId,
        _return_url: &str,
    ) -> Result<String, ProviderError> {
        Ok(format!("{}/dev/portal/{subscription}", self.base_url))
    }

    async fn fetch_subscription(
        &self,
        subscription: &SubscriptionId,
    ) -> Result<ProviderSubscription, ProviderError> {
        self.lock()
            .subscriptions
            .get(subscription.as_str())
            .cloned()
            .ok_or(ProviderError::NotFound)
    }

    async fn fetch_checkout_subscription(
        &self,
        session: &CheckoutSessionId,
    ) -> Result<Option<SubscriptionId>, ProviderError> {
        Ok(self
            .lock()
            .sessions
            .get(session.as_str())
            .ok_or(ProviderError::NotFound)?
            .subscription_id
            .clone())
    }

    async fn set_cancel_at_period_end(
        &self,
        subscription: &SubscriptionId,
        cancel: bool,
    ) -> Result<(), ProviderError> {
        self.update(subscription, |s| s.cancel_at_period_end = cancel)
            .await
    }

    async fn cancel_now(&self, subscription: &SubscriptionId) -> Result<(), ProviderError> {
        self.update(subscription, |s| {
            s.status = SubscriptionStatus::Canceled;
            s.cancel_at_period_end = false;
        })
        .await
    }

    async fn change_price(
        &self,
        subscription: &SubscriptionId,
        price: &PriceId,
        _proration: Proration,
    ) -> Result<(), ProviderError> {
        let price = price.clone();
        self.update(subscription, move |s| s.price_id = price).await
    }

    /// Every event posted at or after `since`, newest first, in one page (as Stripe lists).
    async fn list_events(
        &self,
        since: i64,
        _cursor: Option<&str>,
    ) -> Result<EventPage, ProviderError> {
        let events = self
            .lock()
            .events
            .iter()
            .rev()
            .filter(|(at, _)| *at >= since)
            .map(|(_, body)| body.clone())
            .collect();
        Ok(EventPage { events, next: None })
    }
}
