//! Sessions and the refresh-token rules (docs/architecture.md §5), as pure functions of the stored session,
//! the presented token's hash and the time.
//!
//! A session is one refresh-token family. Only SHA-256 hashes of refresh secrets are stored.
//! Every use rotates the token. Presenting a rotated token again is reuse and revokes the whole
//! session (OAuth 2.0 Security BCP, RFC 9700 §4.14.2), except within a short grace window after
//! rotation, when the presenter receives the *same* successor token the first caller got — so two
//! tabs refreshing at once both end up holding the one live token (Supabase's reuse interval,
//! auth-js#213). The successor is kept sealed under a key only the previous token's holder can
//! derive (see `auth::refresh`), so the store still holds nothing that can refresh.

use super::{SessionId, UserId};
use serde::{Deserialize, Serialize};
use std::fmt;

/// How many retired token hashes a session remembers for reuse detection, besides `previous`.
///
/// With 15-minute access tokens that covers about 4 hours of continuous refreshing; a token
/// older than that is refused as unknown (401) without revoking the session.
pub const RETIRED_HASHES_KEPT: usize = 16;

/// SHA-256 of a refresh-token secret, base64url without padding (43 characters).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenHash(pub String);

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A hash is not a secret, but keep logs short and uninteresting.
        write!(f, "TokenHash({}…)", self.0.get(..6).unwrap_or(""))
    }
}

impl TokenHash {
    /// Constant-time equality (the hash is derived from a secret the caller presented).
    pub fn ct_eq(&self, other: &TokenHash) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(self.0.as_bytes(), other.0.as_bytes())
            .is_ok()
    }
}

/// Why a session was revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokeReason {
    /// The user logged out.
    Logout,
    /// A rotated refresh token was presented after the grace window.
    Reuse,
    /// The user ended it from the sessions list (`DELETE /auth/sessions/{id}`).
    Revoked,
}

/// How a session was started (shown in the sessions list).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignInMethod {
    /// Signup with a password.
    Signup,
    /// Email and password.
    Password,
    /// A 6-digit code sent by email.
    EmailCode,
    /// A magic link sent by email.
    MagicLink,
    /// An identity provider (GitHub, Google, OpenID Connect).
    OAuth,
}

impl SignInMethod {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signup => "signup",
            Self::Password => "password",
            Self::EmailCode => "email_code",
            Self::MagicLink => "magic_link",
            Self::OAuth => "oauth",
        }
    }
}

/// Where a new session comes from: what the sessions list shows, and the user's session epoch
/// it starts in.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SessionOrigin {
    /// The request's `User-Agent` (kept to 256 characters).
    pub user_agent: Option<String>,
    /// The client IP (API Gateway's `sourceIp`, or the socket address locally).
    pub ip: Option<String>,
    /// How the user signed in (`None`: not recorded).
    pub method: Option<SignInMethod>,
    /// The user's [`crate::domain::User::session_epoch`] when the session starts.
    pub epoch: u64,
}

/// Lifetimes of a session, in seconds. Defaults from docs/architecture.md §5.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionPolicy {
    /// A session unused for this long cannot refresh (default 30 days = 2,592,000 s).
    pub idle_timeout: i64,
    /// A session older than this cannot refresh, however active (default 90 days = 7,776,000 s).
    pub absolute_lifetime: i64,
    /// After a rotation, the previous token still yields the successor for this long
    /// (default 10 s).
    pub reuse_grace: i64,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle_timeout: 30 * 24 * 3600,
            absolute_lifetime: 90 * 24 * 3600,
            reuse_grace: 10,
        }
    }
}

/// A stored session (`USER#<id>` / `SESSION#<sid>`). Times are Unix seconds (UTC).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The owner.
    pub user_id: UserId,
    /// The session (token family) id.
    pub id: SessionId,
    /// Hash of the one live refresh token.
    pub current_hash: TokenHash,
    /// Hash of the token rotated away most recently.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_hash: Option<TokenHash>,
    /// When `previous_hash` was rotated away.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_at: Option<i64>,
    /// The live token's secret sealed under a key derived from the previous secret
    /// (base64url), so the grace window can hand out the same successor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_successor: Option<String>,
    /// Older retired hashes, newest first, at most [`RETIRED_HASHES_KEPT`].
    #[serde(default)]
    pub retired_hashes: Vec<TokenHash>,
    /// How many rotations this family has been through.
    pub generation: u64,
    /// Creation time.
    pub created_at: i64,
    /// Last successful refresh (or creation).
    pub last_used_at: i64,
    /// When the session can no longer refresh: `min(last_used_at + idle, created_at + absolute)`.
    /// Also the DynamoDB TTL attribute, so dead sessions are deleted by the table.
    pub expires_at: i64,
    /// Set once the session is revoked; a revoked session never refreshes again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
    /// Why it was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_reason: Option<RevokeReason>,
    /// The `User-Agent` at login, at most 256 characters, for a sessions list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The client IP at login, for a sessions list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// How the user signed in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<SignInMethod>,
    /// The user's session epoch this session belongs to; it is revoked once the user's
    /// [`crate::domain::User::session_epoch`] is higher.
    #[serde(default)]
    pub epoch: u64,
    /// When the user last proved who they are in this session (password, code or link), for
    /// the recent-login rule; `None` means `created_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticated_at: Option<i64>,
}

