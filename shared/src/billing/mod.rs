//! Billing: the plan catalog and the provider-neutral subscription state with access computed
//! at read time (DESIGN §6).

pub mod catalog;
pub mod records;
pub mod service;
pub mod state;

pub use catalog::{Catalog, CatalogError, Entitlement, Interval, Plan, Proration, FREE_PLAN};
pub use service::{Billing, BillingError, BillingSettings, SubscriptionView};
pub use state::{
    access, Access, Provider, ProviderSubscription, Subscription, SubscriptionStatus,
    DEFAULT_PAST_DUE_GRACE_SECONDS,
};
