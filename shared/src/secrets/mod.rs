//! The secrets boundary: [`SecretSource`] with Secrets Manager ([`aws::AwsSecretSource`], in
//! Lambda) and local sources ([`EnvSecretSource`], [`FileSecretSource`]). Values are
//! [`SecretString`]s: never logged, `Debug` redacted. Callers fetch each secret at most once per
//! container (at cold start).

#[cfg(feature = "aws")]
pub mod aws;
pub mod bootstrap;
pub mod providers;

use async_trait::async_trait;
use secrecy::SecretString;
use std::path::PathBuf;

/// Why a secret could not be read. Messages name the secret, never its value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// No secret by that name.
    #[error("secret {0:?} not found")]
    NotFound(String),
    /// The backend failed (network, permissions).
    #[error("secret {name:?} could not be read: {reason}")]
    Unavailable {
        /// The secret's name.
        name: String,
        /// What went wrong (no secret material).
        reason: String,
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

/// Secrets from environment variables: name `tollgate/jwt-keys` is read from
/// `TOLLGATE_JWT_KEYS` (uppercased, `/` and `-` become `_`).
#[derive(Debug, Default, Clone)]
pub struct EnvSecretSource;

impl EnvSecretSource {
    /// The variable name a secret name maps to.
    pub fn variable(name: &str) -> String {
        name.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect()
    }
}

#[async_trait]
impl SecretSource for EnvSecretSource {
    async fn get_secret(&self, name: &str) -> Result<SecretString, SecretError> {
        std::env::var(Self::variable(name))
            .map(SecretString::from)
            .map_err(|_| SecretError::NotFound(name.to_owned()))
    }
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
                reason: e.kind().to_string(),
            }),
        }
    }
}

/// Writes the file atomically (a temporary file renamed over it), readable by its owner only.
#[async_trait]
impl SecretWriter for FileSecretSource {
    async fn put_secret(&self, name: &str, value: &SecretString) -> Result<(), SecretError> {
        use secrecy::ExposeSecret as _;
        let path = self.path(name);
        let unavailable = |e: std::io::Error| SecretError::Unavailable {
            name: name.to_owned(),
            reason: e.kind().to_string(),
        };
        let tmp = path.with_extension(format!("json.tmp{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        write_private(&tmp, value.expose_secret().as_bytes()).map_err(unavailable)?;
        std::fs::rename(&tmp, &path).map_err(unavailable)
    }
}

/// Creates `path` (which must not exist) with mode 0600 on Unix and writes `bytes` to it.
pub(crate) fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
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
    fn secret_names_map_to_variables_and_files() {
        assert_eq!(
            EnvSecretSource::variable("tollgate/jwt-keys"),
            "TOLLGATE_JWT_KEYS"
        );
        let files = FileSecretSource::new("/data");
        assert_eq!(
            files.path("tollgate/jwt-keys"),
            PathBuf::from("/data/jwt-keys.json")
        );
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
