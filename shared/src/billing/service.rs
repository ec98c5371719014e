//! The billing use cases: [`Billing::create_checkout`], [`Billing::create_portal`],
//! [`Billing::subscription`] (with the checkout redirect sync), [`Billing::cancel`],
//! [`Billing::resume`], [`Billing::change_plan`]. Function crates call these and only map input
//! and output.

use super::catalog::{Catalog, Interval};
use super::state::{access, should_replace, Access, Provider, Subscription};
use crate::clock::Clock;
use crate::domain::{User, UserId};
use crate::payments::{CheckoutRequest, ProviderError, Providers};
use crate::store::{BillingStore, StoreError, UserStore};
use std::sync::Arc;

/// Billing settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillingSettings {
    /// Where providers send the buyer after paying (`{CHECKOUT_SESSION_ID}` is replaced by
    /// Stripe).
    pub success_url: String,
    /// Where providers send the buyer on cancel.
    pub cancel_url: String,
    /// Where the billing portal returns to.
    pub portal_return_url: String,
    /// `past_due` grace, seconds.
    pub past_due_grace: i64,
}

/// Why a billing operation failed. The HTTP edge maps each case to one status and `code`.
#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    /// Unknown plan or interval (422 `validation_failed`).
    #[error("{0}")]
    Invalid(String),
    /// The provider is not configured (503 `provider_not_configured`).
    #[error("{0} is not configured")]
    NotConfigured(&'static str),
    /// The user already has access to a paid plan (409 `subscription_exists`).
    #[error("the user already has an active subscription")]
    SubscriptionExists,
    /// The user has no subscription to act on (404 `no_subscription`).
    #[error("the user has no subscription")]
    NoSubscription,
    /// The user does not exist any more (401 `invalid_token`).
    #[error("unknown user")]
    UnknownUser,
    /// The provider refused (502 `provider_error`).
    #[error("provider error: {0}")]
    Provider(String),
    /// A dependency is unavailable (503 `unavailable`).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Anything else (500 `internal`).
    #[error("internal: {0}")]
    Internal(String),
}

impl From<StoreError> for BillingError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => Self::Unavailable(m),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<ProviderError> for BillingError {
    fn from(e: ProviderError) -> Self {
        match e {
            ProviderError::Unavailable(m) => Self::Unavailable(m),
            ProviderError::NotFound => Self::Provider("not found at the provider".into()),
            ProviderError::Rejected(m) => Self::Provider(m),
        }
    }
}

/// The provider a checkout session id belongs to, by its prefix: the dev server's local provider
/// `cs_local_…`, Stripe `cs_…` (docs.stripe.com/api/checkout/sessions/object), Whop checkout
/// configurations `ch_…`.
fn provider_of_session(session_id: &str) -> Provider {
    if session_id.starts_with("cs_local_") {
        Provider::Local
    } else if session_id.starts_with("ch_") {
        Provider::Whop
    } else {
        Provider::Stripe
    }
}

/// A user's billing state as the API returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct SubscriptionView {
    /// The stored subscription, if any.
    pub subscription: Option<Subscription>,
    /// Access computed now.
    pub access: Access,
}

/// The billing service.
pub struct Billing {
    users: Arc<dyn UserStore>,
    store: Arc<dyn BillingStore>,
    providers: Providers,
    catalog: Arc<Catalog>,
    clock: Arc<dyn Clock>,
    settings: BillingSettings,
}

impl std::fmt::Debug for Billing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Billing")
            .field("providers", &self.providers)
            .finish_non_exhaustive()
    }
}

