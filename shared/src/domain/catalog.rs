//! The plan catalog: a TOML file (`infra/plans.toml`), parsed and validated at cold start
//! (docs/architecture.md, "Billing"). Pure: the file is read by the edge (`crate::state`). Every plan has an id, a name, a tier rank, entitlements (flags and numeric
//! limits), trial days, a proration behaviour for plan changes, Stripe price ids per interval and
//! a Whop plan id. `free` is the plan of everyone without access and must exist.

use super::credits::CreditPack;
use super::ids::{PriceId, Provider};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// A billing interval of a Stripe price.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interval {
    /// Monthly.
    Month,
    /// Yearly.
    Year,
}

impl Interval {
    /// `month` / `year`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Month => "month",
            Self::Year => "year",
        }
    }
}

/// How a plan change is prorated: Stripe's `proration_behavior` values
/// (docs.stripe.com/billing/subscriptions/prorations).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Proration {
    /// Credit and charge the difference on the next invoice (Stripe's default).
    #[default]
    CreateProrations,
    /// Invoice the difference immediately.
    AlwaysInvoice,
    /// No proration: the new price applies from the next period.
    None,
}

impl Proration {
    /// Stripe's wire value.
    pub fn as_stripe(self) -> &'static str {
        match self {
            Self::CreateProrations => "create_prorations",
            Self::AlwaysInvoice => "always_invoice",
            Self::None => "none",
        }
    }
}

/// One entitlement value: a feature flag or a numeric limit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Entitlement {
    /// A feature flag.
    Flag(bool),
    /// A numeric limit (e.g. seats, projects, API calls per month).
    Limit(i64),
}

/// Stripe prices of a plan.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripePrices {
    /// Price id per interval (`price_…`).
    #[serde(default)]
    pub prices: BTreeMap<Interval, PriceId>,
}

/// A price as a pricing page shows it: the amount the provider charges, kept in the catalog next
/// to the provider's price id (which holds the real amount).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisplayPrice {
    /// Amount in minor currency units (cents for `usd`).
    pub amount: u64,
    /// ISO 4217 currency code, lowercase (`usd`, `eur`), as Stripe writes it.
    pub currency: String,
}

/// Whop settings of a plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhopPlan {
    /// Whop plan id (`plan_…`).
    pub plan_id: PriceId,
}

/// One plan of the catalog.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Stable id: lowercase letters, digits, `-` and `_` (`free`, `pro`, `team`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Rank: higher tiers include lower ones; `free` is 0.
    pub tier: u32,
    /// Free trial length for new subscriptions, days (0 = none).
    #[serde(default)]
    pub trial_days: u32,
    /// Proration of changes to this plan.
    #[serde(default)]
    pub proration: Proration,
    /// Flags and limits granted while the plan is accessible.
    #[serde(default)]
    pub entitlements: BTreeMap<String, Entitlement>,
    /// Metered features: units allowed per period (`POST /usage/track`).
    #[serde(default)]
    pub metered: BTreeMap<String, super::usage::Metered>,
    /// Display prices per interval for `GET /billing/plans` (`[plans.display]`).
    #[serde(default)]
    pub display: BTreeMap<Interval, DisplayPrice>,
    /// Credits granted each period while the plan is held (0 = none): the billing period on a
    /// paid plan, the calendar month on `free`. Unused allowance carries over.
    #[serde(default)]
    pub monthly_credits: u64,
    /// Stripe prices.
    #[serde(default)]
    pub stripe: Option<StripePrices>,
    /// Whop plan.
    #[serde(default)]
    pub whop: Option<WhopPlan>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    plans: Vec<Plan>,
    #[serde(default)]
    credit_packs: Vec<CreditPack>,
}

/// Every problem found in a catalog file, one line each.
#[derive(Debug, thiserror::Error)]
#[error("invalid plan catalog:\n  {}", .0.join("\n  "))]
pub struct CatalogError(pub Vec<String>);

/// The validated catalog with lookups by plan id and by provider price id.
#[derive(Clone, Debug)]
pub struct Catalog {
    plans: Vec<Plan>,
    by_id: HashMap<String, usize>,
    by_stripe_price: HashMap<PriceId, (usize, Interval)>,
    by_whop_plan: HashMap<PriceId, usize>,
    packs: Vec<CreditPack>,
}

