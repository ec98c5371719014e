//! The billing use cases: [`Billing::create_checkout`], [`Billing::create_portal`],
//! [`Billing::subscription`] (with the checkout redirect sync), [`Billing::cancel`],
//! [`Billing::resume`], [`Billing::change_plan`]. Function crates call these and only map input
//! and output.

use super::apply::{apply_provider_state, Direct, Fetched};
use super::PlanAccess;
use crate::clock::Clock;
use crate::domain::{
    Access, CheckoutSessionId, Interval, Payment, Plan, Provider, Subscription, SubscriptionStatus,
    User, UserId,
};
use crate::payments::{CheckoutRequest, PackCheckout, PaymentProvider, ProviderError, Providers};
use crate::store::{BillingStore, StoreError, UserStore};
use std::sync::Arc;

/// Billing settings. URLs are absolute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillingSettings {
    /// Where providers send the buyer after paying (`{CHECKOUT_SESSION_ID}` is replaced by
    /// Stripe).
    pub success_url: String,
    /// Where providers send the buyer on cancel.
    pub cancel_url: String,
    /// Where the billing portal returns to.
    pub portal_return_url: String,
    /// `past_due` grace, seconds (default 7 days, `crate::domain::DEFAULT_PAST_DUE_GRACE_SECONDS`).
    pub past_due_grace: i64,
}

