//! Sending mail: the [`Mailer`] trait (one I/O boundary) with Amazon SES v2 in Lambda
//! ([`ses`], feature `ses`); the dev server implements it with an outbox directory and optional
//! SMTP. What to send and when is the mail use case's (`crate::mail`).

#[cfg(feature = "ses")]
pub mod ses;

use crate::error::BoxError;
use async_trait::async_trait;

/// A rendered mail, ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingMail {
    /// The outbox item's cause id: the same mail sent twice carries the same id, so a sender
    /// that can be idempotent (the dev outbox writes one file per id) is.
    pub id: String,
    /// The recipient address.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
}

/// Why a send failed, and whether trying again may help.
#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    /// The service refused this mail for good (a malformed address, a rejected message): do not
    /// retry.
    #[error("the mail service refused the message")]
    Rejected(#[source] BoxError),
    /// The service is unreachable, throttling, or failed (or not set up yet, like an
    /// unverified sender): a later attempt may succeed.
    #[error("the mail service is unavailable")]
    Unavailable(#[source] BoxError),
}

impl MailerError {
    /// Whether a later attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// Sends mail.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends `mail`; returns the service's message id.
    ///
    /// # Errors
    /// [`MailerError`].
    async fn send(&self, mail: &OutgoingMail) -> Result<String, MailerError>;
}
