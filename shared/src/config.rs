//! Typed configuration, read once per cold start from the environment and validated as a whole
//! (every problem listed at once). The use cases get their parts ([`AuthSettings`],
//! [`BillingSettings`]); the rest is the edge's.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `TOLLGATE_ISSUER` | `http://127.0.0.1:3000` | `iss` of access tokens; base of the OIDC discovery URLs |
//! | `TOLLGATE_AUDIENCE` | `tollgate` | `aud` of access tokens |
//! | `TOLLGATE_ACCESS_TOKEN_TTL_SECONDS` | `900` | access-token lifetime (15 min, docs/architecture.md §5) |
//! | `TOLLGATE_REFRESH_IDLE_TIMEOUT_SECONDS` | `2592000` | session idle timeout (30 d) |
//! | `TOLLGATE_REFRESH_ABSOLUTE_LIFETIME_SECONDS` | `7776000` | session absolute lifetime (90 d) |
//! | `TOLLGATE_REFRESH_REUSE_GRACE_SECONDS` | `10` | grace window after rotation |
//! | `TOLLGATE_MAX_BODY_BYTES` | `16384` | request body cap; larger bodies get 413 |
//! | `TOLLGATE_COOKIE_SECURE` | `true` | whether the refresh cookie carries `Secure` |
//! | `TOLLGATE_TABLE_NAME` | `tollgate` | DynamoDB table (Lambda) |
//! | `TOLLGATE_JWT_KEYS_SECRET_ID` | `tollgate/jwt-keys` | Secrets Manager id of the private signing key set (Lambda: the functions that issue tokens) |
//! | `TOLLGATE_JWKS_SECRET_ID` | `tollgate/jwks` | Secrets Manager id of the published JWKS (Lambda: the functions that only verify tokens) |
//! | `TOLLGATE_PROVIDER_SECRETS_ID` | `tollgate/provider-secrets` | Secrets Manager id of the provider API keys JSON (Lambda: the functions that call Stripe or Whop) |
//! | `TOLLGATE_WEBHOOK_SECRETS_ID` | `tollgate/webhook-secrets` | Secrets Manager id of the webhook signing secrets JSON (Lambda: webhook ingest) |
//! | `TOLLGATE_OUTBOUND_ENDPOINTS_SECRET_ID` | `tollgate/outbound-endpoints` | Secrets Manager id of the outbound endpoints JSON, `[{"name", "url", "secret": "whsec_…", "types"?}]` (Lambda: the mailer) |
//! | `TOLLGATE_OUTBOUND_ENDPOINTS` | unset | the same JSON for the dev server (no Secrets Manager locally) |
//! | `TOLLGATE_QUEUE_URL` | unset | SQS FIFO queue URL of webhook events (Lambda) |
//! | `TOLLGATE_PLANS_FILE` | the built-in `infra/plans.toml` | plan catalog |
//! | `TOLLGATE_SUCCESS_URL` | `<issuer>/billing/success?checkout_session={CHECKOUT_SESSION_ID}` | checkout success redirect |
//! | `TOLLGATE_CANCEL_URL` | `<issuer>/billing/canceled` | checkout cancel redirect |
//! | `TOLLGATE_PORTAL_RETURN_URL` | `<issuer>/account` | billing portal return URL (the account page) |
//! | `TOLLGATE_PAST_DUE_GRACE_SECONDS` | `604800` | access kept while `past_due` (7 d) |
//! | `TOLLGATE_REQUIRE_VERIFIED_EMAIL` | `false` | login (password, code, link) needs a verified email; signup then starts no session |
//! | `TOLLGATE_PASSWORDLESS_SIGNUP` | `false` | an email code or magic link for an email without an account creates one |
//! | `TOLLGATE_REAUTH_WINDOW_SECONDS` | `300` | how recent a login must be to delete the account without a password or code (5 min) |
//! | `TOLLGATE_AUDIT_RETENTION_DAYS` | `400` | how long audit records are kept (TTL) |
//! | `TOLLGATE_APP_NAME` | `Tollgate` | the product name in mails |
//! | `TOLLGATE_ACCENT_COLOR` | `#1d4ed8` | the hosted pages' accent colour, `#rrggbb` (text on it is white or black, whichever contrasts more) |
//! | `TOLLGATE_APP_URL` | the issuer | where mail links point: `<app>/verify-email?token=…`, `<app>/reset-password?token=…`, `<app>/magic-link?token=…` |
//! | `TOLLGATE_MAIL_FROM` | `Tollgate <no-reply@example.com>` | the sender (an address of the SES identity) |
//! | `TOLLGATE_SES_CONFIGURATION_SET` | unset | SES configuration set for sends (bounce and complaint events) |
//! | `TOLLGATE_MAIL_TEMPLATES_DIR` | unset | a directory of mail templates overriding the built-in ones by file name |
//! | `TOLLGATE_OAUTH_SECRETS_ID` | `tollgate/oauth-secrets` | Secrets Manager id of the identity providers' client secrets JSON (Lambda: the oauth function) |
//! | `TOLLGATE_OAUTH_REDIRECT_ALLOWLIST` | the app URL | comma-separated URLs sign-ins may return to (scheme, host and port exact; path a prefix) |
//! | `TOLLGATE_GITHUB_CLIENT_ID` | unset | enables GitHub sign-in (secret `GITHUB_CLIENT_SECRET`) |
//! | `TOLLGATE_GITHUB_WEB_BASE`, `TOLLGATE_GITHUB_API_BASE` | `https://github.com`, `https://api.github.com` | GitHub's endpoints (for doubles) |
//! | `TOLLGATE_GOOGLE_CLIENT_ID` | unset | enables Google sign-in (secret `GOOGLE_CLIENT_SECRET`) |
//! | `TOLLGATE_GOOGLE_ISSUER` | `https://accounts.google.com` | Google's OIDC issuer (for doubles) |
//! | `TOLLGATE_RATE_LIMITS` | the defaults of `domain::limits::DEFAULT_RULES` | `off`, or comma-separated `rule=limit/window` (seconds) or `rule=off`, e.g. `login.ip=10/60,refresh.ip=off` |
//! | `TOLLGATE_MAX_API_KEYS` | `10` | most live API keys per user |
//! | `TOLLGATE_OIDC_PROVIDERS` | unset | comma-separated names of other OpenID Connect providers, each with `TOLLGATE_OIDC_<NAME>_ISSUER`, `TOLLGATE_OIDC_<NAME>_CLIENT_ID`, optional `TOLLGATE_OIDC_<NAME>_SCOPES` (default `email profile`) and secret `OIDC_<NAME>_CLIENT_SECRET` |

