//! Amazon SES v2 (`SendEmail`, simple content: subject, text and HTML parts), from a verified
//! sender identity, with an optional configuration set (bounce and complaint events).
//! The function's role may send only from that identity (`template.yaml`).

use super::{Mailer, MailerError, OutgoingMail};
use async_trait::async_trait;
use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use aws_sdk_sesv2::Client;

/// SES v2 as a [`Mailer`]. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SesMailer {
    client: Client,
    from: String,
    configuration_set: Option<String>,
}

impl SesMailer {
    /// Sends from `from` (an address of a verified identity, optionally with a display name:
    /// `Tollgate <no-reply@example.com>`), through `configuration_set` when given.
    pub fn new(client: Client, from: impl Into<String>, configuration_set: Option<String>) -> Self {
        Self {
            client,
            from: from.into(),
            configuration_set,
        }
    }
}

fn content(text: &str) -> Result<Content, MailerError> {
    Content::builder()
        .data(text)
        .charset("UTF-8")
        .build()
        .map_err(|e| MailerError::Rejected(Box::new(e)))
}

/// SES's permanent refusals: the request itself is bad (`BadRequestException`: a malformed
/// address or message). Everything else — throttling, an unverified sender or a paused account
/// that an operator fixes, transport failures — may succeed later.
fn classify<E, R>(err: SdkError<E, R>) -> MailerError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match err.code() {
        Some("BadRequestException") => MailerError::Rejected(Box::new(err)),
        _ => MailerError::Unavailable(Box::new(err)),
    }
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, mail: &OutgoingMail) -> Result<String, MailerError> {
        let message = Message::builder()
            .subject(content(&mail.subject)?)
            .body(
                Body::builder()
                    .text(content(&mail.text)?)
                    .html(content(&mail.html)?)
                    .build(),
            )
            .build();
        let out = self
            .client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&mail.to).build())
            .content(EmailContent::builder().simple(message).build())
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await
            .map_err(classify)?;
        Ok(out.message_id.unwrap_or_default())
    }
}
