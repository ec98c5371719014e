//! Plans as code: what `tollgate-admin plans push` must do so that Stripe's products and prices
//! match the catalog (`infra/plans.toml`).
//!
//! The decision is pure — [`desired`] (the catalog → the products and prices it needs) and
//! [`decide`] (those and what Stripe has, [`StripeState`] → a list of [`Action`]s) — so it is
//! tested without Stripe. With the `stripe` feature, [`fetch_state`] reads what Stripe has and
//! [`apply`] performs the actions through [`crate::payments::stripe::catalog_api`]; rewriting the
//! file is the CLI's (it alone edits TOML).
//!
//! The rules:
//! - Prices are found by their `lookup_key` ("https://docs.stripe.com/api/prices", `lookup_key`):
//!   `tollgate_<plan id>_<interval>` for a plan's interval, `tollgate_pack_<pack id>` for a credit
//!   pack. A plan's amount and currency are its `[plans.display]` entry for the interval; a
//!   pack's are its `price`. All amounts are in minor currency units (cents for `usd`). Plan
//!   prices are recurring (`recurring[interval]`), pack prices are one-time. `free`, and a plan
//!   interval without a display amount, get no price ([`Desired::skipped`]).
//! - One product per plan and per pack, with an id chosen here (Stripe accepts a caller-chosen
//!   product `id` on create, docs.stripe.com/api/products/create): `tollgate_plan_<plan id>`,
//!   `tollgate_pack_<pack id>`; created if missing, renamed (and un-archived) if it differs.
//! - Prices are immutable ("https://docs.stripe.com/products-prices/manage-prices": amount,
//!   currency and interval cannot change): a price whose amount, currency, interval or product
//!   differs is replaced by a new price created with the same lookup key and
//!   `transfer_lookup_key=true` ("https://docs.stripe.com/api/prices", `transfer_lookup_key`),
//!   then the old one is archived (`active=false`). A price that matches is left alone, so a
//!   second push does nothing.
//! - The resulting price ids are written back into the file ([`Action::WriteBack`]).

use crate::domain::{Catalog, Interval, PriceId, FREE_PLAN};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Where a price id lives in the catalog file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Slot {
    /// `[plans.stripe.prices] <interval>` of the plan with this id.
    Plan {
        /// The plan id (`pro`).
        plan: String,
        /// The billing interval.
        interval: Interval,
    },
    /// `stripe.price` of the credit pack with this id.
    Pack {
        /// The pack id (`credits_1000`).
        pack: String,
    },
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Plan { plan, interval } => write!(f, "plan {plan} ({})", interval.as_str()),
            Self::Pack { pack } => write!(f, "credit pack {pack}"),
        }
    }
}

/// The lookup key of a plan's price for `interval`: `tollgate_<plan id>_<interval>`.
pub fn plan_lookup_key(plan: &str, interval: Interval) -> String {
    format!("tollgate_{plan}_{}", interval.as_str())
}

/// The lookup key of a credit pack's price: `tollgate_pack_<pack id>`.
pub fn pack_lookup_key(pack: &str) -> String {
    format!("tollgate_pack_{pack}")
}

/// The Stripe product id of a plan: `tollgate_plan_<plan id>`.
pub fn plan_product_id(plan: &str) -> String {
    format!("tollgate_plan_{plan}")
}

/// The Stripe product id of a credit pack: `tollgate_pack_<pack id>`.
pub fn pack_product_id(pack: &str) -> String {
    format!("tollgate_pack_{pack}")
}

/// A product the catalog needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredProduct {
    /// The product id ([`plan_product_id`], [`pack_product_id`]).
    pub id: String,
    /// The plan's or pack's name.
    pub name: String,
}

/// A price the catalog needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredPrice {
    /// Where its id goes in the file.
    pub slot: Slot,
    /// Its lookup key ([`plan_lookup_key`], [`pack_lookup_key`]).
    pub lookup_key: String,
    /// The product id it belongs to.
    pub product: String,
    /// Amount in minor currency units (`unit_amount`).
    pub amount: u64,
    /// Lowercase ISO 4217 currency code.
    pub currency: String,
    /// The recurring interval; `None` for a one-time price (credit packs).
    pub interval: Option<Interval>,
    /// The price id the file holds now for [`Self::slot`], if any.
    pub current: Option<PriceId>,
}

/// Something of the catalog that gets no price, and why (printed by the CLI).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// What: `plan free`, `plan team (year)`.
    pub what: String,
    /// Why, in words.
    pub reason: &'static str,
}

