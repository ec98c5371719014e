//! The payment-provider boundary: [`PaymentProvider`], implemented for Stripe (async-stripe,
//! feature `stripe`) and Whop (REST, feature `whop`); the dev server adds an offline `local`
//! provider of its own. Webhook verification is not here: it needs no API key (see
//! [`crate::webhooks::signature`]).

#[cfg(feature = "stripe")]
pub mod stripe;
#[cfg(feature = "whop")]
pub mod whop;

use crate::billing::catalog::Proration;
use crate::billing::state::{Provider, ProviderSubscription};
use crate::domain::UserId;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Arc;

/// Per-attempt timeout of provider API calls, seconds. Stripe's own libraries default to 80 s, but
/// a Lambda behind API Gateway has 30 s in all (its integration timeout), so an attempt gets 10 s.
#[cfg(any(feature = "stripe", feature = "whop"))]
pub const ATTEMPT_TIMEOUT_SECS: u64 = 10;

/// The HTTP client the Stripe and Whop providers share (one connection pool and TLS
/// configuration per process: rustls with aws-lc, the system's trust store), with
/// [`ATTEMPT_TIMEOUT_SECS`] per request. Build it once per runtime, at start-up.
///
/// # Errors
/// [`ProviderError::Unavailable`] if the TLS configuration cannot be built.
#[cfg(any(feature = "stripe", feature = "whop"))]
pub fn http_client() -> Result<reqwest::Client, ProviderError> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(ATTEMPT_TIMEOUT_SECS))
        .build()
        .map_err(|e| ProviderError::Unavailable(format!("http client: {e}")))
}

/// A provider call failed.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The object does not exist at the provider (HTTP 404).
    #[error("not found at the provider")]
    NotFound,
    /// The provider refused the request (other 4xx); retrying will not help.
    #[error("provider rejected the request: {0}")]
    Rejected(String),
    /// Network failure, timeout, 429 or 5xx: retrying may succeed.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
}

impl ProviderError {
    /// Whether retrying may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// What a checkout needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckoutRequest {
    /// The buyer.
    pub user_id: UserId,
    /// The buyer's email (prefills the provider page).
    pub email: String,
    /// The provider customer, when the provider has customers (Stripe).
    pub customer_id: Option<String>,
    /// Stripe price id or Whop plan id.
    pub price_id: String,
    /// Trial days to grant (0 = none).
    pub trial_days: u32,
    /// Where the provider sends the buyer after paying; may contain `{CHECKOUT_SESSION_ID}`.
    pub success_url: String,
    /// Where the provider sends the buyer on cancel.
    pub cancel_url: String,
    /// Idempotency key of this checkout attempt (Stripe `Idempotency-Key`, ≤ 255 chars).
    pub idempotency_key: String,
}

/// A created checkout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckoutSession {
    /// Provider's session / checkout configuration id.
    pub id: String,
    /// Where to send the buyer.
    pub url: String,
}

/// One payment provider's API.
#[async_trait]
pub trait PaymentProvider: Send + Sync {
    /// Which provider this is.
    fn provider(&self) -> Provider;

    /// Creates the provider customer of `user_id` (idempotent on `idempotency_key`), or `None`
    /// when the provider has no customer objects (Whop).
    ///
    /// # Errors
    /// [`ProviderError`].
    async fn create_customer(
        &self,
        user_id: &UserId,
        email: &str,
        idempotency_key: &str,
    ) -> Result<Option<String>, ProviderError>;

    /// Creates a checkout with `user_id` in the client reference and in the subscription's
    /// metadata.
    ///
    /// # Errors
    /// [`ProviderError`].
    async fn create_checkout(
        &self,
        request: &CheckoutRequest,
    ) -> Result<CheckoutSession, ProviderError>;

    /// A self-service management URL (Stripe billing portal; Whop's manage link).
    ///
    /// # Errors
    /// [`ProviderError`].
    async fn create_portal(
        &self,
        customer_id: &str,
        subscription_id: &str,
        return_url: &str,
    ) -> Result<String, ProviderError>;

    /// The subscription as the provider has it now.
    ///
    /// # Errors
    /// [`ProviderError`]; `NotFound` if it does not exist.
    async fn fetch_subscription(
        &self,
        subscription_id: &str,
    ) -> Result<ProviderSubscription, ProviderError>;

    /// The subscription a checkout session created, once it is complete (`None` before).
    ///
    /// # Errors
    /// [`ProviderError`]; `NotFound` for an unknown session.
    async fn fetch_checkout_subscription(
        &self,
        session_id: &str,
    ) -> Result<Option<String>, ProviderError>;

    /// Sets or clears cancel-at-period-end.
    ///
    /// # Errors
    /// [`ProviderError`].
    async fn set_cancel_at_period_end(
        &self,
        subscription_id: &str,
        cancel: bool,
    ) -> Result<(), ProviderError>;

    /// Moves the subscription to another price with the given proration.
    ///
    /// # Errors
    /// [`ProviderError`].
    async fn change_price(
        &self,
        subscription_id: &str,
        price_id: &str,
        proration: Proration,
    ) -> Result<(), ProviderError>;
}

/// The configured providers, by name.
#[derive(Clone, Default)]
pub struct Providers(HashMap<Provider, Arc<dyn PaymentProvider>>);

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl Providers {
    /// Adds (or replaces) a provider.
    pub fn with(mut self, provider: Arc<dyn PaymentProvider>) -> Self {
        self.0.insert(provider.provider(), provider);
        self
    }

    /// A provider, if configured.
    pub fn get(&self, provider: Provider) -> Option<&Arc<dyn PaymentProvider>> {
        self.0.get(&provider)
    }

    /// The default provider for checkout: Stripe, else Whop, else local.
    pub fn default_provider(&self) -> Option<Provider> {
        [Provider::Stripe, Provider::Whop, Provider::Local]
            .into_iter()
            .find(|p| self.0.contains_key(p))
    }
}
