//! API keys (docs/architecture.md §5c): long-lived credentials a program presents as a bearer
//! instead of an access token. Pure; times are Unix seconds.
//!
//! A key reads `tg_<key id>_<secret>`: the key id (16 lowercase hex digits) finds the stored item,
//! the secret (32 random bytes, base64url) proves possession. Only the SHA-256 of the whole key
//! is stored, compared in constant time; the key itself is shown once, at creation.

use super::{TokenHash, UserId};
use serde::{Deserialize, Serialize};

/// Every key starts with this, so secret scanners (GitHub's push protection, gitleaks) and
/// people can recognise one.
pub const API_KEY_PREFIX: &str = "tg_";

/// Bytes of randomness in a key's secret: 256 bits (OWASP: at least 128 bits of entropy for
/// session-grade secrets).
pub const API_KEY_SECRET_BYTES: usize = 32;

/// How often `last_used_at` is written at most, seconds: one write per key per minute whatever
/// the traffic.
pub const LAST_USED_RESOLUTION_SECONDS: i64 = 60;

/// Longest key name, characters.
pub const API_KEY_NAME_MAX: usize = 100;

/// Whom a key acts for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyKind {
    /// Acts as the user who created it, with that user's current plan.
    User,
    /// Created by an operator for the customer's backend: may call the usage API for any user.
    Service,
}

/// A stored API key (`USER#<id>` / `APIKEY#<key id>`, with `APIKEY#<key id>` / `APIKEY` naming
/// the owner for the lookup).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// The key id (16 lowercase hex digits), public.
    pub key_id: String,
    /// The owner.
    pub user_id: UserId,
    /// User or service key.
    pub kind: ApiKeyKind,
    /// The owner's name for it.
    pub name: String,
    /// SHA-256 of the whole key, base64url.
    pub hash: TokenHash,
    /// Created, Unix seconds.
    pub created_at: i64,
    /// Last used, Unix seconds (written at most once per [`LAST_USED_RESOLUTION_SECONDS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<i64>,
    /// Expiry, Unix seconds (also the item's TTL, so the table forgets an expired key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// Revoked, Unix seconds: refused from then on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
}

/// Why a presented key does not authenticate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyRefusal {
    /// Revoked.
    Revoked,
    /// Past its expiry.
    Expired,
    /// The secret does not match.
    Mismatch,
}

impl ApiKey {
    /// The public prefix that identifies the key in lists: `tg_<key id>`.
    pub fn prefix(&self) -> String {
        format!("{API_KEY_PREFIX}{}", self.key_id)
    }

    /// Whether a key whose hash is `presented` may be used at `now`.
    ///
    /// # Errors
    /// The [`KeyRefusal`]; the hash is compared in constant time.
    pub fn check(&self, presented: &TokenHash, now: i64) -> Result<(), KeyRefusal> {
        if !presented.ct_eq(&self.hash) {
            return Err(KeyRefusal::Mismatch);
        }
        if self.revoked_at.is_some() {
            return Err(KeyRefusal::Revoked);
        }
        if self.expires_at.is_some_and(|e| e <= now) {
            return Err(KeyRefusal::Expired);
        }
        Ok(())
    }

    /// Whether `last_used_at` is due a write at `now` (never written, or older than a minute).
    pub fn touch_due(&self, now: i64) -> bool {
        self.last_used_at
            .is_none_or(|t| now - t >= LAST_USED_RESOLUTION_SECONDS)
    }
}

/// The key id of a presented bearer that looks like an API key (`tg_<16 hex>_<secret>`), or
/// `None` for anything else (an access token).
pub fn api_key_id(presented: &str) -> Option<&str> {
    let rest = presented.strip_prefix(API_KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let id_ok = id.len() == 16 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    (id_ok && !secret.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ApiKey {
        ApiKey {
            key_id: "0123456789abcdef".into(),
            user_id: UserId::new(),
            kind: ApiKeyKind::User,
            name: "ci".into(),
            hash: TokenHash("h".into()),
            created_at: 100,
            last_used_at: None,
            expires_at: Some(200),
            revoked_at: None,
        }
    }

    #[test]
    fn only_the_tg_shape_is_taken_for_a_key() {
        assert_eq!(
            api_key_id("tg_0123456789abcdef_s3cr_et"),
            Some("0123456789abcdef")
        );
        for not_a_key in [
            "eyJhbGciOiJSUzI1NiJ9.x.y",
            "tg_0123456789abcdef_",
            "tg_0123456789ABCDEF_s",
            "tg_0123_s",
        ] {
            assert_eq!(api_key_id(not_a_key), None, "{not_a_key}");
        }
    }

    #[test]
    fn a_key_is_refused_when_revoked_expired_or_mismatched() {
        let k = key();
        assert_eq!(k.check(&TokenHash("h".into()), 150), Ok(()));
        assert_eq!(
            k.check(&TokenHash("x".into()), 150),
            Err(KeyRefusal::Mismatch)
        );
        assert_eq!(
            k.check(&TokenHash("h".into()), 200),
            Err(KeyRefusal::Expired)
        );
        let revoked = ApiKey {
            revoked_at: Some(120),
            ..k
        };
        assert_eq!(
            revoked.check(&TokenHash("h".into()), 150),
            Err(KeyRefusal::Revoked)
        );
    }

    #[test]
    fn last_used_is_written_at_most_once_a_minute() {
        let mut k = key();
        assert!(k.touch_due(100));
        k.last_used_at = Some(100);
        assert!(!k.touch_due(159));
        assert!(k.touch_due(160));
    }
}
