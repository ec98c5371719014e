//! The secrets boundary: [`SecretSource`] (and [`SecretWriter`]) with Secrets Manager
//! ([`aws::AwsSecretSource`], in Lambda) and files ([`FileSecretSource`], the dev server's data
//! directory); the payment-provider values Tollgate reads ([`providers`]); and
//! [`record_values`], which merges values into a secret holding a JSON object. Values are
//! [`SecretString`]s: never logged, `Debug` redacted. Callers fetch each secret at most once per
//! container (at cold start).

#[cfg(feature = "aws")]
pub mod aws;
pub mod providers;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Why a secret could not be read or written. Messages name the secret, never its value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// No secret by that name.
    #[error("secret {0:?} not found")]
    NotFound(String),
    /// The backend failed (network, permissions).
    #[error("secret {name:?} could not be read or written")]
    Unavailable {
        /// The secret's name.
        name: String,
        /// What went wrong (no secret material).
        #[source]
        source: crate::error::BoxError,
    },
    /// The secret holds something other than what Tollgate expects (a JSON object of strings);
    /// it is never overwritten then.
    #[error("secret {0:?} does not hold a JSON object of strings; it was left unchanged")]
    NotAnObject(String),
    /// A value name Tollgate does not read in this secret; nothing was written.
    #[error("secret {secret:?} has no entry {name:?} (expected one of {allowed})")]
    UnknownName {
        /// The secret's name.
        secret: String,
        /// The name given.
        name: String,
        /// The names it may hold, comma-separated.
        allowed: String,
    },
}

/// A place secrets come from, by name (a Secrets Manager id, an environment variable, a file).
#[async_trait]
pub trait SecretSource: Send + Sync {
    /// The secret's value.
    ///
    /// # Errors
    /// [`SecretError::NotFound`] if absent; [`SecretError::Unavailable`] on backend failure.
    async fn get_secret(&self, name: &str) -> Result<SecretString, SecretError>;
}

/// A [`SecretSource`] that can also be written: the boundary of the keys-and-secrets bootstrap
/// ([`bootstrap`]).
#[async_trait]
pub trait SecretWriter: SecretSource {
    /// Makes `value` the secret's current value (its first value, for a secret created empty).
    ///
    /// # Errors
    /// [`SecretError::NotFound`] if the secret does not exist (where secrets are created
    /// elsewhere, as by the template); [`SecretError::Unavailable`] on backend failure.
    async fn put_secret(&self, name: &str, value: &SecretString) -> Result<(), SecretError>;
}

/// Secrets from files in a directory: name `tollgate/jwt-keys` is the file `<dir>/jwt-keys.json`
/// (the last path segment plus `.json`). The dev server keeps its generated keys this way.
#[derive(Debug, Clone)]
pub struct FileSecretSource {
    dir: PathBuf,
}

impl FileSecretSource {
    /// Secrets under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The file a secret name maps to.
    pub fn path(&self, name: &str) -> PathBuf {
        let last = name.rsplit('/').next().unwrap_or(name);
        self.dir.join(format!("{last}.json"))
    }
}

