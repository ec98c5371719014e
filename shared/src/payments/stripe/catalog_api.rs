//! Stripe's catalog API — products and prices — for `tollgate-admin plans push`
//! (`crate::billing::plans_push` decides what to call; this module only calls). Same seam as
//! [`super::client`]: async-stripe's `RequestBuilder` with Tollgate's own small forms over
//! [`Transport`], reading only the fields the push compares.
//!
//! Calls (docs.stripe.com/api/products, "https://docs.stripe.com/api/prices"):
//! `GET /v1/products/{id}`, `POST /v1/products` (with a caller-chosen `id`),
//! `POST /v1/products/{id}`, `GET /v1/prices?lookup_keys[]=…` (at most 10 keys per call, so the
//! keys are asked for in chunks), `POST /v1/prices` (with `lookup_key` and, when replacing a
//! price, `transfer_lookup_key=true`), `POST /v1/prices/{id}` with `active=false` (archive).
//! Amounts are in minor currency units (`unit_amount`, e.g. cents for `usd`).

use super::transport::{self, CallError, Transport};
use crate::payments::ProviderError;
use secrecy::SecretString;
use serde::Serialize;
use stripe_client_core::{RequestBuilder, StripeMethod};

/// How many lookup keys Stripe accepts in one `GET /v1/prices?lookup_keys[]=…`.
pub const LOOKUP_KEYS_PER_LIST: usize = 10;

/// The products-and-prices client. Cheap to clone; `Debug` never shows the secret key.
#[derive(Clone, Debug)]
pub struct CatalogApi {
    client: Transport,
}

/// A Stripe product as the push reads it (`GET /v1/products/{id}`).
#[derive(Clone, Debug, PartialEq, Eq, miniserde::Deserialize)]
pub struct Product {
    /// The product id (`tollgate_plan_pro`, or Stripe's `prod_…` for products made elsewhere).
    pub id: String,
    /// The name customers see.
    pub name: String,
    /// `false` for an archived product.
    pub active: bool,
}

/// `recurring` of a Stripe price.
#[derive(Clone, Debug, PartialEq, Eq, miniserde::Deserialize)]
pub struct Recurring {
    /// `day`, `week`, `month` or `year`.
    pub interval: String,
    /// Intervals between two bills (1 for plain monthly/yearly prices).
    pub interval_count: u64,
}

/// A Stripe price as the push reads it (`GET /v1/prices`).
#[derive(Clone, Debug, PartialEq, Eq, miniserde::Deserialize)]
pub struct Price {
    /// The price id (`price_…`).
    pub id: String,
    /// The lookup key, if any (`tollgate_pro_month`).
    pub lookup_key: Option<String>,
    /// The product id (unexpanded).
    pub product: String,
    /// Amount in minor currency units; `None` for tiered or custom-amount prices.
    pub unit_amount: Option<u64>,
    /// Lowercase ISO 4217 currency code.
    pub currency: String,
    /// `None` for a one-time price.
    pub recurring: Option<Recurring>,
    /// `false` for an archived price.
    pub active: bool,
}

/// What to create with `POST /v1/prices`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPrice<'a> {
    /// The product the price belongs to.
    pub product: &'a str,
    /// Amount in minor currency units (`unit_amount`).
    pub unit_amount: u64,
    /// Lowercase ISO 4217 currency code.
    pub currency: &'a str,
    /// `Some("month" | "year")` for a recurring price (`recurring[interval]`), `None` for a
    /// one-time price.
    pub interval: Option<&'a str>,
    /// The lookup key the price is found by.
    pub lookup_key: &'a str,
    /// `transfer_lookup_key=true`: take the lookup key from the price holding it (Stripe moves
    /// it atomically; without it a held key makes the create fail).
    pub transfer_lookup_key: bool,
}

#[derive(miniserde::Deserialize)]
struct PriceList {
    data: Vec<Price>,
    has_more: bool,
}

#[derive(Serialize)]
struct ProductForm<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    active: Option<bool>,
}

