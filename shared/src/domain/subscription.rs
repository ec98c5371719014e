//! The provider-neutral subscription state, the status mapping tables for Stripe and Whop, the
//! rule that keeps an older provider state from replacing a newer one, and access computed at read
//! time (docs/architecture.md, "Billing"). Pure: no I/O, time passed in as Unix seconds.

use super::catalog::{Catalog, Entitlement, Interval, Plan, FREE_PLAN};
use super::ids::{CustomerId, PriceId, Provider, SubscriptionId, UserId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Default grace period for `past_due` subscriptions: 7 days, in seconds (docs/architecture.md §6).
pub const DEFAULT_PAST_DUE_GRACE_SECONDS: i64 = 7 * 24 * 3600;

/// Provider-neutral subscription status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    /// In a free trial: grants access.
    Trialing,
    /// Paid and current: grants access.
    Active,
    /// A renewal payment failed: grants access for the grace period after `past_due_since`.
    PastDue,
    /// Ended: no access.
    Canceled,
    /// Created, first payment not made: no access.
    Incomplete,
    /// Never completed, or ended for non-payment: no access.
    Expired,
    /// Paused by the merchant or customer: no access.
    Paused,
}

impl SubscriptionStatus {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trialing => "trialing",
            Self::Active => "active",
            Self::PastDue => "past_due",
            Self::Canceled => "canceled",
            Self::Incomplete => "incomplete",
            Self::Expired => "expired",
            Self::Paused => "paused",
        }
    }

    /// Stripe's `subscription.status` (docs.stripe.com/api/subscriptions/object#subscription_object-status).
    /// `unpaid` (retries exhausted, invoices left open) maps to `expired`: it grants nothing.
    /// Unknown values map to `None` (the caller keeps the stored state and logs).
    pub fn from_stripe(status: &str) -> Option<Self> {
        Some(match status {
            "trialing" => Self::Trialing,
            "active" => Self::Active,
            "past_due" => Self::PastDue,
            "canceled" => Self::Canceled,
            "incomplete" => Self::Incomplete,
            "incomplete_expired" | "unpaid" => Self::Expired,
            "paused" => Self::Paused,
            _ => return None,
        })
    }

    /// Whop's membership `status` (`Membership` in whopio/whopsdk-typescript `shared.ts`).
    /// `canceling` is an active membership set to cancel at period end (the caller also sets
    /// `cancel_at_period_end`); `completed` (a finished fixed-term access) and `expired` grant
    /// nothing; `unresolved` (an open dispute or failed renewal) is treated as `past_due`;
    /// `drafted` is an unfinished checkout.
    pub fn from_whop(status: &str) -> Option<Self> {
        Some(match status {
            "trialing" => Self::Trialing,
            "active" | "canceling" => Self::Active,
            "past_due" | "unresolved" => Self::PastDue,
            "canceled" => Self::Canceled,
            "completed" | "expired" => Self::Expired,
            "drafted" => Self::Incomplete,
            _ => return None,
        })
    }
}

/// A provider's current view of one subscription, fetched from its API (never taken from a
/// webhook payload as-is). Times are Unix seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderSubscription {
    /// Provider.
    pub provider: Provider,
    /// Provider subscription / membership id.
    pub subscription_id: SubscriptionId,
    /// Provider customer id (Stripe `cus_…`; Whop member id); `None` when the provider object
    /// names none.
    pub customer_id: Option<CustomerId>,
    /// Our user id from the provider object's metadata, if present.
    pub user_id: Option<UserId>,
    /// Neutral status.
    pub status: SubscriptionStatus,
    /// Stripe price id or Whop plan id of the (first) item.
    pub price_id: PriceId,
    /// End of the current billing period.
    pub current_period_end: Option<i64>,
    /// Set to end at period end.
    pub cancel_at_period_end: bool,
    /// End of the trial.
    pub trial_end: Option<i64>,
}