pub use crate::auth::AuthSettings;
pub use crate::billing::BillingSettings;
use crate::domain::{SessionPolicy, DEFAULT_PAST_DUE_GRACE_SECONDS};
use std::collections::HashMap;

/// What mails say, where their links point, who sends them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailConfig {
    /// The product name (`TOLLGATE_APP_NAME`).
    pub app_name: String,
    /// The base URL of the pages mail links open (`TOLLGATE_APP_URL`, no trailing slash).
    pub app_url: String,
    /// The sender (`TOLLGATE_MAIL_FROM`).
    pub from: String,
    /// The SES configuration set (`TOLLGATE_SES_CONFIGURATION_SET`).
    pub ses_configuration_set: Option<String>,
    /// Template overrides directory (`TOLLGATE_MAIL_TEMPLATES_DIR`).
    pub templates_dir: Option<String>,
}

/// One OpenID Connect provider's settings (its client secret is a secret, read separately).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcProviderConfig {
    /// Its name in routes.
    pub name: String,
    /// The issuer URL.
    pub issuer: String,
    /// This app's client id.
    pub client_id: String,
    /// Scopes besides `openid`.
    pub scopes: Vec<String>,
}

/// GitHub's settings (its client secret is a secret, read separately).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitHubProviderConfig {
    /// The OAuth app's client id.
    pub client_id: String,
    /// `https://github.com` (authorize and token endpoints), or a double's address.
    pub web_base: String,
    /// `https://api.github.com`, or a double's address.
    pub api_base: String,
}

/// Which identity providers sign-in offers, and where they are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OAuthConfig {
    /// GitHub, when `TOLLGATE_GITHUB_CLIENT_ID` is set.
    pub github: Option<GitHubProviderConfig>,
    /// OpenID Connect providers, Google first when configured.
    pub oidc: Vec<OidcProviderConfig>,
}

