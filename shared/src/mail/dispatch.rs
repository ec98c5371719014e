//! Delivering outbox items: claim → mint what the mail carries (a link token, a sign-in code;
//! only hashes stored) → render → send → finish.
//!
//! **At least once.** The item was committed with the change that owes it. A send that fails
//! hands the item back (`Pending`) and reports a retryable error, so the caller (the stream's
//! retry, the dev worker's loop, a sweep) tries again; a sender that dies mid-send leaves a claim
//! that lapses after [`MAIL_LEASE_SECONDS`], and the next attempt takes over.
//!
//! **At most once per cause.** One item per cause id (a conditional put); a claim is a
//! conditional write, so of concurrent senders exactly one sends; a finished item is never sent
//! again. The one window left is a sender dying after the mail service accepted the message and
//! before the `Sent` mark (milliseconds): then the lapsed claim is taken over and the mail goes
//! out a second time. SES v2 has no idempotency key to close it; the dev outbox writes one file
//! per cause id and so is exactly-once.

use super::templates::{TemplateError, Templates};
use crate::auth::one_time::{code_hash, generate_code, LinkToken};
use crate::clock::Clock;
use crate::domain::{
    rfc3339, Email, EmailOtp, MailKind, MailStatus, OneTimeToken, OutboxMail, TokenPurpose, User,
    UserStatus, MAIL_LEASE_SECONDS, MAIL_MAX_ATTEMPTS, OTP_LIFETIME_SECONDS,
};
use crate::error::Chain;
use crate::mailer::{Mailer, MailerError, OutgoingMail};
use crate::store::{AccountStore, Change, MailClaim, MailOutcome, Outbox, StoreError, UserStore};
use std::collections::BTreeMap;
use std::sync::Arc;
use tracing::Instrument as _;

/// What mails say and link to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailSettings {
    /// The product name in subjects and bodies (`TOLLGATE_APP_NAME`).
    pub app_name: String,
    /// Where the pages the links open live (`TOLLGATE_APP_URL`, no trailing slash): links are
    /// `<app>/verify-email?token=…`, `<app>/reset-password?token=…`, `<app>/magic-link?token=…`.
    pub app_url: String,
    /// Whether a sign-in code is sent to an email without an account (passwordless sign-up).
    pub passwordless_signup: bool,
}

/// How a delivery ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Sent; the mail service's message id.
    Sent(String),
    /// Nothing to send (why).
    Skipped(&'static str),
    /// Given up for good (why): refused by the mail service, or out of attempts.
    Failed(String),
    /// Someone already finished it (or it does not exist).
    AlreadyDone,
}

