//! The admin use cases (docs/architecture.md §5f): what support does for a user — find them,
//! page through users, view one (profile, subscription, sessions, API keys, credits, usage,
//! audit), disable and enable, revoke sessions, grant or remove credits, set roles, resync
//! billing. Every caller must be an active user with the role [`ADMIN_ROLE`] in their stored
//! record — read on every request, so revoking the role holds at once, whatever a token says.
//! Every action is audited on the user's account with the acting admin as `actor`.

use crate::billing::{Billing, BillingError, SubscriptionView};
use crate::clock::Clock;
use crate::domain::{
    ApiKey, AuditAction, AuditRecord, CreditEntry, CreditKind, RequestOrigin, Session, User,
    UserId, UserStatus,
};
use crate::store::{
    AccountStore, Change, Conflict, CreditApplied, SessionStore, StoreError, UserStore,
};
use crate::usage::credits::CreditsPage;
use crate::usage::{Usage, UsageError, UsageReport};
use std::sync::Arc;

/// The role that grants the admin API.
pub const ADMIN_ROLE: &str = "admin";

/// Most roles a user holds.
pub const MAX_ROLES: usize = 10;

/// Most credits one adjustment adds or removes.
pub const MAX_ADJUSTMENT: i64 = 1_000_000_000;

/// How many times a user update that lost a race is retried.
const UPDATE_ROUNDS: usize = 5;

/// Why an admin action failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The caller is not an active admin (403 `forbidden`).
    #[error("the admin role is required")]
    Forbidden,
    /// No such user (404 `user_not_found`).
    #[error("no such user")]
    UserNotFound,
    /// A field is invalid (422 `validation_failed`), with the message.
    #[error("{0}")]
    Invalid(String),
    /// Removing credits the balance does not hold (409 `insufficient_credits`).
    #[error("the balance does not cover the removal")]
    InsufficientCredits {
        /// The balance, credits.
        balance: i64,
    },
    /// The user kept changing meanwhile (503, retry).
    #[error("the user changed meanwhile; retry")]
    Contended,
    /// Billing failed (resync).
    #[error(transparent)]
    Billing(#[from] BillingError),
    /// Usage or credits failed.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// The store failed.
    #[error("store failed")]
    Store(#[from] StoreError),
}

/// Everything support sees of one user.
#[derive(Clone, Debug)]
pub struct UserView {
    /// The profile.
    pub user: User,
    /// The subscription and access now.
    pub billing: SubscriptionView,
    /// Sessions, oldest first (revoked ones included, with why).
    pub sessions: Vec<Session>,
    /// API keys (revoked ones included until the table forgets them).
    pub api_keys: Vec<ApiKey>,
    /// The credit balance and the newest ledger entries.
    pub credits: CreditsPage,
    /// Every metered feature's count this period.
    pub usage: Vec<UsageReport>,
    /// The newest audit records.
    pub audit: Vec<AuditRecord>,
}

/// The stores and use cases the admin API works through.
pub struct AdminParts {
    /// Users.
    pub users: Arc<dyn UserStore>,
    /// Sessions.
    pub sessions: Arc<dyn SessionStore>,
    /// Atomic account changes and the audit log.
    pub accounts: Arc<dyn AccountStore>,
    /// Subscriptions (and resync, with provider keys).
    pub billing: Billing,
    /// Usage and credits.
    pub usage: Usage,
}

/// The admin use cases. Cheap to clone.
#[derive(Clone)]
pub struct Admin {
    parts: Arc<AdminParts>,
    clock: Arc<dyn Clock>,
    audit_retention: i64,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin").finish_non_exhaustive()
    }
}

impl Admin {
    /// Wires the use cases; audit records are kept `audit_retention` seconds.
    pub fn new(parts: AdminParts, clock: Arc<dyn Clock>, audit_retention: i64) -> Self {
        Self {
            parts: Arc::new(parts),
            clock,
            audit_retention,
        }
    }

    /// The caller, if they are an active user holding [`ADMIN_ROLE`].
    ///
    /// # Errors
    /// `Forbidden` otherwise; `Store`.
    pub async fn require_admin(&self, caller: &UserId) -> Result<User, AdminError> {
        match self.parts.users.get_user(caller).await? {
            Some(u)
                if u.status == UserStatus::Active && u.roles.iter().any(|r| r == ADMIN_ROLE) =>
            {
                Ok(u)
            }
            _ => Err(AdminError::Forbidden),
        }
    }

    /// Grants [`ADMIN_ROLE`] to the user with this email, without an acting admin: how the
    /// operator makes the first admin (`tollgate-admin grant-admin <email>`, which needs the
    /// table's credentials). Audited `roles_changed` with no actor and the detail
    /// `by the operator`. Granting it twice changes nothing more.
    ///
    /// # Errors
    /// `UserNotFound`, `Contended`, `Store`.
    pub async fn grant_admin_role(&self, email: &str) -> Result<User, AdminError> {
        let normalized = email.trim().to_lowercase();
        let id = self
            .parts
            .users
            .find_user_id_by_email(&normalized)
            .await?
            .ok_or(AdminError::UserNotFound)?;
        let current = self.user(&id).await?;
        if current.roles.iter().any(|r| r == ADMIN_ROLE) {
            return Ok(current);
        }
        let mut roles = current.roles.clone();
        roles.push(ADMIN_ROLE.to_owned());
        let detail = format!("roles: [{}] by the operator", roles.join(", "));
        self.update_user(None, &id, AuditAction::RolesChanged, Some(detail), |u| {
            if !u.roles.iter().any(|r| r == ADMIN_ROLE) {
                u.roles.push(ADMIN_ROLE.to_owned());
            }
        })
        .await
    }

