//! Sign-in with an identity provider (docs/architecture.md §5b): linked identities, the
//! single-use state of an authorization, and the rule that decides whom a provider's identity
//! signs in. Pure; times are Unix seconds.

use super::{TokenHash, User, UserId};
use serde::{Deserialize, Serialize};

/// How long an authorization may take from leaving Tollgate to the callback: 10 minutes
/// (docs/architecture.md §5b).
pub const OAUTH_STATE_LIFETIME_SECONDS: i64 = 600;
/// How long the one-time code the callback hands the app lives: 60 seconds.
pub const OAUTH_EXCHANGE_LIFETIME_SECONDS: i64 = 60;

/// Whether `name` can name an identity provider: 1 to 32 of `a-z`, `0-9`, `-` (it appears in
/// routes, keys and callback URLs).
pub fn valid_provider_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// An identity at a provider linked to a user (`IDENTITY#<provider>#<subject>` / `IDENTITY`, and
/// `USER#<id>` / `IDENTITY#<provider>` for the user's list: one identity per provider per user).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The provider's configured name (`github`, `google`, or an OIDC provider's name).
    pub provider: String,
    /// The provider's stable id of the person (GitHub's numeric user id, OIDC `sub`).
    pub subject: String,
    /// The user it signs in.
    pub user_id: UserId,
    /// The email the provider gave when it was linked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Whether the provider said that email is verified.
    #[serde(default)]
    pub email_verified: bool,
    /// When it was linked.
    pub created_at: i64,
}

/// What a provider says about the person who signed in there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderIdentity {
    /// The provider's stable id of the person.
    pub subject: String,
    /// Their email, if the provider gave one.
    pub email: Option<String>,
    /// Whether the provider vouches for the email (GitHub: a primary verified address; OIDC: the
    /// `email_verified` claim).
    pub email_verified: bool,
    /// A display name, if any.
    pub name: Option<String>,
}

/// What an authorization started for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum OAuthMode {
    /// Sign in (or sign up).
    Login,
    /// Link the identity to a signed-in user.
    Link {
        /// The signed-in user.
        user_id: UserId,
    },
}

/// The single-use state of one authorization (`OAUTH#<sha256 of state>` / `OAUTH`): checked and
/// spent by the callback. The PKCE verifier lives here, never in a URL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthState {
    /// SHA-256 of the `state` parameter (the item's key).
    pub hash: TokenHash,
    /// The provider it went to.
    pub provider: String,
    /// The PKCE code verifier (RFC 7636), sent with the code exchange.
    pub pkce_verifier: String,
    /// The OIDC nonce the ID token must carry.
    pub nonce: String,
    /// Where the callback sends the browser (already checked against the allowlist).
    pub redirect_to: String,
    /// Sign in, or link to a user.
    #[serde(flatten)]
    pub mode: OAuthMode,
    /// When it started.
    pub created_at: i64,
    /// When it stops working; also the TTL attribute.
    pub expires_at: i64,
}

/// The places an authorization may send the browser back to (`TOLLGATE_OAUTH_REDIRECT_ALLOWLIST`):
/// each entry an absolute URL whose scheme, host and port must match exactly and whose path is a
/// prefix of the target's path. Comparing parsed URLs, not strings, so
/// `https://app.example.com.evil.test/` never passes for `https://app.example.com`
/// (OAuth 2.0 Security BCP, RFC 9700 §4.1: exact redirect matching).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedirectAllowlist(Vec<url::Url>);

impl RedirectAllowlist {
    /// The list of `entries` (absolute http(s) URLs).
    ///
    /// # Errors
    /// The first entry that is not an absolute http(s) URL with a host.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut list = Vec::new();
        for entry in entries {
            let url = url::Url::parse(entry.trim()).map_err(|e| format!("{entry:?}: {e}"))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(format!("{entry:?}: not an http(s) URL with a host"));
            }
            list.push(url);
        }
        Ok(Self(list))
    }

    /// The first entry (where a callback without a usable state sends the browser).
    pub fn default_target(&self) -> Option<&url::Url> {
        self.0.first()
    }

    /// `target` parsed, if an entry allows it.
    pub fn allows(&self, target: &str) -> Option<url::Url> {
        let url = url::Url::parse(target).ok()?;
        if !url.username().is_empty() || url.password().is_some() {
            return None;
        }
        self.0
            .iter()
            .any(|entry| {
                entry.scheme() == url.scheme()
                    && entry.host_str() == url.host_str()
                    && entry.port_or_known_default() == url.port_or_known_default()
                    && path_prefix(entry.path(), url.path())
            })
            .then_some(url)
    }
}

