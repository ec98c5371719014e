//! The audit log (docs/architecture.md §11, §15): an append-only record of every security-relevant
//! change to an account (`USER#<id>` / `AUDIT#<id>`), kept for a retention period (TTL).

use super::{SessionId, UserId};
use serde::{Deserialize, Serialize};

/// Default retention of audit records: 400 days (a year and a bit, so a yearly review sees the
/// whole year). `TOLLGATE_AUDIT_RETENTION_DAYS` overrides it.
pub const DEFAULT_AUDIT_RETENTION_SECONDS: i64 = 400 * 86_400;

/// What happened. Later capabilities add their actions here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// The account was created.
    SignedUp,
    /// A password login succeeded.
    LoginSucceeded,
    /// A password login for this account failed (wrong password, or a disabled account).
    LoginFailed,
    /// A rotated refresh token was presented again; the session was revoked.
    RefreshTokenReused,
    /// A session was ended with its refresh token (`POST /auth/logout`).
    LoggedOut,
    /// Every session (or every other one) was ended.
    LoggedOutEverywhere,
    /// A session was ended from the sessions list.
    SessionRevoked,
    /// A verification link was sent again on request.
    VerificationRequested,
    /// The email was verified with a link.
    EmailVerified,
    /// The password was reset with a link; every session was ended.
    PasswordReset,
    /// The password was changed; every other session was ended.
    PasswordChanged,
    /// Signed in with an email code.
    CodeUsed,
    /// Signed in with a magic link.
    MagicLinkUsed,
    /// The display name was changed.
    ProfileUpdated,
    /// The account was deleted.
    AccountDeleted,
    /// Signed in with an identity provider (detail: the provider).
    OAuthSignIn,
    /// An identity provider's identity was linked (detail: the provider).
    IdentityLinked,
    /// An identity provider's identity was unlinked (detail: the provider).
    IdentityUnlinked,
    /// Failed logins throttled the account (detail: the failures and the delay).
    LoginThrottled,
    /// An API key was created (detail: its prefix and kind).
    ApiKeyCreated,
    /// An API key was revoked (detail: its prefix).
    ApiKeyRevoked,
    /// Credits were granted: a pack bought, a plan allowance, an operator's grant (detail: the
    /// amount and cause).
    CreditsGranted,
    /// A metered feature spent credits (detail: the amount, feature and units).
    CreditsSpent,
    /// A refund took a purchase's credits back (detail: the amount and payment).
    CreditsRefunded,
    /// An admin disabled the account (every session revoked; the actor is the admin).
    AccountDisabled,
    /// An admin enabled the account again.
    AccountEnabled,
    /// An admin revoked every session.
    SessionsRevokedByAdmin,
    /// An admin changed the roles (detail: the new roles).
    RolesChanged,
    /// An admin resynced the subscription from the provider.
    BillingResynced,
}

impl AuditAction {
    /// The snake_case name, as stored and as the API shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignedUp => "signed_up",
            Self::LoginSucceeded => "login_succeeded",
            Self::LoginFailed => "login_failed",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::LoggedOut => "logged_out",
            Self::LoggedOutEverywhere => "logged_out_everywhere",
            Self::SessionRevoked => "session_revoked",
            Self::VerificationRequested => "verification_requested",
            Self::EmailVerified => "email_verified",
            Self::PasswordReset => "password_reset",
            Self::PasswordChanged => "password_changed",
            Self::CodeUsed => "code_used",
            Self::MagicLinkUsed => "magic_link_used",
            Self::ProfileUpdated => "profile_updated",
            Self::AccountDeleted => "account_deleted",
            Self::OAuthSignIn => "oauth_sign_in",
            Self::IdentityLinked => "identity_linked",
            Self::LoginThrottled => "login_throttled",
            Self::ApiKeyCreated => "api_key_created",
            Self::ApiKeyRevoked => "api_key_revoked",
            Self::IdentityUnlinked => "identity_unlinked",
            Self::CreditsGranted => "credits_granted",
            Self::CreditsSpent => "credits_spent",
            Self::CreditsRefunded => "credits_refunded",
            Self::AccountDisabled => "account_disabled",
            Self::AccountEnabled => "account_enabled",
            Self::SessionsRevokedByAdmin => "sessions_revoked_by_admin",
            Self::RolesChanged => "roles_changed",
            Self::BillingResynced => "billing_resynced",
        }
    }
}

/// One audit record. Times are Unix seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Whose account.
    pub user_id: UserId,
    /// A UUIDv7 (time-ordered, so the sort key orders records by time).
    pub id: String,
    /// When.
    pub at: i64,
    /// What.
    pub action: AuditAction,
    /// Who did it, when not the user themself (an admin, in a later capability).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<UserId>,
    /// The session involved, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
    /// The client IP of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The request's `User-Agent` (at most 256 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// A short, secret-free detail (which session was revoked, why a login failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// When the table deletes it (TTL attribute): `at` plus the retention.
    pub expires_at: i64,
}

/// Where a request came from: recorded on audit records and new sessions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestOrigin {
    /// The client IP (API Gateway's `requestContext.http.sourceIp`; the socket address locally).
    pub ip: Option<String>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
}

impl AuditRecord {
    /// A record of `action` on `user_id`'s account at `now` from `origin`, kept `retention`
    /// seconds.
    pub fn new(
        user_id: UserId,
        action: AuditAction,
        origin: &RequestOrigin,
        now: i64,
        retention: i64,
    ) -> Self {
        Self {
            user_id,
            id: uuid::Uuid::now_v7().hyphenated().to_string(),
            at: now,
            action,
            actor: None,
            session_id: None,
            ip: origin.ip.clone(),
            user_agent: origin
                .user_agent
                .as_ref()
                .map(|ua| ua.chars().take(256).collect()),
            detail: None,
            expires_at: now.saturating_add(retention),
        }
    }

    /// The same record naming `session`.
    pub fn with_session(mut self, session: SessionId) -> Self {
        self.session_id = Some(session);
        self
    }

    /// The same record with `detail`.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}