    async fn user(&self, id: &UserId) -> Result<User, AdminError> {
        self.parts
            .users
            .get_user(id)
            .await?
            .ok_or(AdminError::UserNotFound)
    }

    /// An audit record of `action` on `user`'s account by `actor` (`None`: the operator's CLI).
    fn audit(&self, user: UserId, actor: Option<UserId>, action: AuditAction) -> AuditRecord {
        let mut record = AuditRecord::new(
            user,
            action,
            &RequestOrigin::default(),
            self.clock.now(),
            self.audit_retention,
        );
        record.actor = actor;
        record
    }

    /// The user with this email (case-insensitive), if any.
    ///
    /// # Errors
    /// `Forbidden`, `Store`.
    pub async fn find_by_email(
        &self,
        actor: &UserId,
        email: &str,
    ) -> Result<Option<User>, AdminError> {
        self.require_admin(actor).await?;
        let normalized = email.trim().to_lowercase();
        match self.parts.users.find_user_id_by_email(&normalized).await? {
            Some(id) => Ok(self.parts.users.get_user(&id).await?),
            None => Ok(None),
        }
    }

    /// A page of users (at most `limit`, 1–100) after `cursor` (a `next` of an earlier page), in
    /// the store's order; returns the page and the next cursor.
    ///
    /// # Errors
    /// `Forbidden`, `Invalid` (a cursor that is not one), `Store`.
    pub async fn list_users(
        &self,
        actor: &UserId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<User>, Option<String>), AdminError> {
        self.require_admin(actor).await?;
        match self
            .parts
            .users
            .list_users(cursor, limit.clamp(1, 100))
            .await
        {
            Err(StoreError::Conflict(Conflict::BadCursor)) => {
                Err(AdminError::Invalid("not a cursor of this list".into()))
            }
            other => Ok(other?),
        }
    }

    /// Everything support sees of `user_id`.
    ///
    /// # Errors
    /// `Forbidden`, `UserNotFound`, `Billing`, `Usage`, `Store`.
    pub async fn view(&self, actor: &UserId, user_id: &UserId) -> Result<UserView, AdminError> {
        self.require_admin(actor).await?;
        let user = self.user(user_id).await?;
        let (billing, sessions, api_keys, credits, usage, audit) = tokio::join!(
            self.parts.billing.subscription(user_id, None),
            self.parts.sessions.list_sessions(user_id),
            self.parts.accounts.list_api_keys(user_id),
            // Read only: viewing a user grants no allowance.
            self.parts.usage.credits().page(user_id, None, 20),
            self.parts.usage.usage(user_id, None),
            self.parts.accounts.list_audit(user_id, None, 20),
        );
        Ok(UserView {
            user,
            billing: billing?,
            sessions: sessions?,
            api_keys: api_keys?,
            credits: credits?,
            usage: usage?,
            audit: audit?,
        })
    }