/// Everything configurable, validated. Lifetimes are seconds, sizes bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Issuer, audience, token and session lifetimes.
    pub auth: AuthSettings,
    /// Checkout and portal redirects and the `past_due` grace.
    pub billing: BillingSettings,
    /// Maximum request body in bytes.
    pub max_body_bytes: usize,
    /// Whether the refresh cookie is `Secure`.
    pub cookie_secure: bool,
    /// DynamoDB table name.
    pub table_name: String,
    /// Secrets Manager id (name or ARN) of the private JWT signing key set.
    pub jwt_keys_secret_id: String,
    /// Secrets Manager id of the published JWKS (public keys).
    pub jwks_secret_id: String,
    /// Secrets Manager id of the provider API keys JSON.
    pub provider_secrets_id: String,
    /// Secrets Manager id of the webhook signing secrets JSON.
    pub webhook_secrets_id: String,
    /// SQS FIFO queue URL for webhook events (required by webhook ingest in Lambda).
    pub queue_url: Option<String>,
    /// Plan catalog file; `None` = the catalog built into the binary.
    pub plans_file: Option<String>,
    /// Mail.
    pub mail: MailConfig,
    /// Identity providers.
    pub oauth: OAuthConfig,
    /// Secrets Manager id of the identity providers' client secrets JSON.
    pub oauth_secrets_id: String,
    /// The rate rules (`TOLLGATE_RATE_LIMITS` over the defaults).
    pub rate_limits: crate::domain::RateLimits,
    /// Secrets Manager id of the outbound endpoints JSON (Lambda: the mailer).
    pub outbound_endpoints_secret_id: String,
    /// The hosted pages' accent colour, `#rrggbb` (`TOLLGATE_ACCENT_COLOR`).
    pub accent_color: String,
}

impl Default for Config {
    fn default() -> Self {
        let auth = AuthSettings::default();
        Self {
            billing: billing_defaults(&auth.issuer, DEFAULT_PAST_DUE_GRACE_SECONDS),
            auth,
            max_body_bytes: 16 * 1024,
            cookie_secure: true,
            table_name: "tollgate".to_owned(),
            jwt_keys_secret_id: "tollgate/jwt-keys".to_owned(),
            jwks_secret_id: "tollgate/jwks".to_owned(),
            provider_secrets_id: "tollgate/provider-secrets".to_owned(),
            webhook_secrets_id: "tollgate/webhook-secrets".to_owned(),
            queue_url: None,
            plans_file: None,
            mail: mail_defaults(&AuthSettings::default().issuer),
            oauth: OAuthConfig::default(),
            oauth_secrets_id: "tollgate/oauth-secrets".to_owned(),
            rate_limits: crate::domain::RateLimits::default(),
            outbound_endpoints_secret_id: "tollgate/outbound-endpoints".to_owned(),
            accent_color: DEFAULT_ACCENT_COLOR.to_owned(),
        }
    }
}

/// The hosted pages' default accent colour: white text on it has a contrast of 6.7:1 (WCAG AA
/// asks 4.5:1).
pub const DEFAULT_ACCENT_COLOR: &str = "#1d4ed8";

