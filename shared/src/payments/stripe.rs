//! Stripe through async-stripe 1.0.0-rc.10: its request layer (`RequestBuilder`, form encoding,
//! `RequestStrategy` with idempotency keys and retries, the pinned API version, response reading)
//! over [`transport::Transport`], its `StripeClient` trait implemented on reqwest (rustls with
//! aws-lc) — see that module for why not async-stripe's hyper client. The base URL is
//! configurable (`STRIPE_API_BASE`) so tests and local doubles can stand in for Stripe.
//!
//! Requests and responses are Tollgate's own small forms and field sets ([`CheckoutForm`],
//! [`SubscriptionFields`], …), sent through async-stripe's `RequestBuilder` and read through its
//! `customize::<T>()` hook, rather than async-stripe's generated request and object types: those
//! carry serializers and deserializers for Stripe's whole object graph (a checkout session's
//! parameters reach every payment method's options; a subscription reaches invoices, charges…),
//! which made each billing Lambda's zip miss the 6 MB budget (BENCHMARKS.md). The forms hold
//! exactly the parameters Tollgate sends (asserted field by field in tests/tests/providers.rs);
//! unknown response fields are ignored, so Stripe adding fields never breaks a read.
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
use secrecy::SecretString;
use serde::Serialize;
use std::collections::HashMap;
use stripe::{IdempotencyKey, RequestStrategy};
use stripe_client_core::{CustomizableStripeRequest, RequestBuilder, StripeMethod};
use transport::{CallError, Transport};

pub mod transport;

/// The Stripe provider. Cheap to clone.
#[derive(Clone)]
pub struct StripeProvider {
    client: Transport,
}

impl std::fmt::Debug for StripeProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StripeProvider")
    }
}

/// Maps a failed call to the provider-neutral error: 404 → `NotFound`; 409 (idempotency
/// conflict), 429 and 5xx → `Unavailable` (retryable, as async-stripe's retry rule treats them);
/// other 4xx → `Rejected` with Stripe's type, code and message; no answer → `Unavailable`.
fn classify(e: CallError) -> ProviderError {
    match e {
        CallError::Api { status: 404, error } => {
            tracing::debug!(
                code = error.code.as_deref().unwrap_or(""),
                "stripe: not found"
            );
            ProviderError::NotFound
        }
        CallError::Api { status, .. } if status == 409 || status == 429 || status >= 500 => {
            ProviderError::Unavailable(format!("stripe answered {status}"))
        }
        CallError::Api { status, error } => ProviderError::Rejected(format!(
            "stripe answered {status} ({}/{}): {}",
            error.kind.as_deref().unwrap_or("-"),
            error.code.as_deref().unwrap_or("-"),
            error.message.as_deref().unwrap_or("")
        )),
        CallError::Deserialize(m) => ProviderError::Unavailable(format!(
            "unexpected stripe response: {}",
            m.chars().take(200).collect::<String>()
        )),
        CallError::Unreachable(m) => ProviderError::Unavailable(format!("stripe unreachable: {m}")),
        CallError::Invalid(m) => ProviderError::Rejected(format!("stripe request: {m}")),
    }
}

/// An object of which Tollgate reads only the id (a customer; an updated subscription).
#[derive(miniserde::Deserialize)]
struct IdField {
    id: String,
}

/// The fields of a checkout session Tollgate reads (`subscription` unexpanded: an id or null).
#[derive(miniserde::Deserialize)]
struct CheckoutSessionFields {
    id: String,
    url: Option<String>,
    subscription: Option<String>,
}

/// The fields of a billing portal session Tollgate reads.
#[derive(miniserde::Deserialize)]
struct PortalSessionFields {
    url: String,
}

/// The fields of a subscription Tollgate reads (`customer` unexpanded: an id). Since API version
/// 2025-03-31 the billing period lives on each item (`items.data[].current_period_end`).
#[derive(miniserde::Deserialize)]
struct SubscriptionFields {
    id: String,
    customer: String,
    status: String,
    metadata: Option<HashMap<String, String>>,
    cancel_at_period_end: bool,
    trial_end: Option<i64>,
    items: ItemList,
}

