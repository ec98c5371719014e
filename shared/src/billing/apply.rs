//! The one place a provider's subscription state is applied to the store: read the stored
//! subscription → decide whether the fetched state should replace it → build the new record →
//! write it with a compare-and-swap on the stored version → on a lost swap, read again. The
//! webhook processor writes through the event ledger (the subscription, the payment and "event
//! processed" in one transaction), the checkout redirect sync directly; both go through
//! [`apply_provider_state`].

use super::notices::{notices, BillingChange};
use crate::domain::{
    should_replace, Catalog, ProviderSubscription, Subscription, SubscriptionWrite, UserId,
};
use crate::store::{BillingStore, Conflict, StoreError};
use async_trait::async_trait;

/// How many times a lost compare-and-swap is retried before giving up (each retry re-reads the
/// stored subscription, so it converges unless writers keep racing).
pub const APPLY_ROUNDS: usize = 5;

/// A provider's subscription state as fetched, with the time its fetch was *sent*, Unix
/// microseconds (see `Subscription::source_fetched_at_us` for why the send time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// The provider's state.
    pub state: ProviderSubscription,
    /// When the fetch was sent, Unix microseconds.
    pub sent_at_us: i64,
}

/// What applying did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The write went through (with a new subscription record, or — for an event — with only its
    /// other effects because the stored subscription was as new or newer).
    Written {
        /// Whether a new subscription record was part of it.
        subscription: bool,
    },
    /// The event had already taken effect (another processor won): nothing was written.
    AlreadyProcessed,
}

/// How one round's result is committed: the subscription write (`None` when the stored state
/// is as new or newer, or nothing was fetched), guarded by its expected version, together with
/// whatever else belongs in the same transaction — and the notices the change owes
/// ([`super::notices`]), decided from `previous` (the stored subscription the round read).
#[async_trait]
pub trait Commit: Send + Sync {
    /// Performs the write.
    ///
    /// # Errors
    /// [`Conflict::StaleVersion`] when the expected version moved (the loop reads again);
    /// [`Conflict::AlreadyProcessed`] when the cause already took effect; other store errors.
    async fn commit(
        &self,
        previous: Option<&Subscription>,
        write: Option<SubscriptionWrite>,
    ) -> Result<(), StoreError>;
}

/// Commits the subscription and its notices straight to the billing store (the checkout
/// redirect sync, a resync).
pub struct Direct<'a> {
    /// Where.
    pub store: &'a dyn BillingStore,
    /// The catalog (plan names in notices).
    pub catalog: &'a Catalog,
    /// When, Unix seconds.
    pub now: i64,
}

#[async_trait]
impl Commit for Direct<'_> {
    async fn commit(
        &self,
        previous: Option<&Subscription>,
        write: Option<SubscriptionWrite>,
    ) -> Result<(), StoreError> {
        let Some(w) = write else {
            return Ok(());
        };
        let change = BillingChange {
            user_id: w.subscription.user_id,
            previous,
            written: Some(&w.subscription),
            payment: None,
            credits: None,
            now: self.now,
        };
        self.store
            .put_subscription_with(&w, &notices(&change, self.catalog))
            .await
    }
}

/// Applies `fetched` (if any) to `user_id`'s stored subscription and commits through `commit`.
///
/// # Errors
/// The store's errors; [`Conflict::StaleVersion`] if the swap was lost [`APPLY_ROUNDS`] times
/// (retryable: someone keeps writing this subscription).
pub async fn apply_provider_state(
    store: &dyn BillingStore,
    catalog: &Catalog,
    user_id: UserId,
    fetched: Option<&Fetched>,
    commit: &dyn Commit,
) -> Result<Applied, StoreError> {
    for _ in 0..APPLY_ROUNDS {
        let stored = store.get_subscription(&user_id).await?;
        let next = fetched
            .filter(|f| should_replace(stored.as_ref(), &f.state, f.sent_at_us))
            .map(|f| SubscriptionWrite {
                subscription: Subscription::from_provider(
                    user_id,
                    &f.state,
                    stored.as_ref(),
                    catalog,
                    f.sent_at_us,
                ),
                expected_version: stored.as_ref().map(|s| s.version),
            });
        let subscription = next.is_some();
        match commit.commit(stored.as_ref(), next).await {
            Ok(()) => return Ok(Applied::Written { subscription }),
            Err(StoreError::Conflict(Conflict::AlreadyProcessed)) => {
                return Ok(Applied::AlreadyProcessed)
            }
            Err(StoreError::Conflict(Conflict::StaleVersion)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Conflict(Conflict::StaleVersion))
}
