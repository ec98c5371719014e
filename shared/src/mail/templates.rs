//! Mail templates: subject, plain text and HTML per [`MailKind`], rendered by minijinja (HTML
//! auto-escaped, undefined variables an error). Built-in defaults live in
//! `shared/templates/mail/` and are compiled in; a deployment overrides any of them with files of
//! the same names in `TOLLGATE_MAIL_TEMPLATES_DIR` (checked at start-up by rendering every kind
//! with sample values).
//!
//! Files per kind `<kind>` (`verify_email`, `password_reset`, `sign_in_code`,
//! `password_changed`, `account_deleted`, and the billing mails `payment_receipt`,
//! `payment_failed`, `trial_ending`, `subscription_canceled`, `plan_changed`):
//! `<kind>.subject.txt`, `<kind>.txt`, `<kind>.html`;
//! plus `layout.html`, which the HTML files extend. Variables: `app_name`, `app_url`, `email`,
//! `at` (RFC 3339 time of the change), `ip` (may be empty); `link` and `expires_hours`
//! (verify_email), `link` and `expires_minutes` (password_reset), `code`, `link`,
//! `code_minutes` and `link_minutes` (sign_in_code), `how` (`reset` or `change`,
//! password_changed); `manage_link` (every kind: `<app>/account#billing`, the page with the
//! "manage billing" button that opens the provider's portal); `amount` (e.g. `19.00 USD`),
//! `description` and `payment_id` (payment_receipt, payment_failed); `plan` and `trial_end`
//! (trial_ending); `plan` and `ends_at` (subscription_canceled; empty when it ended at once);
//! `from_plan` and `to_plan` (plan_changed).

use crate::domain::MailKind;
use minijinja::{Environment, UndefinedBehavior};
use std::collections::BTreeMap;

/// The built-in templates: `(file name, source)`.
pub const BUILT_IN: [(&str, &str); 31] = [
    (
        "layout.html",
        include_str!("../../templates/mail/layout.html"),
    ),
    (
        "verify_email.subject.txt",
        include_str!("../../templates/mail/verify_email.subject.txt"),
    ),
    (
        "verify_email.txt",
        include_str!("../../templates/mail/verify_email.txt"),
    ),
    (
        "verify_email.html",
        include_str!("../../templates/mail/verify_email.html"),
    ),
    (
        "password_reset.subject.txt",
        include_str!("../../templates/mail/password_reset.subject.txt"),
    ),
    (
        "password_reset.txt",
        include_str!("../../templates/mail/password_reset.txt"),
    ),
    (
        "password_reset.html",
        include_str!("../../templates/mail/password_reset.html"),
    ),
    (
        "sign_in_code.subject.txt",
        include_str!("../../templates/mail/sign_in_code.subject.txt"),
    ),
    (
        "sign_in_code.txt",
        include_str!("../../templates/mail/sign_in_code.txt"),
    ),
    (
        "sign_in_code.html",
        include_str!("../../templates/mail/sign_in_code.html"),
    ),
    (
        "password_changed.subject.txt",
        include_str!("../../templates/mail/password_changed.subject.txt"),
    ),
    (
        "password_changed.txt",
        include_str!("../../templates/mail/password_changed.txt"),
    ),
    (
        "password_changed.html",
        include_str!("../../templates/mail/password_changed.html"),
    ),
    (
        "account_deleted.subject.txt",
        include_str!("../../templates/mail/account_deleted.subject.txt"),
    ),
    (
        "account_deleted.txt",
        include_str!("../../templates/mail/account_deleted.txt"),
    ),
    (
        "account_deleted.html",
        include_str!("../../templates/mail/account_deleted.html"),
    ),
    (
        "payment_receipt.subject.txt",
        include_str!("../../templates/mail/payment_receipt.subject.txt"),
    ),
    (
        "payment_receipt.txt",
        include_str!("../../templates/mail/payment_receipt.txt"),
    ),
    (
        "payment_receipt.html",
        include_str!("../../templates/mail/payment_receipt.html"),
    ),
    (
        "payment_failed.subject.txt",
        include_str!("../../templates/mail/payment_failed.subject.txt"),
    ),
    (
        "payment_failed.txt",
        include_str!("../../templates/mail/payment_failed.txt"),
    ),
    (
        "payment_failed.html",
        include_str!("../../templates/mail/payment_failed.html"),
    ),
    (
        "trial_ending.subject.txt",
        include_str!("../../templates/mail/trial_ending.subject.txt"),
    ),
    (
        "trial_ending.txt",
        include_str!("../../templates/mail/trial_ending.txt"),
    ),
    (
        "trial_ending.html",
        include_str!("../../templates/mail/trial_ending.html"),
    ),
    (
        "subscription_canceled.subject.txt",
        include_str!("../../templates/mail/subscription_canceled.subject.txt"),
    ),
    (
        "subscription_canceled.txt",
        include_str!("../../templates/mail/subscription_canceled.txt"),
    ),
    (
        "subscription_canceled.html",
        include_str!("../../templates/mail/subscription_canceled.html"),
    ),
    (
        "plan_changed.subject.txt",
        include_str!("../../templates/mail/plan_changed.subject.txt"),
    ),
    (
        "plan_changed.txt",
        include_str!("../../templates/mail/plan_changed.txt"),
    ),
    (
        "plan_changed.html",
        include_str!("../../templates/mail/plan_changed.html"),
    ),
];

