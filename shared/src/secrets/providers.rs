//! Payment-provider secrets under the names users of these providers expect: `STRIPE_SECRET_KEY`,
//! `STRIPE_WEBHOOK_SECRET`, `WHOP_API_KEY`, `WHOP_WEBHOOK_SECRET` (the webhook ones may hold
//! several comma-separated secrets during rotation), plus `STRIPE_API_BASE` and `WHOP_API_BASE`
//! (not secret: base URLs for doubles). Locally they come from the environment; in Lambda from one
//! Secrets Manager secret whose JSON object has the same keys.

use crate::webhooks::signature::WebhookSecrets;
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;

/// Every name the provider secret may hold, in the order of the fields below.
pub const PROVIDER_SECRET_NAMES: [&str; 6] = [
    "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "WHOP_API_KEY",
    "WHOP_WEBHOOK_SECRET",
    "STRIPE_API_BASE",
    "WHOP_API_BASE",
];

/// The provider secrets that are set. `Debug` is redacted.
#[derive(Default)]
pub struct ProviderSecrets {
    /// `STRIPE_SECRET_KEY`.
    pub stripe_secret_key: Option<SecretString>,
    /// `STRIPE_WEBHOOK_SECRET` (comma-separated during rotation).
    pub stripe_webhook_secrets: Option<WebhookSecrets>,
    /// `WHOP_API_KEY`.
    pub whop_api_key: Option<SecretString>,
    /// `WHOP_WEBHOOK_SECRET` (comma-separated during rotation).
    pub whop_webhook_secrets: Option<WebhookSecrets>,
    /// `STRIPE_API_BASE`.
    pub stripe_api_base: Option<String>,
    /// `WHOP_API_BASE`.
    pub whop_api_base: Option<String>,
}

impl std::fmt::Debug for ProviderSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderSecrets")
            .field("stripe_secret_key", &self.stripe_secret_key.is_some())
            .field(
                "stripe_webhook_secrets",
                &self.stripe_webhook_secrets.is_some(),
            )
            .field("whop_api_key", &self.whop_api_key.is_some())
            .field("whop_webhook_secrets", &self.whop_webhook_secrets.is_some())
            .finish()
    }
}

impl ProviderSecrets {
    /// From a map of names to values (empty values count as unset).
    pub fn from_map(map: &HashMap<String, String>) -> Self {
        let get = |k: &str| {
            map.get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        Self {
            stripe_secret_key: get("STRIPE_SECRET_KEY").map(SecretString::from),
            stripe_webhook_secrets: get("STRIPE_WEBHOOK_SECRET")
                .and_then(|v| WebhookSecrets::parse(&v).ok()),
            whop_api_key: get("WHOP_API_KEY").map(SecretString::from),
            whop_webhook_secrets: get("WHOP_WEBHOOK_SECRET")
                .and_then(|v| WebhookSecrets::parse(&v).ok()),
            stripe_api_base: get("STRIPE_API_BASE"),
            whop_api_base: get("WHOP_API_BASE"),
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
        let mut map: HashMap<String, String> = serde_json::from_str(json.expose_secret())
            .map_err(|_| "provider secrets are not a JSON object of strings".to_owned())?;
        for k in ["STRIPE_API_BASE", "WHOP_API_BASE"] {
            if let Ok(v) = std::env::var(k) {
                map.entry(k.to_owned()).or_insert(v);
            }
        }
        Ok(Self::from_map(&map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_read_by_their_usual_names_and_redacted() {
        let map = HashMap::from([
            ("STRIPE_SECRET_KEY".to_owned(), "sk_test_123".to_owned()),
            (
                "STRIPE_WEBHOOK_SECRET".to_owned(),
                "whsec_a, whsec_b".to_owned(),
            ),
            ("WHOP_API_KEY".to_owned(), " ".to_owned()),
        ]);
        let s = ProviderSecrets::from_map(&map);
        assert!(s.stripe_secret_key.is_some() && s.stripe_webhook_secrets.is_some());
        assert!(s.whop_api_key.is_none(), "blank is unset");
        assert!(!format!("{s:?}").contains("sk_test_123"));
        assert!(ProviderSecrets::from_json(&SecretString::from("[1]")).is_err());
    }
}
