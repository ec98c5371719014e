//! [`AppState`]: everything a handler needs, assembled once per cold start
//! ([`AppState::from_env`], feature `aws`), for the dev server ([`AppState::embedded`]) or for
//! tests ([`AppState::in_memory`], [`AppState::assemble`]).

use crate::auth::{Auth, KeySet, KeySetError};
use crate::billing::{Billing, Catalog, CatalogError};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::payments::Providers;
use crate::queue::EventQueue;
use crate::secrets::providers::ProviderSecrets;
use crate::secrets::{SecretError, SecretSource};
use crate::store::{BillingStore, EventLedger, SessionStore, StoreError, UserStore};
use crate::webhooks::ingest::Ingest;
use crate::webhooks::process::Processor;
use secrecy::ExposeSecret;
use std::sync::Arc;

/// The plan catalog built into every binary (`infra/plans.toml`), used unless
/// `TOLLGATE_PLANS_FILE` names another.
pub const BUILT_IN_PLANS: &str = include_str!("../../infra/plans.toml");

/// Shared, cloneable handler state.
#[derive(Clone, Debug)]
pub struct AppState {
    auth: Arc<Auth>,
    billing: Arc<Billing>,
    ingest: Arc<Ingest>,
    processor: Arc<Processor>,
    config: Arc<Config>,
}

/// Why the state could not be built at start-up.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Configuration problems (all listed).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The plan catalog is invalid (all problems listed).
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// A secret could not be read.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The signing keys are unusable.
    #[error(transparent)]
    Keys(#[from] KeySetError),
    /// The store could not be opened or reached.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Local files, provider clients.
    #[error("{0}")]
    Other(String),
}

/// The parts a state is assembled from. Every I/O boundary is a trait object.
pub struct Components {
    /// Validated configuration.
    pub config: Config,
    /// Users and email claims.
    pub users: Arc<dyn UserStore>,
    /// Sessions.
    pub sessions: Arc<dyn SessionStore>,
    /// Subscriptions and customer claims.
    pub billing_store: Arc<dyn BillingStore>,
    /// The webhook ledger.
    pub ledger: Arc<dyn EventLedger>,
    /// The webhook queue (`None`: ingest answers 503).
    pub queue: Option<Arc<dyn EventQueue>>,
    /// Signing keys.
    pub keys: Arc<KeySet>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Configured payment providers.
    pub providers: Providers,
    /// The plan catalog.
    pub catalog: Arc<Catalog>,
    /// Provider secrets (webhook secrets are used by ingest).
    pub provider_secrets: ProviderSecrets,
    /// The dev server's `local` provider webhook secret (never set in a Lambda).
    pub local_webhook_secret: Option<crate::webhooks::signature::WebhookSecrets>,
}

impl AppState {
    /// Assembles a state from its parts.
    pub fn assemble(c: Components) -> Self {
        let config = Arc::new(c.config);
        let billing = Arc::new(Billing::new(
            c.users.clone(),
            c.billing_store.clone(),
            c.providers.clone(),
            c.catalog.clone(),
            c.clock.clone(),
            config.billing.clone(),
        ));
        let auth = Arc::new(Auth::new(
            c.users.clone(),
            c.sessions,
            c.keys,
            c.clock.clone(),
            config.clone(),
            billing.clone(),
        ));
        let mut ingest = Ingest::new(
            c.ledger.clone(),
            c.queue,
            c.provider_secrets.stripe_webhook_secrets,
            c.provider_secrets.whop_webhook_secrets,
            c.clock.clone(),
        );
        if let Some(local) = c.local_webhook_secret {
            ingest = ingest.with_local_secrets(local);
        }
        let ingest = Arc::new(ingest);
        let processor = Arc::new(Processor::new(
            c.ledger,
            c.billing_store,
            c.users,
            c.providers,
            c.catalog,
            c.clock,
        ));
        Self {
            auth,
            billing,
            ingest,
            processor,
            config,
        }
    }

    /// The account service.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// The billing service.
    pub fn billing(&self) -> &Billing {
        &self.billing
    }

    /// Webhook ingest.
    pub fn ingest(&self) -> &Ingest {
        &self.ingest
    }

