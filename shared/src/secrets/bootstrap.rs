//! The keys-and-secrets bootstrap (`tollgate-admin bootstrap`, README "Deploy"): creates or
//! rotates the JWT signing key set and records the payment-provider secrets, through any
//! [`SecretWriter`] (Secrets Manager in AWS, the dev server's data directory locally).
//!
//! Rotation follows the usual JWKS practice (RFC 7517 §5; OpenID Connect Core §10.1.1): the new
//! key signs at once, and the key it replaces stays published until every access token it signed
//! has expired, so no valid token is refused. Nothing here logs or returns secret material: key
//! ids (RFC 7638 thumbprints) and secret *names* only.

use super::providers::PROVIDER_SECRET_NAMES;
use super::{SecretError, SecretWriter};
use crate::auth::{KeySet, KeySetError, SigningKeyFile, LEEWAY_SECONDS};
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;

/// Why the bootstrap stopped. Messages name secrets, never their values.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// Reading or writing a secret failed.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The stored key set cannot be used, or a key cannot be generated.
    #[error("the signing key set in {name:?} is unusable ({source}); it was left unchanged")]
    Keys {
        /// The secret's id.
        name: String,
        /// What is wrong.
        source: KeySetError,
    },
    /// The stored provider secret is not a JSON object of strings; it is not overwritten.
    #[error(
        "the provider secret {0:?} does not hold a JSON object of strings; it was left unchanged"
    )]
    NotAnObject(String),
    /// A provider secret name Tollgate does not read.
    #[error("unknown provider secret name {0:?} (expected one of STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET, WHOP_API_KEY, WHOP_WEBHOOK_SECRET, STRIPE_API_BASE, WHOP_API_BASE)")]
    UnknownName(String),
}

/// What [`ensure_signing_keys`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeysReport {
    /// `created` (the secret had no key set), `kept` (left as it was) or `rotated`.
    pub action: &'static str,
    /// `kid` of the signing key (RFC 7638 thumbprint).
    pub signing_kid: String,
    /// Every `kid` the JWKS now publishes, the signing one included.
    pub published: Vec<String>,
    /// Keys dropped because every token they signed has expired.
    pub dropped: usize,
}