#[derive(Serialize)]
struct PriceForm<'a> {
    product: &'a str,
    unit_amount: u64,
    currency: &'a str,
    lookup_key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    recurring: Option<RecurringForm<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    transfer_lookup_key: bool,
}

#[derive(Serialize)]
struct RecurringForm<'a> {
    interval: &'a str,
}

#[derive(Serialize)]
struct ArchiveForm {
    active: bool,
}

#[derive(Serialize)]
struct PricesQuery<'a> {
    lookup_keys: &'a [String],
    limit: u32,
}

/// Maps a failed call: 404 → `NotFound`; 409, 429, 5xx and no answer → `Unavailable`; other
/// answers → `Rejected`, Stripe's message kept as the source.
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

/// An id used as a path segment: `[A-Za-z0-9_-]`, 1–255 bytes (product ids may hold `-`, which
/// plan ids allow); anything else is refused rather than escaped.
fn segment(id: &str) -> Result<&str, ProviderError> {
    if !id.is_empty()
        && id.len() <= 255
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Ok(id)
    } else {
        Err(ProviderError::Rejected(crate::error::message(format!(
            "{id:?} is not a usable Stripe id"
        ))))
    }
}

impl CatalogApi {
    /// A client over `http` ([`crate::payments::http_client`]) with `secret_key`, talking to
    /// `base_url` when given (`STRIPE_API_BASE`, an origin such as `http://127.0.0.1:12111`;
    /// default [`transport::DEFAULT_API_BASE`]).
    ///
    /// # Errors
    /// [`ProviderError::Rejected`] if the key is not a valid header value (the key is not in the
    /// error).
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

