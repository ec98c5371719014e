//! Stripe through async-stripe 1.0.0-rc.10 (typed requests; rustls with aws-lc). The base URL is
//! configurable (`STRIPE_API_BASE`) so tests and local doubles can stand in for Stripe.
//!
//! Customers are created once per user with an idempotency key derived from the user id
//! (Stripe keeps idempotency keys 24 h; the customer claim in the store covers the rest);
//! checkout sessions put the user id in `client_reference_id`, `metadata` and
//! `subscription_data.metadata` (Checkout does not copy session metadata onto the subscription).

use super::{CheckoutRequest, CheckoutSession, PaymentProvider, ProviderError};
use crate::billing::catalog::Proration;
use crate::billing::state::{Provider, ProviderSubscription, SubscriptionStatus};
use crate::domain::UserId;
use async_trait::async_trait;
use std::collections::HashMap;
use stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use stripe_billing::billing_portal_session::CreateBillingPortalSession;
use stripe_billing::subscription::{
    RetrieveSubscription, UpdateSubscription, UpdateSubscriptionItems,
    UpdateSubscriptionProrationBehavior,
};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionSubscriptionData,
    RetrieveCheckoutSession,
};
use stripe_core::customer::CreateCustomer;

/// The Stripe provider. Cheap to clone.
#[derive(Clone)]
pub struct StripeProvider {
    client: Client,
}

impl std::fmt::Debug for StripeProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StripeProvider")
    }
}

fn classify(e: StripeError) -> ProviderError {
    match e {
        StripeError::Stripe(err, 404) => {
            tracing::debug!(
                message = err.message.as_deref().unwrap_or(""),
                "stripe: not found"
            );
            ProviderError::NotFound
        }
        StripeError::Stripe(_, status) if status == 429 || status >= 500 => {
            ProviderError::Unavailable(format!("stripe answered {status}"))
        }
        StripeError::Stripe(err, status) => ProviderError::Rejected(format!(
            "stripe answered {status}: {}",
            err.message.unwrap_or_default()
        )),
        StripeError::JSONDeserialize(m) => ProviderError::Unavailable(format!(
            "unexpected stripe response: {}",
            m.chars().take(200).collect::<String>()
        )),
        StripeError::ClientError(m) => {
            ProviderError::Unavailable(format!("stripe unreachable: {m}"))
        }
        StripeError::Timeout => ProviderError::Unavailable("stripe timed out".into()),
        StripeError::ConfigError(m) => {
            ProviderError::Rejected(format!("stripe client configuration: {m}"))
        }
    }
}

fn idempotent(key: &str) -> Result<RequestStrategy, ProviderError> {
    IdempotencyKey::new(key)
        .map(RequestStrategy::Idempotent)
        .map_err(|e| ProviderError::Rejected(format!("idempotency key: {e}")))
}

fn user_metadata(user_id: &UserId) -> HashMap<String, String> {
    HashMap::from([("user_id".to_owned(), user_id.to_string())])
}

impl StripeProvider {
    /// A client with `secret_key`, talking to `base_url` when given (default: Stripe's API).
    ///
    /// # Errors
    /// [`ProviderError::Rejected`] if the client cannot be built.
    pub fn new(secret_key: &str, base_url: Option<&str>) -> Result<Self, ProviderError> {
        let mut builder = ClientBuilder::new(secret_key);
        if let Some(base) = base_url {
            // async-stripe requests `{base}v1{path}`: the base must end with a slash.
            builder = builder.url(format!("{}/", base.trim_end_matches('/')));
        }
        let client = builder
            .build()
            .map_err(|e| ProviderError::Rejected(format!("stripe client: {e}")))?;
        Ok(Self { client })
    }
}

#[async_trait]
impl PaymentProvider for StripeProvider {
    fn provider(&self) -> Provider {
        Provider::Stripe
    }

    async fn create_customer(
        &self,
        user_id: &UserId,
        email: &str,
        idempotency_key: &str,
    ) -> Result<Option<String>, ProviderError> {
        let customer = CreateCustomer::new()
            .email(email)
            .metadata(user_metadata(user_id))
            .customize()
            .request_strategy(idempotent(idempotency_key)?)
            .send(&self.client)
            .await
            .map_err(classify)?;
        Ok(Some(customer.id.to_string()))
    }

