//! The payment-provider values Tollgate reads, under the names users of these providers expect,
//! in two groups kept in two secrets so each function reads only what it uses:
//!
//! - [`ProviderKeys`] (`provider-secrets`): `STRIPE_SECRET_KEY`, `WHOP_API_KEY`, and the API base
//!   URLs `STRIPE_API_BASE`, `WHOP_API_BASE` (not secret: for doubles). Read by the functions that
//!   call the providers' APIs.
//! - [`WebhookSigningSecrets`] (`webhook-secrets`): `STRIPE_WEBHOOK_SECRET`,
//!   `WHOP_WEBHOOK_SECRET`, each possibly several comma-separated secrets during a rotation. Read
//!   by webhook ingest only, which therefore cannot call a provider's API.
//!
//! - [`OAuthClientSecrets`] (`oauth-secrets`): `GITHUB_CLIENT_SECRET`, `GOOGLE_CLIENT_SECRET`,
//!   `OIDC_<NAME>_CLIENT_SECRET` — the identity providers' client secrets. Read by the oauth
//!   function only.
//!
//! Locally they come from the environment; in Lambda each group from one Secrets Manager secret
//! whose JSON object has the same keys.

use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;

/// The names [`ProviderKeys`] reads.
pub const PROVIDER_KEY_NAMES: [&str; 4] = [
    "STRIPE_SECRET_KEY",
    "WHOP_API_KEY",
    "STRIPE_API_BASE",
    "WHOP_API_BASE",
];

/// The names [`WebhookSigningSecrets`] reads.
pub const WEBHOOK_SECRET_NAMES: [&str; 2] = ["STRIPE_WEBHOOK_SECRET", "WHOP_WEBHOOK_SECRET"];

/// API keys (and base URLs) of the providers that are set. `Debug` is redacted.
#[derive(Default, Clone)]
pub struct ProviderKeys {
    /// `STRIPE_SECRET_KEY`.
    pub stripe_secret_key: Option<SecretString>,
    /// `WHOP_API_KEY`.
    pub whop_api_key: Option<SecretString>,
    /// `STRIPE_API_BASE`.
    pub stripe_api_base: Option<String>,
    /// `WHOP_API_BASE`.
    pub whop_api_base: Option<String>,
}

impl std::fmt::Debug for ProviderKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderKeys")
            .field("stripe_secret_key", &self.stripe_secret_key.is_some())
            .field("whop_api_key", &self.whop_api_key.is_some())
            .field("stripe_api_base", &self.stripe_api_base)
            .field("whop_api_base", &self.whop_api_base)
            .finish()
    }
}

/// Webhook signing secrets of the providers that are set, each a comma-separated list as
/// configured (parsed by the signature schemes). `Debug` is redacted.
#[derive(Default, Clone)]
pub struct WebhookSigningSecrets {
    /// `STRIPE_WEBHOOK_SECRET`.
    pub stripe: Option<SecretString>,
    /// `WHOP_WEBHOOK_SECRET`.
    pub whop: Option<SecretString>,
}

impl std::fmt::Debug for WebhookSigningSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSigningSecrets")
            .field("stripe", &self.stripe.is_some())
            .field("whop", &self.whop.is_some())
            .finish()
    }
}

