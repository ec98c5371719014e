//! The mail outbox (docs/architecture.md §11): a mail owed by a committed change is an item
//! (`MAIL#<cause id>` / `MAIL`) written in the same transaction as the change, and the mailer
//! sends it at least once and at most once per cause by claiming it before sending (a lease)
//! and marking it sent after. No secret is ever stored in the outbox: links and codes are minted
//! by the mailer when it sends, and only their hashes are stored.
//!
//! The rules here are pure functions of the item and the time (Unix seconds).

use super::UserId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How long a claim keeps other senders off a mail, in seconds: far longer than one send takes
/// (the SES client gives up after 10 s), short enough that the mailer Lambda (60 s timeout) can
/// wait out the claim of a sender that died mid-send and take over in the same invocation.
pub const MAIL_LEASE_SECONDS: i64 = 30;
/// Sends tried before a mail is given up as `failed` (an operator can requeue it).
pub const MAIL_MAX_ATTEMPTS: u32 = 8;
/// How long an outbox item is kept (TTL), in seconds: 7 days.
pub const MAIL_RETENTION_SECONDS: i64 = 7 * 86_400;

/// Which mail, and what the mailer mints for it when sending.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailKind {
    /// A link to verify the account's email (signup, resend): mints a verify-email token.
    VerifyEmail,
    /// A password-reset link: mints a reset token if the email has an account, else nothing is
    /// sent (the request answered 202 either way).
    PasswordReset,
    /// A 6-digit sign-in code and a magic link: mints both if the email has an account (or
    /// passwordless sign-up is on), else nothing is sent.
    SignInCode,
    /// Notice: the password was changed or reset.
    PasswordChanged,
    /// Notice: the account was deleted.
    AccountDeleted,
    /// Billing: a receipt for a paid payment (cause `receipt:<provider>:<payment id>`).
    PaymentReceipt,
    /// Billing: a payment failed, with the link to manage billing (cause
    /// `payment_failed:<provider>:<payment id>`).
    PaymentFailed,
    /// Billing: the free trial ends within [`TRIAL_ENDING_NOTICE_SECONDS`] (cause
    /// `trial_ending:<provider>:<subscription id>:<trial end>`).
    TrialEnding,
    /// Billing: the subscription was canceled — now, or at the end of the period (cause
    /// `canceled:<provider>:<subscription id>:<end>`).
    SubscriptionCanceled,
    /// Billing: the subscription moved to another plan (cause
    /// `plan_changed:<provider>:<subscription id>:<new version>`).
    PlanChanged,
}

/// How long before a trial ends its notice is due, in seconds: 3 days — when Stripe sends
/// `customer.subscription.trial_will_end` (<https://docs.stripe.com/billing/subscriptions/trials#use-webhooks>).
pub const TRIAL_ENDING_NOTICE_SECONDS: i64 = 3 * 86_400;

impl MailKind {
    /// Every kind, for template checks.
    pub const ALL: [MailKind; 10] = [
        Self::VerifyEmail,
        Self::PasswordReset,
        Self::SignInCode,
        Self::PasswordChanged,
        Self::AccountDeleted,
        Self::PaymentReceipt,
        Self::PaymentFailed,
        Self::TrialEnding,
        Self::SubscriptionCanceled,
        Self::PlanChanged,
    ];

    /// The snake_case name: the template's file name stem.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::PasswordReset => "password_reset",
            Self::SignInCode => "sign_in_code",
            Self::PasswordChanged => "password_changed",
            Self::AccountDeleted => "account_deleted",
            Self::PaymentReceipt => "payment_receipt",
            Self::PaymentFailed => "payment_failed",
            Self::TrialEnding => "trial_ending",
            Self::SubscriptionCanceled => "subscription_canceled",
            Self::PlanChanged => "plan_changed",
        }
    }

    /// Whether it is a billing mail: addressed to the account's email at send time (the item
    /// carries the user id, not an address), skipped when the account is gone.
    pub const fn is_billing(self) -> bool {
        matches!(
            self,
            Self::PaymentReceipt
                | Self::PaymentFailed
                | Self::TrialEnding
                | Self::SubscriptionCanceled
                | Self::PlanChanged
        )
    }
}

