//! One-time secrets sent by email (docs/architecture.md §11): links (verify email, reset
//! password, magic link) and 6-digit sign-in codes. Only hashes are stored; the rules here are
//! pure functions of the stored record, the presented hash and the time (Unix seconds).

use super::{TokenHash, UserId};
use serde::{Deserialize, Serialize};

/// What a one-time link token may be spent on. A token is bound to one purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenPurpose {
    /// `POST /auth/verify-email`.
    VerifyEmail,
    /// `POST /auth/password/reset`.
    ResetPassword,
    /// `POST /auth/magic-link/verify`.
    MagicLink,
    /// `POST /auth/oauth/exchange`: the one-time code an identity provider's callback hands the
    /// app.
    OAuthExchange,
}

impl TokenPurpose {
    /// Lifetime in seconds: verify email 24 h, reset password 30 min, magic link 15 min
    /// (docs/architecture.md §11; OWASP Forgot Password Cheat Sheet: short-lived reset tokens).
    pub const fn lifetime(self) -> i64 {
        match self {
            Self::VerifyEmail => 24 * 3600,
            Self::ResetPassword => 30 * 60,
            Self::MagicLink => 15 * 60,
            Self::OAuthExchange => super::OAUTH_EXCHANGE_LIFETIME_SECONDS,
        }
    }

    /// The snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
            Self::MagicLink => "magic_link",
            Self::OAuthExchange => "oauth_exchange",
        }
    }
}

/// A stored one-time link token (`TOKEN#<hash>` / `TOKEN`): 256 random bits sent in a link,
/// SHA-256 stored, spent by a conditional delete. Times are Unix seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OneTimeToken {
    /// SHA-256 of the secret, base64url (the item's key).
    pub hash: TokenHash,
    /// What it may be spent on.
    pub purpose: TokenPurpose,
    /// The user it acts for (`None`: a magic link for an email without an account, when
    /// passwordless sign-up is on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// The normalized email the link was sent to: spending it proves that mailbox.
    pub email: String,
    /// The user's session epoch when it was minted. A reset token is refused once the epoch
    /// moved (a password was reset or changed since, or every session was logged out), so one
    /// reset spends every other reset link.
    #[serde(default)]
    pub epoch: u64,
    /// What it concerns beyond its purpose (the identity provider of an exchange code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// When it was minted.
    pub created_at: i64,
    /// When it stops working; also the TTL attribute.
    pub expires_at: i64,
}

impl OneTimeToken {
    /// Whether it can be spent for `purpose` at `now`.
    pub fn usable_for(&self, purpose: TokenPurpose, now: i64) -> bool {
        self.purpose == purpose && now < self.expires_at
    }
}

/// A sign-in code's lifetime in seconds (10 min, docs/architecture.md §11).
pub const OTP_LIFETIME_SECONDS: i64 = 600;
/// Wrong tries after which a code is dead, even for the right code (docs/architecture.md §11;
/// NIST SP 800-63B §5.2.2 limits failed attempts).
pub const OTP_MAX_ATTEMPTS: u32 = 5;

/// The live sign-in code of an email (`OTP#<normalized email>` / `OTP`): one per email, a new
/// request replaces it. Only its hash is stored. Times are Unix seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailOtp {
    /// The normalized email.
    pub email: String,
    /// This code's id (a new code gets a new id), so counting a wrong try or spending the code
    /// never touches a code that replaced it meanwhile.
    pub id: String,
    /// SHA-256 of the email and the code, base64url.
    pub code_hash: TokenHash,
    /// Wrong tries so far.
    pub attempts: u32,
    /// The user it signs in (`None`: no account yet; passwordless sign-up creates one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// When it was sent.
    pub created_at: i64,
    /// When it stops working; also the TTL attribute.
    pub expires_at: i64,
}

/// What presenting a code does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtpCheck {
    /// The right code, in time, with tries left: sign in and spend it.
    Valid,
    /// A wrong code: count the try (`attempts` after counting it).
    Wrong {
        /// Wrong tries including this one.
        attempts: u32,
    },
    /// No tries left: refused whatever the code (the 6th try after 5 wrong ones).
    Exhausted,
    /// Past its lifetime.
    Expired,
}

impl EmailOtp {
    /// Decides what presenting a code with hash `presented` at `now` does. The tries are
    /// checked first, so after five wrong codes even the right one is refused.
    pub fn check(&self, presented: &TokenHash, now: i64) -> OtpCheck {
        if now >= self.expires_at {
            return OtpCheck::Expired;
        }
        if self.attempts >= OTP_MAX_ATTEMPTS {
            return OtpCheck::Exhausted;
        }
        if presented.ct_eq(&self.code_hash) {
            OtpCheck::Valid
        } else {
            OtpCheck::Wrong {
                attempts: self.attempts + 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn otp() -> EmailOtp {
        EmailOtp {
            email: "ada@example.com".into(),
            id: "1".into(),
            code_hash: TokenHash("right".into()),
            attempts: 0,
            user_id: None,
            created_at: 0,
            expires_at: OTP_LIFETIME_SECONDS,
        }
    }

    #[test]
    fn five_wrong_codes_kill_the_code_even_for_the_right_one() {
        let mut code = otp();
        let wrong = TokenHash("wrong".into());
        for n in 1..=OTP_MAX_ATTEMPTS {
            assert_eq!(code.check(&wrong, 10), OtpCheck::Wrong { attempts: n });
            code.attempts = n;
        }
        assert_eq!(
            code.check(&TokenHash("right".into()), 10),
            OtpCheck::Exhausted
        );
    }

    #[test]
    fn codes_expire_after_ten_minutes() {
        let code = otp();
        let right = TokenHash("right".into());
        assert_eq!(code.check(&right, 599), OtpCheck::Valid);
        assert_eq!(code.check(&right, 600), OtpCheck::Expired);
    }

    #[test]
    fn a_token_is_spent_only_for_its_purpose_and_in_time() {
        let token = OneTimeToken {
            hash: TokenHash("h".into()),
            purpose: TokenPurpose::MagicLink,
            user_id: None,
            email: "ada@example.com".into(),
            epoch: 0,
            note: None,
            created_at: 0,
            expires_at: TokenPurpose::MagicLink.lifetime(),
        };
        assert!(token.usable_for(TokenPurpose::MagicLink, 899));
        assert!(!token.usable_for(TokenPurpose::MagicLink, 900));
        assert!(!token.usable_for(TokenPurpose::ResetPassword, 1));
    }
}
