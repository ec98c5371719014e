//! [`AppState`]: everything a handler needs, built once per cold start ([`AppState::from_env`],
//! feature `aws`) or for local use ([`AppState::embedded`] / [`AppState::in_memory`]).

use crate::auth::{Auth, KeySet, KeySetError, SigningKeyFile};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::secrets::{SecretError, SecretSource};
use crate::store::{SessionStore, StoreError, UserStore};
use secrecy::ExposeSecret;
use std::sync::Arc;

/// Shared, cloneable handler state.
#[derive(Clone, Debug)]
pub struct AppState {
    auth: Arc<Auth>,
    config: Arc<Config>,
}

/// Why the state could not be built at start-up.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Configuration problems (all listed).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A secret could not be read.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The signing keys are unusable.
    #[error(transparent)]
    Keys(#[from] KeySetError),
    /// The store could not be opened or reached.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Local files (dev server data directory).
    #[error("{0}")]
    Io(String),
}

impl AppState {
    /// Wires a state from its parts.
    pub fn new(
        config: Config,
        users: Arc<dyn UserStore>,
        sessions: Arc<dyn SessionStore>,
        keys: Arc<KeySet>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let config = Arc::new(config);
        let auth = Arc::new(Auth::new(users, sessions, keys, clock, config.clone()));
        Self { auth, config }
    }

    /// The account service.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Loads the signing key set named by `config.jwt_keys_secret_id` from `secrets`.
    ///
    /// # Errors
    /// [`StartupError::Secret`] or [`StartupError::Keys`].
    pub async fn load_keys(
        config: &Config,
        secrets: &dyn SecretSource,
    ) -> Result<Arc<KeySet>, StartupError> {
        let json = secrets.get_secret(&config.jwt_keys_secret_id).await?;
        Ok(Arc::new(KeySet::from_json(
            json.expose_secret(),
            &config.issuer,
            &config.audience,
        )?))
    }

    /// A state on an in-memory embedded store with a fresh key, the given clock and config: for
    /// tests.
    ///
    /// # Errors
    /// [`StartupError`] if the store or key cannot be created.
    #[cfg(feature = "embedded")]
    pub fn in_memory(config: Config, clock: Arc<dyn Clock>) -> Result<Self, StartupError> {
        let store = Arc::new(crate::store::embedded::EmbeddedStore::in_memory()?);
        let keys = KeySet::from_file(
            &SigningKeyFile::generate(clock.now())?,
            &config.issuer,
            &config.audience,
        )?;
        Ok(Self::new(
            config,
            store.clone(),
            store,
            Arc::new(keys),
            clock,
        ))
    }

    /// The local state of the dev server: the embedded store in `<data_dir>/tollgate.redb` and the
    /// signing keys in `<data_dir>/jwt-keys.json`, generated on first start (file mode 0600).
    /// Returns the store too, so the caller can run its flusher and flush at shutdown.
    ///
    /// # Errors
    /// [`StartupError`] if the directory, store or keys cannot be created or read.
    #[cfg(feature = "embedded")]
    pub async fn embedded(
        config: Config,
        data_dir: &std::path::Path,
    ) -> Result<(Self, crate::store::embedded::EmbeddedStore), StartupError> {
        use crate::secrets::FileSecretSource;
        let io = |what: &str, e: std::io::Error| {
            StartupError::Io(format!("{what} {}: {e}", data_dir.display()))
        };
        std::fs::create_dir_all(data_dir).map_err(|e| io("cannot create", e))?;
        let files = FileSecretSource::new(data_dir);
        let key_path = files.path(&config.jwt_keys_secret_id);
        if !key_path.exists() {
            let file = SigningKeyFile::generate(SystemClock.now())?;
            let json =
                serde_json::to_string_pretty(&file).map_err(|e| StartupError::Io(e.to_string()))?;
            write_private(&key_path, json.as_bytes()).map_err(|e| io("cannot write keys in", e))?;
            tracing::info!(path = %key_path.display(), "generated a development signing key");
        }
        let keys = Self::load_keys(&config, &files).await?;
        let store = crate::store::embedded::EmbeddedStore::open(&data_dir.join("tollgate.redb"))?;
        let shared = Arc::new(store.clone());
        Ok((
            Self::new(config, shared.clone(), shared, keys, Arc::new(SystemClock)),
            store,
        ))
    }

    /// The production state: DynamoDB store and Secrets Manager keys, with AWS clients built once
    /// and the DynamoDB connection warmed (DESIGN §9).
    ///
    /// # Errors
    /// [`StartupError`] for bad configuration, unreadable keys, or an unreachable table.
    #[cfg(feature = "aws")]
    pub async fn from_env() -> Result<Self, StartupError> {
        let config = Config::from_env()?;
        let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let store = crate::store::dynamo::DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&aws),
            config.table_name.clone(),
        );
        let secrets =
            crate::secrets::aws::AwsSecretSource::new(aws_sdk_secretsmanager::Client::new(&aws));
        let (keys, warmed) = tokio::join!(Self::load_keys(&config, &secrets), store.warm());
        if let Err(e) = warmed {
            // Not fatal: the first request retries the connection.
            tracing::warn!(error = %e, "could not warm the DynamoDB connection");
        }
        let store = Arc::new(store);
        Ok(Self::new(
            config,
            store.clone(),
            store,
            keys?,
            Arc::new(SystemClock),
        ))
    }
}

#[cfg(feature = "embedded")]
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}
