//! The account lifecycle (docs/architecture.md §11): email verification, password reset and
//! change, the sessions list, log out everywhere, the profile, account deletion and the audit
//! log. Each change commits its audit record — and the mail it owes — in the same atomic write.

use super::one_time::link_token_hash;
use super::service::{Auth, AuthError, AuthenticatedUser, MapAudit};
use crate::billing::Billing;
use crate::domain::{
    rules, AuditAction, AuditRecord, DisplayName, MailKind, OutboxMail, Password, RequestOrigin,
    RevokeReason, Session, SessionId, TokenPurpose, User,
};
use crate::store::{Change, Conflict, StoreError};

/// A session as the sessions list shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionView {
    /// The session.
    pub session: Session,
    /// Whether it is the session of the access token that asked.
    pub current: bool,
}

/// What proves a recent login for account deletion, besides a login within the window.
#[derive(Clone, Debug, Default)]
pub struct Reauthentication {
    /// The account's password.
    pub password: Option<String>,
    /// A sign-in code sent to the account's email (`POST /auth/otp/request`); spent if right.
    pub code: Option<String>,
}

/// How many times an optimistic write is retried after a lost race on the user's version.
pub(super) const VERSION_RETRIES: usize = 3;

impl Auth {
    /// Verifies the email with a link token: sets `email_verified` (idempotent for an email
    /// already verified) and spends the token, in one write with the audit record — and with
    /// the unlinking of identities no provider vouched the email for (their sessions end; see
    /// `unproven_identities`).
    ///
    /// # Errors
    /// `InvalidLink` (unknown, spent, expired, another purpose, or the account's email changed
    /// or the account is gone), `Store`.
    pub async fn verify_email(
        &self,
        token: &str,
        origin: &RequestOrigin,
    ) -> Result<User, AuthError> {
        let hash = link_token_hash(token).ok_or(AuthError::InvalidLink)?;
        for _ in 0..VERSION_RETRIES {
            let now = self.clock.now();
            let stored = self
                .accounts
                .get_token(&hash)
                .await?
                .filter(|t| t.usable_for(TokenPurpose::VerifyEmail, now))
                .ok_or(AuthError::InvalidLink)?;
            let user = match stored.user_id {
                Some(id) => self.users.get_user(&id).await?,
                None => None,
            }
            .filter(|u| u.email().normalized() == stored.email)
            .ok_or(AuthError::InvalidLink)?;
            let spend = Change::SpendToken {
                hash: hash.clone(),
                purpose: TokenPurpose::VerifyEmail,
            };
            if user.email_verified {
                return match self.accounts.commit(&[spend]).await {
                    Ok(()) => Ok(user),
                    Err(StoreError::Conflict(Conflict::TokenSpent)) => Err(AuthError::InvalidLink),
                    Err(e) => Err(e.into()),
                };
            }
            let unlinks = self.unproven_identities(&user, origin, now).await?;
            let verified = user.updated(now, |u| {
                u.email_verified = true;
                if !unlinks.is_empty() {
                    u.session_epoch += 1;
                }
            });
            let mut changes = vec![
                spend,
                Change::UpdateUser {
                    user: verified.clone(),
                    expected_version: user.version,
                },
                self.audit(user.id, AuditAction::EmailVerified, origin, now),
            ];
            changes.extend(unlinks);
            match self.accounts.commit(&changes).await {
                Ok(()) => return Ok(verified),
                Err(StoreError::Conflict(Conflict::TokenSpent)) => {
                    return Err(AuthError::InvalidLink)
                }
                Err(StoreError::Conflict(Conflict::StaleVersion)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(lost_race())
    }

    /// Queues a new verification mail for the signed-in user.
    ///
    /// # Errors
    /// `EmailAlreadyVerified`, `InvalidAccessToken`, `Store`.
    pub async fn resend_verification(
        &self,
        who: &AuthenticatedUser,
        origin: &RequestOrigin,
    ) -> Result<(), AuthError> {
        let (user, session) = self.current(who).await?;
        if user.email_verified {
            return Err(AuthError::EmailAlreadyVerified);
        }
        self.limit(rules::CODE_ACCOUNT, &user.email.trim().to_lowercase())
            .await?;
        let now = self.clock.now();
        let changes = [
            Change::QueueMail(OutboxMail::new(
                MailKind::VerifyEmail,
                &user.email,
                Some(user.id),
                now,
            )),
            self.audit(user.id, AuditAction::VerificationRequested, origin, now)
                .map_audit(|r| r.with_session(session.id)),
        ];
        Ok(self.accounts.commit(&changes).await?)
    }

    /// Queues a password-reset mail for `email` — whether or not it has an account: the request
    /// does the same single write either way (the mailer looks the email up later and sends
    /// nothing for an unknown one), so neither the answer nor its timing tells (OWASP ASVS
    /// 6.3.8; Forgot Password Cheat Sheet).
    ///
    /// # Errors
    /// `Validation` (email syntax), `Store`.
    pub async fn forgot_password(&self, email: &str) -> Result<(), AuthError> {
        self.queue_request(MailKind::PasswordReset, email).await
    }

    /// Queues the mail of a request by email address (reset link, sign-in code): one write,
    /// whatever the address.
    pub(super) async fn queue_request(&self, kind: MailKind, email: &str) -> Result<(), AuthError> {
        let email =
            crate::domain::Email::parse(email).map_err(|e| AuthError::Validation(vec![e]))?;
        // Per address, whether or not it has an account: nobody floods one inbox.
        let rule = match kind {
            MailKind::PasswordReset => rules::FORGOT_ACCOUNT,
            _ => rules::CODE_ACCOUNT,
        };
        self.limit(rule, email.normalized()).await?;
        let mail = OutboxMail::new(kind, email.as_str(), None, self.clock.now());
        Ok(self.accounts.commit(&[Change::QueueMail(mail)]).await?)
    }

    /// Sets a new password with a reset link: spends the token, stores the hash, verifies the
    /// email (the link proved the mailbox; identities no provider vouched the email for are
    /// unlinked), raises the session epoch (every session ends) and queues a notice, in one
    /// write with the audit record.
    ///
    /// # Errors
    /// `Validation` (length, common password), `InvalidLink` (unknown, spent, expired, or a
    /// password was set or every session ended since it was sent), `Store`, `Internal`.
    pub async fn reset_password(
        &self,
        token: &str,
        password: String,
        origin: &RequestOrigin,
    ) -> Result<(), AuthError> {
        let password = Password::parse(password).map_err(|e| AuthError::Validation(vec![e]))?;
        let hash = link_token_hash(token).ok_or(AuthError::InvalidLink)?;
        let now = self.clock.now();
        let stored = self
            .accounts
            .get_token(&hash)
            .await?
            .filter(|t| t.usable_for(TokenPurpose::ResetPassword, now))
            .ok_or(AuthError::InvalidLink)?;
        let user = match stored.user_id {
            Some(id) => self.users.get_user(&id).await?,
            None => None,
        }
        .filter(|u| u.session_epoch == stored.epoch && u.email().normalized() == stored.email)
        .ok_or(AuthError::InvalidLink)?;
        let password_hash = self.hash_password(password).await?;
        let now = self.clock.now();
        let unlinks = self.unproven_identities(&user, origin, now).await?;
        let next = user.updated(now, |u| {
            u.password_hash = Some(password_hash);
            u.email_verified = true;
            u.session_epoch += 1;
        });
        let mut changes = vec![
            Change::SpendToken {
                hash,
                purpose: TokenPurpose::ResetPassword,
            },
            Change::UpdateUser {
                user: next,
                expected_version: user.version,
            },
            Change::QueueMail(
                OutboxMail::new(MailKind::PasswordChanged, &user.email, Some(user.id), now)
                    .with("how", "reset"),
            ),
            self.audit(user.id, AuditAction::PasswordReset, origin, now),
        ];
        changes.extend(unlinks);
        match self.accounts.commit(&changes).await {
            Ok(()) => Ok(()),
            // Spent by a concurrent reset, or the account changed under us: ask for a new link.
            Err(StoreError::Conflict(Conflict::TokenSpent | Conflict::StaleVersion)) => {
                Err(AuthError::InvalidLink)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Changes the signed-in user's password: checks the current one, stores the new hash,
    /// raises the session epoch while keeping the calling session (every *other* session ends)
    /// and queues a notice, in one write with the audit record.
    ///
    /// # Errors
    /// `Validation` (`new_password`: length, common password), `WrongPassword`,
    /// `InvalidAccessToken`, `Store`, `Internal`.
    pub async fn change_password(
        &self,
        who: &AuthenticatedUser,
        current_password: String,
        new_password: String,
        origin: &RequestOrigin,
    ) -> Result<(), AuthError> {
        let new_password = Password::parse_field(new_password, "new_password")
            .map_err(|e| AuthError::Validation(vec![e]))?;
        let (user, session) = self.current(who).await?;
        if !self.password_matches(&user, current_password).await? {
            return Err(AuthError::WrongPassword);
        }
        let password_hash = self.hash_password(new_password).await?;
        let now = self.clock.now();
        let next = user.updated(now, |u| {
            u.password_hash = Some(password_hash);
            u.session_epoch += 1;
        });
        let changes = [
            Change::KeepSession {
                user_id: user.id,
                session_id: session.id,
                epoch: next.session_epoch,
                authenticated_at: Some(now),
            },
            Change::UpdateUser {
                user: next,
                expected_version: user.version,
            },
            Change::QueueMail(
                OutboxMail::new(MailKind::PasswordChanged, &user.email, Some(user.id), now)
                    .with("how", "change"),
            ),
            self.audit(user.id, AuditAction::PasswordChanged, origin, now)
                .map_audit(|r| r.with_session(session.id)),
        ];
        match self.accounts.commit(&changes).await {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict(Conflict::StaleVersion | Conflict::SessionChanged)) => {
                Err(lost_race())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The signed-in user's live sessions, newest first, the calling one marked.
    ///
    /// # Errors
    /// `InvalidAccessToken`, `Store`.
    pub async fn list_sessions(
        &self,
        who: &AuthenticatedUser,
    ) -> Result<Vec<SessionView>, AuthError> {
        let (user, _) = self.current(who).await?;
        let now = self.clock.now();
        let mut live: Vec<SessionView> = self
            .sessions
            .list_sessions(&user.id)
            .await?
            .into_iter()
            .filter(|s| s.is_active(now, user.session_epoch, &self.settings.session))
            .map(|session| SessionView {
                current: session.id == who.session_id,
                session,
            })
            .collect();
        live.sort_by_key(|v| std::cmp::Reverse(v.session.created_at));
        Ok(live)
    }

    /// Ends one of the signed-in user's sessions (its refresh token stops working at once, and
    /// its access tokens at Tollgate's routes), audited.
    ///
    /// # Errors
    /// `SessionNotFound` (no such live session of this user), `InvalidAccessToken`, `Store`.
    pub async fn revoke_session(
        &self,
        who: &AuthenticatedUser,
        session_id: &SessionId,
        origin: &RequestOrigin,
    ) -> Result<(), AuthError> {
        let (user, _) = self.current(who).await?;
        let now = self.clock.now();
        let target = self
            .sessions
            .get_session(&user.id, session_id)
            .await?
            .filter(|s| s.is_active(now, user.session_epoch, &self.settings.session))
            .ok_or(AuthError::SessionNotFound)?;
        let changes = [
            Change::RevokeSession {
                user_id: user.id,
                session_id: target.id,
                at: now,
                reason: RevokeReason::Revoked,
            },
            self.audit(user.id, AuditAction::SessionRevoked, origin, now)
                .map_audit(|r| {
                    r.with_session(target.id)
                        .with_detail(format!("from session {}", who.session_id))
                }),
        ];
        match self.accounts.commit(&changes).await {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict(Conflict::SessionChanged)) => Err(AuthError::SessionNotFound),
            Err(e) => Err(e.into()),
        }
    }

    /// Ends every session of the signed-in user — or every other one with `keep_current` — by
    /// raising the user's session epoch (one write, however many sessions), audited.
    ///
    /// # Errors
    /// `InvalidAccessToken`, `Store`.
    pub async fn logout_all(
        &self,
        who: &AuthenticatedUser,
        keep_current: bool,
        origin: &RequestOrigin,
    ) -> Result<(), AuthError> {
        for _ in 0..VERSION_RETRIES {
            let (user, session) = self.current(who).await?;
            let now = self.clock.now();
            let next = user.updated(now, |u| u.session_epoch += 1);
            let mut changes = Vec::with_capacity(3);
            if keep_current {
                changes.push(Change::KeepSession {
                    user_id: user.id,
                    session_id: session.id,
                    epoch: next.session_epoch,
                    authenticated_at: None,
                });
            }
            changes.push(Change::UpdateUser {
                user: next,
                expected_version: user.version,
            });
            changes.push(
                self.audit(user.id, AuditAction::LoggedOutEverywhere, origin, now)
                    .map_audit(|r| {
                        r.with_session(session.id).with_detail(if keep_current {
                            "kept the current session"
                        } else {
                            "every session"
                        })
                    }),
            );
            match self.accounts.commit(&changes).await {
                Ok(()) => return Ok(()),
                Err(StoreError::Conflict(Conflict::StaleVersion)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(lost_race())
    }

    /// Sets (`Some`) or removes (`None`) the signed-in user's display name, audited.
    ///
    /// # Errors
    /// `Validation` (`name`: empty, over 100 characters, control characters),
    /// `InvalidAccessToken`, `Store`.
    pub async fn update_profile(
        &self,
        who: &AuthenticatedUser,
        name: Option<&str>,
        origin: &RequestOrigin,
    ) -> Result<User, AuthError> {
        let name = name
            .map(DisplayName::parse)
            .transpose()
            .map_err(|e| AuthError::Validation(vec![e]))?
            .map(DisplayName::into_string);
        for _ in 0..VERSION_RETRIES {
            let (user, session) = self.current(who).await?;
            if user.name == name {
                return Ok(user);
            }
            let now = self.clock.now();
            let next = user.updated(now, |u| u.name = name.clone());
            let changes = [
                Change::UpdateUser {
                    user: next.clone(),
                    expected_version: user.version,
                },
                self.audit(user.id, AuditAction::ProfileUpdated, origin, now)
                    .map_audit(|r| r.with_session(session.id)),
            ];
            match self.accounts.commit(&changes).await {
                Ok(()) => return Ok(next),
                Err(StoreError::Conflict(Conflict::StaleVersion)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(lost_race())
    }

    /// Deletes the signed-in user's account: needs a recent login (within the re-authentication
    /// window) or the password or an email code in `proof`. First cancels a live subscription
    /// at its provider at once (if that fails nothing is deleted); then, in one write, deletes
    /// the user and its email claim (the email can sign up again), its sign-in code, queues a
    /// notice and records `account_deleted`; then erases the sessions, subscription, customer
    /// links and one-time link tokens. Payments (no personal data) and audit records (expire by
    /// TTL) are kept; a link that outlived a failed erasure names a user that no longer exists and
    /// fails.
    ///
    /// # Errors
    /// `ReauthenticationRequired` (no recent login and no valid proof), `WrongPassword` (a wrong
    /// password given), `InvalidCode`, `Billing` (the provider refused or is unreachable),
    /// `InvalidAccessToken`, `Store`.
    pub async fn delete_account(
        &self,
        who: &AuthenticatedUser,
        proof: Reauthentication,
        billing: &Billing,
        origin: &RequestOrigin,
    ) -> Result<(), AuthError> {
        let (user, session) = self.current(who).await?;
        let now = self.clock.now();
        let mut spend_code = None;
        if let Some(password) = proof.password {
            if !self.password_matches(&user, password).await? {
                return Err(AuthError::WrongPassword);
            }
        } else if let Some(code) = proof.code {
            spend_code = Some(self.check_code(user.email().normalized(), &code).await?);
        } else if !session.recently_authenticated(now, self.settings.reauth_window) {
            return Err(AuthError::ReauthenticationRequired);
        }
        billing
            .cancel_for_deletion(&user.id)
            .await
            .map_err(AuthError::Billing)?;
        let normalized = user.email().normalized().to_owned();
        let mut changes = vec![
            Change::DeleteUser {
                user: user.clone(),
                expected_version: user.version,
            },
            Change::QueueMail(OutboxMail::new(
                MailKind::AccountDeleted,
                &user.email,
                None,
                now,
            )),
            Change::Audit(
                AuditRecord::new(
                    user.id,
                    AuditAction::AccountDeleted,
                    origin,
                    now,
                    self.settings.audit_retention,
                )
                .with_session(session.id),
            ),
        ];
        changes.push(match spend_code {
            Some(id) => Change::SpendOtp {
                email: normalized,
                id,
            },
            None => Change::DeleteOtp { email: normalized },
        });
        match self.accounts.commit(&changes).await {
            Ok(()) => {}
            Err(StoreError::Conflict(Conflict::OtpChanged)) => return Err(AuthError::InvalidCode),
            Err(StoreError::Conflict(Conflict::StaleVersion)) => return Err(lost_race()),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(user_id = %user.id, "account deleted");
        // The account is gone (its sessions can no longer refresh: their user is missing);
        // erasing the rest is clean-up, retried by a later request or an operator if it fails.
        if let Err(e) = self.accounts.erase_user_items(&user.id).await {
            tracing::warn!(user_id = %user.id, error = %crate::error::Chain(&e), "account deleted but its sessions and links were not all erased");
        }
        Ok(())
    }

    /// A page of the signed-in user's audit log, newest first (at most `limit`, older than
    /// `before` when given).
    ///
    /// # Errors
    /// `InvalidAccessToken`, `Store`.
    pub async fn audit_log(
        &self,
        who: &AuthenticatedUser,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, AuthError> {
        let (user, _) = self.current(who).await?;
        Ok(self.accounts.list_audit(&user.id, before, limit).await?)
    }
}

/// A conditional write kept losing to concurrent changes: answered as a retryable conflict
/// (503 `unavailable`).
pub(super) fn lost_race() -> AuthError {
    AuthError::Store(StoreError::Conflict(Conflict::StaleVersion))
}
