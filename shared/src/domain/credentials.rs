//! Checked credentials: an [`Email`] and a [`Password`] can only exist once validated
//! ("parse, don't validate").

use serde::Serialize;
use std::fmt;

/// One invalid field of a request, reported in a `validation_failed` problem's `errors`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ValidationError {
    /// The JSON field name (`email`, `password`).
    pub field: &'static str,
    /// A human-readable reason; never echoes a secret.
    pub message: String,
}

/// An email address: trimmed, syntax-checked (RFC 5321/5322 via the `email_address` crate),
/// at most 254 characters (RFC 5321 §4.5.3.1 path limit).
///
/// [`Email::normalized`] is the lowercase form used for uniqueness and lookups (docs/architecture.md §5:
/// emails compare case-insensitively); [`Email::as_str`] keeps the case the user typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email {
    display: String,
    normalized: String,
}

impl Email {
    /// Maximum length in characters (RFC 5321 §4.5.3.1.3).
    pub const MAX_LEN: usize = 254;

    /// Validates and normalises `raw`.
    ///
    /// # Errors
    /// [`ValidationError`] on field `email` when empty, too long or not an address.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let trimmed = raw.trim();
        let invalid = |message: &str| ValidationError {
            field: "email",
            message: message.to_owned(),
        };
        if trimmed.is_empty() {
            return Err(invalid("email is required"));
        }
        if trimmed.chars().count() > Self::MAX_LEN {
            return Err(invalid("email is longer than 254 characters"));
        }
        // Reject display-name forms ("Ada <ada@x>") and addresses without a dotted domain.
        let valid = email_address::EmailAddress::parse_with_options(
            trimmed,
            email_address::Options {
                minimum_sub_domains: 2,
                allow_domain_literal: false,
                allow_display_text: false,
            },
        )
        .is_ok();
        if !valid {
            return Err(invalid("email is not a valid address"));
        }
        Ok(Self {
            display: trimmed.to_owned(),
            normalized: trimmed.to_lowercase(),
        })
    }

    /// Rebuilds an email already validated and stored (no re-validation, never fails).
    pub fn from_stored(display: String) -> Self {
        let normalized = display.to_lowercase();
        Self {
            display,
            normalized,
        }
    }

    /// The address as the user typed it (trimmed).
    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// The lowercase form: the key of the email claim.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }
}

/// The common passwords refused for new passwords (`shared/data/common-passwords.txt`: the
/// 11,611 entries of 8..=128 characters among zxcvbn's 30,000 most frequent passwords, lowercased
/// and sorted; `shared/data/README.md` gives the source).
const COMMON_PASSWORDS: &str = include_str!("../../data/common-passwords.txt");

/// Whether `candidate`, lowercased, is in the common-password list (OWASP ASVS 6.2.4: refuse at
/// least the 3,000 most common passwords). Binary search over the sorted list.
pub fn is_common_password(candidate: &str) -> bool {
    use std::sync::OnceLock;
    static LIST: OnceLock<Vec<&'static str>> = OnceLock::new();
    let list = LIST.get_or_init(|| COMMON_PASSWORDS.lines().filter(|l| !l.is_empty()).collect());
    list.binary_search(&candidate.to_lowercase().as_str())
        .is_ok()
}

/// A plaintext password: 8..=128 characters, no composition rules (NIST SP 800-63B §5.1.1.2;
/// OWASP Authentication Cheat Sheet), and — for a new password — not a common one
/// ([`is_common_password`], ASVS 6.2.4). `Debug` is redacted.
pub struct Password(String);

impl Password {
    /// Minimum length in characters (NIST SP 800-63B §5.1.1.2).
    pub const MIN_LEN: usize = 8;
    /// Maximum length in characters: bounds hashing work per request.
    pub const MAX_LEN: usize = 128;

    /// Checks a **new** password (signup, reset, change): its length (counted in Unicode scalar
    /// values) and that it is not a common password.
    ///
    /// # Errors
    /// [`ValidationError`] on field `password` when shorter than 8 or longer than 128
    /// characters, or when it is one of the common passwords (the message says so).
    pub fn parse(raw: String) -> Result<Self, ValidationError> {
        Self::parse_field(raw, "password")
    }