    /// `GET /v1/products/{id}`; `None` when Stripe answers 404.
    ///
    /// # Errors
    /// [`ProviderError`] for any other failure, or an id outside `[A-Za-z0-9_-]`.
    pub async fn product(&self, id: &str) -> Result<Option<Product>, ProviderError> {
        let found = RequestBuilder::new(StripeMethod::Get, format!("/products/{}", segment(id)?))
            .customize::<Product>()
            .send(&self.client)
            .await
            .map_err(classify);
        match found {
            Ok(p) => Ok(Some(p)),
            Err(ProviderError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /v1/products` with the caller-chosen `id` and `name`.
    ///
    /// # Errors
    /// [`ProviderError`]; `Rejected` if the id is taken.
    pub async fn create_product(&self, id: &str, name: &str) -> Result<Product, ProviderError> {
        let form = ProductForm {
            id: Some(segment(id)?),
            name,
            active: None,
        };
        RequestBuilder::new(StripeMethod::Post, "/products")
            .form(&form)
            .customize::<Product>()
            .send(&self.client)
            .await
            .map_err(classify)
    }

    /// `POST /v1/products/{id}` setting `name` and `active=true` (un-archives it).
    ///
    /// # Errors
    /// [`ProviderError`]; `NotFound` if the product does not exist.
    pub async fn update_product(&self, id: &str, name: &str) -> Result<Product, ProviderError> {
        let form = ProductForm {
            id: None,
            name,
            active: Some(true),
        };
        RequestBuilder::new(StripeMethod::Post, format!("/products/{}", segment(id)?))
            .form(&form)
            .customize::<Product>()
            .send(&self.client)
            .await
            .map_err(classify)
    }

    /// The prices holding `lookup_keys` (active or archived; a lookup key is held by at most one
    /// price), asked [`LOOKUP_KEYS_PER_LIST`] keys at a time with
    /// `GET /v1/prices?lookup_keys[]=…&limit=100`.
    ///
    /// # Errors
    /// [`ProviderError`] for a failed call.
    pub async fn prices_by_lookup_keys(
        &self,
        lookup_keys: &[String],
    ) -> Result<Vec<Price>, ProviderError> {
        let mut all = Vec::new();
        for chunk in lookup_keys.chunks(LOOKUP_KEYS_PER_LIST) {
            let list = RequestBuilder::new(StripeMethod::Get, "/prices")
                .query(&PricesQuery {
                    lookup_keys: chunk,
                    limit: 100,
                })
                .customize::<PriceList>()
                .send(&self.client)
                .await
                .map_err(classify)?;
            if list.has_more {
                return Err(ProviderError::Rejected(crate::error::message(
                    "stripe listed more than 100 prices for at most 10 lookup keys",
                )));
            }
            all.extend(list.data);
        }
        Ok(all)
    }

    /// `POST /v1/prices`: a new price (prices are immutable, so a change is a new price).
    ///
    /// # Errors
    /// [`ProviderError`]; `Rejected` e.g. if the lookup key is held by another price and
    /// `transfer_lookup_key` is false.
    pub async fn create_price(&self, price: &NewPrice<'_>) -> Result<Price, ProviderError> {
        let form = PriceForm {
            product: price.product,
            unit_amount: price.unit_amount,
            currency: price.currency,
            lookup_key: price.lookup_key,
            recurring: price.interval.map(|interval| RecurringForm { interval }),
            transfer_lookup_key: price.transfer_lookup_key,
        };
        RequestBuilder::new(StripeMethod::Post, "/prices")
            .form(&form)
            .customize::<Price>()
            .send(&self.client)
            .await
            .map_err(classify)
    }

    /// `POST /v1/prices/{id}` with `active=false`: archives the price (existing subscriptions
    /// keep it; new checkouts cannot use it).
    ///
    /// # Errors
    /// [`ProviderError`]; `NotFound` if the price does not exist.
    pub async fn archive_price(&self, id: &str) -> Result<Price, ProviderError> {
        RequestBuilder::new(StripeMethod::Post, format!("/prices/{}", segment(id)?))
            .form(&ArchiveForm { active: false })
            .customize::<Price>()
            .send(&self.client)
            .await
            .map_err(classify)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_encoded_as_stripe_expects() {
        let form = PriceForm {
            product: "tollgate_plan_pro",
            unit_amount: 1900,
            currency: "usd",
            lookup_key: "tollgate_pro_month",
            recurring: Some(RecurringForm { interval: "month" }),
            transfer_lookup_key: true,
        };
        let text = encode(&form);
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(text.as_bytes())
            .into_owned()
            .collect();
        for (k, v) in [
            ("product", "tollgate_plan_pro"),
            ("unit_amount", "1900"),
            ("currency", "usd"),
            ("lookup_key", "tollgate_pro_month"),
            ("recurring[interval]", "month"),
            ("transfer_lookup_key", "true"),
        ] {
            assert!(
                pairs.iter().any(|(a, b)| a == k && b == v),
                "{k}={v} missing in {text}"
            );
        }
        let one_time = PriceForm {
            recurring: None,
            transfer_lookup_key: false,
            ..form
        };
        let text = encode(&one_time);
        assert!(!text.contains("recurring") && !text.contains("transfer"));
    }

    fn encode(form: &impl Serialize) -> String {
        RequestBuilder::new(StripeMethod::Post, "/prices")
            .form(form)
            .body
            .unwrap_or_default()
    }

    #[test]
    fn the_price_list_asks_for_every_key_of_a_chunk() {
        let keys = [
            "tollgate_pro_month".to_owned(),
            "tollgate_pack_x".to_owned(),
        ];
        let query = RequestBuilder::new(StripeMethod::Get, "/prices")
            .query(&PricesQuery {
                lookup_keys: &keys,
                limit: 100,
            })
            .query
            .unwrap_or_default();
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let asked: Vec<&str> = pairs
            .iter()
            .filter(|(k, _)| k.starts_with("lookup_keys["))
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(asked, ["tollgate_pro_month", "tollgate_pack_x"], "{query}");
    }

    #[test]
    fn odd_ids_are_refused_as_path_segments() {
        assert!(segment("tollgate_plan_pro-2").is_ok());
        for bad in ["", "a/b", "a?b", "../x"] {
            assert!(segment(bad).is_err(), "{bad:?}");
        }
    }
}