/// Whether `value` is `#rrggbb`.
pub fn is_hex_color(value: &str) -> bool {
    value.len() == 7 && value.starts_with('#') && value[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn mail_defaults(issuer: &str) -> MailConfig {
    MailConfig {
        app_name: "Tollgate".to_owned(),
        app_url: issuer.to_owned(),
        from: "Tollgate <no-reply@example.com>".to_owned(),
        ses_configuration_set: None,
        templates_dir: None,
    }
}

fn billing_defaults(issuer: &str, grace: i64) -> BillingSettings {
    BillingSettings {
        success_url: format!("{issuer}/billing/success?checkout_session={{CHECKOUT_SESSION_ID}}"),
        cancel_url: format!("{issuer}/billing/canceled"),
        portal_return_url: format!("{issuer}/account"),
        past_due_grace: grace,
    }
}

/// Every problem found in the configuration, one line each.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  {}", .0.join("\n  "))]
pub struct ConfigError(pub Vec<String>);

impl Config {
    /// Reads the process environment. See the module docs for names and defaults.
    ///
    /// # Errors
    /// [`ConfigError`] listing every variable that does not parse or is out of range.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars().collect())
    }

    /// Reads configuration from a map of variables (the environment in production; a literal map
    /// in tests).
    ///
    /// # Errors
    /// [`ConfigError`] listing every problem at once.
    pub fn from_vars(vars: HashMap<String, String>) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let d = Self::default();
        let text = |name: &str, default: &str| -> String {
            vars.get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        let mut seconds = |name: &str, default: i64, min: i64, max: i64| -> i64 {
            match vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
                None => default,
                Some(raw) => {
                    match raw.parse::<i64>() {
                        Ok(v) if (min..=max).contains(&v) => v,
                        _ => {
                            problems.push(format!("{name}={raw:?}: expected a whole number of seconds in {min}..={max}"));
                            default
                        }
                    }
                }
            }
        };
        let access_token_ttl = seconds(
            "TOLLGATE_ACCESS_TOKEN_TTL_SECONDS",
            d.auth.access_token_ttl,
            60,
            86_400,
        );
        let idle_timeout = seconds(
            "TOLLGATE_REFRESH_IDLE_TIMEOUT_SECONDS",
            d.auth.session.idle_timeout,
            60,
            400 * 86_400,
        );
        let absolute_lifetime = seconds(
            "TOLLGATE_REFRESH_ABSOLUTE_LIFETIME_SECONDS",
            d.auth.session.absolute_lifetime,
            60,
            400 * 86_400,
        );
        let reuse_grace = seconds(
            "TOLLGATE_REFRESH_REUSE_GRACE_SECONDS",
            d.auth.session.reuse_grace,
            0,
            300,
        );
        let grace = seconds(
            "TOLLGATE_PAST_DUE_GRACE_SECONDS",
            d.billing.past_due_grace,
            0,
            90 * 86_400,
        );
        let max_body = seconds(
            "TOLLGATE_MAX_BODY_BYTES",
            d.max_body_bytes as i64,
            1_024,
            6 * 1024 * 1024,
        );
        let reauth_window = seconds(
            "TOLLGATE_REAUTH_WINDOW_SECONDS",
            d.auth.reauth_window,
            0,
            86_400,
        );
        let audit_days = seconds(
            "TOLLGATE_AUDIT_RETENTION_DAYS",
            d.auth.audit_retention / 86_400,
            1,
            3_650,
        );
        let max_api_keys = seconds("TOLLGATE_MAX_API_KEYS", 10, 1, 1_000);
        let mut flag = |name: &str, default: bool| -> bool {
            let raw = text(name, if default { "true" } else { "false" });
            match raw.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                other => {
                    problems.push(format!("{name}={other:?}: expected true or false"));
                    default
                }
            }
        };
        let cookie_secure = flag("TOLLGATE_COOKIE_SECURE", true);
        let require_verified_email = flag("TOLLGATE_REQUIRE_VERIFIED_EMAIL", false);
        let passwordless_signup = flag("TOLLGATE_PASSWORDLESS_SIGNUP", false);
        let issuer = text("TOLLGATE_ISSUER", &d.auth.issuer)
            .trim_end_matches('/')
            .to_owned();
        if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
            problems.push(format!(
                "TOLLGATE_ISSUER={issuer:?}: expected an http(s) URL"
            ));
        }
        if idle_timeout > absolute_lifetime {
            problems.push("TOLLGATE_REFRESH_IDLE_TIMEOUT_SECONDS exceeds TOLLGATE_REFRESH_ABSOLUTE_LIFETIME_SECONDS".to_owned());
        }
        let optional = |name: &str| {
            vars.get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let app_url = text("TOLLGATE_APP_URL", &issuer)
            .trim_end_matches('/')
            .to_owned();
        if optional("TOLLGATE_APP_URL").is_some()
            && !(app_url.starts_with("https://") || app_url.starts_with("http://"))
        {
            problems.push(format!(
                "TOLLGATE_APP_URL={app_url:?}: expected an http(s) URL"
            ));
        }
        let accent_color = text("TOLLGATE_ACCENT_COLOR", DEFAULT_ACCENT_COLOR);
        if !is_hex_color(&accent_color) {
            problems.push(format!(
                "TOLLGATE_ACCENT_COLOR={accent_color:?}: expected a colour #rrggbb"
            ));
        }
        let mail_d = mail_defaults(&issuer);
        let mail = MailConfig {
            app_name: text("TOLLGATE_APP_NAME", &mail_d.app_name),
            app_url,
            from: text("TOLLGATE_MAIL_FROM", &mail_d.from),
            ses_configuration_set: optional("TOLLGATE_SES_CONFIGURATION_SET"),
            templates_dir: optional("TOLLGATE_MAIL_TEMPLATES_DIR"),
        };
        let oauth_redirects = match optional("TOLLGATE_OAUTH_REDIRECT_ALLOWLIST") {
            Some(list) => crate::domain::RedirectAllowlist::parse(
                list.split(',').map(str::trim).filter(|e| !e.is_empty()),
            )
            .unwrap_or_else(|e| {
                problems.push(format!("TOLLGATE_OAUTH_REDIRECT_ALLOWLIST: {e}"));
                Default::default()
            }),
            // The app's URL; an unusable one is reported already (as the issuer or app URL).
            None => {
                crate::domain::RedirectAllowlist::parse([mail.app_url.as_str()]).unwrap_or_default()
            }
        };
        let github = optional("TOLLGATE_GITHUB_CLIENT_ID").map(|client_id| GitHubProviderConfig {
            client_id,
            web_base: text("TOLLGATE_GITHUB_WEB_BASE", "https://github.com"),
            api_base: text("TOLLGATE_GITHUB_API_BASE", "https://api.github.com"),
        });
        let scopes = |name: &str| -> Vec<String> {
            text(name, "email profile")
                .split([' ', ','])
                .filter(|s| !s.is_empty() && *s != "openid")
                .map(str::to_owned)
                .collect()
        };
        let mut oidc = Vec::new();
        if let Some(id) = optional("TOLLGATE_GOOGLE_CLIENT_ID") {
            oidc.push(OidcProviderConfig {
                name: "google".into(),
                issuer: text("TOLLGATE_GOOGLE_ISSUER", "https://accounts.google.com"),
                client_id: id,
                scopes: scopes("TOLLGATE_GOOGLE_SCOPES"),
            });
        }
        for name in optional("TOLLGATE_OIDC_PROVIDERS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            let upper = name.to_ascii_uppercase().replace('-', "_");
            if !crate::domain::valid_provider_name(name) || matches!(name, "github" | "google") {
                problems.push(format!(
                    "TOLLGATE_OIDC_PROVIDERS: {name:?} must be 1-32 of a-z, 0-9, - and not github or google"
                ));
                continue;
            }
            let issuer = optional(&format!("TOLLGATE_OIDC_{upper}_ISSUER"));
            let client_id = optional(&format!("TOLLGATE_OIDC_{upper}_CLIENT_ID"));
            match (issuer, client_id) {
                (Some(issuer), Some(client_id)) => oidc.push(OidcProviderConfig {
                    name: name.to_owned(),
                    issuer,
                    client_id,
                    scopes: scopes(&format!("TOLLGATE_OIDC_{upper}_SCOPES")),
                }),
                _ => problems.push(format!(
                    "TOLLGATE_OIDC_PROVIDERS names {name}: set TOLLGATE_OIDC_{upper}_ISSUER and TOLLGATE_OIDC_{upper}_CLIENT_ID"
                )),
            }
        }
        let defaults = billing_defaults(&issuer, grace);
        let billing = BillingSettings {
            success_url: optional("TOLLGATE_SUCCESS_URL").unwrap_or(defaults.success_url),
            cancel_url: optional("TOLLGATE_CANCEL_URL").unwrap_or(defaults.cancel_url),
            portal_return_url: optional("TOLLGATE_PORTAL_RETURN_URL")
                .unwrap_or(defaults.portal_return_url),
            past_due_grace: grace,
        };
        let rate_limits = match optional("TOLLGATE_RATE_LIMITS") {
            Some(spec) => crate::domain::RateLimits::parse(&spec).unwrap_or_else(|errors| {
                problems.extend(
                    errors
                        .into_iter()
                        .map(|e| format!("TOLLGATE_RATE_LIMITS: {e}")),
                );
                crate::domain::RateLimits::default()
            }),
            None => crate::domain::RateLimits::default(),
        };
        let config = Self {
            rate_limits,
            queue_url: optional("TOLLGATE_QUEUE_URL"),
            plans_file: optional("TOLLGATE_PLANS_FILE"),
            billing,
            auth: AuthSettings {
                issuer,
                audience: text("TOLLGATE_AUDIENCE", &d.auth.audience),
                access_token_ttl,
                session: SessionPolicy {
                    idle_timeout,
                    absolute_lifetime,
                    reuse_grace,
                },
                require_verified_email,
                passwordless_signup,
                reauth_window,
                audit_retention: audit_days * 86_400,
                oauth_redirects,
                max_api_keys: usize::try_from(max_api_keys).unwrap_or(d.auth.max_api_keys),
            },
            mail,
            oauth: OAuthConfig { github, oidc },
            oauth_secrets_id: text("TOLLGATE_OAUTH_SECRETS_ID", &d.oauth_secrets_id),
            max_body_bytes: usize::try_from(max_body).unwrap_or(d.max_body_bytes),
            cookie_secure,
            table_name: text("TOLLGATE_TABLE_NAME", &d.table_name),
            jwt_keys_secret_id: text("TOLLGATE_JWT_KEYS_SECRET_ID", &d.jwt_keys_secret_id),
            jwks_secret_id: text("TOLLGATE_JWKS_SECRET_ID", &d.jwks_secret_id),
            provider_secrets_id: text("TOLLGATE_PROVIDER_SECRETS_ID", &d.provider_secrets_id),
            webhook_secrets_id: text("TOLLGATE_WEBHOOK_SECRETS_ID", &d.webhook_secrets_id),
            outbound_endpoints_secret_id: text(
                "TOLLGATE_OUTBOUND_ENDPOINTS_SECRET_ID",
                &d.outbound_endpoints_secret_id,
            ),
            accent_color,
        };
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError(problems))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_apply_when_unset() {
        assert_eq!(
            Config::from_vars(HashMap::new()).expect("valid"),
            Config::default()
        );
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let err = Config::from_vars(vars(&[
            ("TOLLGATE_ACCESS_TOKEN_TTL_SECONDS", "soon"),
            ("TOLLGATE_COOKIE_SECURE", "maybe"),
            ("TOLLGATE_ISSUER", "ftp://x"),
        ]))
        .expect_err("invalid");
        assert_eq!(err.0.len(), 3, "{err}");
    }

    #[test]
    fn identity_providers_are_read_with_their_names_and_checked() {
        let c = Config::from_vars(vars(&[
            ("TOLLGATE_APP_URL", "https://app.example.com"),
            ("TOLLGATE_GITHUB_CLIENT_ID", "Iv1.abc"),
            (
                "TOLLGATE_GOOGLE_CLIENT_ID",
                "123.apps.googleusercontent.com",
            ),
            ("TOLLGATE_OIDC_PROVIDERS", "keycloak, acme-sso"),
            (
                "TOLLGATE_OIDC_KEYCLOAK_ISSUER",
                "https://sso.example.com/realms/main",
            ),
            ("TOLLGATE_OIDC_KEYCLOAK_CLIENT_ID", "tollgate"),
            ("TOLLGATE_OIDC_ACME_SSO_ISSUER", "https://acme.example.com"),
            ("TOLLGATE_OIDC_ACME_SSO_CLIENT_ID", "tg"),
            ("TOLLGATE_OIDC_ACME_SSO_SCOPES", "openid email"),
        ]))
        .expect("valid");
        let github = c.oauth.github.expect("github");
        assert_eq!(
            (github.client_id.as_str(), github.web_base.as_str()),
            ("Iv1.abc", "https://github.com")
        );
        let names: Vec<(&str, &str, Vec<String>)> = c
            .oauth
            .oidc
            .iter()
            .map(|p| (p.name.as_str(), p.issuer.as_str(), p.scopes.clone()))
            .collect();
        assert_eq!(
            names,
            [
                (
                    "google",
                    "https://accounts.google.com",
                    vec!["email".into(), "profile".into()]
                ),
                (
                    "keycloak",
                    "https://sso.example.com/realms/main",
                    vec!["email".into(), "profile".into()]
                ),
                ("acme-sso", "https://acme.example.com", vec!["email".into()]),
            ]
        );
        // Without an allowlist, the app's URL is the one place a sign-in returns to.
        assert!(c
            .auth
            .oauth_redirects
            .allows("https://app.example.com/after")
            .is_some());
        assert!(c
            .auth
            .oauth_redirects
            .allows("https://evil.example/")
            .is_none());

        let err = Config::from_vars(vars(&[
            ("TOLLGATE_OIDC_PROVIDERS", "Bad Name,github,half"),
            ("TOLLGATE_OIDC_HALF_ISSUER", "https://half.example.com"),
            (
                "TOLLGATE_OAUTH_REDIRECT_ALLOWLIST",
                "https://ok.example.com,not a url",
            ),
        ]))
        .expect_err("invalid");
        assert_eq!(err.0.len(), 4, "{err}");
    }

    #[test]
    fn values_are_read_and_trimmed() {
        let c = Config::from_vars(vars(&[
            ("TOLLGATE_ISSUER", "https://auth.example.com/"),
            ("TOLLGATE_REFRESH_REUSE_GRACE_SECONDS", " 3 "),
        ]))
        .expect("valid");
        assert_eq!(c.auth.issuer, "https://auth.example.com");
        assert_eq!(c.auth.session.reuse_grace, 3);
        assert_eq!(
            c.billing.cancel_url,
            "https://auth.example.com/billing/canceled"
        );
    }
}