/// What a refresh request with a given token must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefreshDecision {
    /// The live token: rotate to a new one.
    Rotate,
    /// The token rotated away less than `reuse_grace` seconds ago: hand out the same successor.
    GraceReplay,
    /// A rotated token presented too late: revoke the whole session.
    Reuse,
    /// The session was revoked.
    Revoked,
    /// The session is past its idle timeout or absolute lifetime.
    Expired,
    /// The secret matches nothing this session remembers (forged, or older than the history).
    Unknown,
}

impl Session {
    /// A new session whose live token hash is `token_hash`, created at `now`.
    pub fn start(
        user_id: UserId,
        id: SessionId,
        token_hash: TokenHash,
        now: i64,
        policy: &SessionPolicy,
        origin: SessionOrigin,
    ) -> Self {
        Self {
            user_id,
            id,
            current_hash: token_hash,
            previous_hash: None,
            rotated_at: None,
            sealed_successor: None,
            retired_hashes: Vec::new(),
            generation: 0,
            created_at: now,
            last_used_at: now,
            expires_at: expiry(now, now, policy),
            revoked_at: None,
            revoked_reason: None,
            user_agent: origin.user_agent.map(|ua| ua.chars().take(256).collect()),
            ip: origin.ip.map(|ip| ip.chars().take(64).collect()),
            method: origin.method,
            epoch: origin.epoch,
            authenticated_at: None,
        }
    }

    /// Whether the user's [`crate::domain::User::session_epoch`] has moved past this session
    /// (log out everywhere, password reset or change).
    pub fn revoked_by_epoch(&self, user_epoch: u64) -> bool {
        self.epoch < user_epoch
    }

    /// Whether the session can still refresh at `now`: not revoked (directly or by the user's
    /// epoch), not idle for too long, not past its absolute lifetime.
    pub fn is_active(&self, now: i64, user_epoch: u64, policy: &SessionPolicy) -> bool {
        self.revoked_at.is_none()
            && !self.revoked_by_epoch(user_epoch)
            && now < self.expires_at
            && now < self.created_at.saturating_add(policy.absolute_lifetime)
    }

    /// When the user last authenticated in this session (Unix seconds).
    pub fn authenticated_at(&self) -> i64 {
        self.authenticated_at.unwrap_or(self.created_at)
    }

    /// Whether the user authenticated within `window` seconds before `now` — the recent-login
    /// rule for sensitive actions (OWASP ASVS 6.3: re-authenticate before deleting an account).
    pub fn recently_authenticated(&self, now: i64, window: i64) -> bool {
        now.saturating_sub(self.authenticated_at()) <= window
    }

    /// Decides what presenting a token with hash `presented` at `now` does.
    pub fn decide(
        &self,
        presented: &TokenHash,
        now: i64,
        policy: &SessionPolicy,
    ) -> RefreshDecision {
        if self.revoked_at.is_some() {
            return RefreshDecision::Revoked;
        }
        if now >= self.expires_at || now >= self.created_at + policy.absolute_lifetime {
            return RefreshDecision::Expired;
        }
        if presented.ct_eq(&self.current_hash) {
            return RefreshDecision::Rotate;
        }
        if let Some(previous) = &self.previous_hash {
            if presented.ct_eq(previous) {
                let rotated_at = self.rotated_at.unwrap_or(i64::MIN);
                let in_grace = now.saturating_sub(rotated_at) <= policy.reuse_grace;
                return if in_grace && self.sealed_successor.is_some() {
                    RefreshDecision::GraceReplay
                } else {
                    RefreshDecision::Reuse
                };
            }
        }
        // Check every remembered hash (no early exit) so timing says nothing about the history.
        let retired = self
            .retired_hashes
            .iter()
            .fold(false, |found, h| found | presented.ct_eq(h));
        if retired {
            RefreshDecision::Reuse
        } else {
            RefreshDecision::Unknown
        }
    }

    /// The session after rotating from the live token to `next_hash` at `now`.
    ///
    /// `sealed_successor` is the new secret sealed under the presented (now previous) secret.
    pub fn rotated(
        &self,
        next_hash: TokenHash,
        sealed_successor: String,
        now: i64,
        policy: &SessionPolicy,
    ) -> Self {
        let mut retired = Vec::with_capacity(RETIRED_HASHES_KEPT);
        retired.extend(self.previous_hash.iter().cloned());
        retired.extend(self.retired_hashes.iter().cloned());
        retired.truncate(RETIRED_HASHES_KEPT);
        Self {
            current_hash: next_hash,
            previous_hash: Some(self.current_hash.clone()),
            rotated_at: Some(now),
            sealed_successor: Some(sealed_successor),
            retired_hashes: retired,
            generation: self.generation + 1,
            last_used_at: now,
            expires_at: expiry(self.created_at, now, policy),
            ..self.clone()
        }
    }
}