/// A template that does not parse or render (named; the cause says where).
#[derive(Debug, thiserror::Error)]
#[error("mail template {name}")]
pub struct TemplateError {
    /// The file name.
    pub name: String,
    /// minijinja's error (line and cause).
    #[source]
    pub source: minijinja::Error,
}

/// A rendered mail's parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// One line (line breaks and surrounding whitespace removed).
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
}

/// The templates in use. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// The built-in templates.
    pub fn built_in() -> Self {
        Self::with_overrides(BTreeMap::new()).unwrap_or_else(|_| {
            // The built-ins parse (tests::built_in_templates_render_every_kind); keep an empty
            // environment rather than panic if that ever broke.
            Self {
                env: Environment::new(),
            }
        })
    }

    /// The built-in templates with `overrides` (`file name → source`) in place of those of the
    /// same name. Unknown names are refused so a typo does not silently keep a default.
    ///
    /// # Errors
    /// [`TemplateError`] for an unknown name or a template that does not parse.
    pub fn with_overrides(overrides: BTreeMap<String, String>) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        for (name, source) in &overrides {
            if !BUILT_IN.iter().any(|(n, _)| n == name) {
                return Err(TemplateError {
                    name: name.clone(),
                    source: minijinja::Error::new(
                        minijinja::ErrorKind::TemplateNotFound,
                        "not a Tollgate mail template name",
                    ),
                });
            }
            env.add_template_owned(name.clone(), source.clone())
                .map_err(|source| TemplateError {
                    name: name.clone(),
                    source,
                })?;
        }
        for (name, source) in BUILT_IN {
            if !overrides.contains_key(name) {
                env.add_template(name, source)
                    .map_err(|source| TemplateError {
                        name: name.to_owned(),
                        source,
                    })?;
            }
        }
        Ok(Self { env })
    }

    /// Renders `kind` with `context`.
    ///
    /// # Errors
    /// [`TemplateError`] if a template needs a variable `context` lacks, or fails otherwise.
    pub fn render(
        &self,
        kind: MailKind,
        context: &BTreeMap<String, String>,
    ) -> Result<Rendered, TemplateError> {
        let render = |suffix: &str| -> Result<String, TemplateError> {
            let name = format!("{}.{suffix}", kind.as_str());
            self.env
                .get_template(&name)
                .and_then(|t| t.render(minijinja::Value::from(context.clone())))
                .map_err(|source| TemplateError { name, source })
        };
        let subject = render("subject.txt")?
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        Ok(Rendered {
            subject,
            text: render("txt")?,
            html: render("html")?,
        })
    }

    /// Renders every kind with sample values: what start-up runs so a broken override fails
    /// the cold start, not the first mail.
    ///
    /// # Errors
    /// The first [`TemplateError`].
    pub fn check(&self) -> Result<(), TemplateError> {
        for kind in MailKind::ALL {
            self.render(kind, &sample_context(kind))?;
        }
        Ok(())
    }
}