impl Billing {
    /// Wires the service.
    pub fn new(
        users: Arc<dyn UserStore>,
        store: Arc<dyn BillingStore>,
        providers: Providers,
        catalog: Arc<Catalog>,
        clock: Arc<dyn Clock>,
        settings: BillingSettings,
    ) -> Self {
        Self {
            users,
            store,
            providers,
            catalog,
            clock,
            settings,
        }
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The configured providers.
    pub fn providers(&self) -> &Providers {
        &self.providers
    }

    /// Access of a user now (for tokens and `/auth/me`).
    ///
    /// # Errors
    /// [`BillingError::Unavailable`] / `Internal` on store failure.
    pub async fn access_of(&self, user_id: &UserId) -> Result<Access, BillingError> {
        let sub = self.store.get_subscription(user_id).await?;
        Ok(access(
            sub.as_ref(),
            &self.catalog,
            self.clock.now(),
            self.settings.past_due_grace,
        ))
    }

    async fn user(&self, user_id: &UserId) -> Result<User, BillingError> {
        self.users
            .get_user(user_id)
            .await?
            .ok_or(BillingError::UnknownUser)
    }

    fn provider(
        &self,
        provider: Option<Provider>,
    ) -> Result<(Provider, &Arc<dyn crate::payments::PaymentProvider>), BillingError> {
        let p = provider
            .or_else(|| self.providers.default_provider())
            .ok_or(BillingError::NotConfigured("billing (no payment provider)"))?;
        let client = self
            .providers
            .get(p)
            .ok_or(BillingError::NotConfigured(match p {
                Provider::Stripe => "Stripe (set STRIPE_SECRET_KEY)",
                Provider::Whop => "Whop (set WHOP_API_KEY)",
                Provider::Local => "the local provider",
            }))?;
        Ok((p, client))
    }

    /// Starts a checkout for `plan` (`interval` for Stripe, default monthly) with `provider`
    /// (default: the first configured). Ensures one provider customer per user (idempotency key
    /// `customer-<user id>`, customer claim stored), and uses an idempotency key per attempt.
    ///
    /// # Errors
    /// `Invalid` (unknown plan, `free`, or no price for the provider/interval),
    /// `SubscriptionExists` (the user has access to a paid plan), `NotConfigured`, `Provider`,
    /// `Unavailable`.
    pub async fn create_checkout(
        &self,
        user_id: &UserId,
        plan_id: &str,
        interval: Option<Interval>,
        provider: Option<Provider>,
    ) -> Result<(Provider, String), BillingError> {
        let plan = self
            .catalog
            .plan(plan_id)
            .filter(|p| p.id != super::catalog::FREE_PLAN)
            .ok_or_else(|| BillingError::Invalid(format!("unknown paid plan {plan_id:?}")))?;
        let (provider, client) = self.provider(provider)?;
        let price_id = match provider {
            Provider::Whop => plan.whop.as_ref().map(|w| w.plan_id.clone()),
            Provider::Stripe | Provider::Local => plan
                .stripe
                .as_ref()
                .and_then(|s| s.prices.get(&interval.unwrap_or(Interval::Month)).cloned()),
        }
        .ok_or_else(|| {
            BillingError::Invalid(format!(
                "plan {plan_id:?} has no {} price for this interval",
                provider.as_str()
            ))
        })?;
        if self.access_of(user_id).await?.has_access {
            return Err(BillingError::SubscriptionExists);
        }
        let user = self.user(user_id).await?;
        let customer_id = match self.store.customer_of(provider, user_id).await? {
            Some(c) => Some(c),
            None => match client
                .create_customer(user_id, &user.email, &format!("customer-{user_id}"))
                .await?
            {
                Some(created) => {
                    let owner = self
                        .store
                        .claim_customer(provider, &created, user_id)
                        .await?;
                    if owner != *user_id {
                        return Err(BillingError::Internal(
                            "provider customer is claimed by another user".into(),
                        ));
                    }
                    Some(created)
                }
                None => None,
            },
        };
        let request = CheckoutRequest {
            user_id: *user_id,
            email: user.email.clone(),
            customer_id,
            price_id,
            trial_days: plan.trial_days,
            success_url: self.settings.success_url.clone(),
            cancel_url: self.settings.cancel_url.clone(),
            idempotency_key: format!("checkout-{user_id}-{}", uuid::Uuid::now_v7()),
        };
        let session = client.create_checkout(&request).await?;
        tracing::info!(user_id = %user_id, provider = provider.as_str(), plan = plan_id, "checkout created");
        Ok((provider, session.url))
    }

    /// A self-service billing portal URL for the user's subscription.
    ///
    /// # Errors
    /// `NoSubscription`, `NotConfigured`, `Provider`, `Unavailable`.
    pub async fn create_portal(&self, user_id: &UserId) -> Result<String, BillingError> {
        let sub = self
            .store
            .get_subscription(user_id)
            .await?
            .ok_or(BillingError::NoSubscription)?;
        let (_, client) = self.provider(Some(sub.provider))?;
        Ok(client
            .create_portal(
                &sub.customer_id,
                &sub.subscription_id,
                &self.settings.portal_return_url,
            )
            .await?)
    }

    /// The user's subscription and access now. With `checkout_session`, first fetches that
    /// session's subscription from the provider and applies it — closing the race between the
    /// success redirect and the webhook. The session must belong to this user.
    ///
    /// # Errors
    /// `Invalid` (a session of another user), `NotConfigured`, `Provider`, `Unavailable`.
    pub async fn subscription(
        &self,
        user_id: &UserId,
        checkout_session: Option<&str>,
    ) -> Result<SubscriptionView, BillingError> {
        if let Some(session) = checkout_session {
            self.sync_checkout(user_id, session).await?;
        }
        let sub = self.store.get_subscription(user_id).await?;
        let access = access(
            sub.as_ref(),
            &self.catalog,
            self.clock.now(),
            self.settings.past_due_grace,
        );
        Ok(SubscriptionView {
            subscription: sub,
            access,
        })
    }

    async fn sync_checkout(&self, user_id: &UserId, session_id: &str) -> Result<(), BillingError> {
        let (provider, client) = self.provider(Some(provider_of_session(session_id)))?;
        let Some(subscription_id) = client.fetch_checkout_subscription(session_id).await? else {
            return Ok(());
        };
        // Stamped before the request is sent: see `Subscription::source_fetched_at_us`.
        let fetched_at = self.clock.now_micros();
        let fetched = client.fetch_subscription(&subscription_id).await?;
        if fetched.user_id.is_some_and(|u| u != *user_id) {
            return Err(BillingError::Invalid(
                "this checkout session belongs to another user".into(),
            ));
        }
        let owner = self
            .store
            .claim_customer(provider, &fetched.customer_id, user_id)
            .await?;
        if owner != *user_id {
            return Err(BillingError::Invalid(
                "this checkout session belongs to another user".into(),
            ));
        }
        for _ in 0..3 {
            let stored = self.store.get_subscription(user_id).await?;
            if !should_replace(stored.as_ref(), &fetched, fetched_at) {
                return Ok(());
            }
            let next = Subscription::from_provider(
                *user_id,
                &fetched,
                stored.as_ref(),
                &self.catalog,
                fetched_at,
            );
            match self
                .store
                .put_subscription(&next, stored.as_ref().map(|s| s.version))
                .await
            {
                Ok(()) => return Ok(()),
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Sets the subscription to cancel at period end (access continues until then). The stored
    /// state changes when the provider's webhook arrives.
    ///
    /// # Errors
    /// `NoSubscription`, `NotConfigured`, `Provider`, `Unavailable`.
    pub async fn cancel(&self, user_id: &UserId) -> Result<(), BillingError> {
        self.set_cancel(user_id, true).await
    }

    /// Undoes a pending cancel-at-period-end.
    ///
    /// # Errors
    /// `NoSubscription`, `NotConfigured`, `Provider`, `Unavailable`.
    pub async fn resume(&self, user_id: &UserId) -> Result<(), BillingError> {
        self.set_cancel(user_id, false).await
    }

    async fn set_cancel(&self, user_id: &UserId, cancel: bool) -> Result<(), BillingError> {
        let sub = self
            .store
            .get_subscription(user_id)
            .await?
            .ok_or(BillingError::NoSubscription)?;
        let (_, client) = self.provider(Some(sub.provider))?;
        client
            .set_cancel_at_period_end(&sub.subscription_id, cancel)
            .await?;
        Ok(())
    }

    /// Moves the subscription to `plan` (`interval` default monthly) with the target plan's
    /// proration setting.
    ///
    /// # Errors
    /// `Invalid` (unknown plan / no price / same price), `NoSubscription`, `NotConfigured`,
    /// `Provider` (Whop cannot change plans through its API), `Unavailable`.
    pub async fn change_plan(
        &self,
        user_id: &UserId,
        plan_id: &str,
        interval: Option<Interval>,
    ) -> Result<(), BillingError> {
        let sub = self
            .store
            .get_subscription(user_id)
            .await?
            .ok_or(BillingError::NoSubscription)?;
        let plan = self
            .catalog
            .plan(plan_id)
            .filter(|p| p.id != super::catalog::FREE_PLAN)
            .ok_or_else(|| BillingError::Invalid(format!("unknown paid plan {plan_id:?}")))?;
        let price = plan
            .stripe
            .as_ref()
            .and_then(|s| {
                s.prices
                    .get(&interval.or(sub.interval).unwrap_or(Interval::Month))
                    .cloned()
            })
            .ok_or_else(|| {
                BillingError::Invalid(format!("plan {plan_id:?} has no price for this interval"))
            })?;
        if price == sub.price_id {
            return Err(BillingError::Invalid(
                "the subscription is already on this plan".into(),
            ));
        }
        let (_, client) = self.provider(Some(sub.provider))?;
        client
            .change_price(&sub.subscription_id, &price, plan.proration)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkout_sessions_are_routed_to_their_provider() {
        assert_eq!(provider_of_session("cs_local_01a1fd3b"), Provider::Local);
        assert_eq!(provider_of_session("cs_test_a1b2"), Provider::Stripe);
        assert_eq!(provider_of_session("ch_Wire0001"), Provider::Whop);
    }
}