#[async_trait]
impl SecretSource for FileSecretSource {
    async fn get_secret(&self, name: &str) -> Result<SecretString, SecretError> {
        match tokio::fs::read_to_string(self.path(name)).await {
            Ok(text) => Ok(SecretString::from(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(SecretError::NotFound(name.to_owned()))
            }
            Err(e) => Err(SecretError::Unavailable {
                name: name.to_owned(),
                source: Box::new(e),
            }),
        }
    }
}

/// Writes the file atomically (a temporary file renamed over it), readable by its owner only.
#[async_trait]
impl SecretWriter for FileSecretSource {
    async fn put_secret(&self, name: &str, value: &SecretString) -> Result<(), SecretError> {
        let path = self.path(name);
        let unavailable = |e: std::io::Error| SecretError::Unavailable {
            name: name.to_owned(),
            source: Box::new(e),
        };
        let tmp = path.with_extension(format!("json.tmp{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        write_private(&tmp, value.expose_secret().as_bytes()).map_err(unavailable)?;
        std::fs::rename(&tmp, &path).map_err(unavailable)
    }
}

/// Sets `values` in the secret `name`, which holds a JSON object of strings: every entry of
/// `values` is set, other stored entries are kept, and a secret with no value yet gets `{}` at
/// least (so functions that read it start, with the feature it configures off until values are
/// added). Only names in `allowed` may be set. Returns the names now set, sorted.
///
/// # Errors
/// [`SecretError::UnknownName`] for a name not in `allowed` (nothing is written);
/// [`SecretError::NotAnObject`] if the stored value is not a JSON object of strings (it is not
/// overwritten); [`SecretError::NotFound`] / [`SecretError::Unavailable`] if reading or writing
/// fails.
pub async fn record_values(
    store: &dyn SecretWriter,
    name: &str,
    allowed: &[&str],
    values: &BTreeMap<String, SecretString>,
) -> Result<Vec<String>, SecretError> {
    if let Some(unknown) = values.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(SecretError::UnknownName {
            secret: name.to_owned(),
            name: unknown.clone(),
            allowed: allowed.join(", "),
        });
    }
    let (mut stored, existed): (BTreeMap<String, String>, bool) = match store.get_secret(name).await
    {
        Ok(value) if value.expose_secret().trim().is_empty() => (BTreeMap::new(), false),
        Ok(value) => (
            serde_json::from_str(value.expose_secret())
                .map_err(|_| SecretError::NotAnObject(name.to_owned()))?,
            true,
        ),
        Err(SecretError::NotFound(_)) => (BTreeMap::new(), false),
        Err(e) => return Err(e),
    };
    if existed && values.is_empty() {
        return Ok(stored.into_keys().collect());
    }
    for (k, v) in values {
        stored.insert(k.clone(), v.expose_secret().to_owned());
    }
    let json =
        serde_json::to_string(&stored).map_err(|_| SecretError::NotAnObject(name.to_owned()))?;
    store.put_secret(name, &SecretString::from(json)).await?;
    Ok(stored.into_keys().collect())
}

/// Creates `path` (which must not exist) with mode 0600 on Unix and writes `bytes` to it.
pub fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_map_to_files() {
        let files = FileSecretSource::new("/data");
        assert_eq!(
            files.path("tollgate/jwt-keys"),
            PathBuf::from("/data/jwt-keys.json")
        );
    }

    #[tokio::test]
    async fn recorded_values_are_merged_and_never_echoed() {
        const ALLOWED: &[&str] = &["STRIPE_SECRET_KEY", "WHOP_API_KEY"];
        let d = std::env::temp_dir().join(format!("tollgate-record-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("dir");
        let files = FileSecretSource::new(&d);
        let none = record_values(&files, "providers", ALLOWED, &BTreeMap::new())
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
        let one =
            |k: &str, v: &str| BTreeMap::from([(k.to_owned(), SecretString::from(v.to_owned()))]);
        record_values(
            &files,
            "providers",
            ALLOWED,
            &one("STRIPE_SECRET_KEY", "sk_test_1"),
        )
        .await
        .expect("set");
        let names = record_values(&files, "providers", ALLOWED, &one("WHOP_API_KEY", "whop_1"))
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
        let e = record_values(
            &files,
            "providers",
            ALLOWED,
            &one("STRIPE_KEY", "sk_live_x"),
        )
        .await
        .expect_err("unknown name");
        assert!(!e.to_string().contains("sk_live_x"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[tokio::test]
    async fn missing_file_is_not_found() {
        let files = FileSecretSource::new("/nonexistent-dir-for-tollgate-tests");
        assert!(matches!(
            files.get_secret("x").await,
            Err(SecretError::NotFound(_))
        ));
    }
}
