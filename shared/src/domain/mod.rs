//! The domain: pure types and rules, no I/O; time is passed in as Unix seconds. Everything above
//! it (adapters, use cases, the edge) may import it; it imports nothing of the crate.
//!
//! - accounts: [`ids`], [`credentials`], [`user`], [`session`], the one-time secrets sent by
//!   email ([`one_time`]), the mail [`outbox`](mail), the [`audit`] log, and sign-in with
//!   identity providers ([`identity`]);
//! - billing: the plan [`catalog`], the provider-neutral [`subscription`] state and access rule,
//!   the webhook [`ledger`] and payment records, and the neutral meaning of a provider event
//!   ([`billing_event`]);
//! - [`time`]: formatting of times.

pub mod api_key;
pub mod audit;
pub mod billing_event;
pub mod catalog;
pub mod credentials;
pub mod credits;
pub mod identity;
pub mod ids;
pub mod ledger;
pub mod limits;
pub mod mail;
pub mod one_time;
pub mod outbound;
pub mod session;
pub mod subscription;
pub mod time;
pub mod usage;
pub mod user;

pub use api_key::{
    api_key_id, ApiKey, ApiKeyKind, KeyRefusal, API_KEY_NAME_MAX, API_KEY_PREFIX,
    API_KEY_SECRET_BYTES, LAST_USED_RESOLUTION_SECONDS,
};
pub use audit::{AuditAction, AuditRecord, RequestOrigin, DEFAULT_AUDIT_RETENTION_SECONDS};
pub use billing_event::{BillingEvent, Envelope, EventError, Party, PaymentFacts, RefundShare};
pub use catalog::{
    Catalog, CatalogError, DisplayPrice, Entitlement, Interval, Plan, Proration, WhopPlan,
    FREE_PLAN,
};
pub use credentials::{is_common_password, DisplayName, Email, Password, ValidationError};
pub use credits::{
    cause_allowance, cause_purchase, cause_refund, cause_refund_step, cause_spend, spend_cost,
    CreditEntry, CreditKind, CreditPack, CreditSpend, PackStripe, MAX_REFUND_STEPS,
};
pub use identity::{
    resolve, valid_provider_name, Identity, OAuthMode, OAuthState, ProviderIdentity,
    RedirectAllowlist, Resolution, OAUTH_EXCHANGE_LIFETIME_SECONDS, OAUTH_STATE_LIFETIME_SECONDS,
};
pub use ids::{
    CheckoutSessionId, CustomerId, EventId, PaymentId, PriceId, Provider, SessionId,
    SubscriptionId, UserId,
};
pub use ledger::{
    EventEffects, EventStatus, Notices, Payment, PaymentStatus, SubscriptionWrite, WebhookEvent,
    EVENT_RETENTION_SECONDS,
};
pub use limits::{rules, LoginFailures, RateDecision, RateLimits, RateRule, Throttled};
pub use mail::{
    ClaimDecision, MailKind, MailStatus, OutboxMail, MAIL_LEASE_SECONDS, MAIL_MAX_ATTEMPTS,
    MAIL_RETENTION_SECONDS, TRIAL_ENDING_NOTICE_SECONDS,
};
pub use one_time::{
    EmailOtp, OneTimeToken, OtpCheck, TokenPurpose, OTP_LIFETIME_SECONDS, OTP_MAX_ATTEMPTS,
};
pub use outbound::{
    outbound_id, retry_delay, OutboundDecision, OutboundEvent, OutboundStatus, OutboundType,
    OUTBOUND_LEASE_SECONDS, OUTBOUND_MAX_ATTEMPTS, OUTBOUND_RETENTION_SECONDS,
};
pub use session::{
    RefreshDecision, RevokeReason, Session, SessionOrigin, SessionPolicy, SignInMethod, TokenHash,
};
pub use subscription::{
    access, should_replace, Access, ProviderSubscription, Subscription, SubscriptionStatus,
    DEFAULT_PAST_DUE_GRACE_SECONDS,
};
pub use time::rfc3339;
pub use usage::{
    calendar_month, usage_period, Metered, Period, UsageLimit, UsageState, IDEMPOTENCY_TTL_SECONDS,
    USAGE_RETENTION_SECONDS,
};
pub use user::{User, UserStatus};
