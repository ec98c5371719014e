//! Sign-in by email (docs/architecture.md §11): a 6-digit code and a magic link, sent together
//! by one request. Codes live 10 minutes and die after 5 wrong tries; links live 15 minutes and
//! are spent once. Passwordless sign-up (a code or link for an email without an account creates
//! one) is a setting, off by default.

use super::one_time::{code_hash, link_token_hash};
use super::service::{Auth, AuthError, IssuedTokens};
use crate::domain::{
    AuditAction, Email, MailKind, OtpCheck, RequestOrigin, SignInMethod, TokenPurpose, User,
    UserId, UserStatus,
};
use crate::store::{Change, Conflict, StoreError};

impl Auth {
    /// Queues a sign-in mail (a code and a magic link) for `email` — whether or not it has an
    /// account: one write either way; the mailer sends nothing to an unknown email unless
    /// passwordless sign-up is on (ASVS 6.3.8: no enumeration).
    ///
    /// # Errors
    /// `Validation` (email syntax), `Store`.
    pub async fn request_code(&self, email: &str) -> Result<(), AuthError> {
        self.queue_request(MailKind::SignInCode, email).await
    }

    /// Checks a code for a normalized email: `Ok(code id)` when right (not spent yet: the caller
    /// spends it in its own write). A wrong code counts a try; after five, the code is dead.
    ///
    /// # Errors
    /// `InvalidCode` (no live code, wrong, expired, no tries left, not 6 digits), `Store`.
    pub(super) async fn check_code(
        &self,
        normalized_email: &str,
        code: &str,
    ) -> Result<String, AuthError> {
        let presented = code_hash(normalized_email, code);
        let otp = self.accounts.get_otp(normalized_email).await?;
        let (Some(otp), Some(presented)) = (otp, presented) else {
            return Err(AuthError::InvalidCode);
        };
        match otp.check(&presented, self.clock.now()) {
            OtpCheck::Valid => Ok(otp.id),
            OtpCheck::Wrong { .. } => {
                let count = Change::CountOtpFailure {
                    email: otp.email.clone(),
                    id: otp.id.clone(),
                    attempts_seen: otp.attempts,
                };
                match self.accounts.commit(&[count]).await {
                    // A concurrent try counted first, or the code was replaced: still wrong.
                    Ok(()) | Err(StoreError::Conflict(Conflict::OtpChanged)) => {
                        Err(AuthError::InvalidCode)
                    }
                    Err(e) => Err(e.into()),
                }
            }
            OtpCheck::Exhausted | OtpCheck::Expired => Err(AuthError::InvalidCode),
        }
    }

    /// Signs in with the code sent to `email`: spends it, marks the email verified (unlinking
    /// identities no provider vouched the email for, whose sessions end), starts a session
    /// (creating the account if passwordless sign-up is on and there is none).
    ///
    /// # Errors
    /// `InvalidCode` (also for a malformed email, so the answer never says which part was
    /// wrong), `AccountDisabled`, `Store`, `NoSigningKey`, `Internal`.
    pub async fn verify_code(
        &self,
        email: &str,
        code: &str,
        origin: &RequestOrigin,
    ) -> Result<(User, IssuedTokens), AuthError> {
        let email = Email::parse(email).map_err(|_| AuthError::InvalidCode)?;
        let id = self.check_code(email.normalized(), code).await?;
        let spend = Change::SpendOtp {
            email: email.normalized().to_owned(),
            id,
        };
        self.sign_in_by_email(&email, SignInMethod::EmailCode, spend, origin)
            .await
            .map_err(|e| match e {
                AuthError::Store(StoreError::Conflict(Conflict::OtpChanged)) => {
                    AuthError::InvalidCode
                }
                other => other,
            })
    }

    /// Signs in with a magic link's token: spends it, marks the email verified (as
    /// [`Auth::verify_code`] does), starts a session (creating the account if passwordless
    /// sign-up is on and there is none).
    ///
    /// # Errors
    /// `InvalidLink` (unknown, spent, expired, another purpose), `AccountDisabled`, `Store`,
    /// `NoSigningKey`, `Internal`.
    pub async fn verify_magic_link(
        &self,
        token: &str,
        origin: &RequestOrigin,
    ) -> Result<(User, IssuedTokens), AuthError> {
        let hash = link_token_hash(token).ok_or(AuthError::InvalidLink)?;
        let now = self.clock.now();
        let stored = self
            .accounts
            .get_token(&hash)
            .await?
            .filter(|t| t.usable_for(TokenPurpose::MagicLink, now))
            .ok_or(AuthError::InvalidLink)?;
        let email = Email::from_stored(stored.email);
        let spend = Change::SpendToken {
            hash,
            purpose: TokenPurpose::MagicLink,
        };
        self.sign_in_by_email(&email, SignInMethod::MagicLink, spend, origin)
            .await
            .map_err(|e| match e {
                AuthError::Store(StoreError::Conflict(Conflict::TokenSpent)) => {
                    AuthError::InvalidLink
                }
                other => other,
            })
    }

    /// The account of `email` signs in by a mailed secret (`spend` spends it in the same write
    /// as the new session); its email becomes verified. Without an account: created when
    /// passwordless sign-up is on, else refused as the secret's own error.
    async fn sign_in_by_email(
        &self,
        email: &Email,
        method: SignInMethod,
        spend: Change,
        origin: &RequestOrigin,
    ) -> Result<(User, IssuedTokens), AuthError> {
        let refused = || match method {
            SignInMethod::MagicLink => AuthError::InvalidLink,
            _ => AuthError::InvalidCode,
        };
        let now = self.clock.now();
        let (user, changes) = match self.user_by_email(email.normalized()).await? {
            Some(user) if user.status != UserStatus::Active => {
                return Err(AuthError::AccountDisabled)
            }
            Some(user) if user.email_verified => (user, vec![spend]),
            Some(user) => {
                let unlinks = self.unproven_identities(&user, origin, now).await?;
                let verified = user.updated(now, |u| {
                    u.email_verified = true;
                    if !unlinks.is_empty() {
                        u.session_epoch += 1;
                    }
                });
                let update = Change::UpdateUser {
                    user: verified.clone(),
                    expected_version: user.version,
                };
                let mut changes = vec![spend, update];
                changes.extend(unlinks);
                (verified, changes)
            }
            None if self.settings.passwordless_signup => {
                let user = User {
                    id: UserId::new(),
                    email: email.as_str().to_owned(),
                    password_hash: None,
                    status: UserStatus::Active,
                    email_verified: true,
                    name: None,
                    roles: Vec::new(),
                    session_epoch: 0,
                    created_at: now,
                    updated_at: now,
                    version: 1,
                };
                let changes = vec![
                    spend,
                    Change::CreateUser(user.clone()),
                    self.audit(user.id, AuditAction::SignedUp, origin, now),
                ];
                (user, changes)
            }
            None => return Err(refused()),
        };
        match self.sign_in(&user, method, origin, changes, None).await {
            Ok(tokens) => Ok((user, tokens)),
            // Someone signed up or changed the account meanwhile: the secret is unspent; retry.
            Err(AuthError::Store(StoreError::Conflict(
                Conflict::EmailTaken | Conflict::StaleVersion,
            ))) => Err(AuthError::Store(StoreError::Conflict(
                Conflict::StaleVersion,
            ))),
            Err(e) => Err(e),
        }
    }
}