    async fn create_checkout(
        &self,
        request: &CheckoutRequest,
    ) -> Result<CheckoutSession, ProviderError> {
        let mut item = CreateCheckoutSessionLineItems::new();
        item.price = Some(request.price_id.clone());
        item.quantity = Some(1);
        let mut subscription_data = CreateCheckoutSessionSubscriptionData::new();
        subscription_data.metadata = Some(user_metadata(&request.user_id));
        if request.trial_days > 0 {
            subscription_data.trial_period_days = Some(request.trial_days);
        }
        let mut create = CreateCheckoutSession::new()
            .mode(stripe_shared::CheckoutSessionMode::Subscription)
            .client_reference_id(request.user_id.to_string())
            .metadata(user_metadata(&request.user_id))
            .line_items(vec![item])
            .subscription_data(subscription_data)
            .success_url(request.success_url.clone())
            .cancel_url(request.cancel_url.clone());
        create = match &request.customer_id {
            Some(customer) => create.customer(customer.clone()),
            None => create.customer_email(request.email.clone()),
        };
        let session = create
            .customize()
            .request_strategy(idempotent(&request.idempotency_key)?)
            .send(&self.client)
            .await
            .map_err(classify)?;
        let url = session
            .url
            .ok_or_else(|| ProviderError::Rejected("stripe checkout session has no url".into()))?;
        Ok(CheckoutSession {
            id: session.id.to_string(),
            url,
        })
    }

    async fn create_portal(
        &self,
        customer_id: &str,
        _subscription_id: &str,
        return_url: &str,
    ) -> Result<String, ProviderError> {
        let session = CreateBillingPortalSession::new()
            .customer(customer_id)
            .return_url(return_url)
            .send(&self.client)
            .await
            .map_err(classify)?;
        Ok(session.url)
    }

    async fn fetch_subscription(
        &self,
        subscription_id: &str,
    ) -> Result<ProviderSubscription, ProviderError> {
        let s = RetrieveSubscription::new(subscription_id)
            .send(&self.client)
            .await
            .map_err(classify)?;
        let item = s.items.data.first().ok_or_else(|| {
            ProviderError::Rejected(format!("subscription {subscription_id} has no items"))
        })?;
        let status = SubscriptionStatus::from_stripe(s.status.as_str()).ok_or_else(|| {
            ProviderError::Rejected(format!("unknown stripe status {}", s.status.as_str()))
        })?;
        Ok(ProviderSubscription {
            provider: Provider::Stripe,
            subscription_id: s.id.to_string(),
            customer_id: s.customer.id().to_string(),
            user_id: s.metadata.get("user_id").and_then(|u| u.parse().ok()),
            status,
            price_id: item.price.id.to_string(),
            current_period_end: Some(item.current_period_end),
            cancel_at_period_end: s.cancel_at_period_end,
            trial_end: s.trial_end,
        })
    }

    async fn fetch_checkout_subscription(
        &self,
        session_id: &str,
    ) -> Result<Option<String>, ProviderError> {
        let session = RetrieveCheckoutSession::new(session_id)
            .send(&self.client)
            .await
            .map_err(classify)?;
        Ok(session.subscription.map(|s| s.id().to_string()))
    }

    async fn set_cancel_at_period_end(
        &self,
        subscription_id: &str,
        cancel: bool,
    ) -> Result<(), ProviderError> {
        UpdateSubscription::new(subscription_id)
            .cancel_at_period_end(cancel)
            .send(&self.client)
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn change_price(
        &self,
        subscription_id: &str,
        price_id: &str,
        proration: Proration,
    ) -> Result<(), ProviderError> {
        let current = RetrieveSubscription::new(subscription_id)
            .send(&self.client)
            .await
            .map_err(classify)?;
        let item_id = current
            .items
            .data
            .first()
            .map(|i| i.id.to_string())
            .ok_or_else(|| {
                ProviderError::Rejected(format!("subscription {subscription_id} has no items"))
            })?;
        let mut item = UpdateSubscriptionItems::new();
        item.id = Some(item_id);
        item.price = Some(price_id.to_owned());
        let behavior = match proration {
            Proration::CreateProrations => UpdateSubscriptionProrationBehavior::CreateProrations,
            Proration::AlwaysInvoice => UpdateSubscriptionProrationBehavior::AlwaysInvoice,
            Proration::None => UpdateSubscriptionProrationBehavior::None,
        };
        UpdateSubscription::new(subscription_id)
            .items(vec![item])
            .proration_behavior(behavior)
            .send(&self.client)
            .await
            .map(|_| ())
            .map_err(classify)
    }
}