#[derive(miniserde::Deserialize)]
struct ItemList {
    data: Vec<ItemFields>,
}

#[derive(miniserde::Deserialize)]
struct ItemFields {
    id: String,
    price: IdField,
    current_period_end: i64,
}

/// `POST {path}` with `form` (form-encoded as Stripe expects: `a[b][0][c]=…`), the response read
/// as `T`.
fn post<T>(path: String, form: &impl Serialize) -> CustomizableStripeRequest<T> {
    RequestBuilder::new(StripeMethod::Post, path)
        .form(form)
        .customize()
}

/// `GET {path}`, the response read as `T`.
fn get<T>(path: String) -> CustomizableStripeRequest<T> {
    RequestBuilder::new(StripeMethod::Get, path).customize()
}

/// `POST /v1/customers`.
#[derive(Serialize)]
struct CustomerForm<'a> {
    email: &'a str,
    metadata: HashMap<String, String>,
}

/// `POST /v1/checkout/sessions` in subscription mode, one line item.
#[derive(Serialize)]
struct CheckoutForm<'a> {
    mode: &'static str,
    client_reference_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    customer: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    customer_email: Option<&'a str>,
    line_items: [LineItem<'a>; 1],
    metadata: HashMap<String, String>,
    subscription_data: SubscriptionData,
    success_url: &'a str,
    cancel_url: &'a str,
}

#[derive(Serialize)]
struct LineItem<'a> {
    price: &'a str,
    quantity: u32,
}

#[derive(Serialize)]
struct SubscriptionData {
    metadata: HashMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trial_period_days: Option<u32>,
}

/// `POST /v1/billing_portal/sessions`.
#[derive(Serialize)]
struct PortalForm<'a> {
    customer: &'a str,
    return_url: &'a str,
}

/// `POST /v1/subscriptions/{id}` setting or clearing cancel-at-period-end.
#[derive(Serialize)]
struct CancelForm {
    cancel_at_period_end: bool,
}

/// `POST /v1/subscriptions/{id}` moving its one item to another price.
#[derive(Serialize)]
struct ChangeForm<'a> {
    items: [ItemChange<'a>; 1],
    /// `create_prorations`, `always_invoice` or `none` (Stripe's `proration_behavior`).
    proration_behavior: &'static str,
}