/// Whether `prefix` is `path` or a whole-segment prefix of it (`/app` allows `/app` and
/// `/app/x`, not `/apple`).
fn path_prefix(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty()
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Whom a provider's identity signs in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// A linked identity: its user.
    Returning(UserId),
    /// A new identity with a provider-verified email that an account has: link it to that
    /// account and sign it in.
    LinkToAccount(UserId),
    /// Nobody has this identity or email: create an account (`email_verified` as the provider
    /// says).
    NewAccount,
    /// An account has this email but the provider does not vouch for it: linking would let
    /// anyone who registers that address at the provider take the account over. Nothing is
    /// created.
    UnverifiedEmail,
    /// The provider gave no email and the identity is new: there is nothing to create an account
    /// for.
    NoEmail,
}

/// Decides whom `identity` signs in: its linked user if any; else the account with its email
/// when the provider verified the email; else a new account — never a link on an unverified
/// email (docs/architecture.md §5b).
pub fn resolve(
    linked: Option<UserId>,
    account_with_email: Option<&User>,
    identity: &ProviderIdentity,
) -> Resolution {
    if let Some(user_id) = linked {
        return Resolution::Returning(user_id);
    }
    if identity.email.is_none() {
        return Resolution::NoEmail;
    }
    match account_with_email {
        Some(user) if identity.email_verified => Resolution::LinkToAccount(user.id),
        Some(_) => Resolution::UnverifiedEmail,
        None => Resolution::NewAccount,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UserStatus;

    fn identity(email: Option<&str>, verified: bool) -> ProviderIdentity {
        ProviderIdentity {
            subject: "42".into(),
            email: email.map(str::to_owned),
            email_verified: verified,
            name: None,
        }
    }

    fn user() -> User {
        User {
            id: UserId::new(),
            email: "ada@example.com".into(),
            password_hash: None,
            status: UserStatus::Active,
            email_verified: true,
            name: None,
            roles: Vec::new(),
            session_epoch: 0,
            created_at: 0,
            updated_at: 0,
            version: 1,
        }
    }

    #[test]
    fn only_a_provider_verified_email_links_to_an_account() {
        let account = user();
        let linked = UserId::new();
        assert_eq!(
            resolve(
                Some(linked),
                Some(&account),
                &identity(Some("x@y.z"), false)
            ),
            Resolution::Returning(linked)
        );
        assert_eq!(
            resolve(
                None,
                Some(&account),
                &identity(Some("ada@example.com"), true)
            ),
            Resolution::LinkToAccount(account.id)
        );
        assert_eq!(
            resolve(
                None,
                Some(&account),
                &identity(Some("ada@example.com"), false)
            ),
            Resolution::UnverifiedEmail
        );
        assert_eq!(
            resolve(None, None, &identity(Some("new@example.com"), false)),
            Resolution::NewAccount
        );
        assert_eq!(
            resolve(None, None, &identity(None, false)),
            Resolution::NoEmail
        );
    }

    #[test]
    fn redirects_must_match_an_entry_exactly() {
        let list =
            RedirectAllowlist::parse(["https://app.example.com", "http://127.0.0.1:3000/app"])
                .expect("valid");
        for ok in [
            "https://app.example.com/",
            "https://app.example.com/done?x=1",
            "https://APP.example.com/callback",
            "https://app.example.com:443/",
            "http://127.0.0.1:3000/app",
            "http://127.0.0.1:3000/app/signed-in",
        ] {
            assert!(list.allows(ok).is_some(), "{ok}");
        }
        for bad in [
            "https://app.example.com.evil.test/",
            "http://app.example.com/",
            "https://app.example.com:8443/",
            "https://evil@app.example.com/",
            "http://127.0.0.1:3000/apple",
            "http://127.0.0.1:3000/",
            "//app.example.com/",
            "javascript:alert(1)",
        ] {
            assert!(list.allows(bad).is_none(), "{bad}");
        }
        assert!(RedirectAllowlist::parse(["app.example.com"]).is_err());
    }

    #[test]
    fn provider_names_are_url_and_key_safe() {
        for ok in ["github", "google", "okta-eu", "a1"] {
            assert!(valid_provider_name(ok), "{ok}");
        }
        for bad in ["", "GitHub", "a/b", "x#y", &"a".repeat(33)] {
            assert!(!valid_provider_name(bad), "{bad}");
        }
    }
}
