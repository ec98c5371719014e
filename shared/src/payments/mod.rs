//! The payment-provider boundary, one folder per provider (hyperswitch-style): [`stripe`] and
//! [`whop`] each hold their webhook signature scheme, their event parsing and their API client.
//! Here: the [`PaymentProvider`] trait those clients implement (the dev server adds an offline
//! Stripe stand-in of its own), the configured set ([`Providers`]), the shared signature
//! machinery ([`signature`]) and the HTTP client both clients share.
//!
//! Verifying and parsing webhooks needs no API key and no client, so it compiles without the
//! `stripe` and `whop` features; only the API clients need them.

mod json;
pub mod signature;
pub mod stripe;
pub mod whop;

use crate::domain::{
    BillingEvent, CheckoutSessionId, CustomerId, Envelope, EventError, PriceId, Proration,
    Provider, ProviderSubscription, SubscriptionId, UserId,
};
use crate::error::BoxError;
use async_trait::async_trait;
use signature::{SignatureError, WebhookSecrets};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Why a webhook delivery was refused before anything was stored.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The signature did not verify.
    #[error("the webhook signature did not verify")]
    Signature(#[from] SignatureError),
    /// Verified, but not an event of this provider.
    #[error("the webhook is not an event of this provider")]
    Event(#[from] EventError),
}

/// Verifies a delivery with `provider`'s signature scheme over the raw `body` against any of
/// `secrets` at `now` (Unix seconds), then reads its envelope.
///
/// # Errors
/// [`WebhookError::Signature`] if it does not verify; [`WebhookError::Event`] if the verified
/// body is not an event of this provider.
pub fn verify_webhook(
    provider: Provider,
    headers: &http::HeaderMap,
    body: &[u8],
    secrets: &WebhookSecrets,
    now: i64,
) -> Result<Envelope, WebhookError> {
    Ok(match provider {
        Provider::Stripe => {
            let header = headers
                .get("stripe-signature")
                .and_then(|v| v.to_str().ok());
            let verified = stripe::signature::verify(header, body, secrets, now)?;
            stripe::events::envelope(verified.body())?
        }
        Provider::Whop => {
            let verified = whop::signature::verify(headers, body, secrets, now)?;
            whop::events::envelope(verified.body(), verified.webhook_id())?
        }
    })
}

/// The envelope of an event body of `provider` whose origin is established otherwise (the
/// provider's API, for the reconciler): no signature.
///
/// # Errors
/// [`EventError`] if the body is not an event of this provider.
pub fn read_envelope(provider: Provider, body: &[u8]) -> Result<Envelope, EventError> {
    match provider {
        Provider::Stripe => stripe::events::envelope(body),
        Provider::Whop => whop::events::envelope(body, None),
    }
}

/// What a stored (already verified) event of `provider` means.
///
/// # Errors
/// [`EventError`] if the body is not an event of this provider.
pub fn normalize_event(provider: Provider, body: &[u8]) -> Result<BillingEvent, EventError> {
    match provider {
        Provider::Stripe => stripe::events::normalize(body),
        Provider::Whop => whop::events::normalize(body),
    }
}

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
        .map_err(|e| ProviderError::Unavailable(Box::new(e)))
}

/// A provider call failed. Sources never hold API keys.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The object does not exist at the provider (HTTP 404).
    #[error("not found at the provider")]
    NotFound,
    /// The provider refused the request (other 4xx, or an answer Tollgate cannot use); retrying
    /// will not help.
    #[error("the provider refused the request")]
    Rejected(#[source] BoxError),
    /// Network failure, timeout, 429 or 5xx: retrying may succeed.
    #[error("the provider is unavailable")]
    Unavailable(#[source] BoxError),
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
    pub customer_id: Option<CustomerId>,
    /// Stripe price id or Whop plan id.
    pub price_id: PriceId,
    /// Trial days to grant (0 = none).
    pub trial_days: u32,
    /// Where the provider sends the buyer after paying; may contain `{CHECKOUT_SESSION_ID}`.
    pub success_url: String,
    /// Where the provider sends the buyer on cancel.
    pub cancel_url: String,
    /// Idempotency key of this checkout attempt (Stripe `Idempotency-Key`, ≤ 255 chars).
    pub idempotency_key: String,
    /// A one-time purchase of a credit pack instead of a subscription (Stripe `mode=payment`,
    /// the pack id in the session's and the payment intent's metadata).
    pub pack: Option<PackCheckout>,
}

/// The credit pack a one-time checkout sells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackCheckout {
    /// The catalog's pack id (`metadata.pack`; the processor grants its credits).
    pub pack_id: String,
    /// The catalog's display amount, minor currency units: the provider charges its own price;
    /// only the dev server's offline stand-in uses this.
    pub amount_minor: u64,
    /// ISO 4217, lowercase.
    pub currency: String,
}