#[derive(Serialize)]
struct ItemChange<'a> {
    id: &'a str,
    price: &'a str,
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
    /// A client over `http` ([`crate::payments::http_client`]) with `secret_key`, talking to
    /// `base_url` when given (an origin such as `http://127.0.0.1:12111`; default
    /// [`transport::DEFAULT_API_BASE`]).
    ///
    /// # Errors
    /// [`ProviderError::Rejected`] if the key is not a valid header value.
    pub fn new(
        http: reqwest::Client,
        secret_key: &SecretString,
        base_url: Option<&str>,
    ) -> Result<Self, ProviderError> {
        let client = Transport::new(
            http,
            secret_key,
            base_url.unwrap_or(transport::DEFAULT_API_BASE),
        )
        .map_err(classify)?;
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
        let form = CustomerForm {
            email,
            metadata: user_metadata(user_id),
        };
        let customer = post::<IdField>("/customers".into(), &form)
            .request_strategy(idempotent(idempotency_key)?)
            .send(&self.client)
            .await
            .map_err(classify)?;
        Ok(Some(customer.id))
    }

    async fn create_checkout(
        &self,
        request: &CheckoutRequest,
    ) -> Result<CheckoutSession, ProviderError> {
        let form = CheckoutForm {
            mode: "subscription",
            client_reference_id: request.user_id.to_string(),
            customer: request.customer_id.as_deref(),
            customer_email: match request.customer_id {
                Some(_) => None,
                None => Some(&request.email),
            },
            line_items: [LineItem {
                price: &request.price_id,
                quantity: 1,
            }],
            metadata: user_metadata(&request.user_id),
            subscription_data: SubscriptionData {
                metadata: user_metadata(&request.user_id),
                trial_period_days: (request.trial_days > 0).then_some(request.trial_days),
            },
            success_url: &request.success_url,
            cancel_url: &request.cancel_url,
        };
        let session = post::<CheckoutSessionFields>("/checkout/sessions".into(), &form)
            .request_strategy(idempotent(&request.idempotency_key)?)
            .send(&self.client)
            .await
            .map_err(classify)?;
        let url = session
            .url
            .ok_or_else(|| ProviderError::Rejected("stripe checkout session has no url".into()))?;
        Ok(CheckoutSession {
            id: session.id,
            url,
        })
    }

    async fn create_portal(
        &self,
        customer_id: &str,
        _subscription_id: &str,
        return_url: &str,
    ) -> Result<String, ProviderError> {
        let form = PortalForm {
            customer: customer_id,
            return_url,
        };
        let session = post::<PortalSessionFields>("/billing_portal/sessions".into(), &form)
            .send(&self.client)
            .await
            .map_err(classify)?;
        Ok(session.url)
    }

    async fn fetch_subscription(
        &self,
        subscription_id: &str,
    ) -> Result<ProviderSubscription, ProviderError> {
        let s = self.retrieve_subscription(subscription_id).await?;
        let item = s.items.data.first().ok_or_else(|| {
            ProviderError::Rejected(format!("subscription {subscription_id} has no items"))
        })?;
        let status = SubscriptionStatus::from_stripe(&s.status).ok_or_else(|| {
            ProviderError::Rejected(format!("unknown stripe status {}", s.status))
        })?;
        Ok(ProviderSubscription {
            provider: Provider::Stripe,
            user_id: s
                .metadata
                .as_ref()
                .and_then(|m| m.get("user_id"))
                .and_then(|u| u.parse().ok()),
            status,
            price_id: item.price.id.clone(),
            current_period_end: Some(item.current_period_end),
            cancel_at_period_end: s.cancel_at_period_end,
            trial_end: s.trial_end,
            subscription_id: s.id,
            customer_id: s.customer,
        })
    }

    async fn fetch_checkout_subscription(
        &self,
        session_id: &str,
    ) -> Result<Option<String>, ProviderError> {
        let session = get::<CheckoutSessionFields>(format!(
            "/checkout/sessions/{}",
            path_segment(session_id)?
        ))
        .send(&self.client)
        .await
        .map_err(classify)?;
        Ok(session.subscription)
    }

    async fn set_cancel_at_period_end(
        &self,
        subscription_id: &str,
        cancel: bool,
    ) -> Result<(), ProviderError> {
        post::<IdField>(
            format!("/subscriptions/{}", path_segment(subscription_id)?),
            &CancelForm {
                cancel_at_period_end: cancel,
            },
        )
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
        let current = self.retrieve_subscription(subscription_id).await?;
        let item = current.items.data.first().ok_or_else(|| {
            ProviderError::Rejected(format!("subscription {subscription_id} has no items"))
        })?;
        let form = ChangeForm {
            items: [ItemChange {
                id: &item.id,
                price: price_id,
            }],
            proration_behavior: match proration {
                Proration::CreateProrations => "create_prorations",
                Proration::AlwaysInvoice => "always_invoice",
                Proration::None => "none",
            },
        };
        post::<IdField>(
            format!("/subscriptions/{}", path_segment(subscription_id)?),
            &form,
        )
        .send(&self.client)
        .await
        .map(|_| ())
        .map_err(classify)
    }
}

impl StripeProvider {
    async fn retrieve_subscription(
        &self,
        subscription_id: &str,
    ) -> Result<SubscriptionFields, ProviderError> {
        get::<SubscriptionFields>(format!("/subscriptions/{}", path_segment(subscription_id)?))
            .send(&self.client)
            .await
            .map_err(classify)
    }
}

/// An id used as a URL path segment: Stripe ids are `[A-Za-z0-9_]`; anything else is refused
/// rather than escaped (an id from a webhook or a query string must not steer the request).
fn path_segment(id: &str) -> Result<&str, ProviderError> {
    if !id.is_empty()
        && id.len() <= 255
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        Ok(id)
    } else {
        Err(ProviderError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_stripe_shaped_ids_become_path_segments() {
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
