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

/// A plaintext password, checked for length only: 8..=128 characters, no composition rules
/// (NIST SP 800-63B §5.1.1.2; OWASP Authentication Cheat Sheet). `Debug` is redacted.
pub struct Password(String);

impl Password {
    /// Minimum length in characters (NIST SP 800-63B §5.1.1.2).
    pub const MIN_LEN: usize = 8;
    /// Maximum length in characters: bounds hashing work per request.
    pub const MAX_LEN: usize = 128;

    /// Checks the length of `raw` (counted in Unicode scalar values).
    ///
    /// # Errors
    /// [`ValidationError`] on field `password` when shorter than 8 or longer than 128 characters.
    pub fn parse(raw: String) -> Result<Self, ValidationError> {
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
        assert!(Password::parse("1234567".into()).is_err());
        assert!(Password::parse("12345678".into()).is_ok());
        assert!(
            Password::parse("é".repeat(128)).is_ok(),
            "128 two-byte chars are allowed"
        );
        assert!(Password::parse("a".repeat(129)).is_err());
    }

    #[test]
    fn password_debug_is_redacted() {
        let p = Password::parse("correct horse".into()).expect("valid");
        assert!(!format!("{p:?}").contains("horse"));
    }
}
