//! The user record (`USER#<id>` / `PROFILE`).

use super::{Email, UserId};
use serde::{Deserialize, Serialize};

/// Whether a user may log in and refresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    /// May log in.
    Active,
    /// Blocked by an operator: login and refresh answer `account_disabled`.
    Disabled,
}

/// A stored user. Times are Unix seconds (UTC).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The user's id.
    pub id: UserId,
    /// The email as typed at signup (trimmed); its lowercase form is the email claim's key.
    pub email: String,
    /// The password hash as a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`); `None` for an
    /// account created by an email code or magic link without a password (passwordless
    /// sign-up), which cannot log in with a password until it sets one by a reset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// Account status.
    pub status: UserStatus,
    /// Whether the email has been verified (by a verification link, a password reset link, an
    /// email code or a magic link — each proves the mailbox).
    pub email_verified: bool,
    /// The display name, if the user set one (`PATCH /auth/me`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Roles granted to the user (copied into nothing yet; reserved for admin flows).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Sessions whose [`super::Session::epoch`] is below this are revoked: "log out
    /// everywhere", a password reset and a password change raise it (one conditional write,
    /// however many sessions the user has; refresh and `/auth/me` read the user anyway).
    #[serde(default)]
    pub session_epoch: u64,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Last change, Unix seconds.
    pub updated_at: i64,
    /// Optimistic-concurrency version, starting at 1; every update increments it.
    pub version: u64,
}

impl User {
    /// The user's email as a typed value.
    pub fn email(&self) -> Email {
        Email::from_stored(self.email.clone())
    }

    /// A copy with the changes of `f` applied, the version incremented and `updated_at` set to
    /// `now`: the next state to write with the current version as the expected one.
    pub fn updated(&self, now: i64, f: impl FnOnce(&mut User)) -> User {
        let mut next = self.clone();
        f(&mut next);
        next.version = self.version + 1;
        next.updated_at = now;
        next
    }
}