    /// Applies `change` to the stored user with a compare-and-swap, with the audit record, retrying
    /// a lost race. Returns the user as written.
    async fn update_user(
        &self,
        actor: Option<&UserId>,
        user_id: &UserId,
        action: AuditAction,
        detail: Option<String>,
        change: impl Fn(&mut User),
    ) -> Result<User, AdminError> {
        for _ in 0..UPDATE_ROUNDS {
            let current = self.user(user_id).await?;
            let next = current.updated(self.clock.now(), &change);
            let mut audit = self.audit(*user_id, actor.copied(), action);
            audit.detail = detail.clone();
            match self
                .parts
                .accounts
                .commit(&[
                    Change::UpdateUser {
                        user: next.clone(),
                        expected_version: current.version,
                    },
                    Change::Audit(audit),
                ])
                .await
            {
                Ok(()) => return Ok(next),
                Err(StoreError::Conflict(Conflict::StaleVersion)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AdminError::Contended)
    }

    /// Disables the account: login, refresh, email codes and links, OAuth sign-in and every API
    /// key are refused from the next request on (each reads the user), and every session is
    /// revoked at once (the user's session epoch is raised). `disabled = false` enables it again
    /// (sessions stay revoked; keys work again). Audited `account_disabled` / `account_enabled`.
    ///
    /// # Errors
    /// `Forbidden`, `UserNotFound`, `Invalid` (an admin disabling themself), `Contended`, `Store`.
    pub async fn set_disabled(
        &self,
        actor: &UserId,
        user_id: &UserId,
        disabled: bool,
    ) -> Result<User, AdminError> {
        self.require_admin(actor).await?;
        if disabled && actor == user_id {
            return Err(AdminError::Invalid(
                "an admin cannot disable themself".into(),
            ));
        }
        let action = if disabled {
            AuditAction::AccountDisabled
        } else {
            AuditAction::AccountEnabled
        };
        self.update_user(Some(actor), user_id, action, None, |u| {
            if disabled {
                u.status = UserStatus::Disabled;
                u.session_epoch += 1;
            } else {
                u.status = UserStatus::Active;
            }
        })
        .await
    }

    /// Revokes every session of the user at once (raises the session epoch): refresh tokens and
    /// access tokens at `/auth/me` are refused from the next request. Audited
    /// `sessions_revoked_by_admin`.
    ///
    /// # Errors
    /// `Forbidden`, `UserNotFound`, `Contended`, `Store`.
    pub async fn revoke_sessions(
        &self,
        actor: &UserId,
        user_id: &UserId,
    ) -> Result<User, AdminError> {
        self.require_admin(actor).await?;
        self.update_user(
            Some(actor),
            user_id,
            AuditAction::SessionsRevokedByAdmin,
            None,
            |u| {
                u.session_epoch += 1;
            },
        )
        .await
    }

    /// Sets the user's roles (each 1–32 of `[a-z_]`, at most [`MAX_ROLES`]). An admin cannot
    /// take the admin role from themself (so the last admin cannot lock everyone out by
    /// accident). Audited `roles_changed` with the new roles.
    ///
    /// # Errors
    /// `Forbidden`, `UserNotFound`, `Invalid`, `Contended`, `Store`.
    pub async fn set_roles(
        &self,
        actor: &UserId,
        user_id: &UserId,
        roles: Vec<String>,
    ) -> Result<User, AdminError> {
        self.require_admin(actor).await?;
        let mut roles = roles;
        roles.sort();
        roles.dedup();
        let valid = roles.len() <= MAX_ROLES
            && roles.iter().all(|r| {
                (1..=32).contains(&r.len())
                    && r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            });
        if !valid {
            return Err(AdminError::Invalid(format!(
                "roles: at most {MAX_ROLES}, each 1 to 32 of [a-z_]"
            )));
        }
        if actor == user_id && !roles.iter().any(|r| r == ADMIN_ROLE) {
            return Err(AdminError::Invalid(
                "an admin cannot remove their own admin role".into(),
            ));
        }
        let detail = format!("roles: [{}]", roles.join(", "));
        self.update_user(
            Some(actor),
            user_id,
            AuditAction::RolesChanged,
            Some(detail),
            move |u| {
                u.roles.clone_from(&roles);
            },
        )
        .await
    }

    /// Grants (`amount` > 0) or removes (< 0) credits with a reason, once (cause
    /// `adjustment:<uuid>`); a removal the balance does not cover is refused. The ledger entry
    /// and its audit record (`credits_granted`, or `credits_spent` for a removal) name the admin.
    /// Returns the balance after it.
    ///
    /// # Errors
    /// `Forbidden`, `UserNotFound`, `Invalid` (0, past ±[`MAX_ADJUSTMENT`], an empty or long
    /// reason), `InsufficientCredits`, `Store`.
    pub async fn adjust_credits(
        &self,
        actor: &UserId,
        user_id: &UserId,
        amount: i64,
        reason: &str,
    ) -> Result<i64, AdminError> {
        self.require_admin(actor).await?;
        self.user(user_id).await?;
        if amount == 0 || amount.abs() > MAX_ADJUSTMENT {
            return Err(AdminError::Invalid(format!(
                "amount: a non-zero number of credits within ±{MAX_ADJUSTMENT}"
            )));
        }
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 200 {
            return Err(AdminError::Invalid("reason: 1 to 200 characters".into()));
        }
        let mut entry = CreditEntry::new(
            *user_id,
            format!("adjustment:{}", uuid::Uuid::now_v7()),
            CreditKind::Adjustment,
            amount,
            self.clock.now(),
        );
        entry.actor = Some(*actor);
        entry.note = Some(reason.to_owned());
        match self.parts.usage.credits().apply(entry, amount < 0).await? {
            CreditApplied::Applied { balance } | CreditApplied::Duplicate { balance } => {
                Ok(balance)
            }
            CreditApplied::Insufficient { balance } => {
                Err(AdminError::InsufficientCredits { balance })
            }
        }
    }

    /// Refetches the user's subscription from its provider and applies it now; audited
    /// `billing_resynced`.
    ///
    /// # Errors
    /// `Forbidden`, `UserNotFound`, `Billing` (`NoSubscription`, provider errors), `Store`.
    pub async fn resync_billing(
        &self,
        actor: &UserId,
        user_id: &UserId,
    ) -> Result<SubscriptionView, AdminError> {
        self.require_admin(actor).await?;
        self.user(user_id).await?;
        let view = self.parts.billing.resync(user_id).await?;
        let record = self.audit(*user_id, Some(*actor), AuditAction::BillingResynced);
        self.parts.accounts.commit(&[Change::Audit(record)]).await?;
        Ok(view)
    }
}