/// Whether `id` is 1–64 of `[a-z0-9_-]` (plan and pack ids).
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Whether `currency` is a lowercase ISO 4217 code.
fn valid_currency(currency: &str) -> bool {
    currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_lowercase())
}

/// The id of the plan everyone without access has.
pub const FREE_PLAN: &str = "free";

impl Catalog {
    /// Parses and validates catalog TOML.
    ///
    /// # Errors
    /// [`CatalogError`] listing every problem: TOML syntax or unknown keys, a missing `free`
    /// plan, invalid or duplicate plan ids, a `free` plan with prices or a tier above 0, a paid
    /// plan without any price, a price or Whop plan id used twice.
    pub fn from_toml(text: &str) -> Result<Self, CatalogError> {
        let file: CatalogFile = toml::from_str(text)
            .map_err(|e| CatalogError(vec![e.to_string().trim().to_owned()]))?;
        let mut problems = Vec::new();
        let mut by_id = HashMap::new();
        let mut by_stripe_price: HashMap<PriceId, (usize, Interval)> = HashMap::new();
        let mut by_whop_plan = HashMap::new();
        for (i, plan) in file.plans.iter().enumerate() {
            if !valid_id(&plan.id) {
                problems.push(format!("plan {:?}: id must be 1-64 of [a-z0-9_-]", plan.id));
            }
            for (feature, metered) in &plan.metered {
                if metered.overage && metered.credits > 0 {
                    problems.push(format!(
                        "plan {:?}: metered feature {feature:?} cannot both allow overage and cost credits",
                        plan.id
                    ));
                }
                if metered.spend == super::credits::CreditSpend::Always && metered.credits == 0 {
                    problems.push(format!(
                        "plan {:?}: metered feature {feature:?} spends credits always but costs none (set credits)",
                        plan.id
                    ));
                }
                let valid = !feature.is_empty()
                    && feature.len() <= 64
                    && feature
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                if !valid {
                    problems.push(format!(
                        "plan {:?}: metered feature {feature:?} must be 1-64 of [a-z0-9_]",
                        plan.id
                    ));
                }
            }
            for (interval, price) in &plan.display {
                if !valid_currency(&price.currency) {
                    problems.push(format!(
                        "plan {:?}: display price for {} has currency {:?}: expected a lowercase ISO 4217 code",
                        plan.id,
                        interval.as_str(),
                        price.currency
                    ));
                }
            }
            if by_id.insert(plan.id.clone(), i).is_some() {
                problems.push(format!("plan {:?}: duplicate plan id", plan.id));
            }
            let prices = plan.stripe.as_ref().map(|s| s.prices.len()).unwrap_or(0);
            if plan.id == FREE_PLAN {
                if prices > 0 || plan.whop.is_some() {
                    problems.push(
                        "plan \"free\": must not have Stripe prices or a Whop plan".to_owned(),
                    );
                }
                if plan.tier != 0 {
                    problems.push("plan \"free\": tier must be 0".to_owned());
                }
            } else if prices == 0 && plan.whop.is_none() {
                problems.push(format!(
                    "plan {:?}: a paid plan needs a Stripe price or a Whop plan id",
                    plan.id
                ));
            }
            for (interval, price) in plan.stripe.iter().flat_map(|s| s.prices.iter()) {
                if !price.as_str().starts_with("price_") {
                    problems.push(format!(
                        "plan {:?}: Stripe price {price:?} does not start with price_",
                        plan.id
                    ));
                }
                if let Some((other, _)) = by_stripe_price.insert(price.clone(), (i, *interval)) {
                    problems.push(format!(
                        "plan {:?}: Stripe price {price:?} is already used by plan {:?}",
                        plan.id, file.plans[other].id
                    ));
                }
            }
            if let Some(whop) = &plan.whop {
                if whop.plan_id.as_str().trim().is_empty() {
                    problems.push(format!("plan {:?}: empty Whop plan id", plan.id));
                }
                if let Some(other) = by_whop_plan.insert(whop.plan_id.clone(), i) {
                    problems.push(format!(
                        "plan {:?}: Whop plan {:?} is already used by plan {:?}",
                        plan.id, whop.plan_id, file.plans[other].id
                    ));
                }
            }
        }
        let mut pack_ids = HashMap::new();
        for pack in &file.credit_packs {
            if !valid_id(&pack.id) {
                problems.push(format!(
                    "credit pack {:?}: id must be 1-64 of [a-z0-9_-]",
                    pack.id
                ));
            }
            if pack_ids.insert(pack.id.clone(), ()).is_some() {
                problems.push(format!("credit pack {:?}: duplicate pack id", pack.id));
            }
            if pack.credits == 0 || i64::try_from(pack.credits).is_err() {
                problems.push(format!(
                    "credit pack {:?}: credits must be at least 1",
                    pack.id
                ));
            }
            if !valid_currency(&pack.price.currency) {
                problems.push(format!(
                    "credit pack {:?}: currency {:?}: expected a lowercase ISO 4217 code",
                    pack.id, pack.price.currency
                ));
            }
            if pack.stripe.is_none() && pack.whop.is_none() {
                problems.push(format!(
                    "credit pack {:?}: needs a Stripe price or a Whop plan id",
                    pack.id
                ));
            }
            if let Some(stripe) = &pack.stripe {
                if !stripe.price.as_str().starts_with("price_") {
                    problems.push(format!(
                        "credit pack {:?}: Stripe price {:?} does not start with price_",
                        pack.id, stripe.price
                    ));
                }
                if by_stripe_price.contains_key(&stripe.price) {
                    problems.push(format!(
                        "credit pack {:?}: Stripe price {:?} is already used by a plan",
                        pack.id, stripe.price
                    ));
                }
            }
            if let Some(whop) = &pack.whop {
                if by_whop_plan.contains_key(&whop.plan_id) {
                    problems.push(format!(
                        "credit pack {:?}: Whop plan {:?} is already used by a plan",
                        pack.id, whop.plan_id
                    ));
                }
            }
        }
        let mut pack_prices = HashMap::new();
        for pack in &file.credit_packs {
            let prices = pack
                .stripe
                .iter()
                .map(|s| &s.price)
                .chain(pack.whop.iter().map(|w| &w.plan_id));
            for price in prices {
                if let Some(other) = pack_prices.insert(price.clone(), pack.id.clone()) {
                    problems.push(format!(
                        "credit pack {:?}: price {price:?} is already used by pack {other:?}",
                        pack.id
                    ));
                }
            }
        }
        if !by_id.contains_key(FREE_PLAN) {
            problems.push(
                "no plan with id \"free\": it is the plan of everyone without access".to_owned(),
            );
        }
        if !problems.is_empty() {
            return Err(CatalogError(problems));
        }
        Ok(Self {
            plans: file.plans,
            by_id,
            by_stripe_price,
            by_whop_plan,
            packs: file.credit_packs,
        })
    }

