//! The billing use cases (docs/architecture.md, "Billing"): [`Billing`] (checkout, portal,
//! the subscription with its redirect sync, cancel, resume, plan change), [`PlanAccess`] (what a
//! user may use now, for tokens and `/auth/me`), and the one apply loop ([`apply`]) shared with the
//! webhook processor. The rules themselves (state, access, catalog) are the domain's.

pub mod apply;
pub mod notices;
pub mod plans_push;
mod service;

pub use apply::{apply_provider_state, Applied, Commit, Direct, Fetched};
pub use service::{Billing, BillingError, BillingSettings, SubscriptionView};

use crate::domain::{access, Access, Catalog, UserId};
use crate::store::{BillingStore, StoreError};
use std::sync::Arc;

/// Reads a user's access now: the stored subscription through the access rule
/// (`crate::domain::access`, computed at read time, never by a sweep).
#[derive(Clone)]
pub struct PlanAccess {
    store: Arc<dyn BillingStore>,
    catalog: Arc<Catalog>,
    past_due_grace: i64,
}

impl std::fmt::Debug for PlanAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanAccess")
            .field("past_due_grace", &self.past_due_grace)
            .finish_non_exhaustive()
    }
}

impl PlanAccess {
    /// Access through `store` and `catalog`, keeping `past_due` subscriptions for
    /// `past_due_grace` seconds.
    pub fn new(store: Arc<dyn BillingStore>, catalog: Arc<Catalog>, past_due_grace: i64) -> Self {
        Self {
            store,
            catalog,
            past_due_grace,
        }
    }

    /// The plan, tier and entitlements `user_id` has at `now` (Unix seconds): `free` without a
    /// subscription that grants access.
    ///
    /// # Errors
    /// The store's, when the subscription cannot be read.
    pub async fn of(&self, user_id: &UserId, now: i64) -> Result<Access, StoreError> {
        let sub = self.store.get_subscription(user_id).await?;
        Ok(access(
            sub.as_ref(),
            &self.catalog,
            now,
            self.past_due_grace,
        ))
    }

    /// The catalog.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// The `past_due` grace, seconds.
    pub fn past_due_grace(&self) -> i64 {
        self.past_due_grace
    }
}
