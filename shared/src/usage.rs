//! Usage metering (docs/architecture.md §5d): track a metered feature against the plan's limit
//! for the current period, exactly once per idempotency key, and report the counts. The period
//! and the limit are computed when read, from the subscription — like access — so a plan change
//! mid-period applies the new limit to the count so far.

use crate::clock::Clock;
use crate::domain::{
    access, usage_period, Access, Catalog, Period, Subscription, UserId, ValidationError,
};
use crate::store::{BillingStore, Conflict, StoreError, TrackRequest, Tracked, UsageStore};
use std::sync::Arc;

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
    LimitReached(UsageReport),
    /// The idempotency key was used for another feature or quantity (422
    /// `idempotency_key_reused`).
    #[error("idempotency key reused with other parameters")]
    IdempotencyMismatch,
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
    /// The use cases over these stores and the catalog.
    pub fn new(
        store: Arc<dyn UsageStore>,
        billing: Arc<dyn BillingStore>,
        catalog: Arc<Catalog>,
        clock: Arc<dyn Clock>,
        past_due_grace: i64,
    ) -> Self {
        Self {
            store,
            billing,
            catalog,
            clock,
            past_due_grace,
        }
    }

    /// The user's access now and the period counts belong to: the paid subscription's billing
    /// period while it grants access, else the calendar month.
    async fn now_for(&self, user_id: &UserId) -> Result<(Access, Period, i64), UsageError> {
        let now = self.clock.now();
        let sub: Option<Subscription> = self.billing.get_subscription(user_id).await?;
        let access = access(sub.as_ref(), &self.catalog, now, self.past_due_grace);
        let paid = sub
            .as_ref()
            .filter(|_| access.has_access)
            .and_then(|s| Some((s.current_period_end?, s.interval?)));
        Ok((access, usage_period(paid, now), now))
    }

    /// The plan's terms for `feature`: `(limit, overage)`; a feature the catalog meters but this
    /// plan does not has a limit of 0.
    fn terms(&self, access: &Access, feature: &str) -> Result<(Option<u64>, bool), UsageError> {
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
            .map_or((Some(0), false), |m| (m.limit.units(), m.overage)))
    }

    fn report(
        feature: &str,
        used: u64,
        terms: (Option<u64>, bool),
        period: Period,
        plan: &str,
    ) -> UsageReport {
        UsageReport {
            feature: feature.to_owned(),
            used,
            limit: terms.0,
            remaining: terms.0.map(|l| l.saturating_sub(used)),
            overage: terms.1,
            resets_at: period.end,
            plan: plan.to_owned(),
        }
    }

    /// Counts `quantity` units of `feature` for the user, once per `idempotency_key` (a retry
    /// answers the count without counting again), never past the plan's limit unless the
    /// feature allows overage. Returns the counts after it and whether it was a replay.
    ///
    /// # Errors
    /// `Invalid` (unknown feature, quantity not 1..=1,000,000, key not 1–255 printable ASCII
    /// characters), `LimitReached`, `IdempotencyMismatch`, `Store`.
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
        let (access, period, now) = self.now_for(user_id).await?;
        let terms = self.terms(&access, feature)?;
        let ceiling = if terms.1 { None } else { terms.0 };
        let tracked = self
            .store
            .track(&TrackRequest {
                user_id: *user_id,
                feature,
                period,
                quantity,
                ceiling,
                idempotency_key,
                now,
            })
            .await
            .map_err(|e| match e {
                StoreError::Conflict(Conflict::IdempotencyMismatch) => {
                    UsageError::IdempotencyMismatch
                }
                other => UsageError::Store(other),
            })?;
        match tracked {
            Tracked::Counted { used } => Ok((
                Self::report(feature, used, terms, period, &access.plan),
                false,
            )),
            Tracked::Replayed { used } => Ok((
                Self::report(feature, used, terms, period, &access.plan),
                true,
            )),
            Tracked::LimitReached { used } => Err(UsageError::LimitReached(Self::report(
                feature,
                used,
                terms,
                period,
                &access.plan,
            ))),
        }
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
        let (access, period, _) = self.now_for(user_id).await?;
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
            let terms = self.terms(&access, feature)?;
            let used = self.store.used(user_id, feature, period.start).await?;
            reports.push(Self::report(feature, used, terms, period, &access.plan));
        }
        Ok(reports)
    }
}