/// Why a billing operation failed. The HTTP edge maps each case to one status and `code`.
#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    /// Unknown plan, interval or checkout session, or a request that makes no sense in the
    /// current state (422 `validation_failed`; the message is for the client).
    #[error("{0}")]
    Invalid(String),
    /// The requested provider is not configured in this deployment (422
    /// `provider_not_configured`: the client asked for something this deployment does not offer).
    #[error("{0} is not configured in this deployment")]
    ProviderNotOffered(Provider),
    /// No payment provider is configured at all, or the provider of an existing subscription no
    /// longer is (503 `provider_not_configured`).
    #[error("billing is not configured: {0}")]
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
    /// The provider refused or failed (502 `provider_error` when refused, 503 `unavailable`
    /// when retryable).
    #[error("payment provider call failed")]
    Provider(#[source] ProviderError),
    /// The store failed (503 `unavailable` when retryable, else 500 `internal`).
    #[error("billing store failed")]
    Store(#[from] StoreError),
}

impl From<ProviderError> for BillingError {
    fn from(e: ProviderError) -> Self {
        Self::Provider(e)
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
    access: PlanAccess,
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
    /// Wires the service; `access` reads through the same `store`.
    pub fn new(
        users: Arc<dyn UserStore>,
        store: Arc<dyn BillingStore>,
        providers: Providers,
        access: PlanAccess,
        clock: Arc<dyn Clock>,
        settings: BillingSettings,
    ) -> Self {
        Self {
            users,
            store,
            providers,
            access,
            clock,
            settings,
        }
    }

    async fn user(&self, user_id: &UserId) -> Result<User, BillingError> {
        self.users
            .get_user(user_id)
            .await?
            .ok_or(BillingError::UnknownUser)
    }

    /// The client of `provider` (the default one when `None`).
    fn client(
        &self,
        provider: Option<Provider>,
    ) -> Result<(Provider, &Arc<dyn PaymentProvider>), BillingError> {
        let p = provider
            .or_else(|| self.providers.default_provider())
            .ok_or(BillingError::NotConfigured(
                "no payment provider has an API key",
            ))?;
        let client = self
            .providers
            .get(p)
            .ok_or(BillingError::ProviderNotOffered(p))?;
        Ok((p, client))
    }

    /// The client of an existing subscription's provider.
    fn client_of(&self, sub: &Subscription) -> Result<&Arc<dyn PaymentProvider>, BillingError> {
        self.providers
            .get(sub.provider)
            .ok_or(BillingError::NotConfigured(
                "the subscription's provider has no API key any more",
            ))
    }

    fn paid_plan(&self, plan_id: &str) -> Result<&Plan, BillingError> {
        self.access
            .catalog()
            .paid_plan(plan_id)
            .ok_or_else(|| BillingError::Invalid(format!("unknown paid plan {plan_id:?}")))
    }

    async fn stored(&self, user_id: &UserId) -> Result<Subscription, BillingError> {
        self.store
            .get_subscription(user_id)
            .await?
            .ok_or(BillingError::NoSubscription)
    }

    /// Starts a checkout for `plan` (`interval` for Stripe, default monthly) with `provider`
    /// (default: the first configured). Ensures one provider customer per user (idempotency key
    /// `customer-<user id>`, customer claim stored), and uses an idempotency key per attempt.
    /// The plan's trial is offered only to a user who never had one, with any provider. Returns
    /// the provider and the URL to send the buyer to.
    ///
    /// # Errors
    /// `Invalid` (unknown plan, `free`, or no price for the provider/interval),
    /// `ProviderNotOffered`, `NotConfigured`, `SubscriptionExists` (the user has access to a paid
    /// plan), `UnknownUser`, `Provider`, `Store`.
    pub async fn create_checkout(
        &self,
        user_id: &UserId,
        plan_id: &str,
        interval: Option<Interval>,
        provider: Option<Provider>,
    ) -> Result<(Provider, String), BillingError> {
        let plan = self.paid_plan(plan_id)?;
        let (provider, client) = self.client(provider)?;
        let price_id = self
            .access
            .catalog()
            .price_for(plan, provider, interval)
            .ok_or_else(|| {
                BillingError::Invalid(format!(
                    "plan {plan_id:?} has no {provider} price for this interval"
                ))
            })?;
        if self.access.of(user_id, self.clock.now()).await?.has_access {
            return Err(BillingError::SubscriptionExists);
        }
        let trial_days = if plan.trial_days > 0 && self.store.trial_used(user_id).await? {
            0
        } else {
            plan.trial_days
        };
        let request = self
            .checkout_request(user_id, provider, client, price_id, trial_days, None)
            .await?;
        let session = client.create_checkout(&request).await?;
        tracing::info!(user_id = %user_id, %provider, plan = plan_id, trial_days, checkout_session = %session.id, "checkout created");
        Ok((provider, session.url))
    }

    /// Starts a one-time checkout for credit pack `pack_id` (Stripe `mode=payment`) with
    /// `provider` (default: the first configured). The paid event grants the pack's credits once
    /// (`crate::webhooks`). Returns the provider and the URL to send the buyer to.
    ///
    /// # Errors
    /// `Invalid` (unknown pack, or no price at the provider), `ProviderNotOffered`,
    /// `NotConfigured`, `UnknownUser`, `Provider`, `Store`.
    pub async fn create_pack_checkout(
        &self,
        user_id: &UserId,
        pack_id: &str,
        provider: Option<Provider>,
    ) -> Result<(Provider, String), BillingError> {
        let catalog = self.access.catalog();
        let pack = catalog
            .pack(pack_id)
            .ok_or_else(|| BillingError::Invalid(format!("unknown credit pack {pack_id:?}")))?;
        let (provider, client) = self.client(provider)?;
        let price_id = catalog.pack_price(pack, provider).ok_or_else(|| {
            BillingError::Invalid(format!("credit pack {pack_id:?} has no {provider} price"))
        })?;
        let one_time = PackCheckout {
            pack_id: pack.id.clone(),
            amount_minor: pack.price.amount,
            currency: pack.price.currency.clone(),
        };
        let request = self
            .checkout_request(user_id, provider, client, price_id, 0, Some(one_time))
            .await?;
        let session = client.create_checkout(&request).await?;
        tracing::info!(user_id = %user_id, %provider, pack = pack_id, checkout_session = %session.id, "pack checkout created");
        Ok((provider, session.url))
    }

    /// The checkout request for `user_id`, creating and claiming the provider customer first if
    /// there is none.
    async fn checkout_request(
        &self,
        user_id: &UserId,
        provider: Provider,
        client: &Arc<dyn PaymentProvider>,
        price_id: crate::domain::PriceId,
        trial_days: u32,
        pack: Option<PackCheckout>,
    ) -> Result<CheckoutRequest, BillingError> {
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
                        return Err(BillingError::Provider(ProviderError::Rejected(
                            crate::error::message(
                                "the provider customer is claimed by another user",
                            ),
                        )));
                    }
                    Some(created)
                }
                None => None,
            },
        };
        Ok(CheckoutRequest {
            user_id: *user_id,
            email: user.email.clone(),
            customer_id,
            price_id,
            trial_days,
            success_url: self.settings.success_url.clone(),
            cancel_url: self.settings.cancel_url.clone(),
            idempotency_key: format!("checkout-{user_id}-{}", uuid::Uuid::now_v7()),
            pack,
        })
    }

    /// A self-service billing portal URL for the user's subscription.
    ///
    /// # Errors
    /// `NoSubscription`, `NotConfigured`, `Provider`, `Store`.
    pub async fn create_portal(&self, user_id: &UserId) -> Result<String, BillingError> {
        let sub = self.stored(user_id).await?;
        Ok(self
            .client_of(&sub)?
            .create_portal(
                sub.customer_id.as_ref(),
                &sub.subscription_id,
                &self.settings.portal_return_url,
            )
            .await?)
    }

    /// A page of the user's payments, newest first: at most `limit` (1–100), each older than the
    /// cursor `before` (a `next_before` of an earlier page). Returns the page and the cursor of
    /// the next one (`None` on the last page). The cursor is `<paid at, 10 digits>#<provider>#<id>`.
    ///
    /// # Errors
    /// `Store`.
    pub async fn payments(
        &self,
        user_id: &UserId,
        before: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Payment>, Option<String>), BillingError> {
        let cursor = crate::store::keys::payment_cursor;
        let limit = limit.clamp(1, 100);
        let mut all = self.store.list_payments(user_id).await?;
        all.reverse();
        let mut page: Vec<Payment> = all
            .into_iter()
            .filter(|p| before.is_none_or(|b| cursor(p).as_str() < b))
            .take(limit + 1)
            .collect();
        let next = (page.len() > limit).then(|| {
            page.truncate(limit);
            page.last().map(cursor)
        });
        Ok((page, next.flatten()))
    }

    /// The user's subscription and access now. With `checkout_session`, first fetches that
    /// session's subscription from the provider and applies it — closing the race between the
    /// success redirect and the webhook. The session must belong to this user.
    ///
    /// # Errors
    /// `Invalid` (an unknown session, or one of another user), `ProviderNotOffered`,
    /// `NotConfigured`, `Provider`, `Store`.
    pub async fn subscription(
        &self,
        user_id: &UserId,
        checkout_session: Option<&CheckoutSessionId>,
    ) -> Result<SubscriptionView, BillingError> {
        if let Some(session) = checkout_session {
            self.sync_checkout(user_id, session).await?;
        }
        let subscription = self.store.get_subscription(user_id).await?;
        let access = crate::domain::access(
            subscription.as_ref(),
            self.access.catalog(),
            self.clock.now(),
            self.access.past_due_grace(),
        );
        Ok(SubscriptionView {
            subscription,
            access,
        })
    }

    async fn sync_checkout(
        &self,
        user_id: &UserId,
        session: &CheckoutSessionId,
    ) -> Result<(), BillingError> {
        let foreign =
            || BillingError::Invalid("this checkout session belongs to another user".into());
        let (provider, client) = self.client(Some(Provider::of_checkout_session(session)))?;
        let subscription_id = match client.fetch_checkout_subscription(session).await {
            Ok(Some(id)) => id,
            Ok(None) => return Ok(()),
            Err(ProviderError::NotFound) => {
                return Err(BillingError::Invalid("unknown checkout session".into()))
            }
            Err(e) => return Err(e.into()),
        };
        // Stamped before the request is sent: see `Subscription::source_fetched_at_us`.
        let sent_at_us = self.clock.now_micros();
        let state = client.fetch_subscription(&subscription_id).await?;
        if state.user_id.is_some_and(|u| u != *user_id) {
            return Err(foreign());
        }
        if let Some(customer) = &state.customer_id {
            if self
                .store
                .claim_customer(provider, customer, user_id)
                .await?
                != *user_id
            {
                return Err(foreign());
            }
        }
        let fetched = Fetched { state, sent_at_us };
        apply_provider_state(
            self.store.as_ref(),
            self.access.catalog(),
            *user_id,
            Some(&fetched),
            &Direct {
                store: self.store.as_ref(),
                catalog: self.access.catalog(),
                now: self.clock.now(),
            },
        )
        .await?;
        Ok(())
    }

    /// Resyncs the user's stored subscription from its provider now (support, and
    /// `tollgate-admin reconcile --user`): the provider's current state goes through the same
    /// apply rule as a webhook's refetch (an older state never overwrites a newer one). Returns
    /// the stored subscription and access after it.
    ///
    /// # Errors
    /// `NoSubscription` (nothing stored to resync), `NotConfigured`, `Provider`, `Store`.
    pub async fn resync(&self, user_id: &UserId) -> Result<SubscriptionView, BillingError> {
        let stored = self.stored(user_id).await?;
        let client = self.client_of(&stored)?;
        // Stamped before the request is sent: see `Subscription::source_fetched_at_us`.
        let sent_at_us = self.clock.now_micros();
        let state = client.fetch_subscription(&stored.subscription_id).await?;
        let fetched = Fetched { state, sent_at_us };
        apply_provider_state(
            self.store.as_ref(),
            self.access.catalog(),
            *user_id,
            Some(&fetched),
            &Direct {
                store: self.store.as_ref(),
                catalog: self.access.catalog(),
                now: self.clock.now(),
            },
        )
        .await?;
        tracing::info!(user_id = %user_id, provider = %stored.provider, "subscription resynced from the provider");
        self.subscription(user_id, None).await
    }

    /// Sets the subscription to cancel at period end (access continues until then). The stored
    /// state changes when the provider's webhook arrives.
    ///
    /// # Errors
    /// `NoSubscription`, `NotConfigured`, `Provider`, `Store`.
    pub async fn cancel(&self, user_id: &UserId) -> Result<(), BillingError> {
        self.set_cancel(user_id, true).await
    }

    /// Undoes a pending cancel-at-period-end.
    ///
    /// # Errors
    /// `NoSubscription`, `NotConfigured`, `Provider`, `Store`.
    pub async fn resume(&self, user_id: &UserId) -> Result<(), BillingError> {
        self.set_cancel(user_id, false).await
    }

    async fn set_cancel(&self, user_id: &UserId, cancel: bool) -> Result<(), BillingError> {
        let sub = self.stored(user_id).await?;
        self.client_of(&sub)?
            .set_cancel_at_period_end(&sub.subscription_id, cancel)
            .await?;
        Ok(())
    }

    /// Cancels the user's subscription at its provider at once (not at period end) if it may
    /// still bill — anything but `canceled` and `expired` — before the account is deleted. No
    /// subscription, or one the provider no longer knows, is fine.
    ///
    /// # Errors
    /// `NotConfigured` (the subscription's provider has no API key here), `Provider`, `Store`.
    pub async fn cancel_for_deletion(&self, user_id: &UserId) -> Result<(), BillingError> {
        let Some(sub) = self.store.get_subscription(user_id).await? else {
            return Ok(());
        };
        if matches!(
            sub.status,
            SubscriptionStatus::Canceled | SubscriptionStatus::Expired
        ) {
            return Ok(());
        }
        match self.client_of(&sub)?.cancel_now(&sub.subscription_id).await {
            Ok(()) | Err(ProviderError::NotFound) => {
                tracing::info!(%user_id, subscription = %sub.subscription_id, "subscription cancelled for account deletion");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Moves the subscription to `plan` (`interval`: the current one, else monthly) with the
    /// target plan's proration setting.
    ///
    /// # Errors
    /// `Invalid` (unknown plan / no price / same price), `NoSubscription`, `NotConfigured`,
    /// `Provider` (Whop cannot change plans through its API), `Store`.
    pub async fn change_plan(
        &self,
        user_id: &UserId,
        plan_id: &str,
        interval: Option<Interval>,
    ) -> Result<(), BillingError> {
        let sub = self.stored(user_id).await?;
        let plan = self.paid_plan(plan_id)?;
        let price = self
            .access
            .catalog()
            .price_for(plan, sub.provider, interval.or(sub.interval))
            .ok_or_else(|| {
                BillingError::Invalid(format!("plan {plan_id:?} has no price for this interval"))
            })?;
        if price == sub.price_id {
            return Err(BillingError::Invalid(
                "the subscription is already on this plan".into(),
            ));
        }
        self.client_of(&sub)?
            .change_price(&sub.subscription_id, &price, plan.proration)
            .await?;
        Ok(())
    }
}