/// Why a delivery did not finish; every case leaves the item to be tried again.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// Another sender holds the item until `until` (Unix seconds).
    #[error("another sender holds this mail until {until}")]
    Busy {
        /// End of the other sender's lease.
        until: i64,
    },
    /// The mail service failed; the item was handed back.
    #[error("sending failed")]
    Send(#[source] MailerError),
    /// A template failed; the item was handed back (fix the override and it goes out).
    #[error("rendering failed")]
    Template(#[source] TemplateError),
    /// The store failed.
    #[error("the outbox could not be read or written")]
    Store(#[from] StoreError),
    /// The random source failed.
    #[error("random source failed")]
    Random,
}

/// What a drain did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Mails sent.
    pub sent: usize,
    /// Mails with nothing to send.
    pub skipped: usize,
    /// Mails given up for good.
    pub failed: usize,
    /// Mails left for a later attempt (a send or store failure, or held by another sender).
    pub retry: usize,
}

enum Prepared {
    Send(OutgoingMail),
    Skip(&'static str),
}

/// Delivers outbox items. Cheap to share.
pub struct Dispatcher {
    users: Arc<dyn UserStore>,
    accounts: Arc<dyn AccountStore>,
    outbox: Arc<dyn Outbox>,
    mailer: Arc<dyn Mailer>,
    templates: Arc<Templates>,
    clock: Arc<dyn Clock>,
    settings: MailSettings,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The stores a [`Dispatcher`] reads and writes.
#[derive(Clone)]
pub struct MailStores {
    /// Users (to find who a request by email is for).
    pub users: Arc<dyn UserStore>,
    /// Where minted tokens and codes are stored.
    pub accounts: Arc<dyn AccountStore>,
    /// The outbox.
    pub outbox: Arc<dyn Outbox>,
}

impl Dispatcher {
    /// Wires the dispatcher.
    pub fn new(
        stores: MailStores,
        mailer: Arc<dyn Mailer>,
        templates: Arc<Templates>,
        clock: Arc<dyn Clock>,
        settings: MailSettings,
    ) -> Self {
        Self {
            users: stores.users,
            accounts: stores.accounts,
            outbox: stores.outbox,
            mailer,
            templates,
            clock,
            settings,
        }
    }

    /// Delivers outbox item `id` (see the module docs for the guarantees).
    ///
    /// # Errors
    /// [`DispatchError`]: the item is left to be tried again.
    pub async fn deliver(&self, id: &str) -> Result<Delivery, DispatchError> {
        let now = self.clock.now();
        let mail = match self.outbox.claim_mail(id, now, MAIL_LEASE_SECONDS).await? {
            MailClaim::Done => return Ok(Delivery::AlreadyDone),
            MailClaim::Busy { until } => return Err(DispatchError::Busy { until }),
            MailClaim::Claimed(mail) => mail,
        };
        let attempt = mail.attempts;
        let span =
            tracing::info_span!("mail", mail_id = %mail.id, kind = mail.kind.as_str(), attempt);
        // Instrumented, not entered: the guard of `span.enter()` must not live across an
        // `.await` (the task may resume on another thread).
        self.send_claimed(mail, attempt, now).instrument(span).await
    }

    /// Prepares, sends and finishes a claimed mail (inside its span).
    async fn send_claimed(
        &self,
        mail: OutboxMail,
        attempt: u32,
        now: i64,
    ) -> Result<Delivery, DispatchError> {
        let outgoing = match self.prepare(&mail, now).await {
            Ok(Prepared::Send(outgoing)) => outgoing,
            Ok(Prepared::Skip(why)) => {
                self.finish(
                    &mail,
                    attempt,
                    MailStatus::Skipped,
                    None,
                    Some(why.to_owned()),
                )
                .await?;
                tracing::info!(why, "nothing to send");
                return Ok(Delivery::Skipped(why));
            }
            Err(e) => {
                self.release(&mail, attempt, &e).await;
                return Err(e);
            }
        };
        match self.mailer.send(&outgoing).await {
            Ok(message_id) => {
                self.finish(
                    &mail,
                    attempt,
                    MailStatus::Sent,
                    Some(message_id.clone()),
                    None,
                )
                .await?;
                tracing::info!(%message_id, "mail sent");
                Ok(Delivery::Sent(message_id))
            }
            Err(e) if !e.is_retryable() || attempt >= MAIL_MAX_ATTEMPTS => {
                let why = Chain(&e).to_string();
                self.finish(&mail, attempt, MailStatus::Failed, None, Some(why.clone()))
                    .await?;
                tracing::error!(error = %why, "mail given up");
                Ok(Delivery::Failed(why))
            }
            Err(e) => {
                let e = DispatchError::Send(e);
                self.release(&mail, attempt, &e).await;
                Err(e)
            }
        }
    }

    /// Delivers the items of one DynamoDB stream batch in order: `(sequence number, cause id)`.
    /// An item held by another sender is waited for (at most `max_wait` seconds) and taken over
    /// once its claim lapses. Stops at the first item that is not done and returns its sequence
    /// number — the partial batch failure the stream retries from (Lambda's
    /// `ReportBatchItemFailures` for streams: everything from that record on is retried; items
    /// already done are recognised and skipped on the retry).
    pub async fn deliver_in_order(
        &self,
        items: &[(String, String)],
        max_wait: i64,
    ) -> Option<String> {
        for (sequence, id) in items {
            let mut result = self.deliver(id).await;
            if let Err(DispatchError::Busy { until }) = result {
                let wait = until - self.clock.now() + 1;
                if wait <= max_wait {
                    tracing::info!(mail_id = %id, wait, "mail held by another sender; waiting for its claim to lapse");
                    tokio::time::sleep(std::time::Duration::from_secs(wait.max(0) as u64)).await;
                    result = self.deliver(id).await;
                }
            }
            if let Err(e) = result {
                tracing::warn!(mail_id = %id, error = %Chain(&e), "mail not delivered; the stream retries from it");
                return Some(sequence.clone());
            }
        }
        None
    }

    /// Delivers every item still to send (at most `limit`), oldest first: what the dev server's
    /// worker runs and what drains the outbox after a crash.
    ///
    /// # Errors
    /// [`StoreError`] if the outbox cannot be listed.
    pub async fn drain(&self, limit: usize) -> Result<DrainReport, StoreError> {
        let mut report = DrainReport::default();
        for id in self.outbox.pending_mail(limit).await? {
            match self.deliver(&id).await {
                Ok(Delivery::Sent(_)) => report.sent += 1,
                Ok(Delivery::Skipped(_)) => report.skipped += 1,
                Ok(Delivery::Failed(_)) => report.failed += 1,
                Ok(Delivery::AlreadyDone) => {}
                Err(e) => {
                    if !matches!(e, DispatchError::Busy { .. }) {
                        tracing::warn!(mail_id = %id, error = %Chain(&e), "mail not delivered yet");
                    }
                    report.retry += 1;
                }
            }
        }
        Ok(report)
    }

    async fn finish(
        &self,
        mail: &OutboxMail,
        attempt: u32,
        status: MailStatus,
        message_id: Option<String>,
        note: Option<String>,
    ) -> Result<(), StoreError> {
        let outcome = MailOutcome {
            status,
            message_id,
            note,
            at: self.clock.now(),
        };
        // The mail may be out already: try hard to record it, so the lapsed claim is not taken
        // over and the mail sent again.
        let mut last = None;
        for pause_ms in [0u64, 50, 200] {
            if pause_ms > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(pause_ms)).await;
            }
            match self.outbox.finish_mail(&mail.id, attempt, &outcome).await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_retryable() => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(StoreError::Conflict(crate::store::Conflict::MailChanged)))
    }

    async fn release(&self, mail: &OutboxMail, attempt: u32, cause: &DispatchError) {
        let why = Chain(cause).to_string();
        if let Err(e) = self.outbox.release_mail(&mail.id, attempt, &why).await {
            // The claim lapses by itself after the lease.
            tracing::warn!(error = %Chain(&e), "could not hand the mail back; its claim will lapse");
        }
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        match self.users.find_user_id_by_email(email.normalized()).await? {
            Some(id) => self.users.get_user(&id).await,
            None => Ok(None),
        }
    }

    fn link(&self, page: &str, token: &str) -> String {
        format!("{}/{page}?token={token}", self.settings.app_url)
    }

    /// Mints what the mail carries and renders it, or says why nothing is sent.
    async fn prepare(&self, mail: &OutboxMail, now: i64) -> Result<Prepared, DispatchError> {
        let mut context: BTreeMap<String, String> = BTreeMap::from([
            ("app_name".to_owned(), self.settings.app_name.clone()),
            ("app_url".to_owned(), self.settings.app_url.clone()),
            ("email".to_owned(), mail.email.clone()),
            ("at".to_owned(), rfc3339(mail.created_at)),
            ("ip".to_owned(), String::new()),
            ("how".to_owned(), "change".to_owned()),
            (
                "manage_link".to_owned(),
                format!("{}/account#billing", self.settings.app_url),
            ),
        ]);
        context.extend(mail.context.clone());
        let mut to = mail.email.clone();
        let email = Email::from_stored(mail.email.clone());
        match mail.kind {
            MailKind::VerifyEmail => {
                let user = match mail.user_id {
                    Some(id) => self.users.get_user(&id).await?,
                    None => None,
                };
                let Some(user) = user else {
                    return Ok(Prepared::Skip("the account no longer exists"));
                };
                if user.email_verified {
                    return Ok(Prepared::Skip("the email is verified already"));
                }
                if user.email().normalized() != email.normalized() {
                    return Ok(Prepared::Skip("the account's email changed"));
                }
                let link = self.mint(TokenPurpose::VerifyEmail, &user, now).await?;
                context.insert("link".into(), self.link("verify-email", &link));
                context.insert(
                    "expires_hours".into(),
                    (TokenPurpose::VerifyEmail.lifetime() / 3600).to_string(),
                );
            }
            MailKind::PasswordReset => {
                let Some(user) = self.user_by_email(&email).await? else {
                    return Ok(Prepared::Skip("no account has this email"));
                };
                if user.status != UserStatus::Active {
                    return Ok(Prepared::Skip("the account is disabled"));
                }
                let link = self.mint(TokenPurpose::ResetPassword, &user, now).await?;
                context.insert("link".into(), self.link("reset-password", &link));
                context.insert(
                    "expires_minutes".into(),
                    (TokenPurpose::ResetPassword.lifetime() / 60).to_string(),
                );
            }
            MailKind::SignInCode => {
                let user = self.user_by_email(&email).await?;
                if user
                    .as_ref()
                    .is_some_and(|u| u.status != UserStatus::Active)
                {
                    return Ok(Prepared::Skip("the account is disabled"));
                }
                let send = user.is_some() || self.settings.passwordless_signup;
                let (code, link) = self.mint_sign_in(&email, user.as_ref(), send, now).await?;
                if !send {
                    return Ok(Prepared::Skip("no account has this email"));
                }
                context.insert("code".into(), code);
                context.insert("link".into(), self.link("magic-link", &link));
                context.insert(
                    "code_minutes".into(),
                    (OTP_LIFETIME_SECONDS / 60).to_string(),
                );
                context.insert(
                    "link_minutes".into(),
                    (TokenPurpose::MagicLink.lifetime() / 60).to_string(),
                );
            }
            MailKind::PasswordChanged | MailKind::AccountDeleted => {}
            MailKind::PaymentReceipt
            | MailKind::PaymentFailed
            | MailKind::TrialEnding
            | MailKind::SubscriptionCanceled
            | MailKind::PlanChanged => {
                let user = match mail.user_id {
                    Some(id) => self.users.get_user(&id).await?,
                    None => None,
                };
                let Some(user) = user else {
                    return Ok(Prepared::Skip("the account no longer exists"));
                };
                to = user.email.clone();
                context.insert("email".into(), to.clone());
            }
        }
        let rendered = self
            .templates
            .render(mail.kind, &context)
            .map_err(DispatchError::Template)?;
        Ok(Prepared::Send(OutgoingMail {
            id: mail.id.clone(),
            to,
            subject: rendered.subject,
            text: rendered.text,
            html: rendered.html,
        }))
    }

    /// Mints and stores a link token for `user`; returns the token text.
    async fn mint(
        &self,
        purpose: TokenPurpose,
        user: &User,
        now: i64,
    ) -> Result<String, DispatchError> {
        let link = LinkToken::generate().map_err(|_| DispatchError::Random)?;
        let token = OneTimeToken {
            hash: link.hash.clone(),
            purpose,
            user_id: Some(user.id),
            email: user.email().normalized().to_owned(),
            epoch: user.session_epoch,
            note: None,
            created_at: now,
            expires_at: now + purpose.lifetime(),
        };
        self.accounts.commit(&[Change::PutToken(token)]).await?;
        Ok(link.token)
    }

    /// Mints the email's sign-in code (replacing any earlier one) and a magic link. For an
    /// email that gets no mail (no account, passwordless sign-up off) the code is a decoy that
    /// is never sent and no link is stored: checking a code then does the same store work for
    /// an unknown email as for a known one, so its timing tells nothing.
    async fn mint_sign_in(
        &self,
        email: &Email,
        user: Option<&User>,
        send: bool,
        now: i64,
    ) -> Result<(String, String), DispatchError> {
        let code = generate_code().map_err(|_| DispatchError::Random)?;
        let link = LinkToken::generate().map_err(|_| DispatchError::Random)?;
        let normalized = email.normalized().to_owned();
        let otp = EmailOtp {
            email: normalized.clone(),
            id: uuid::Uuid::now_v7().hyphenated().to_string(),
            code_hash: code_hash(&normalized, &code).ok_or(DispatchError::Random)?,
            attempts: 0,
            user_id: user.map(|u| u.id),
            created_at: now,
            expires_at: now + OTP_LIFETIME_SECONDS,
        };
        let mut changes = vec![Change::PutOtp(otp)];
        if send {
            changes.push(Change::PutToken(OneTimeToken {
                hash: link.hash.clone(),
                purpose: TokenPurpose::MagicLink,
                user_id: user.map(|u| u.id),
                email: normalized,
                epoch: user.map_or(0, |u| u.session_epoch),
                note: None,
                created_at: now,
                expires_at: now + TokenPurpose::MagicLink.lifetime(),
            }));
        }
        self.accounts.commit(&changes).await?;
        Ok((code, link.token))
    }
}
