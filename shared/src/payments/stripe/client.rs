//! Stripe's API through async-stripe 1.0.0-rc.10: its request layer (`RequestBuilder`, form
//! encoding, `RequestStrategy` with idempotency keys and retries, the pinned API version, response
//! reading) over [`Transport`], its `StripeClient` trait implemented on reqwest (rustls with
//! aws-lc) — see `super::transport` for why not async-stripe's hyper client. The base URL is
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

use super::transport::{self, CallError, Transport};
use crate::domain::{
    CheckoutSessionId, CustomerId, PriceId, Proration, Provider, ProviderSubscription,
    SubscriptionId, SubscriptionStatus, UserId,
};
use crate::error::message;
use crate::payments::{
    path_segment, CheckoutRequest, CheckoutSession, EventPage, PaymentProvider, ProviderError,
};
use async_trait::async_trait;
use secrecy::SecretString;
use serde::Serialize;
use std::collections::HashMap;
use stripe::{IdempotencyKey, RequestStrategy};
use stripe_client_core::{CustomizableStripeRequest, RequestBuilder, StripeMethod};

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

/// Maps a failed call to the provider-neutral error, keeping it as the source: 404 →
/// `NotFound`; 409 (idempotency conflict), 429 and 5xx → `Unavailable` (retryable, as
/// async-stripe's retry rule treats them); other 4xx → `Rejected` (Stripe's type, code and
/// message are in the source); no answer or an unreadable one → `Unavailable`.
fn classify(e: CallError) -> ProviderError {
    match e {
        CallError::Api { status: 404, .. } => ProviderError::NotFound,
        CallError::Api { status, .. } if status == 409 || status == 429 || status >= 500 => {
            ProviderError::Unavailable(Box::new(e))
        }
        CallError::Api { .. } | CallError::Invalid(_) => ProviderError::Rejected(Box::new(e)),
        CallError::Deserialize(_) | CallError::Unreachable(_) => {
            ProviderError::Unavailable(Box::new(e))
        }
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

/// `POST /v1/checkout/sessions` in subscription mode, or in payment mode for a credit pack; one
/// line item.
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
    #[serde(skip_serializing_if = "Option::is_none")]
    subscription_data: Option<SubscriptionData>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payment_intent_data: Option<PaymentIntentData>,
    success_url: &'a str,
    cancel_url: &'a str,
}

/// `payment_intent_data` of a payment-mode session: the metadata the charge's events carry.
#[derive(Serialize)]
struct PaymentIntentData {
    metadata: HashMap<String, String>,
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
        .map_err(|e| ProviderError::Rejected(message(format!("idempotency key: {e}"))))
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
    ) -> Result<Option<CustomerId>, ProviderError> {
        let form = CustomerForm {
            email,
            metadata: user_metadata(user_id),
        };
        let customer = post::<IdField>("/customers".into(), &form)
            .request_strategy(idempotent(idempotency_key)?)
            .send(&self.client)
            .await
            .map_err(classify)?;
        Ok(Some(CustomerId::new(customer.id)))
    }

    async fn create_checkout(
        &self,
        request: &CheckoutRequest,
    ) -> Result<CheckoutSession, ProviderError> {
        let mut metadata = user_metadata(&request.user_id);
        if let Some(pack) = &request.pack {
            metadata.insert("pack".to_owned(), pack.pack_id.clone());
        }
        let one_time = request.pack.is_some();
        let form = CheckoutForm {
            mode: if one_time { "payment" } else { "subscription" },
            client_reference_id: request.user_id.to_string(),
            customer: request.customer_id.as_ref().map(CustomerId::as_str),
            customer_email: match request.customer_id {
                Some(_) => None,
                None => Some(&request.email),
            },
            line_items: [LineItem {
                price: request.price_id.as_str(),
                quantity: 1,
            }],
            metadata: metadata.clone(),
            subscription_data: (!one_time).then(|| SubscriptionData {
                metadata: user_metadata(&request.user_id),
                trial_period_days: (request.trial_days > 0).then_some(request.trial_days),
            }),
            payment_intent_data: one_time.then_some(PaymentIntentData { metadata }),
            success_url: &request.success_url,
            cancel_url: &request.cancel_url,
        };
        let session = post::<CheckoutSessionFields>("/checkout/sessions".into(), &form)
            .request_strategy(idempotent(&request.idempotency_key)?)
            .send(&self.client)
            .await
            .map_err(classify)?;
        let url = session.url.ok_or_else(|| {
            ProviderError::Rejected(message("stripe checkout session has no url"))
        })?;
        Ok(CheckoutSession {
            id: CheckoutSessionId::new(session.id),
            url,
        })
    }

    async fn create_portal(
        &self,
        customer: Option<&CustomerId>,
        _subscription: &SubscriptionId,
        return_url: &str,
    ) -> Result<String, ProviderError> {
        let customer = customer.ok_or_else(|| {
            ProviderError::Rejected(message("a Stripe portal needs the subscription's customer"))
        })?;
        let form = PortalForm {
            customer: customer.as_str(),
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
        subscription: &SubscriptionId,
    ) -> Result<ProviderSubscription, ProviderError> {
        let s = self.retrieve_subscription(subscription).await?;
        let item = s.items.data.first().ok_or_else(|| {
            ProviderError::Rejected(message(format!("subscription {subscription} has no items")))
        })?;
        let status = SubscriptionStatus::from_stripe(&s.status).ok_or_else(|| {
            ProviderError::Rejected(message(format!("unknown stripe status {}", s.status)))
        })?;
        Ok(ProviderSubscription {
            provider: Provider::Stripe,
            user_id: s
                .metadata
                .as_ref()
                .and_then(|m| m.get("user_id"))
                .and_then(|u| u.parse().ok()),
            status,
            price_id: PriceId::new(item.price.id.clone()),
            current_period_end: Some(item.current_period_end),
            cancel_at_period_end: s.cancel_at_period_end,
            trial_end: s.trial_end,
            subscription_id: SubscriptionId::new(s.id),
            customer_id: Some(CustomerId::new(s.customer)),
        })
    }

    async fn fetch_checkout_subscription(
        &self,
        session: &CheckoutSessionId,
    ) -> Result<Option<SubscriptionId>, ProviderError> {
        let session = get::<CheckoutSessionFields>(format!(
            "/checkout/sessions/{}",
            path_segment(session.as_str())?
        ))
        .send(&self.client)
        .await
        .map_err(classify)?;
        Ok(session.subscription.map(SubscriptionId::new))
    }

    async fn set_cancel_at_period_end(
        &self,
        subscription: &SubscriptionId,
        cancel: bool,
    ) -> Result<(), ProviderError> {
        post::<IdField>(
            format!("/subscriptions/{}", path_segment(subscription.as_str())?),
            &CancelForm {
                cancel_at_period_end: cancel,
            },
        )
        .send(&self.client)
        .await
        .map(|_| ())
        .map_err(classify)
    }

    /// `DELETE /v1/subscriptions/{id}`: cancels at once (docs.stripe.com/api/subscriptions/cancel).
    async fn cancel_now(&self, subscription: &SubscriptionId) -> Result<(), ProviderError> {
        RequestBuilder::new(
            StripeMethod::Delete,
            format!("/subscriptions/{}", path_segment(subscription.as_str())?),
        )
        .customize::<IdField>()
        .send(&self.client)
        .await
        .map(|_| ())
        .map_err(classify)
    }

    async fn list_events(
        &self,
        since: i64,
        cursor: Option<&str>,
    ) -> Result<EventPage, ProviderError> {
        self.events_page(since, cursor).await
    }

    async fn change_price(
        &self,
        subscription: &SubscriptionId,
        price: &PriceId,
        proration: Proration,
    ) -> Result<(), ProviderError> {
        let current = self.retrieve_subscription(subscription).await?;
        let item = current.items.data.first().ok_or_else(|| {
            ProviderError::Rejected(message(format!("subscription {subscription} has no items")))
        })?;
        let form = ChangeForm {
            items: [ItemChange {
                id: &item.id,
                price: price.as_str(),
            }],
            proration_behavior: proration.as_stripe(),
        };
        post::<IdField>(
            format!("/subscriptions/{}", path_segment(subscription.as_str())?),
            &form,
        )
        .send(&self.client)
        .await
        .map(|_| ())
        .map_err(classify)
    }
}

/// `GET /v1/events` query (docs.stripe.com/api/events/list).
#[derive(Serialize)]
struct EventsQuery<'a> {
    created: CreatedFilter,
    limit: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    starting_after: Option<&'a str>,
    types: &'a [&'a str],
}

