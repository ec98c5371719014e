//! The signing-key part of the keys-and-secrets bootstrap (`tollgate-admin bootstrap`, README
//! "Deploy"): creates or rotates the JWT signing key set, and publishes its public half, through
//! any [`SecretWriter`] (Secrets Manager in AWS, the dev server's data directory locally).
//!
//! Two secrets: the private key set (read only by the functions that issue tokens) and the public
//! JWKS (read by the functions that only verify tokens and by `jwks`), so most functions never
//! hold a private key.
//!
//! Rotation follows the usual JWKS practice (RFC 7517 §5; OpenID Connect Core §10.1.1): the new
//! key signs at once (the JWKS holding it is written first), and the key it replaces stays
//! published until every access token it signed has expired, so no valid token is refused.
//! Functions already running pick the new keys up without a restart (`super::key_ring`).
//! Nothing here logs or returns secret material: key
//! ids (RFC 7638 thumbprints) and secret *names* only.

use super::key_ring::KEY_RELOAD_SECONDS;
use super::tokens::{KeySet, KeySetError, SigningKeyFile, LEEWAY_SECONDS};
use crate::secrets::{SecretError, SecretWriter};
use secrecy::{ExposeSecret, SecretString};

/// Why the keys bootstrap stopped. Messages name secrets, never their values.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// Reading or writing a secret failed.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The stored key set cannot be used, or a key cannot be generated.
    #[error("the signing key set in {name:?} is unusable; it was left unchanged")]
    Keys {
        /// The secret's id.
        name: String,
        /// What is wrong.
        #[source]
        source: KeySetError,
    },
}

/// Where the two halves of the key set are kept.
#[derive(Clone, Copy, Debug)]
pub struct KeySecrets<'a> {
    /// The private key set ([`SigningKeyFile`] JSON).
    pub private: &'a str,
    /// The published JWKS (RFC 7517 JSON), written whenever it differs from the key set's.
    pub public: &'a str,
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

/// Makes sure the secret `secrets.private` holds a usable signing key set: creates one (a fresh
/// RSA-2048 key) if it has no value yet; with `rotate`, adds a new signing key and drops keys
/// retired more than `access_token_ttl` + [`LEEWAY_SECONDS`] seconds ago (the previous signing key
/// always stays). Then makes `secrets.public` hold the set's JWKS (written only when it differs).
/// `now` is Unix seconds.
///
/// # Errors
/// [`KeysError::Secret`] if a secret cannot be read or written; [`KeysError::Keys`] if the
/// stored set does not parse (it is never overwritten then) or a key cannot be generated.
pub async fn ensure_signing_keys(
    store: &dyn SecretWriter,
    secrets: KeySecrets<'_>,
    rotate: bool,
    now: i64,
    access_token_ttl: i64,
) -> Result<KeysReport, KeysError> {
    let name = secrets.private;
    let keys_error = |source| KeysError::Keys {
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
                // A warm function signs with a replaced key until it loads the keys again
                // (at most `KEY_RELOAD_SECONDS` later), and its tokens live one lifetime more.
                let retired_after =
                    now - access_token_ttl - LEEWAY_SECONDS as i64 - KEY_RELOAD_SECONDS;
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
    // The JWKS first: a function that loads the new signing key can only sign with it once
    // every verifier that loads the keys again can find it.
    let jwks =
        serde_json::to_string(set.public().jwks()).map_err(|e| keys_error(KeySetError::Json(e)))?;
    let published_now = match store.get_secret(secrets.public).await {
        Ok(current) => Some(current.expose_secret().to_owned()),
        Err(SecretError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    if published_now.as_deref() != Some(jwks.as_str()) {
        store
            .put_secret(secrets.public, &SecretString::from(jwks))
            .await?;
    }
    if action != "kept" {
        let json = serde_json::to_string(&file).map_err(|e| keys_error(KeySetError::Json(e)))?;
        store.put_secret(name, &SecretString::from(json)).await?;
    }
    let published: Vec<String> = set
        .public()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::{FileSecretSource, SecretSource};

    const SECRETS: KeySecrets<'static> = KeySecrets {
        private: "jwt-keys",
        public: "jwks",
    };

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
        let first = ensure_signing_keys(&files, SECRETS, false, 1_000, 900)
            .await
            .expect("create");
        assert_eq!((first.action, first.published.len()), ("created", 1));
        let published = files.get_secret("jwks").await.expect("jwks written");
        let public =
            super::super::tokens::PublicKeys::from_json(published.expose_secret(), "i", "a")
                .expect("the published JWKS parses");
        assert_eq!(public.jwks().keys.len(), 1);
        let kept = ensure_signing_keys(&files, SECRETS, false, 2_000, 900)
            .await
            .expect("keep");
        assert_eq!(
            (kept.action, &kept.signing_kid),
            ("kept", &first.signing_kid)
        );
        let rotated = ensure_signing_keys(&files, SECRETS, true, 3_000, 900)
            .await
            .expect("rotate");
        assert_eq!(rotated.action, "rotated");
        assert_ne!(rotated.signing_kid, first.signing_kid);
        assert!(
            rotated.published.contains(&first.signing_kid),
            "the old key stays published"
        );
        // Just under one token lifetime (plus leeway and the warm reload interval) later, a
        // warm function may still have signed with the first key recently: it stays.
        let early = ensure_signing_keys(&files, SECRETS, true, 3_000 + 905 + 300, 900)
            .await
            .expect("rotate");
        assert!(early.published.contains(&first.signing_kid));
        // Past that, the first key's tokens have all expired: the next rotation drops it.
        let again = ensure_signing_keys(&files, SECRETS, true, 3_000 + 906 + 300, 900)
            .await
            .expect("rotate");
        assert!(!again.published.contains(&first.signing_kid));
        assert!(again.published.contains(&rotated.signing_kid));
        assert_eq!((again.published.len(), again.dropped), (3, 1));
        let published = files.get_secret("jwks").await.expect("jwks");
        assert!(
            !published.expose_secret().contains(&first.signing_kid),
            "the published JWKS follows the rotation"
        );
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
        let e = ensure_signing_keys(&files, SECRETS, true, 1, 900)
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
}