/// What the catalog needs at Stripe: products (one per paid plan with a price and per pack),
/// prices, and what gets none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    /// Products, plans first then packs, in catalog order.
    pub products: Vec<DesiredProduct>,
    /// Prices, in catalog order (a plan's month before its year).
    pub prices: Vec<DesiredPrice>,
    /// Plans and intervals without a price.
    pub skipped: Vec<Skipped>,
}

/// The catalog cannot be pushed as is.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// Two prices (or two products) would share a lookup key (or a product id): a plan id
    /// `pack_x` against a pack id `x_month`, say. Rename one of them.
    #[error("{0}: rename the plan or pack")]
    Collision(String),
}

/// The products and prices `catalog` needs ([`Desired`]).
///
/// # Errors
/// [`PushError::Collision`] if two of them would get the same lookup key or product id.
pub fn desired(catalog: &Catalog) -> Result<Desired, PushError> {
    let mut out = Desired::default();
    for plan in catalog.plans() {
        if plan.id == FREE_PLAN {
            out.skipped.push(Skipped {
                what: format!("plan {}", plan.id),
                reason: "the plan of everyone without access is never sold",
            });
            continue;
        }
        let product = plan_product_id(&plan.id);
        let mut any = false;
        for interval in [Interval::Month, Interval::Year] {
            let Some(display) = plan.display.get(&interval) else {
                out.skipped.push(Skipped {
                    what: format!("plan {} ({})", plan.id, interval.as_str()),
                    reason: "no [plans.display] amount for this interval",
                });
                continue;
            };
            any = true;
            out.prices.push(DesiredPrice {
                slot: Slot::Plan {
                    plan: plan.id.clone(),
                    interval,
                },
                lookup_key: plan_lookup_key(&plan.id, interval),
                product: product.clone(),
                amount: display.amount,
                currency: display.currency.clone(),
                interval: Some(interval),
                current: plan
                    .stripe
                    .as_ref()
                    .and_then(|s| s.prices.get(&interval).cloned()),
            });
        }
        if any {
            out.products.push(DesiredProduct {
                id: product,
                name: plan.name.clone(),
            });
        }
    }
    for pack in catalog.packs() {
        let product = pack_product_id(&pack.id);
        out.prices.push(DesiredPrice {
            slot: Slot::Pack {
                pack: pack.id.clone(),
            },
            lookup_key: pack_lookup_key(&pack.id),
            product: product.clone(),
            amount: pack.price.amount,
            currency: pack.price.currency.clone(),
            interval: None,
            current: pack.stripe.as_ref().map(|s| s.price.clone()),
        });
        out.products.push(DesiredProduct {
            id: product,
            name: pack.name.clone(),
        });
    }
    let mut keys = BTreeSet::new();
    for price in &out.prices {
        if !keys.insert(price.lookup_key.as_str()) {
            return Err(PushError::Collision(format!(
                "lookup key {} is needed twice",
                price.lookup_key
            )));
        }
    }
    let mut ids = BTreeSet::new();
    for product in &out.products {
        if !ids.insert(product.id.as_str()) {
            return Err(PushError::Collision(format!(
                "product id {} is needed twice",
                product.id
            )));
        }
    }
    Ok(out)
}

/// A product as Stripe has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExistingProduct {
    /// The product id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `false` if archived.
    pub active: bool,
}

/// A price as Stripe has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExistingPrice {
    /// The price id.
    pub id: PriceId,
    /// The product id it belongs to.
    pub product: String,
    /// Amount in minor currency units; `None` for tiered or custom-amount prices.
    pub amount: Option<u64>,
    /// Lowercase ISO 4217 currency code.
    pub currency: String,
    /// `(interval, interval_count)` of a recurring price (`("month", 1)`); `None` if one-time.
    pub recurring: Option<(String, u64)>,
    /// `false` if archived.
    pub active: bool,
}

/// What Stripe has of the [`Desired`] products and prices.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StripeState {
    /// Products by id (absent: no such product).
    pub products: BTreeMap<String, ExistingProduct>,
    /// Prices by lookup key (a lookup key is held by at most one price, active or archived).
    pub prices: BTreeMap<String, ExistingPrice>,
}

/// A price id to write back: one Stripe has, or the one a [`Action::CreatePrice`] of this
/// lookup key creates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PriceRef {
    /// An existing price.
    Existing(PriceId),
    /// The price created for this lookup key.
    Created(String),
}