/// Sample values of every variable `kind`'s templates may use.
pub fn sample_context(kind: MailKind) -> BTreeMap<String, String> {
    let mut c: BTreeMap<String, String> = [
        ("app_name", "Tollgate"),
        ("app_url", "https://app.example.com"),
        ("email", "ada@example.com"),
        ("at", "2026-11-30T12:00:00Z"),
        ("ip", "203.0.113.7"),
        ("how", "change"),
        ("manage_link", "https://app.example.com/account#billing"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let link = "https://app.example.com/page?token=AAAA".to_owned();
    match kind {
        MailKind::VerifyEmail => {
            c.insert("link".into(), link);
            c.insert("expires_hours".into(), "24".into());
        }
        MailKind::PasswordReset => {
            c.insert("link".into(), link);
            c.insert("expires_minutes".into(), "30".into());
        }
        MailKind::SignInCode => {
            c.insert("link".into(), link);
            c.insert("code".into(), "123456".into());
            c.insert("code_minutes".into(), "10".into());
            c.insert("link_minutes".into(), "15".into());
        }
        MailKind::PasswordChanged | MailKind::AccountDeleted => {}
        MailKind::PaymentReceipt | MailKind::PaymentFailed => {
            c.insert("amount".into(), "19.00 USD".into());
            c.insert("description".into(), "the Pro plan".into());
            c.insert("payment_id".into(), "in_1TestInvoice".into());
        }
        MailKind::TrialEnding => {
            c.insert("plan".into(), "Pro".into());
            c.insert("trial_end".into(), "2026-12-03".into());
        }
        MailKind::SubscriptionCanceled => {
            c.insert("plan".into(), "Pro".into());
            c.insert("ends_at".into(), "2026-12-31".into());
        }
        MailKind::PlanChanged => {
            c.insert("from_plan".into(), "Pro".into());
            c.insert("to_plan".into(), "Team".into());
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_templates_render_every_kind() {
        Templates::with_overrides(BTreeMap::new())
            .expect("built-ins parse")
            .check()
            .expect("built-ins render");
    }

    #[test]
    fn html_is_escaped_and_text_is_not() {
        let t = Templates::built_in();
        let mut c = sample_context(MailKind::PasswordChanged);
        c.insert("email".into(), "<b>ada</b>@example.com".into());
        let r = t.render(MailKind::PasswordChanged, &c).expect("render");
        assert!(r.html.contains("&lt;b&gt;ada"), "{}", r.html);
        assert!(!r.html.contains("<b>ada"));
        assert!(r.text.contains("<b>ada</b>"));
        assert!(!r.subject.contains('\n'));
    }

    #[test]
    fn an_override_replaces_its_default_and_bad_ones_are_refused() {
        let overrides = BTreeMap::from([(
            "verify_email.subject.txt".to_owned(),
            "Confirm {{ email }}".to_owned(),
        )]);
        let t = Templates::with_overrides(overrides).expect("valid");
        let r = t
            .render(
                MailKind::VerifyEmail,
                &sample_context(MailKind::VerifyEmail),
            )
            .expect("render");
        assert_eq!(r.subject, "Confirm ada@example.com");

        let unknown = BTreeMap::from([("verify.txt".to_owned(), "x".to_owned())]);
        assert!(Templates::with_overrides(unknown).is_err());
        let broken = BTreeMap::from([("verify_email.txt".to_owned(), "{% if %}".to_owned())]);
        assert!(Templates::with_overrides(broken).is_err());
        let missing_var = BTreeMap::from([(
            "verify_email.txt".to_owned(),
            "{{ nonexistent }}".to_owned(),
        )]);
        let t = Templates::with_overrides(missing_var).expect("parses");
        assert!(t.check().is_err(), "an undefined variable fails the check");
    }
}
