//! The rate limiter (docs/architecture.md §5c): the configured rule table over the shared
//! counters of a [`RateLimiter`] store, and the failed-login throttle. Keys (IPs, emails, user
//! ids) are hashed before they reach the store, so the table holds no address in clear.

use super::one_time::hash_text;
use crate::clock::Clock;
use crate::domain::{LoginFailures, RateDecision, RateLimits, RateRule, Throttled};
use crate::store::{RateLimiter, StoreError};
use std::sync::Arc;

/// Counts requests against the rule table. Cheap to clone.
#[derive(Clone)]
pub struct Limiter {
    store: Arc<dyn RateLimiter>,
    rules: Arc<RateLimits>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

/// A counted rule's answer for one request: the decision (for the `RateLimit-*` headers) and
/// the instant it was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counted {
    /// The decision.
    pub decision: RateDecision,
    /// When it was made, Unix seconds.
    pub now: i64,
}

impl Counted {
    /// The refusal, if the request is over the limit.
    pub fn refusal(&self) -> Option<Throttled> {
        (!self.decision.allowed).then(|| Throttled {
            retry_after: self.decision.reset_after(self.now),
            limit: Some(self.decision.limit),
        })
    }
}

impl Limiter {
    /// A limiter applying `rules` to the counters in `store`.
    pub fn new(store: Arc<dyn RateLimiter>, rules: RateLimits, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            rules: Arc::new(rules),
            clock,
        }
    }

    /// The rule table.
    pub fn rules(&self) -> &RateLimits {
        &self.rules
    }

    /// Counts one request of `key` under rule `name`; `None` when the rule is off.
    ///
    /// # Errors
    /// [`StoreError`] when the counter cannot be reached. Callers fail open on it (a limiter
    /// outage must not stop sign-ins; the API Gateway throttle still holds) and log it.
    pub async fn count(
        &self,
        name: &'static str,
        key: &str,
    ) -> Result<Option<Counted>, StoreError> {
        let Some(rule) = self.rules.get(name) else {
            return Ok(None);
        };
        let now = self.clock.now();
        let decision = self.store.hit(name, &rule, &hash_text(key).0, now).await?;
        Ok(Some(Counted { decision, now }))
    }

    /// Counts one request of `key` under a rule given here rather than in the table (the
    /// authorizer's per-plan rate), failing open like [`Limiter::count_or_pass`].
    pub async fn count_rule(
        &self,
        name: &'static str,
        rule: &RateRule,
        key: &str,
    ) -> Option<Counted> {
        let now = self.clock.now();
        match self.store.hit(name, rule, &hash_text(key).0, now).await {
            Ok(decision) => Some(Counted { decision, now }),
            Err(e) => {
                tracing::warn!(rule = name, error = %crate::error::Chain(&e), "rate limiter unavailable; request let through");
                None
            }
        }
    }

    /// Like [`Limiter::count`], failing open: a store failure is logged and lets the request
    /// through uncounted.
    pub async fn count_or_pass(&self, name: &'static str, key: &str) -> Option<Counted> {
        match self.count(name, key).await {
            Ok(counted) => counted,
            Err(e) => {
                tracing::warn!(rule = name, error = %crate::error::Chain(&e), "rate limiter unavailable; request let through");
                None
            }
        }
    }

    /// How long a login for the normalized `email` must wait because of earlier failures
    /// (seconds), with the failures recorded.
    ///
    /// # Errors
    /// [`StoreError`] when the record cannot be read.
    pub async fn login_wait(
        &self,
        email: &str,
    ) -> Result<(Option<LoginFailures>, Option<i64>), StoreError> {
        let now = self.clock.now();
        let failures = self
            .store
            .login_failures(&hash_text(email).0)
            .await?
            .filter(|f| now - f.last_failed_at < crate::domain::limits::LOGIN_FAILURES_TTL_SECONDS);
        let wait = failures.and_then(|f| f.wait(now));
        Ok((failures, wait))
    }

    /// Records a failed login for the normalized `email`.
    ///
    /// # Errors
    /// [`StoreError`] when the record cannot be written.
    pub async fn login_failed(&self, email: &str) -> Result<LoginFailures, StoreError> {
        self.store
            .record_login_failure(&hash_text(email).0, self.clock.now())
            .await
    }

    /// Forgets the failed logins of the normalized `email` (a successful login).
    ///
    /// # Errors
    /// [`StoreError`] when the record cannot be deleted.
    pub async fn login_succeeded(&self, email: &str) -> Result<(), StoreError> {
        self.store.clear_login_failures(&hash_text(email).0).await
    }
}