/// One step of a push, in the order to perform them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `POST /v1/products` with this id and name.
    CreateProduct {
        /// The product id.
        id: String,
        /// Its name.
        name: String,
    },
    /// `POST /v1/products/{id}` setting the name and `active=true`.
    UpdateProduct {
        /// The product id.
        id: String,
        /// The new name.
        name: String,
        /// The name Stripe has.
        old_name: String,
        /// Whether the product is archived at Stripe (the update un-archives it).
        reactivate: bool,
    },
    /// `POST /v1/prices`.
    CreatePrice {
        /// The price to create.
        price: DesiredPrice,
        /// The price holding the lookup key now, if any: the create then sends
        /// `transfer_lookup_key=true` to take the key from it.
        transfer_from: Option<PriceId>,
    },
    /// `POST /v1/prices/{id}` with `active=false` (after the create that took its key).
    ArchivePrice {
        /// The price id.
        id: PriceId,
        /// The lookup key it held.
        lookup_key: String,
    },
    /// Write the price id into the catalog file.
    WriteBack {
        /// Where.
        slot: Slot,
        /// The id the file holds now.
        from: Option<PriceId>,
        /// The id to write.
        to: PriceRef,
    },
}

impl Action {
    /// Whether this action changes Stripe (not only the file).
    pub fn calls_stripe(&self) -> bool {
        !matches!(self, Self::WriteBack { .. })
    }
}

fn money(amount: u64, currency: &str, interval: Option<Interval>) -> String {
    match interval {
        Some(i) => format!("{amount} {currency} (minor units) per {}", i.as_str()),
        None => format!("{amount} {currency} (minor units), one-time"),
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CreateProduct { id, name } => write!(f, "create product {id} ({name:?})"),
            Self::UpdateProduct {
                id,
                name,
                old_name,
                reactivate,
            } => {
                write!(f, "update product {id}: name {old_name:?} -> {name:?}")?;
                if *reactivate {
                    f.write_str(", un-archive")?;
                }
                Ok(())
            }
            Self::CreatePrice {
                price,
                transfer_from,
            } => {
                write!(
                    f,
                    "create price {} for {}: {} on product {}",
                    price.lookup_key,
                    price.slot,
                    money(price.amount, &price.currency, price.interval),
                    price.product
                )?;
                if let Some(old) = transfer_from {
                    write!(
                        f,
                        ", taking the lookup key from {old} (transfer_lookup_key)"
                    )?;
                }
                Ok(())
            }
            Self::ArchivePrice { id, lookup_key } => {
                write!(f, "archive price {id} (formerly {lookup_key})")
            }
            Self::WriteBack { slot, from, to } => {
                write!(f, "write back {slot}: ")?;
                match from {
                    Some(from) => write!(f, "{from}")?,
                    None => f.write_str("(none)")?,
                }
                match to {
                    PriceRef::Existing(id) => write!(f, " -> {id}"),
                    PriceRef::Created(key) => write!(f, " -> the new price of {key}"),
                }
            }
        }
    }
}

/// Whether `existing` is `price` at Stripe: active, same amount, currency, product, and the
/// same recurring interval (every 1 interval) or both one-time.
fn same_price(price: &DesiredPrice, existing: &ExistingPrice) -> bool {
    let recurring_matches = match (&price.interval, &existing.recurring) {
        (None, None) => true,
        (Some(i), Some((interval, count))) => interval == i.as_str() && *count == 1,
        _ => false,
    };
    existing.active
        && existing.amount == Some(price.amount)
        && existing.currency == price.currency
        && existing.product == price.product
        && recurring_matches
}

