//! The secrets boundary: [`SecretSource`] with Secrets Manager ([`aws::AwsSecretSource`], in
//! Lambda) and local sources ([`EnvSecretSource`], [`FileSecretSource`]). Values are
//! [`SecretString`]s: never logged, `Debug` redacted. Callers fetch each secret at most once per
//! container (at cold start).

#[cfg(feature = "aws")]
pub mod aws;
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