#[derive(Serialize)]
struct CreatedFilter {
    gte: i64,
}

/// A page of events: each kept as JSON, as a webhook would carry it.
#[derive(miniserde::Deserialize)]
struct EventList {
    data: Vec<miniserde::json::Value>,
    has_more: bool,
}

impl StripeProvider {
    /// `GET /v1/events?created[gte]=…&types[]=…&limit=100[&starting_after=…]`, newest first.
    async fn events_page(
        &self,
        since: i64,
        cursor: Option<&str>,
    ) -> Result<EventPage, ProviderError> {
        let query = EventsQuery {
            created: CreatedFilter { gte: since },
            limit: 100,
            starting_after: cursor,
            types: &super::events::HANDLED_TYPES,
        };
        let list = RequestBuilder::new(StripeMethod::Get, "/events")
            .query(&query)
            .customize::<EventList>()
            .send(&self.client)
            .await
            .map_err(classify)?;
        let events: Vec<String> = list.data.iter().map(miniserde::json::to_string).collect();
        let next = if list.has_more {
            events
                .last()
                .and_then(|e| super::events::envelope(e.as_bytes()).ok())
                .map(|e| e.event_id.to_string())
        } else {
            None
        };
        Ok(EventPage { events, next })
    }

    async fn retrieve_subscription(
        &self,
        subscription: &SubscriptionId,
    ) -> Result<SubscriptionFields, ProviderError> {
        get::<SubscriptionFields>(format!(
            "/subscriptions/{}",
            path_segment(subscription.as_str())?
        ))
        .send(&self.client)
        .await
        .map_err(classify)
    }
}