/// The actions that make `stripe` match `desired`, then write the ids back: products to create
/// or update first; then per price nothing (it matches), or a create (with `transfer_from` when
/// another price holds the key) followed by archiving the active price it replaces; last the
/// write-backs of every slot whose id in the file is not the resulting one. Empty when Stripe
/// and the file already match.
pub fn decide(desired: &Desired, stripe: &StripeState) -> Vec<Action> {
    let mut actions = Vec::new();
    for product in &desired.products {
        match stripe.products.get(&product.id) {
            None => actions.push(Action::CreateProduct {
                id: product.id.clone(),
                name: product.name.clone(),
            }),
            Some(have) if have.name != product.name || !have.active => {
                actions.push(Action::UpdateProduct {
                    id: product.id.clone(),
                    name: product.name.clone(),
                    old_name: have.name.clone(),
                    reactivate: !have.active,
                })
            }
            Some(_) => {}
        }
    }
    let mut writes = Vec::new();
    for price in &desired.prices {
        let existing = stripe.prices.get(&price.lookup_key);
        let to = match existing {
            Some(have) if same_price(price, have) => PriceRef::Existing(have.id.clone()),
            _ => {
                actions.push(Action::CreatePrice {
                    price: price.clone(),
                    transfer_from: existing.map(|have| have.id.clone()),
                });
                if let Some(have) = existing.filter(|have| have.active) {
                    actions.push(Action::ArchivePrice {
                        id: have.id.clone(),
                        lookup_key: price.lookup_key.clone(),
                    });
                }
                PriceRef::Created(price.lookup_key.clone())
            }
        };
        let unchanged = matches!(&to, PriceRef::Existing(id) if price.current.as_ref() == Some(id));
        if !unchanged {
            writes.push(Action::WriteBack {
                slot: price.slot.clone(),
                from: price.current.clone(),
                to,
            });
        }
    }
    actions.extend(writes);
    actions
}

#[cfg(feature = "stripe")]
pub use stripe_io::{apply, fetch_state, ApplyError};

/// Reading Stripe and performing the actions (feature `stripe`).
#[cfg(feature = "stripe")]
mod stripe_io {
    use super::{Action, Desired, ExistingPrice, ExistingProduct, PriceRef, Slot, StripeState};
    use crate::domain::PriceId;
    use crate::payments::stripe::catalog_api::{CatalogApi, NewPrice, Price, Product};
    use crate::payments::ProviderError;
    use std::collections::BTreeMap;

    impl From<Product> for ExistingProduct {
        fn from(p: Product) -> Self {
            Self {
                id: p.id,
                name: p.name,
                active: p.active,
            }
        }
    }

    impl From<Price> for ExistingPrice {
        fn from(p: Price) -> Self {
            Self {
                id: PriceId::new(p.id),
                product: p.product,
                amount: p.unit_amount,
                currency: p.currency,
                recurring: p.recurring.map(|r| (r.interval, r.interval_count)),
                active: p.active,
            }
        }
    }

    /// What Stripe has of `desired`: each product by id (`GET /v1/products/{id}`) and the prices
    /// holding its lookup keys (`GET /v1/prices?lookup_keys[]=…`, ten keys per call).
    ///
    /// # Errors
    /// [`ProviderError`] of the first failed call.
    pub async fn fetch_state(
        api: &CatalogApi,
        desired: &Desired,
    ) -> Result<StripeState, ProviderError> {
        let mut state = StripeState::default();
        for product in &desired.products {
            if let Some(have) = api.product(&product.id).await? {
                state.products.insert(product.id.clone(), have.into());
            }
        }
        let keys: Vec<String> = desired
            .prices
            .iter()
            .map(|p| p.lookup_key.clone())
            .collect();
        for price in api.prices_by_lookup_keys(&keys).await? {
            if let Some(key) = price.lookup_key.clone() {
                state.prices.insert(key, price.into());
            }
        }
        Ok(state)
    }

    /// A push stopped at an action; the ones before it were done. Running the push again is
    /// safe: prices are found again by lookup key.
    #[derive(Debug, thiserror::Error)]
    #[error("{action}: failed after {done} step(s) were done (pushing again resumes: prices are found by lookup key)")]
    pub struct ApplyError {
        /// The action, as displayed.
        pub action: String,
        /// How many actions were done before it.
        pub done: usize,
        /// Stripe's error.
        #[source]
        pub source: ProviderError,
    }

