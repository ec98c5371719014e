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
    /// The password hash as a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
    pub password_hash: String,
    /// Account status.
    pub status: UserStatus,
    /// Whether the email has been verified (no verification flow yet: always `false`).
    pub email_verified: bool,
    /// Roles granted to the user (copied into nothing yet; reserved for admin flows).
    #[serde(default)]
    pub roles: Vec<String>,
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
}
