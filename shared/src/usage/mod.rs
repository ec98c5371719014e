//! Usage metering (docs/architecture.md §5d): track a metered feature against the plan's limit
//! for the current period, exactly once per idempotency key, and report the counts. The period
//! and the limit are computed when read, from the subscription — like access — so a plan change
//! mid-period applies the new limit to the count so far. Features may cost credits
//! ([`credits`]): a track then spends them in the same atomic write as its count.

pub mod credits;

use crate::clock::Clock;
use crate::domain::{
    access, cause_spend, spend_cost, usage_period, Access, Catalog, CreditEntry, CreditKind,
    CreditSpend, Period, Subscription, UserId, ValidationError,
};
use crate::store::{BillingStore, Conflict, StoreError, TrackRequest, Tracked, UsageStore};
use credits::{Credits, CreditsPage};
use std::sync::Arc;

/// A user's plan and usage period at one moment.
#[derive(Clone, Debug)]
pub struct Standing {
    /// The plan and access now.
    pub access: Access,
    /// The period counts (and the credit allowance) belong to.
    pub period: Period,
    /// Now, Unix seconds.
    pub now: i64,
}

/// A plan's terms for one feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Terms {
    limit: Option<u64>,
    overage: bool,
    credits: u64,
    spend: CreditSpend,
}

/// Longest idempotency key, characters.
pub const IDEMPOTENCY_KEY_MAX: usize = 255;

/// Most units in one track.
pub const MAX_QUANTITY: u64 = 1_000_000;

/// One feature's count for a user in the current period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageReport {
    /// The metered feature.
    pub feature: String,
    /// Units counted this period.
    pub used: u64,
    /// The plan's limit per period (`None`: unlimited).
    pub limit: Option<u64>,
    /// Units left (`None`: unlimited).
    pub remaining: Option<u64>,
    /// Whether tracks past the limit are counted (overage) rather than refused.
    pub overage: bool,
    /// When the period ends and the count resets, Unix seconds.
    pub resets_at: i64,
    /// The plan the limit comes from.
    pub plan: String,
    /// Credits one unit costs (0: none).
    pub credits_per_unit: u64,
    /// When units cost credits.
    pub spend: CreditSpend,
    /// Credits this track spent (0 for reports and replays).
    pub credits_spent: u64,
    /// The balance after this track's spend (`None` when it spent nothing).
    pub credit_balance: Option<i64>,
}

/// Why a track or a report failed.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// The feature, quantity or idempotency key is invalid (422 `validation_failed`); an
    /// unknown feature is one no plan of the catalog meters.
    #[error("invalid usage request")]
    Invalid(Vec<ValidationError>),
    /// The plan's limit for this period is reached; nothing was counted (402
    /// `usage_limit_reached`, with the counts).
    #[error("usage limit reached")]
    LimitReached(Box<UsageReport>),
    /// The idempotency key was used for another feature or quantity (422
    /// `idempotency_key_reused`).
    #[error("idempotency key reused with other parameters")]
    IdempotencyMismatch,
    /// The track costs credits the balance does not cover; nothing was counted or spent (402
    /// `insufficient_credits`, with the counts, the cost and the balance).
    #[error("insufficient credits")]
    InsufficientCredits {
        /// The counts as they stand.
        report: Box<UsageReport>,
        /// Credits the track costs.
        cost: u64,
        /// The balance, credits.
        balance: i64,
    },
    /// The store failed (503 when retryable, else 500).
    #[error("usage store failed")]
    Store(#[from] StoreError),
}

/// The usage use cases. Cheap to clone.
#[derive(Clone)]
pub struct Usage {
    store: Arc<dyn UsageStore>,
    billing: Arc<dyn BillingStore>,
    catalog: Arc<Catalog>,
    clock: Arc<dyn Clock>,
    past_due_grace: i64,
    credits: Credits,
}

impl std::fmt::Debug for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Usage").finish_non_exhaustive()
    }
}

fn invalid(field: &'static str, message: &str) -> UsageError {
    UsageError::Invalid(vec![ValidationError {
        field,
        message: message.to_owned(),
    }])
}