/// `min(last_used + idle, created + absolute)`, saturating.
fn expiry(created_at: i64, last_used_at: i64, policy: &SessionPolicy) -> i64 {
    last_used_at
        .saturating_add(policy.idle_timeout)
        .min(created_at.saturating_add(policy.absolute_lifetime))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> TokenHash {
        TokenHash(s.to_owned())
    }

    fn session(now: i64) -> Session {
        Session::start(
            UserId::new(),
            SessionId::new(),
            h("t0"),
            now,
            &SessionPolicy::default(),
            SessionOrigin::default(),
        )
    }

    #[test]
    fn live_token_rotates_and_old_one_is_replayable_only_within_grace() {
        let p = SessionPolicy::default();
        let s = session(1_000).rotated(h("t1"), "sealed".into(), 1_100, &p);
        assert_eq!(s.decide(&h("t1"), 1_105, &p), RefreshDecision::Rotate);
        assert_eq!(s.decide(&h("t0"), 1_110, &p), RefreshDecision::GraceReplay);
        assert_eq!(s.decide(&h("t0"), 1_111, &p), RefreshDecision::Reuse);
    }

    #[test]
    fn older_retired_tokens_are_reuse_and_strangers_are_unknown() {
        let p = SessionPolicy::default();
        let s = session(0)
            .rotated(h("t1"), "x".into(), 10, &p)
            .rotated(h("t2"), "x".into(), 20, &p)
            .rotated(h("t3"), "x".into(), 30, &p);
        assert_eq!(s.previous_hash, Some(h("t2")));
        assert_eq!(s.retired_hashes, vec![h("t1"), h("t0")]);
        assert_eq!(s.decide(&h("t0"), 31, &p), RefreshDecision::Reuse);
        assert_eq!(s.decide(&h("nope"), 31, &p), RefreshDecision::Unknown);
        assert_eq!(s.generation, 3);
    }

    #[test]
    fn retired_history_is_bounded() {
        let p = SessionPolicy::default();
        let mut s = session(0);
        for i in 1..=40 {
            s = s.rotated(h(&format!("t{i}")), "x".into(), i, &p);
        }
        assert_eq!(s.retired_hashes.len(), RETIRED_HASHES_KEPT);
        assert_eq!(s.retired_hashes[0], h("t38"));
    }

    #[test]
    fn idle_and_absolute_expiry_stop_refresh() {
        let p = SessionPolicy {
            idle_timeout: 100,
            absolute_lifetime: 250,
            reuse_grace: 10,
        };
        let s = Session::start(
            UserId::new(),
            SessionId::new(),
            h("t0"),
            0,
            &p,
            SessionOrigin::default(),
        );
        assert_eq!(s.expires_at, 100);
        assert_eq!(s.decide(&h("t0"), 99, &p), RefreshDecision::Rotate);
        assert_eq!(s.decide(&h("t0"), 100, &p), RefreshDecision::Expired);
        // Keep it busy: the absolute lifetime still ends it.
        let s = s
            .rotated(h("t1"), "x".into(), 90, &p)
            .rotated(h("t2"), "x".into(), 180, &p);
        assert_eq!(s.expires_at, 250);
        assert_eq!(s.decide(&h("t2"), 249, &p), RefreshDecision::Rotate);
        assert_eq!(s.decide(&h("t2"), 250, &p), RefreshDecision::Expired);
    }

    #[test]
    fn a_revoked_session_never_refreshes() {
        let p = SessionPolicy::default();
        let mut s = session(0);
        s.revoked_at = Some(5);
        assert_eq!(s.decide(&h("t0"), 6, &p), RefreshDecision::Revoked);
    }

    #[test]
    fn user_agent_is_truncated() {
        let s = Session::start(
            UserId::new(),
            SessionId::new(),
            h("t"),
            0,
            &SessionPolicy::default(),
            SessionOrigin {
                user_agent: Some("x".repeat(1000)),
                ..SessionOrigin::default()
            },
        );
        assert_eq!(s.user_agent.map(|u| u.len()), Some(256));
    }

    #[test]
    fn raising_the_users_epoch_revokes_older_sessions() {
        let p = SessionPolicy::default();
        let s = session(0);
        assert!(s.is_active(10, 0, &p));
        assert!(!s.is_active(10, 1, &p), "epoch 1 revokes epoch-0 sessions");
        let mut newer = session(0);
        newer.epoch = 1;
        assert!(newer.is_active(10, 1, &p));
        assert!(!s.is_active(p.idle_timeout + 1, 0, &p), "idle too long");
    }

    #[test]
    fn recent_login_counts_from_the_last_authentication() {
        let mut s = session(100);
        assert!(s.recently_authenticated(400, 300));
        assert!(!s.recently_authenticated(401, 300));
        s.authenticated_at = Some(1_000);
        assert!(s.recently_authenticated(1_200, 300));
    }
}