/// The stored subscription of a user (`USER#<id>` / `SUBSCRIPTION`). Times are Unix seconds,
/// except `source_fetched_at_us` (microseconds).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// Owner.
    pub user_id: UserId,
    /// Provider.
    pub provider: Provider,
    /// Provider subscription / membership id.
    pub subscription_id: SubscriptionId,
    /// Provider customer id, if the provider has one for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<CustomerId>,
    /// Plan id from the catalog (`free` if the price is unknown to the catalog).
    pub plan: String,
    /// Interval of the Stripe price, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
    /// The provider's price / plan id.
    pub price_id: PriceId,
    /// Neutral status.
    pub status: SubscriptionStatus,
    /// End of the current period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_period_end: Option<i64>,
    /// Ends at period end.
    pub cancel_at_period_end: bool,
    /// End of the trial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_end: Option<i64>,
    /// When the subscription was first seen `past_due` in its current spell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub past_due_since: Option<i64>,
    /// When the fetch of the provider state this record holds was *sent*, Unix **microseconds**:
    /// the guard that keeps an older provider state from overwriting a newer one. The send time,
    /// not the arrival time: a state observed before the provider's last change was requested
    /// before that change, while the fetch prompted by that change's event is sent after it — so
    /// by send time the final state always wins, however slow the responses.
    pub source_fetched_at_us: i64,
    /// Optimistic version, starting at 1.
    pub version: u64,
    /// Last write, Unix seconds.
    pub updated_at: i64,
}

impl Subscription {
    /// The stored record after applying a freshly fetched provider state (its fetch sent at
    /// `fetched_at_us`, Unix microseconds), for `user_id`, given the previously stored record.
    ///
    /// `past_due_since` starts when the status first becomes `past_due` and is kept while it
    /// stays so; any other status clears it.
    pub fn from_provider(
        user_id: UserId,
        fetched: &ProviderSubscription,
        previous: Option<&Subscription>,
        catalog: &Catalog,
        fetched_at_us: i64,
    ) -> Self {
        let now = fetched_at_us.div_euclid(1_000_000);
        let (plan, interval) = match catalog.by_price(fetched.provider, &fetched.price_id) {
            Some((p, interval)) => (Some(p.id.clone()), interval),
            None => (None, None),
        };
        let plan = plan.unwrap_or_else(|| {
            tracing::warn!(price_id = %fetched.price_id, "price not in the plan catalog: treated as free");
            FREE_PLAN.to_owned()
        });
        let same_subscription = previous.filter(|p| p.subscription_id == fetched.subscription_id);
        let past_due_since = match fetched.status {
            SubscriptionStatus::PastDue => Some(
                same_subscription
                    .and_then(|p| p.past_due_since)
                    .unwrap_or(now),
            ),
            _ => None,
        };
        Self {
            user_id,
            provider: fetched.provider,
            subscription_id: fetched.subscription_id.clone(),
            customer_id: fetched.customer_id.clone(),
            plan,
            interval,
            price_id: fetched.price_id.clone(),
            status: fetched.status,
            current_period_end: fetched.current_period_end,
            cancel_at_period_end: fetched.cancel_at_period_end,
            trial_end: fetched.trial_end,
            past_due_since,
            source_fetched_at_us: fetched_at_us,
            version: previous.map(|p| p.version + 1).unwrap_or(1),
            updated_at: now,
        }
    }
}

/// Whether a freshly fetched provider state (its fetch sent at `fetched_at_us`) should replace the
/// stored subscription:
/// - the same subscription: only if fetched later than the stored state (an older provider state
///   never overwrites a newer one, whatever order events arrive in);
/// - another subscription of the same user: only if it is live (`trialing`, `active`,
///   `past_due`), or the stored one is not live and this state is newer — so a late event about
///   an old, ended subscription cannot replace a new live one.
pub fn should_replace(
    stored: Option<&Subscription>,
    fetched: &ProviderSubscription,
    fetched_at_us: i64,
) -> bool {
    let Some(stored) = stored else { return true };
    let newer = fetched_at_us > stored.source_fetched_at_us;
    if stored.subscription_id == fetched.subscription_id && stored.provider == fetched.provider {
        return newer;
    }
    let live = |s: SubscriptionStatus| {
        matches!(
            s,
            SubscriptionStatus::Trialing | SubscriptionStatus::Active | SubscriptionStatus::PastDue
        )
    };
    live(fetched.status) || (!live(stored.status) && newer)
}

/// Whether, and until when, a subscription grants its plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Access {
    /// The plan in effect (`free` without access).
    pub plan: String,
    /// Whether the paid plan is accessible now.
    pub has_access: bool,
    /// Tier rank of `plan`.
    pub tier: u32,
    /// Entitlements of `plan`.
    pub entitlements: BTreeMap<String, Entitlement>,
    /// For `past_due`: when access ends unless payment recovers.
    pub grace_until: Option<i64>,
}