/// Where a mail is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailStatus {
    /// Waiting to be sent (new, or released after a failed send).
    Pending,
    /// Claimed by a sender until `lease_until`.
    Sending,
    /// Sent (`sent_at`).
    Sent,
    /// Nothing to send (an unknown email asked for a reset or a code; a verify mail for an
    /// account already verified or gone).
    Skipped,
    /// Given up after [`MAIL_MAX_ATTEMPTS`] sends, or refused for good by the mail service.
    Failed,
}

/// An outbox item. Times are Unix seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxMail {
    /// The cause id (a UUIDv7 made with the change): the item's key, so one cause is one mail.
    pub id: String,
    /// Which mail.
    pub kind: MailKind,
    /// The recipient as entered (for requests by email: the address as typed).
    pub email: String,
    /// The account it concerns, when known at the time of the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// Secret-free facts for the template (the time of a change, the IP and browser it came
    /// from).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub context: BTreeMap<String, String>,
    /// Where it is in its life.
    pub status: MailStatus,
    /// Sends tried (claims taken).
    #[serde(default)]
    pub attempts: u32,
    /// While `Sending`: until when the claim holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until: Option<i64>,
    /// When the change that owes it was committed.
    pub created_at: i64,
    /// When it was sent (or skipped, or given up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
    /// The mail service's message id, once sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Why the last send failed (no secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// TTL attribute: `created_at` + [`MAIL_RETENTION_SECONDS`].
    pub expires_at: i64,
}

/// What a sender may do with a mail at a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimDecision {
    /// Take it: pending, or its sender's lease ran out.
    Claim,
    /// Another sender holds it until this time.
    Busy {
        /// End of the other sender's lease.
        until: i64,
    },
    /// Nothing left to do: sent, skipped or failed.
    Done,
}

impl OutboxMail {
    /// A new pending mail for a change committed at `now`.
    pub fn new(
        kind: MailKind,
        email: impl Into<String>,
        user_id: Option<UserId>,
        now: i64,
    ) -> Self {
        Self {
            id: uuid::Uuid::now_v7().hyphenated().to_string(),
            kind,
            email: email.into(),
            user_id,
            context: BTreeMap::new(),
            status: MailStatus::Pending,
            attempts: 0,
            lease_until: None,
            created_at: now,
            finished_at: None,
            message_id: None,
            last_error: None,
            expires_at: now.saturating_add(MAIL_RETENTION_SECONDS),
        }
    }

    /// A billing mail owed to `user_id` under the deterministic cause id `cause` (so a second
    /// event of the same cause finds it queued and adds nothing); the address is the account's
    /// when it is sent.
    pub fn billing(kind: MailKind, cause: String, user_id: UserId, now: i64) -> Self {
        Self {
            id: cause,
            ..Self::new(kind, String::new(), Some(user_id), now)
        }
    }

    /// The same mail with a template fact.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.context.insert(key.to_owned(), value.into());
        self
    }

    /// Whether a sender may claim it at `now`.
    pub fn claim_decision(&self, now: i64) -> ClaimDecision {
        match self.status {
            MailStatus::Pending => ClaimDecision::Claim,
            MailStatus::Sending => match self.lease_until {
                Some(until) if until > now => ClaimDecision::Busy { until },
                _ => ClaimDecision::Claim,
            },
            MailStatus::Sent | MailStatus::Skipped | MailStatus::Failed => ClaimDecision::Done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_holds_until_its_lease_ends() {
        let mut mail = OutboxMail::new(MailKind::VerifyEmail, "ada@example.com", None, 0);
        assert_eq!(mail.claim_decision(0), ClaimDecision::Claim);
        mail.status = MailStatus::Sending;
        mail.lease_until = Some(30);
        assert_eq!(mail.claim_decision(29), ClaimDecision::Busy { until: 30 });
        assert_eq!(mail.claim_decision(30), ClaimDecision::Claim);
        mail.status = MailStatus::Sent;
        assert_eq!(mail.claim_decision(1_000), ClaimDecision::Done);
    }

    #[test]
    fn each_change_gets_its_own_cause_id() {
        let a = OutboxMail::new(MailKind::PasswordReset, "a@example.com", None, 0);
        let b = OutboxMail::new(MailKind::PasswordReset, "a@example.com", None, 0);
        assert_ne!(a.id, b.id);
        assert_eq!(a.expires_at, MAIL_RETENTION_SECONDS);
    }
}