impl Usage {
    /// The use cases over these stores and the catalog; credits are spent through `credits`.
    pub fn new(
        store: Arc<dyn UsageStore>,
        billing: Arc<dyn BillingStore>,
        catalog: Arc<Catalog>,
        clock: Arc<dyn Clock>,
        past_due_grace: i64,
        credits: Credits,
    ) -> Self {
        Self {
            store,
            billing,
            catalog,
            clock,
            past_due_grace,
            credits,
        }
    }

    /// The user's access now and the period counts belong to: the paid subscription's billing
    /// period while it grants access, else the calendar month.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn standing(&self, user_id: &UserId) -> Result<Standing, StoreError> {
        let now = self.clock.now();
        let sub: Option<Subscription> = self.billing.get_subscription(user_id).await?;
        let access = access(sub.as_ref(), &self.catalog, now, self.past_due_grace);
        let paid = sub
            .as_ref()
            .filter(|_| access.has_access)
            .and_then(|s| Some((s.current_period_end?, s.interval?)));
        Ok(Standing {
            access,
            period: usage_period(paid, now),
            now,
        })
    }

    /// The credit use cases.
    pub fn credits(&self) -> &Credits {
        &self.credits
    }

    /// The plan's monthly credit allowance.
    fn allowance(&self, access: &Access) -> u64 {
        self.catalog
            .plan(&access.plan)
            .map_or(0, |p| p.monthly_credits)
    }

    /// The user's balance and a page of their credit ledger, after granting this period's
    /// allowance if it is due.
    ///
    /// # Errors
    /// `Store`.
    pub async fn credit_page(
        &self,
        user_id: &UserId,
        before: Option<&str>,
        limit: usize,
    ) -> Result<CreditsPage, UsageError> {
        let standing = self.standing(user_id).await?;
        self.credits
            .ensure_allowance(user_id, &standing, self.allowance(&standing.access))
            .await?;
        Ok(self.credits.page(user_id, before, limit).await?)
    }

    /// The plan's terms for `feature`; a feature the catalog meters but this plan does not has
    /// a limit of 0.
    fn terms(&self, access: &Access, feature: &str) -> Result<Terms, UsageError> {
        // On every track: a scan of the few plans' maps, not the sorted list `GET /usage` builds.
        if !self
            .catalog
            .plans()
            .iter()
            .any(|p| p.metered.contains_key(feature))
        {
            return Err(invalid("feature", "no plan meters this feature"));
        }
        Ok(self
            .catalog
            .plan(&access.plan)
            .and_then(|p| p.metered.get(feature))
            .map_or(
                Terms {
                    limit: Some(0),
                    overage: false,
                    credits: 0,
                    spend: CreditSpend::BeyondLimit,
                },
                |m| Terms {
                    limit: m.limit.units(),
                    overage: m.overage,
                    credits: m.credits,
                    spend: m.spend,
                },
            ))
    }

    fn report(feature: &str, used: u64, terms: Terms, period: Period, plan: &str) -> UsageReport {
        UsageReport {
            feature: feature.to_owned(),
            used,
            limit: terms.limit,
            remaining: terms.limit.map(|l| l.saturating_sub(used)),
            overage: terms.overage,
            resets_at: period.end,
            plan: plan.to_owned(),
            credits_per_unit: terms.credits,
            spend: terms.spend,
            credits_spent: 0,
            credit_balance: None,
        }
    }

    /// Counts `quantity` units of `feature` for the user, once per `idempotency_key` (a retry
    /// answers the count without counting again), never past the plan's limit unless the
    /// feature allows overage. A feature that costs credits spends `quantity × credits` in the
    /// same atomic write — on every track (`spend = "always"`), or when the track does not fit
    /// the period's remaining allowance (then it is counted past the limit, paid in credits; a
    /// track is paid wholly one way). The plan's monthly credit allowance is granted first if
    /// due. Returns the counts after it and whether it was a replay.
    ///
    /// # Errors
    /// `Invalid` (unknown feature, quantity not 1..=1,000,000, key not 1–255 printable ASCII
    /// characters), `LimitReached`, `InsufficientCredits`, `IdempotencyMismatch`, `Store`.
    pub async fn track(
        &self,
        user_id: &UserId,
        feature: &str,
        quantity: u64,
        idempotency_key: &str,
    ) -> Result<(UsageReport, bool), UsageError> {
        if !(1..=MAX_QUANTITY).contains(&quantity) {
            return Err(invalid("quantity", "must be 1 to 1000000"));
        }
        let key_ok = !idempotency_key.is_empty()
            && idempotency_key.len() <= IDEMPOTENCY_KEY_MAX
            && idempotency_key.bytes().all(|b| b.is_ascii_graphic());
        if !key_ok {
            return Err(invalid(
                "idempotency_key",
                "must be 1 to 255 printable ASCII characters without spaces",
            ));
        }
        let standing = self.standing(user_id).await?;
        let terms = self.terms(&standing.access, feature)?;
        let ceiling = if terms.overage { None } else { terms.limit };
        let report =
            |used| Self::report(feature, used, terms, standing.period, &standing.access.plan);
        let request = TrackRequest {
            user_id: *user_id,
            feature,
            period: standing.period,
            quantity,
            ceiling,
            idempotency_key,
            spend: None,
            now: standing.now,
        };
        let spends_now = terms.credits > 0 && terms.spend == CreditSpend::Always;
        if !spends_now {
            match self.tracked(&request).await? {
                Tracked::Counted { used } => return Ok((report(used), false)),
                Tracked::Replayed { used } => return Ok((report(used), true)),
                Tracked::LimitReached { used } if terms.credits == 0 => {
                    return Err(UsageError::LimitReached(Box::new(report(used))))
                }
                // Past the allowance: the track is paid in credits below, counted past the limit.
                Tracked::LimitReached { .. } | Tracked::InsufficientCredits { .. } => {}
            }
        }
        let cost = spend_cost(quantity, terms.credits)
            .ok_or_else(|| invalid("quantity", "costs more credits than a balance can hold"))?;
        self.credits
            .ensure_allowance(user_id, &standing, self.allowance(&standing.access))
            .await?;
        let mut entry = CreditEntry::new(
            *user_id,
            cause_spend(user_id, idempotency_key),
            CreditKind::Spend,
            -cost,
            standing.now,
        );
        entry.feature = Some(feature.to_owned());
        entry.quantity = Some(quantity);
        let spend = self.credits.write(entry, true);
        let request = TrackRequest {
            ceiling: if spends_now { ceiling } else { None },
            spend: Some(&spend),
            ..request
        };
        let cost_units = cost.unsigned_abs();
        match self.tracked(&request).await? {
            Tracked::Counted { used } => {
                let balance = self.credits.balance(user_id).await?;
                let mut r = report(used);
                r.credits_spent = cost_units;
                r.credit_balance = Some(balance);
                Ok((r, false))
            }
            Tracked::Replayed { used } => Ok((report(used), true)),
            Tracked::LimitReached { used } => Err(UsageError::LimitReached(Box::new(report(used)))),
            Tracked::InsufficientCredits { used, balance } => {
                Err(UsageError::InsufficientCredits {
                    report: Box::new(report(used)),
                    cost: cost_units,
                    balance,
                })
            }
        }
    }

    async fn tracked(&self, request: &TrackRequest<'_>) -> Result<Tracked, UsageError> {
        self.store.track(request).await.map_err(|e| match e {
            StoreError::Conflict(Conflict::IdempotencyMismatch) => UsageError::IdempotencyMismatch,
            other => UsageError::Store(other),
        })
    }

    /// The user's counts this period: of `feature`, or of every feature the catalog meters.
    ///
    /// # Errors
    /// `Invalid` (unknown feature), `Store`.
    pub async fn usage(
        &self,
        user_id: &UserId,
        feature: Option<&str>,
    ) -> Result<Vec<UsageReport>, UsageError> {
        let standing = self.standing(user_id).await?;
        let (access, period) = (&standing.access, standing.period);
        let features: Vec<String> = match feature {
            Some(f) => vec![f.to_owned()],
            None => self
                .catalog
                .metered_features()
                .into_iter()
                .map(str::to_owned)
                .collect(),
        };
        let mut reports = Vec::with_capacity(features.len());
        for feature in &features {
            let terms = self.terms(access, feature)?;
            let used = self.store.used(user_id, feature, period.start).await?;
            reports.push(Self::report(feature, used, terms, period, &access.plan));
        }
        Ok(reports)
    }
}