    /// Performs the Stripe actions in order, calling `done` after each, and returns the price id
    /// of each [`Action::WriteBack`] slot (created ids resolved), in action order; write-backs
    /// themselves are left to the caller.
    ///
    /// # Errors
    /// [`ApplyError`] at the first failed call (nothing after it is attempted); also when a
    /// write-back names a lookup key no action created (a caller's mix-up).
    pub async fn apply(
        api: &CatalogApi,
        actions: &[Action],
        mut done: impl FnMut(&Action),
    ) -> Result<Vec<(Slot, Option<PriceId>, PriceId)>, ApplyError> {
        let mut created: BTreeMap<String, PriceId> = BTreeMap::new();
        let mut writes = Vec::new();
        for (i, action) in actions.iter().enumerate() {
            let fail = |source| ApplyError {
                action: action.to_string(),
                done: i,
                source,
            };
            match action {
                Action::CreateProduct { id, name } => {
                    api.create_product(id, name).await.map_err(fail)?;
                }
                Action::UpdateProduct { id, name, .. } => {
                    api.update_product(id, name).await.map_err(fail)?;
                }
                Action::CreatePrice {
                    price,
                    transfer_from,
                } => {
                    let new = api
                        .create_price(&NewPrice {
                            product: &price.product,
                            unit_amount: price.amount,
                            currency: &price.currency,
                            interval: price.interval.map(|i| i.as_str()),
                            lookup_key: &price.lookup_key,
                            transfer_lookup_key: transfer_from.is_some(),
                        })
                        .await
                        .map_err(fail)?;
                    created.insert(price.lookup_key.clone(), PriceId::new(new.id));
                }
                Action::ArchivePrice { id, .. } => {
                    api.archive_price(id.as_str()).await.map_err(fail)?;
                }
                Action::WriteBack { slot, from, to } => {
                    let id = match to {
                        PriceRef::Existing(id) => id.clone(),
                        PriceRef::Created(key) => created.get(key).cloned().ok_or_else(|| {
                            fail(ProviderError::Rejected(
                                format!("no price was created for {key}").into(),
                            ))
                        })?,
                    };
                    writes.push((slot.clone(), from.clone(), id));
                    continue;
                }
            }
            done(action);
        }
        Ok(writes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../infra/plans.toml");

    fn catalog() -> Catalog {
        Catalog::from_toml(EXAMPLE).expect("the shipped catalog is valid")
    }

    /// What Stripe has after a push of `desired`, ids `price_<lookup key>`.
    fn pushed(desired: &Desired) -> StripeState {
        let mut state = StripeState::default();
        for p in &desired.products {
            state.products.insert(
                p.id.clone(),
                ExistingProduct {
                    id: p.id.clone(),
                    name: p.name.clone(),
                    active: true,
                },
            );
        }
        for p in &desired.prices {
            state.prices.insert(
                p.lookup_key.clone(),
                ExistingPrice {
                    id: PriceId::new(format!("price_{}", p.lookup_key)),
                    product: p.product.clone(),
                    amount: Some(p.amount),
                    currency: p.currency.clone(),
                    recurring: p.interval.map(|i| (i.as_str().to_owned(), 1)),
                    active: true,
                },
            );
        }
        state
    }

    #[test]
    fn the_catalog_needs_a_price_per_displayed_interval_and_pack() {
        let d = desired(&catalog()).expect("desired");
        let keys: Vec<&str> = d.prices.iter().map(|p| p.lookup_key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "tollgate_pro_month",
                "tollgate_pro_year",
                "tollgate_team_month",
                "tollgate_pack_credits_1000",
                "tollgate_pack_credits_5000"
            ]
        );
        let pro_year = &d.prices[1];
        assert_eq!(
            (
                pro_year.amount,
                pro_year.currency.as_str(),
                pro_year.interval,
                pro_year.product.as_str()
            ),
            (19000, "usd", Some(Interval::Year), "tollgate_plan_pro")
        );
        assert_eq!(d.prices[3].interval, None);
        assert_eq!(d.prices[3].amount, 1500);
        let skipped: Vec<&str> = d.skipped.iter().map(|s| s.what.as_str()).collect();
        assert_eq!(skipped, ["plan free", "plan team (year)"]);
        let products: Vec<&str> = d.products.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(
            products,
            [
                "tollgate_plan_pro",
                "tollgate_plan_team",
                "tollgate_pack_credits_1000",
                "tollgate_pack_credits_5000"
            ]
        );
    }

    #[test]
    fn an_empty_stripe_gets_everything_and_a_matching_one_nothing() {
        let d = desired(&catalog()).expect("desired");
        let actions = decide(&d, &StripeState::default());
        let creates = actions
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    Action::CreatePrice {
                        transfer_from: None,
                        ..
                    }
                )
            })
            .count();
        let products = actions
            .iter()
            .filter(|a| matches!(a, Action::CreateProduct { .. }))
            .count();
        let writes = actions
            .iter()
            .filter(|a| matches!(a, Action::WriteBack { .. }))
            .count();
        assert_eq!((products, creates, writes), (4, 5, 5));
        assert!(!actions
            .iter()
            .any(|a| matches!(a, Action::ArchivePrice { .. })));

        // Stripe matches, the file does not yet: only write-backs.
        let state = pushed(&d);
        let actions = decide(&d, &state);
        assert_eq!(actions.len(), 5);
        assert!(actions.iter().all(|a| !a.calls_stripe()));

        // Stripe and the file match: nothing.
        let mut d2 = d.clone();
        for p in &mut d2.prices {
            p.current = Some(PriceId::new(format!("price_{}", p.lookup_key)));
        }
        assert_eq!(decide(&d2, &state), []);
    }

    #[test]
    fn a_changed_amount_makes_a_new_price_that_takes_the_key_and_archives_the_old() {
        let mut d = desired(&catalog()).expect("desired");
        let state = pushed(&d);
        for p in &mut d.prices {
            p.current = Some(PriceId::new(format!("price_{}", p.lookup_key)));
        }
        d.prices[0].amount = 2900;
        let old = PriceId::new("price_tollgate_pro_month");
        assert_eq!(
            decide(&d, &state),
            [
                Action::CreatePrice {
                    price: d.prices[0].clone(),
                    transfer_from: Some(old.clone()),
                },
                Action::ArchivePrice {
                    id: old.clone(),
                    lookup_key: "tollgate_pro_month".into(),
                },
                Action::WriteBack {
                    slot: d.prices[0].slot.clone(),
                    from: Some(old),
                    to: PriceRef::Created("tollgate_pro_month".into()),
                },
            ]
        );
    }

    #[test]
    fn currency_interval_product_and_archived_prices_count_as_different() {
        let d = desired(&catalog()).expect("desired");
        let base = pushed(&d);
        let key = "tollgate_pro_month";
        let variants: [fn(&mut ExistingPrice); 5] = [
            |p| p.currency = "eur".into(),
            |p| p.recurring = Some(("month".into(), 3)),
            |p| p.recurring = None,
            |p| p.product = "prod_other".into(),
            |p| p.amount = None,
        ];
        for change in variants {
            let mut state = base.clone();
            if let Some(p) = state.prices.get_mut(key) {
                change(p);
            }
            let actions = decide(&d, &state);
            assert!(
                actions.iter().any(|a| matches!(a,
                    Action::CreatePrice { price, transfer_from: Some(_) } if price.lookup_key == key)),
                "{actions:?}"
            );
            assert!(actions.iter().any(
                |a| matches!(a, Action::ArchivePrice { lookup_key, .. } if lookup_key == key)
            ));
        }
        // An archived holder of the key: a new price takes the key; nothing to archive.
        let mut state = base.clone();
        if let Some(p) = state.prices.get_mut(key) {
            p.active = false;
        }
        let actions = decide(&d, &state);
        assert!(actions.iter().any(
            |a| matches!(a, Action::CreatePrice { transfer_from: Some(_), price } if price.lookup_key == key)
        ));
        assert!(!actions
            .iter()
            .any(|a| matches!(a, Action::ArchivePrice { .. })));
    }

    #[test]
    fn renamed_or_archived_products_are_updated() {
        let d = desired(&catalog()).expect("desired");
        let mut state = pushed(&d);
        if let Some(p) = state.products.get_mut("tollgate_plan_pro") {
            p.name = "Old".into();
        }
        if let Some(p) = state.products.get_mut("tollgate_plan_team") {
            p.active = false;
        }
        let updates: Vec<(String, bool)> = decide(&d, &state)
            .into_iter()
            .filter_map(|a| match a {
                Action::UpdateProduct { id, reactivate, .. } => Some((id, reactivate)),
                _ => None,
            })
            .collect();
        assert_eq!(
            updates,
            [
                ("tollgate_plan_pro".to_owned(), false),
                ("tollgate_plan_team".to_owned(), true)
            ]
        );
    }

    #[test]
    fn colliding_lookup_keys_are_refused() {
        let text = r#"
            [[plans]]
            id = "free"
            name = "Free"
            tier = 0
            [[plans]]
            id = "pack_x"
            name = "X"
            tier = 1
            display.month = { amount = 100, currency = "usd" }
            stripe.prices.month = "price_a"
            [[credit_packs]]
            id = "x_month"
            name = "X month"
            credits = 1
            price = { amount = 100, currency = "usd" }
            stripe.price = "price_b"
        "#;
        let c = Catalog::from_toml(text).expect("valid catalog");
        let err = desired(&c).expect_err("collision");
        assert!(err.to_string().contains("tollgate_pack_x_month"), "{err}");
    }
}
