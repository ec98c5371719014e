//! The single-table key layout (DESIGN §4), shared by both backends: `(PK, SK)` string pairs.

use crate::domain::{SessionId, UserId};

/// Partition key attribute name.
pub const PK: &str = "PK";
/// Sort key attribute name.
pub const SK: &str = "SK";
/// The TTL attribute (Unix seconds); DynamoDB deletes items some time after it passes.
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// `USER#<id>` / `PROFILE`.
pub fn user(id: &UserId) -> (String, String) {
    (user_pk(id), "PROFILE".to_owned())
}

/// `USER#<id>`: the partition of everything a user owns.
pub fn user_pk(id: &UserId) -> String {
    format!("USER#{id}")
}

/// `EMAIL#<normalized email>` / `EMAIL`.
pub fn email_claim(normalized_email: &str) -> (String, String) {
    (format!("EMAIL#{normalized_email}"), "EMAIL".to_owned())
}

/// Sort-key prefix of sessions.
pub const SESSION_PREFIX: &str = "SESSION#";

/// `USER#<id>` / `SESSION#<sid>`.
pub fn session(user_id: &UserId, id: &SessionId) -> (String, String) {
    (user_pk(user_id), format!("{SESSION_PREFIX}{id}"))
}