/// A created checkout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckoutSession {
    /// Provider's session / checkout configuration id.
    pub id: CheckoutSessionId,
    /// Where to send the buyer.
    pub url: String,
}

/// One page of a provider's recent events ([`PaymentProvider::list_events`]): each a body as
/// the provider's webhook would carry it, for the same ledger and processor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventPage {
    /// Event bodies (JSON).
    pub events: Vec<String>,
    /// The cursor of the next page (`None` on the last).
    pub next: Option<String>,
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
    ) -> Result<Option<CustomerId>, ProviderError>;

    /// Creates a checkout with `user_id` in the client reference and in the subscription's
    /// (or, for a pack, the payment's) metadata.
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
        customer: Option<&CustomerId>,
        subscription: &SubscriptionId,
        return_url: &str,
    ) -> Result<String, ProviderError>;

    /// The subscription as the provider has it now.
    ///
    /// # Errors
    /// [`ProviderError`]; `NotFound` if it does not exist.
    async fn fetch_subscription(
        &self,
        subscription: &SubscriptionId,
    ) -> Result<ProviderSubscription, ProviderError>;

    /// The subscription a checkout session created, once it is complete (`None` before).
    ///
    /// # Errors
    /// [`ProviderError`]; `NotFound` for an unknown session.
    async fn fetch_checkout_subscription(
        &self,
        session: &CheckoutSessionId,
    ) -> Result<Option<SubscriptionId>, ProviderError>;

    /// Sets or clears cancel-at-period-end.
    ///
    /// # Errors
    /// [`ProviderError`].
    async fn set_cancel_at_period_end(
        &self,
        subscription: &SubscriptionId,
        cancel: bool,
    ) -> Result<(), ProviderError>;

    /// Cancels the subscription at once (not at period end): the account is being deleted.
    ///
    /// # Errors
    /// [`ProviderError`]; `NotFound` if the provider does not know it.
    async fn cancel_now(&self, subscription: &SubscriptionId) -> Result<(), ProviderError>;

    /// Moves the subscription to another price with the given proration.
    ///
    /// # Errors
    /// [`ProviderError`].
    async fn change_price(
        &self,
        subscription: &SubscriptionId,
        price: &PriceId,
        proration: Proration,
    ) -> Result<(), ProviderError>;

    /// One page (after `cursor`) of what changed at or after `since` (Unix seconds), as event
    /// bodies the webhook pipeline reads: Stripe's own events of the types Tollgate handles
    /// (`GET /v1/events`); for Whop, each membership updated since, as a `membership.reconciled`
    /// event whose id names the membership and its update time. For the reconciler
    /// (`crate::webhooks::reconcile`).
    ///
    /// # Errors
    /// [`ProviderError`].
    async fn list_events(
        &self,
        since: i64,
        cursor: Option<&str>,
    ) -> Result<EventPage, ProviderError>;
}

/// The configured providers, by name.
#[derive(Clone, Default)]
pub struct Providers(BTreeMap<Provider, Arc<dyn PaymentProvider>>);

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

    /// The default provider for checkout: Stripe, else Whop.
    pub fn default_provider(&self) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| self.0.contains_key(p))
    }
}

/// An id used as a URL path segment: Stripe's and Whop's ids are `[A-Za-z0-9_]`; anything else
/// is refused as not found rather than escaped (an id from a webhook or a query string must not
/// steer the request).
///
/// # Errors
/// [`ProviderError::NotFound`] for an empty, over-long (255+) or otherwise shaped id.
#[cfg(any(feature = "stripe", feature = "whop"))]
pub(crate) fn path_segment(id: &str) -> Result<&str, ProviderError> {
    if !id.is_empty()
        && id.len() <= 255
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        Ok(id)
    } else {
        Err(ProviderError::NotFound)
    }
}

#[cfg(all(test, any(feature = "stripe", feature = "whop")))]
mod tests {
    use super::*;

    #[test]
    fn only_provider_shaped_ids_become_path_segments() {
        assert_eq!(
            path_segment("sub_1TestSubscr0000001").ok(),
            Some("sub_1TestSubscr0000001")
        );
        for bad in [
            "",
            "sub_1/../../customers",
            "cs_test?expand[]=x",
            "a b",
            "sub_\u{e9}",
        ] {
            assert!(path_segment(bad).is_err(), "{bad}");
        }
    }
}