fn get(map: &HashMap<String, String>, key: &str) -> Option<String> {
    map.get(key)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// A Secrets Manager secret's JSON object of strings as a map.
///
/// # Errors
/// A message (no secret material) if the JSON is not an object of strings.
fn object(json: &SecretString, what: &str) -> Result<HashMap<String, String>, String> {
    serde_json::from_str(json.expose_secret())
        .map_err(|_| format!("the {what} secret is not a JSON object of strings"))
}

impl ProviderKeys {
    /// From a map of names to values (empty values count as unset).
    pub fn from_map(map: &HashMap<String, String>) -> Self {
        Self {
            stripe_secret_key: get(map, "STRIPE_SECRET_KEY").map(SecretString::from),
            whop_api_key: get(map, "WHOP_API_KEY").map(SecretString::from),
            stripe_api_base: get(map, "STRIPE_API_BASE"),
            whop_api_base: get(map, "WHOP_API_BASE"),
        }
    }

    /// From the process environment.
    pub fn from_env() -> Self {
        Self::from_map(&std::env::vars().collect())
    }

    /// From a Secrets Manager secret's JSON object (`{"STRIPE_SECRET_KEY": "...", ...}`); the
    /// environment's base URLs apply when the JSON has none.
    ///
    /// # Errors
    /// A message (no secret material) if the JSON is not an object of strings.
    pub fn from_json(json: &SecretString) -> Result<Self, String> {
        let mut map = object(json, "provider")?;
        for k in ["STRIPE_API_BASE", "WHOP_API_BASE"] {
            if let Ok(v) = std::env::var(k) {
                map.entry(k.to_owned()).or_insert(v);
            }
        }
        Ok(Self::from_map(&map))
    }

    /// Whether no provider has an API key.
    pub fn is_empty(&self) -> bool {
        self.stripe_secret_key.is_none() && self.whop_api_key.is_none()
    }
}

impl WebhookSigningSecrets {
    /// From a map of names to values (empty values count as unset).
    pub fn from_map(map: &HashMap<String, String>) -> Self {
        Self {
            stripe: get(map, "STRIPE_WEBHOOK_SECRET").map(SecretString::from),
            whop: get(map, "WHOP_WEBHOOK_SECRET").map(SecretString::from),
        }
    }

    /// From the process environment.
    pub fn from_env() -> Self {
        Self::from_map(&std::env::vars().collect())
    }

    /// From a Secrets Manager secret's JSON object (`{"STRIPE_WEBHOOK_SECRET": "...", ...}`).
    ///
    /// # Errors
    /// A message (no secret material) if the JSON is not an object of strings.
    pub fn from_json(json: &SecretString) -> Result<Self, String> {
        object(json, "webhook").map(|map| Self::from_map(&map))
    }
}

/// The fixed names of [`OAuthClientSecrets`] (besides `OIDC_<NAME>_CLIENT_SECRET`).
pub const OAUTH_SECRET_NAMES: [&str; 2] = ["GITHUB_CLIENT_SECRET", "GOOGLE_CLIENT_SECRET"];

/// The variable holding the client secret of the OIDC provider `name`:
/// `OIDC_<NAME>_CLIENT_SECRET`, the name uppercased with `-` as `_`.
pub fn oidc_secret_name(name: &str) -> String {
    format!(
        "OIDC_{}_CLIENT_SECRET",
        name.to_ascii_uppercase().replace('-', "_")
    )
}

/// Whether `name` is a variable [`OAuthClientSecrets`] reads.
pub fn is_oauth_secret_name(name: &str) -> bool {
    OAUTH_SECRET_NAMES.contains(&name)
        || (name.starts_with("OIDC_") && name.ends_with("_CLIENT_SECRET") && name.len() > 19)
}

/// The identity providers' client secrets that are set. `Debug` is redacted.
#[derive(Default, Clone)]
pub struct OAuthClientSecrets(HashMap<String, SecretString>);

impl std::fmt::Debug for OAuthClientSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.0.keys().collect();
        names.sort();
        f.debug_tuple("OAuthClientSecrets").field(&names).finish()
    }
}

impl OAuthClientSecrets {
    /// From a map of names to values: the names [`is_oauth_secret_name`] accepts (empty values
    /// count as unset).
    pub fn from_map(map: &HashMap<String, String>) -> Self {
        Self(
            map.keys()
                .filter(|k| is_oauth_secret_name(k))
                .filter_map(|k| get(map, k).map(|v| (k.clone(), SecretString::from(v))))
                .collect(),
        )
    }

    /// From the process environment.
    pub fn from_env() -> Self {
        Self::from_map(&std::env::vars().collect())
    }

    /// From a Secrets Manager secret's JSON object (`{"GITHUB_CLIENT_SECRET": "...", ...}`).
    ///
    /// # Errors
    /// A message (no secret material) if the JSON is not an object of strings.
    pub fn from_json(json: &SecretString) -> Result<Self, String> {
        object(json, "OAuth").map(|map| Self::from_map(&map))
    }

    /// The secret called `name`, if set.
    pub fn get(&self, name: &str) -> Option<&SecretString> {
        self.0.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oauth_secrets_are_read_by_name_and_redacted() {
        let map = HashMap::from([
            ("GITHUB_CLIENT_SECRET".to_owned(), "gh-secret".to_owned()),
            ("OIDC_KEY_CLOAK_CLIENT_SECRET".to_owned(), "kc".to_owned()),
            ("STRIPE_SECRET_KEY".to_owned(), "sk".to_owned()),
        ]);
        let secrets = OAuthClientSecrets::from_map(&map);
        assert!(secrets.get("GITHUB_CLIENT_SECRET").is_some());
        assert!(secrets.get(&oidc_secret_name("key-cloak")).is_some());
        assert!(secrets.get("STRIPE_SECRET_KEY").is_none());
        assert!(!format!("{secrets:?}").contains("gh-secret"));
    }

    #[test]
    fn values_are_read_by_their_usual_names_and_redacted() {
        let map = HashMap::from([
            ("STRIPE_SECRET_KEY".to_owned(), "sk_test_123".to_owned()),
            (
                "STRIPE_WEBHOOK_SECRET".to_owned(),
                "whsec_a, whsec_b".to_owned(),
            ),
            ("WHOP_API_KEY".to_owned(), " ".to_owned()),
        ]);
        let keys = ProviderKeys::from_map(&map);
        assert!(keys.stripe_secret_key.is_some());
        assert!(keys.whop_api_key.is_none(), "blank is unset");
        assert!(!format!("{keys:?}").contains("sk_test_123"));
        let hooks = WebhookSigningSecrets::from_map(&map);
        assert!(hooks.stripe.is_some() && hooks.whop.is_none());
        assert!(!format!("{hooks:?}").contains("whsec_a"));
        assert!(ProviderKeys::from_json(&SecretString::from("[1]")).is_err());
        assert!(WebhookSigningSecrets::from_json(&SecretString::from("{\"a\":1}")).is_err());
    }
}