/// Computes access at `now` (docs/architecture.md §6: never by a sweep): `active`/`trialing` grant — but a
/// subscription set to cancel at period end only until the period ends; `past_due` grants until
/// `past_due_since + grace`; everything else falls back to `free`.
pub fn access(
    subscription: Option<&Subscription>,
    catalog: &Catalog,
    now: i64,
    past_due_grace: i64,
) -> Access {
    let free = || of_plan(catalog.free(), false, None);
    let Some(sub) = subscription else {
        return free();
    };
    let Some(plan) = catalog.plan(&sub.plan) else {
        return free();
    };
    let period_open = sub.current_period_end.is_none_or(|end| now < end);
    match sub.status {
        SubscriptionStatus::Active | SubscriptionStatus::Trialing => {
            if sub.cancel_at_period_end && !period_open {
                free()
            } else {
                of_plan(plan, true, None)
            }
        }
        SubscriptionStatus::PastDue => {
            let until = sub
                .past_due_since
                .unwrap_or(sub.updated_at)
                .saturating_add(past_due_grace);
            if now < until {
                of_plan(plan, true, Some(until))
            } else {
                Access {
                    grace_until: Some(until),
                    ..free()
                }
            }
        }
        _ => free(),
    }
}

fn of_plan(plan: &Plan, has_access: bool, grace_until: Option<i64>) -> Access {
    Access {
        plan: plan.id.clone(),
        has_access: has_access && plan.id != FREE_PLAN,
        tier: plan.tier,
        entitlements: plan.entitlements.clone(),
        grace_until,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::from_toml(include_str!("../../../infra/plans.toml")).expect("catalog")
    }

    fn fetched(status: SubscriptionStatus) -> ProviderSubscription {
        ProviderSubscription {
            provider: Provider::Stripe,
            subscription_id: "sub_1".into(),
            customer_id: Some("cus_1".into()),
            user_id: None,
            status,
            price_id: "price_1TestProMonthly01".into(),
            current_period_end: Some(2_000),
            cancel_at_period_end: false,
            trial_end: None,
        }
    }

    #[test]
    fn stripe_and_whop_statuses_map_exhaustively() {
        for (s, want) in [
            ("trialing", "trialing"),
            ("active", "active"),
            ("past_due", "past_due"),
            ("canceled", "canceled"),
            ("incomplete", "incomplete"),
            ("incomplete_expired", "expired"),
            ("unpaid", "expired"),
            ("paused", "paused"),
        ] {
            assert_eq!(
                SubscriptionStatus::from_stripe(s).map(|x| x.as_str()),
                Some(want),
                "stripe {s}"
            );
        }
        for (s, want) in [
            ("trialing", "trialing"),
            ("active", "active"),
            ("canceling", "active"),
            ("past_due", "past_due"),
            ("unresolved", "past_due"),
            ("canceled", "canceled"),
            ("completed", "expired"),
            ("expired", "expired"),
            ("drafted", "incomplete"),
        ] {
            assert_eq!(
                SubscriptionStatus::from_whop(s).map(|x| x.as_str()),
                Some(want),
                "whop {s}"
            );
        }
        assert_eq!(SubscriptionStatus::from_stripe("bogus"), None);
    }

    #[test]
    fn active_grants_the_plan_and_its_entitlements() {
        let c = catalog();
        let sub = Subscription::from_provider(
            UserId::new(),
            &fetched(SubscriptionStatus::Active),
            None,
            &c,
            1_000_000,
        );
        let a = access(Some(&sub), &c, 1_000, DEFAULT_PAST_DUE_GRACE_SECONDS);
        assert!(a.has_access);
        assert_eq!((a.plan.as_str(), a.tier), ("pro", 1));
        assert_eq!(
            a.entitlements.get("api_access"),
            Some(&Entitlement::Flag(true))
        );
        assert_eq!(access(None, &c, 0, 0).plan, "free");
    }

    #[test]
    fn cancel_at_period_end_keeps_access_until_the_period_ends() {
        let c = catalog();
        let mut f = fetched(SubscriptionStatus::Active);
        f.cancel_at_period_end = true;
        let sub = Subscription::from_provider(UserId::new(), &f, None, &c, 1_000_000_000);
        assert!(access(Some(&sub), &c, 1_999, 0).has_access);
        assert!(!access(Some(&sub), &c, 2_000, 0).has_access);
    }

    #[test]
    fn past_due_grants_for_the_grace_period_from_its_first_sighting() {
        let c = catalog();
        let first = Subscription::from_provider(
            UserId::new(),
            &fetched(SubscriptionStatus::PastDue),
            None,
            &c,
            10_000_000_000,
        );
        assert_eq!(first.past_due_since, Some(10_000));
        // Seen again later: the spell keeps its start.
        let again = Subscription::from_provider(
            first.user_id,
            &fetched(SubscriptionStatus::PastDue),
            Some(&first),
            &c,
            50_000_000_000,
        );
        assert_eq!(again.past_due_since, Some(10_000));
        let a = access(Some(&again), &c, 10_000 + 99, 100);
        assert!(a.has_access);
        assert_eq!(a.grace_until, Some(10_100));
        assert!(!access(Some(&again), &c, 10_100, 100).has_access);
        // Recovery clears it.
        let recovered = Subscription::from_provider(
            first.user_id,
            &fetched(SubscriptionStatus::Active),
            Some(&again),
            &c,
            60_000_000_000,
        );
        assert_eq!(recovered.past_due_since, None);
        assert_eq!(recovered.version, 3);
    }

    #[test]
    fn ended_and_unknown_states_fall_back_to_free() {
        let c = catalog();
        for status in [
            SubscriptionStatus::Canceled,
            SubscriptionStatus::Incomplete,
            SubscriptionStatus::Expired,
            SubscriptionStatus::Paused,
        ] {
            let sub = Subscription::from_provider(
                UserId::new(),
                &fetched(status),
                None,
                &c,
                1_000_000_000,
            );
            let a = access(Some(&sub), &c, 1_000, DEFAULT_PAST_DUE_GRACE_SECONDS);
            assert_eq!(
                (a.plan.as_str(), a.has_access),
                ("free", false),
                "{status:?}"
            );
        }
        let mut unknown_price = fetched(SubscriptionStatus::Active);
        unknown_price.price_id = "price_not_in_catalog".into();
        let sub =
            Subscription::from_provider(UserId::new(), &unknown_price, None, &c, 1_000_000_000);
        assert_eq!(access(Some(&sub), &c, 1_000, 0).plan, "free");
    }

    #[test]
    fn older_states_never_overwrite_newer_ones() {
        let c = catalog();
        let stored = Subscription::from_provider(
            UserId::new(),
            &fetched(SubscriptionStatus::Active),
            None,
            &c,
            5_000,
        );
        assert!(should_replace(
            None,
            &fetched(SubscriptionStatus::Canceled),
            1
        ));
        assert!(!should_replace(
            Some(&stored),
            &fetched(SubscriptionStatus::Canceled),
            4_999
        ));
        assert!(!should_replace(
            Some(&stored),
            &fetched(SubscriptionStatus::Canceled),
            5_000
        ));
        assert!(should_replace(
            Some(&stored),
            &fetched(SubscriptionStatus::Canceled),
            5_001
        ));
    }

    #[test]
    fn a_late_event_of_an_ended_subscription_does_not_replace_a_live_one() {
        let c = catalog();
        let live = Subscription::from_provider(
            UserId::new(),
            &fetched(SubscriptionStatus::Active),
            None,
            &c,
            5_000,
        );
        let mut old = fetched(SubscriptionStatus::Canceled);
        old.subscription_id = "sub_old".into();
        assert!(!should_replace(Some(&live), &old, 9_000));
        let mut new_live = fetched(SubscriptionStatus::Trialing);
        new_live.subscription_id = "sub_new".into();
        let dead = Subscription::from_provider(live.user_id, &old, None, &c, 5_000);
        assert!(
            should_replace(Some(&dead), &new_live, 1_000),
            "a live subscription replaces an ended one"
        );
    }

    #[test]
    fn whop_plans_map_through_the_catalog() {
        let c = catalog();
        let mut f = fetched(SubscriptionStatus::Active);
        f.provider = Provider::Whop;
        f.price_id = "plan_TestTeamMonthly".into();
        let sub = Subscription::from_provider(UserId::new(), &f, None, &c, 1_000_000_000);
        assert_eq!(sub.plan, "team");
    }
}