    /// [`Password::parse`], reporting errors on `field` (`new_password` for a change).
    ///
    /// # Errors
    /// As [`Password::parse`].
    pub fn parse_field(raw: String, field: &'static str) -> Result<Self, ValidationError> {
        let checked = Self::existing(raw).map_err(|mut e| {
            e.field = field;
            e
        })?;
        if is_common_password(&checked.0) {
            return Err(ValidationError {
                field,
                message: "this password is one of the most commonly used passwords and is easy to guess; choose another".to_owned(),
            });
        }
        Ok(checked)
    }

    /// Checks only the length of a password that already exists (a login's password being
    /// rehashed): accounts created before the common-password rule keep working.
    ///
    /// # Errors
    /// [`ValidationError`] on field `password` when shorter than 8 or longer than 128 characters.
    pub fn existing(raw: String) -> Result<Self, ValidationError> {
        let len = raw.chars().count();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) {
            return Err(ValidationError {
                field: "password",
                message: format!(
                    "password must be {} to {} characters",
                    Self::MIN_LEN,
                    Self::MAX_LEN
                ),
            });
        }
        Ok(Self(raw))
    }

    /// The password bytes, for hashing only.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// A display name: trimmed, 1..=100 characters, no control characters (`PATCH /auth/me`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// Maximum length in characters.
    pub const MAX_LEN: usize = 100;

    /// Validates `raw`.
    ///
    /// # Errors
    /// [`ValidationError`] on field `name` when empty after trimming, longer than 100 characters
    /// or holding control characters.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let trimmed = raw.trim();
        let invalid = |message: &str| ValidationError {
            field: "name",
            message: message.to_owned(),
        };
        if trimmed.is_empty() {
            return Err(invalid("name must not be empty (send null to remove it)"));
        }
        if trimmed.chars().count() > Self::MAX_LEN {
            return Err(invalid("name is longer than 100 characters"));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(invalid("name must not contain control characters"));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_trimmed_and_normalised_to_lowercase() {
        let email = Email::parse("  Ada.Lovelace@Example.COM ").expect("valid");
        assert_eq!(email.as_str(), "Ada.Lovelace@Example.COM");
        assert_eq!(email.normalized(), "ada.lovelace@example.com");
    }

    #[test]
    fn malformed_emails_are_rejected() {
        for bad in [
            "",
            "   ",
            "ada",
            "ada@",
            "@example.com",
            "Ada <ada@example.com>",
            "ada@localhost",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn password_length_is_counted_in_characters() {
        assert!(Password::parse("zq7#Lm2".into()).is_err());
        assert!(Password::parse("zq7#Lm2w".into()).is_ok());
        assert!(
            Password::parse("é".repeat(128)).is_ok(),
            "128 two-byte chars are allowed"
        );
        assert!(Password::parse("a".repeat(129)).is_err());
    }

    #[test]
    fn common_passwords_are_refused_whatever_their_case() {
        for common in [
            "password",
            "Password1",
            "iloveyou",
            "12345678",
            "qwertyuiop",
        ] {
            let err = Password::parse(common.into()).expect_err(common);
            assert!(err.message.contains("common"), "{common}: {}", err.message);
        }
        let err = Password::parse_field("password".into(), "new_password").expect_err("common");
        assert_eq!(err.field, "new_password");
        assert!(Password::parse("correct horse battery staple".into()).is_ok());
        // An existing password is only length-checked (accounts older than the rule).
        assert!(Password::existing("password".into()).is_ok());
        assert!(is_common_password("PASSWORD"));
        assert!(!is_common_password("a fairly unusual passphrase"));
    }

    #[test]
    fn display_names_are_trimmed_and_bounded() {
        assert_eq!(DisplayName::parse("  Ada ").expect("valid").as_str(), "Ada");
        for bad in ["", "   ", "a\u{7}b"] {
            assert!(DisplayName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(DisplayName::parse(&"é".repeat(100)).is_ok());
        assert!(DisplayName::parse(&"é".repeat(101)).is_err());
    }

    #[test]
    fn password_debug_is_redacted() {
        let p = Password::parse("correct horse".into()).expect("valid");
        assert!(!format!("{p:?}").contains("horse"));
    }
}