    /// The webhook processor.
    pub fn processor(&self) -> &Arc<Processor> {
        &self.processor
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

    /// The plan catalog: `config.plans_file` if set, else the built-in one.
    ///
    /// # Errors
    /// [`StartupError::Catalog`] listing every problem.
    pub fn load_catalog(config: &Config) -> Result<Arc<Catalog>, StartupError> {
        Ok(Arc::new(match &config.plans_file {
            Some(path) => Catalog::load(std::path::Path::new(path))?,
            None => Catalog::from_toml(BUILT_IN_PLANS)?,
        }))
    }

    /// The providers that have API keys, with their base URLs.
    ///
    /// # Errors
    /// [`StartupError::Other`] if a client cannot be built.
    pub fn providers_from(secrets: &ProviderSecrets) -> Result<Providers, StartupError> {
        #[allow(unused_mut)]
        let mut providers = Providers::default();
        #[cfg(any(feature = "stripe", feature = "whop"))]
        let http = match (&secrets.stripe_secret_key, &secrets.whop_api_key) {
            (None, None) => None,
            _ => Some(
                crate::payments::http_client().map_err(|e| StartupError::Other(e.to_string()))?,
            ),
        };
        #[cfg(feature = "stripe")]
        if let (Some(key), Some(http)) = (&secrets.stripe_secret_key, &http) {
            let stripe = crate::payments::stripe::StripeProvider::new(
                http.clone(),
                key,
                secrets.stripe_api_base.as_deref(),
            )
            .map_err(|e| StartupError::Other(e.to_string()))?;
            providers = providers.with(Arc::new(stripe));
        }
        #[cfg(feature = "whop")]
        if let (Some(key), Some(http)) = (&secrets.whop_api_key, &http) {
            let base = secrets
                .whop_api_base
                .as_deref()
                .unwrap_or(crate::payments::whop::DEFAULT_API_BASE);
            let whop = crate::payments::whop::WhopProvider::new(http.clone(), base, key.clone());
            providers = providers.with(Arc::new(whop));
        }
        #[cfg(not(any(feature = "stripe", feature = "whop")))]
        let _ = secrets;
        Ok(providers)
    }

    /// A state on an in-memory embedded store with a fresh key, no providers and no queue: for
    /// tests.
    ///
    /// # Errors
    /// [`StartupError`] if the store or key cannot be created.
    #[cfg(feature = "embedded")]
    pub fn in_memory(config: Config, clock: Arc<dyn Clock>) -> Result<Self, StartupError> {
        let store = Arc::new(crate::store::embedded::EmbeddedStore::in_memory()?);
        let keys = KeySet::from_file(
            &crate::auth::SigningKeyFile::generate(clock.now())?,
            &config.issuer,
            &config.audience,
        )?;
        let catalog = Self::load_catalog(&config)?;
        Ok(Self::assemble(Components {
            config,
            users: store.clone(),
            sessions: store.clone(),
            billing_store: store.clone(),
            ledger: store,
            queue: None,
            keys: Arc::new(keys),
            clock,
            providers: Providers::default(),
            catalog,
            provider_secrets: ProviderSecrets::default(),
            local_webhook_secret: None,
        }))
    }

    /// The parts of the dev server's state: the embedded store in `<data_dir>/tollgate.redb`, the
    /// signing keys in `<data_dir>/jwt-keys.json` (generated on first start, file mode 0600),
    /// provider secrets from the environment. The caller adds a queue and providers, assembles,
    /// runs the store's flusher and flushes it at shutdown.
    ///
    /// # Errors
    /// [`StartupError`] if the directory, store, keys or catalog cannot be created or read.
    #[cfg(feature = "embedded")]
    pub async fn embedded_components(
        config: Config,
        data_dir: &std::path::Path,
    ) -> Result<(Components, crate::store::embedded::EmbeddedStore), StartupError> {
        use crate::secrets::FileSecretSource;
        let io = |what: &str, e: std::io::Error| {
            StartupError::Other(format!("{what} {}: {e}", data_dir.display()))
        };
        std::fs::create_dir_all(data_dir).map_err(|e| io("cannot create", e))?;
        let files = FileSecretSource::new(data_dir);
        let key_path = files.path(&config.jwt_keys_secret_id);
        if !key_path.exists() {
            let file = crate::auth::SigningKeyFile::generate(SystemClock.now())?;
            let json = serde_json::to_string_pretty(&file)
                .map_err(|e| StartupError::Other(e.to_string()))?;
            crate::secrets::write_private(&key_path, json.as_bytes())
                .map_err(|e| io("cannot write keys in", e))?;
            tracing::info!(path = %key_path.display(), "generated a development signing key");
        }
        let keys = Self::load_keys(&config, &files).await?;
        let catalog = Self::load_catalog(&config)?;
        let store = crate::store::embedded::EmbeddedStore::open(&data_dir.join("tollgate.redb"))?;
        let provider_secrets = ProviderSecrets::from_env();
        let providers = Self::providers_from(&provider_secrets)?;
        let shared = Arc::new(store.clone());
        Ok((
            Components {
                config,
                users: shared.clone(),
                sessions: shared.clone(),
                billing_store: shared.clone(),
                ledger: shared,
                queue: None,
                keys,
                clock: Arc::new(SystemClock),
                providers,
                catalog,
                provider_secrets,
                local_webhook_secret: None,
            },
            store,
        ))
    }

    /// The production state: DynamoDB store, Secrets Manager keys and provider secrets (when
    /// `TOLLGATE_PROVIDER_SECRETS_ID` is set), SQS queue (when `TOLLGATE_QUEUE_URL` is set), with
    /// AWS clients built once and the DynamoDB connection warmed (DESIGN §9).
    ///
    /// # Errors
    /// [`StartupError`] for bad configuration or catalog, unreadable keys or secrets.
    #[cfg(feature = "aws")]
    pub async fn from_env() -> Result<Self, StartupError> {
        let start = AwsStart::new().await?;
        let (keys, provider_secrets) = tokio::join!(
            Self::load_keys(&start.config, &start.secrets),
            start.provider_secrets_and_warm_up()
        );
        let provider_secrets = provider_secrets?;
        let providers = Self::providers_from(&provider_secrets)?;
        let queue: Option<Arc<dyn EventQueue>> = start.config.queue_url.as_ref().map(|url| {
            Arc::new(crate::queue::sqs::SqsQueue::new(
                aws_sdk_sqs::Client::new(&start.aws),
                url.clone(),
            )) as Arc<dyn EventQueue>
        });
        let store = start.store;
        Ok(Self::assemble(Components {
            config: start.config,
            users: store.clone(),
            sessions: store.clone(),
            billing_store: store.clone(),
            ledger: store,
            queue,
            keys: keys?,
            clock: Arc::new(SystemClock),
            providers,
            catalog: start.catalog,
            provider_secrets,
            local_webhook_secret: None,
        }))
    }

    /// The webhook processor alone, for its SQS Lambda: DynamoDB store, provider secrets and
    /// catalog as in [`AppState::from_env`], but no signing keys (it issues and verifies no
    /// tokens, so its role has no access to the key secret) and no queue.
    ///
    /// # Errors
    /// [`StartupError`] for bad configuration or catalog, or unreadable provider secrets.
    #[cfg(feature = "aws")]
    pub async fn processor_from_env() -> Result<Arc<Processor>, StartupError> {
        let start = AwsStart::new().await?;
        let provider_secrets = start.provider_secrets_and_warm_up().await?;
        let providers = Self::providers_from(&provider_secrets)?;
        let store = start.store;
        Ok(Arc::new(Processor::new(
            store.clone(),
            store.clone(),
            store,
            providers,
            start.catalog,
            Arc::new(SystemClock),
        )))
    }
}

/// What every Lambda builds at start-up: configuration, catalog, the AWS SDK configuration and the
/// DynamoDB and Secrets Manager clients (built once per cold start, DESIGN §9).
#[cfg(feature = "aws")]
struct AwsStart {
    config: Config,
    catalog: Arc<Catalog>,
    aws: aws_config::SdkConfig,
    store: Arc<crate::store::dynamo::DynamoStore>,
    secrets: crate::secrets::aws::AwsSecretSource,
}

#[cfg(feature = "aws")]
impl AwsStart {
    async fn new() -> Result<Self, StartupError> {
        let config = Config::from_env()?;
        let catalog = AppState::load_catalog(&config)?;
        let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let store = Arc::new(crate::store::dynamo::DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&aws),
            config.table_name.clone(),
        ));
        let secrets =
            crate::secrets::aws::AwsSecretSource::new(aws_sdk_secretsmanager::Client::new(&aws));
        Ok(Self {
            config,
            catalog,
            aws,
            store,
            secrets,
        })
    }

    /// Reads the provider secrets (when `TOLLGATE_PROVIDER_SECRETS_ID` is set) while warming the
    /// DynamoDB connection. A secret the template created but nobody filled yet gives empty
    /// secrets: billing answers 503 `provider_not_configured` and the account routes keep working.
    async fn provider_secrets_and_warm_up(&self) -> Result<ProviderSecrets, StartupError> {
        let read = async {
            match &self.config.provider_secrets_id {
                Some(id) => match self.secrets.get_secret(id).await {
                    Ok(json) => ProviderSecrets::from_json(&json).map_err(StartupError::Other),
                    Err(SecretError::NotFound(_)) => {
                        tracing::warn!(secret = %id, "provider secrets are not set yet; billing is unavailable");
                        Ok(ProviderSecrets::default())
                    }
                    Err(e) => Err(e.into()),
                },
                None => Ok(ProviderSecrets::default()),
            }
        };
        let (warmed, secrets) = tokio::join!(self.store.warm(), read);
        if let Err(e) = warmed {
            // Not fatal: the first request retries the connection.
            tracing::warn!(error = %e, "could not warm the DynamoDB connection");
        }
        secrets
    }
}