/// Makes sure the secret `name` holds a usable signing key set: creates one (a fresh RSA-2048
/// key) if it has no value yet; with `rotate`, adds a new signing key and drops keys retired more
/// than `access_token_ttl` + [`LEEWAY_SECONDS`] seconds ago (the previous signing key always
/// stays). `now` is Unix seconds.
///
/// # Errors
/// [`BootstrapError::Secret`] if the secret cannot be read or written;
/// [`BootstrapError::Keys`] if the stored set does not parse (it is never overwritten then) or a
/// key cannot be generated.
pub async fn ensure_signing_keys(
    store: &dyn SecretWriter,
    name: &str,
    rotate: bool,
    now: i64,
    access_token_ttl: i64,
) -> Result<KeysReport, BootstrapError> {
    let keys_error = |source| BootstrapError::Keys {
        name: name.to_owned(),
        source,
    };
    let current = match store.get_secret(name).await {
        Ok(value) if !value.expose_secret().trim().is_empty() => Some(value),
        Ok(_) | Err(SecretError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let (file, action, before) = match current {
        None => (
            SigningKeyFile::generate(now).map_err(keys_error)?,
            "created",
            0,
        ),
        Some(json) => {
            // Validate the stored set fully (every key parses) before touching it.
            KeySet::from_json(json.expose_secret(), "bootstrap", "bootstrap")
                .map_err(keys_error)?;
            let file: SigningKeyFile = serde_json::from_str(json.expose_secret())
                .map_err(|e| keys_error(KeySetError::Json(e)))?;
            let before = file.keys.len();
            if rotate {
                let retired_after = now - access_token_ttl - LEEWAY_SECONDS as i64;
                (
                    file.rotated(now, retired_after).map_err(keys_error)?,
                    "rotated",
                    before,
                )
            } else {
                (file, "kept", before)
            }
        }
    };
    let set = KeySet::from_file(&file, "bootstrap", "bootstrap").map_err(keys_error)?;
    if action != "kept" {
        let json = serde_json::to_string(&file).map_err(|e| keys_error(KeySetError::Json(e)))?;
        store.put_secret(name, &SecretString::from(json)).await?;
    }
    let published: Vec<String> = set
        .jwks()
        .keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect();
    Ok(KeysReport {
        action,
        signing_kid: set.signing_kid().to_owned(),
        dropped: (before + usize::from(action == "rotated")).saturating_sub(published.len()),
        published,
    })
}

/// Records provider secrets into the secret `name` (a JSON object, DESIGN §7 /
/// [`super::providers`]): every entry of `values` is set, other entries already stored are kept,
/// and a secret with no value yet gets `{}` at least (so functions that read it start, with
/// billing answering 503 `provider_not_configured` until keys are added). Returns the names now
/// set, sorted.
///
/// # Errors
/// [`BootstrapError::UnknownName`] for a name Tollgate does not read (nothing is written);
/// [`BootstrapError::NotAnObject`] if the stored value is not a JSON object of strings (it is not
/// overwritten); [`BootstrapError::Secret`] if reading or writing fails.
pub async fn record_provider_secrets(
    store: &dyn SecretWriter,
    name: &str,
    values: &BTreeMap<String, SecretString>,
) -> Result<Vec<String>, BootstrapError> {
    if let Some(unknown) = values
        .keys()
        .find(|k| !PROVIDER_SECRET_NAMES.contains(&k.as_str()))
    {
        return Err(BootstrapError::UnknownName(unknown.clone()));
    }
    let (mut stored, existed): (BTreeMap<String, String>, bool) = match store.get_secret(name).await
    {
        Ok(value) if value.expose_secret().trim().is_empty() => (BTreeMap::new(), false),
        Ok(value) => (
            serde_json::from_str(value.expose_secret())
                .map_err(|_| BootstrapError::NotAnObject(name.to_owned()))?,
            true,
        ),
        Err(SecretError::NotFound(_)) => (BTreeMap::new(), false),
        Err(e) => return Err(e.into()),
    };
    if existed && values.is_empty() {
        return Ok(stored.into_keys().collect());
    }
    for (k, v) in values {
        stored.insert(k.clone(), v.expose_secret().to_owned());
    }
    let json =
        serde_json::to_string(&stored).map_err(|_| BootstrapError::NotAnObject(name.to_owned()))?;
    store.put_secret(name, &SecretString::from(json)).await?;
    Ok(stored.into_keys().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::{FileSecretSource, SecretSource};

    fn dir(tag: &str) -> std::path::PathBuf {
        let d =
            std::env::temp_dir().join(format!("tollgate-bootstrap-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("dir");
        d
    }

    #[tokio::test]
    async fn keys_are_created_kept_and_rotated_with_the_old_key_published() {
        let d = dir("keys");
        let files = FileSecretSource::new(&d);
        let first = ensure_signing_keys(&files, "jwt-keys", false, 1_000, 900)
            .await
            .expect("create");
        assert_eq!((first.action, first.published.len()), ("created", 1));
        let kept = ensure_signing_keys(&files, "jwt-keys", false, 2_000, 900)
            .await
            .expect("keep");
        assert_eq!(
            (kept.action, &kept.signing_kid),
            ("kept", &first.signing_kid)
        );
        let rotated = ensure_signing_keys(&files, "jwt-keys", true, 3_000, 900)
            .await
            .expect("rotate");
        assert_eq!(rotated.action, "rotated");
        assert_ne!(rotated.signing_kid, first.signing_kid);
        assert!(
            rotated.published.contains(&first.signing_kid),
            "the old key stays published"
        );
        // One token lifetime later the first key's tokens have expired: the next rotation drops it.
        let again = ensure_signing_keys(&files, "jwt-keys", true, 3_000 + 906, 900)
            .await
            .expect("rotate");
        assert!(!again.published.contains(&first.signing_kid));
        assert!(again.published.contains(&rotated.signing_kid));
        assert_eq!((again.published.len(), again.dropped), (2, 1));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[tokio::test]
    async fn an_unusable_key_set_is_never_overwritten() {
        let d = dir("bad");
        let files = FileSecretSource::new(&d);
        files
            .put_secret("jwt-keys", &SecretString::from("not json".to_owned()))
            .await
            .expect("write");
        let e = ensure_signing_keys(&files, "jwt-keys", true, 1, 900)
            .await
            .expect_err("refused");
        assert!(!e.to_string().contains("not json"), "{e}");
        assert_eq!(
            files
                .get_secret("jwt-keys")
                .await
                .expect("read")
                .expose_secret(),
            "not json"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[tokio::test]
    async fn provider_secrets_are_merged_and_never_echoed() {
        let d = dir("providers");
        let files = FileSecretSource::new(&d);
        let none = record_provider_secrets(&files, "providers", &BTreeMap::new())
            .await
            .expect("empty");
        assert!(none.is_empty());
        assert_eq!(
            files
                .get_secret("providers")
                .await
                .expect("read")
                .expose_secret(),
            "{}"
        );
        let mut values = BTreeMap::new();
        values.insert(
            "STRIPE_SECRET_KEY".to_owned(),
            SecretString::from("sk_test_1".to_owned()),
        );
        record_provider_secrets(&files, "providers", &values)
            .await
            .expect("set");
        let mut more = BTreeMap::new();
        more.insert(
            "WHOP_API_KEY".to_owned(),
            SecretString::from("whop_1".to_owned()),
        );
        let names = record_provider_secrets(&files, "providers", &more)
            .await
            .expect("merge");
        assert_eq!(names, vec!["STRIPE_SECRET_KEY", "WHOP_API_KEY"]);
        let stored: BTreeMap<String, String> = serde_json::from_str(
            files
                .get_secret("providers")
                .await
                .expect("read")
                .expose_secret(),
        )
        .expect("json");
        assert_eq!(stored["STRIPE_SECRET_KEY"], "sk_test_1");
        let mut wrong = BTreeMap::new();
        wrong.insert(
            "STRIPE_KEY".to_owned(),
            SecretString::from("sk_live_x".to_owned()),
        );
        let e = record_provider_secrets(&files, "providers", &wrong)
            .await
            .expect_err("unknown name");
        assert!(!e.to_string().contains("sk_live_x"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