    /// Every credit pack, in catalog order.
    pub fn packs(&self) -> &[CreditPack] {
        &self.packs
    }

    /// A credit pack by id.
    pub fn pack(&self, id: &str) -> Option<&CreditPack> {
        self.packs.iter().find(|p| p.id == id)
    }

    /// The credit pack a provider's price (Stripe) or plan (Whop) sells, if any.
    pub fn pack_by_price(&self, provider: Provider, price: &PriceId) -> Option<&CreditPack> {
        self.packs.iter().find(|p| match provider {
            Provider::Stripe => p.stripe.as_ref().is_some_and(|s| &s.price == price),
            Provider::Whop => p.whop.as_ref().is_some_and(|w| &w.plan_id == price),
        })
    }

    /// The price to sell `pack` with at `provider`.
    pub fn pack_price(&self, pack: &CreditPack, provider: Provider) -> Option<PriceId> {
        match provider {
            Provider::Stripe => pack.stripe.as_ref().map(|s| s.price.clone()),
            Provider::Whop => pack.whop.as_ref().map(|w| w.plan_id.clone()),
        }
    }

    /// Every plan, in catalog order.
    pub fn plans(&self) -> &[Plan] {
        &self.plans
    }

    /// Every metered feature some plan names, sorted.
    pub fn metered_features(&self) -> Vec<&str> {
        let mut all: Vec<&str> = self
            .plans
            .iter()
            .flat_map(|p| p.metered.keys().map(String::as_str))
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// A plan by id.
    pub fn plan(&self, id: &str) -> Option<&Plan> {
        self.by_id.get(id).map(|&i| &self.plans[i])
    }

    /// The `free` plan (always present in a validated catalog).
    pub fn free(&self) -> &Plan {
        // Validation guarantees it.
        &self.plans[self.by_id[FREE_PLAN]]
    }

    /// The plan a provider's price belongs to, with the price's interval where the provider
    /// prices by interval (Stripe); `None` for a price the catalog does not know.
    pub fn by_price(
        &self,
        provider: Provider,
        price_id: &PriceId,
    ) -> Option<(&Plan, Option<Interval>)> {
        match provider {
            Provider::Stripe => self
                .by_stripe_price
                .get(price_id)
                .map(|&(i, interval)| (&self.plans[i], Some(interval))),
            Provider::Whop => self
                .by_whop_plan
                .get(price_id)
                .map(|&i| (&self.plans[i], None)),
        }
    }

    /// The price to check out `plan` with at `provider`: the Stripe price of `interval`
    /// (monthly when `None`), or the plan's Whop plan id (Whop plans carry their own interval).
    pub fn price_for(
        &self,
        plan: &Plan,
        provider: Provider,
        interval: Option<Interval>,
    ) -> Option<PriceId> {
        match provider {
            Provider::Stripe => plan
                .stripe
                .as_ref()
                .and_then(|s| s.prices.get(&interval.unwrap_or(Interval::Month)).cloned()),
            Provider::Whop => plan.whop.as_ref().map(|w| w.plan_id.clone()),
        }
    }

    /// A paid plan by id (`None` for unknown ids and for `free`, which cannot be bought).
    pub fn paid_plan(&self, id: &str) -> Option<&Plan> {
        self.plan(id).filter(|p| p.id != FREE_PLAN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../infra/plans.toml");

    #[test]
    fn the_shipped_example_catalog_is_valid() {
        let c = Catalog::from_toml(EXAMPLE).expect("valid");
        assert_eq!(c.free().tier, 0);
        let (plan, interval) = c
            .by_price(Provider::Stripe, &"price_1TestProMonthly01".into())
            .expect("pro monthly");
        assert_eq!((plan.id.as_str(), interval), ("pro", Some(Interval::Month)));
        assert_eq!(
            c.by_price(Provider::Whop, &"plan_TestProMonthly".into())
                .map(|(p, _)| p.id.as_str()),
            Some("pro")
        );
        let team = c.paid_plan("team").expect("team");
        assert_eq!(
            c.price_for(team, Provider::Whop, None),
            Some("plan_TestTeamMonthly".into())
        );
        assert!(c.paid_plan("free").is_none());
        assert_eq!(c.plan("team").map(|p| p.tier), Some(2));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let bad = r#"
            [[plans]]
            id = "Pro!"
            name = "Pro"
            tier = 1
            stripe.prices.month = "price_same"
            [[plans]]
            id = "team"
            name = "Team"
            tier = 2
            stripe.prices.month = "price_same"
            metered.Exports = { limit = 5 }
            display.month = { amount = 900, currency = "USD" }
            [[plans]]
            id = "team"
            name = "Team again"
            tier = 3
        "#;
        let err = Catalog::from_toml(bad).expect_err("invalid");
        let text = err.to_string();
        for needle in [
            "metered feature \"Exports\"",
            "lowercase ISO 4217",
            "[a-z0-9_-]",
            "already used",
            "duplicate plan id",
            "needs a Stripe price",
            "no plan with id \"free\"",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_toml_are_errors() {
        assert!(Catalog::from_toml(
            "[[plans]]\nid = \"free\"\nname = \"Free\"\ntier = 0\ncolour = \"red\""
        )
        .is_err());
        assert!(Catalog::from_toml("plans = [").is_err());
    }
}
