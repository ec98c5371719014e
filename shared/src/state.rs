//! [`AppState`]: what a function's handlers use, assembled once per cold start — and only what
//! that function [`Needs`]. A function that verifies tokens never reads the private signing keys;
//! webhook ingest never reads a provider's API key; `jwks` reads nothing but the published JWKS.
//!
//! - In Lambda: [`AppState::from_env`] (feature `aws`) reads configuration, the secrets the
//!   function needs and builds its AWS clients; [`processor_from_env`] does the same for the
//!   webhook processor.
//! - Locally and in tests: [`Components`] holds every part (the dev server builds them on the
//!   embedded store with [`embedded_components`]); [`AppState::assemble`] keeps what `needs` asks
//!   for.

use crate::admin::{Admin, AdminParts};
use crate::auth::{
    AccessVerifier, AccountStores, Auth, KeyRing, KeySet, KeySetError, Keys, Limiter,
};
use crate::billing::{Billing, PlanAccess};
use crate::clock::Clock;
use crate::config::Config;
use crate::domain::{Catalog, CatalogError, Provider};
use crate::idp::IdentityProviders;
use crate::payments::signature::{SignatureError, WebhookSecrets};
use crate::payments::Providers;
use crate::queue::EventQueue;
use crate::secrets::providers::{OAuthClientSecrets, ProviderKeys, WebhookSigningSecrets};
use crate::secrets::{SecretError, SecretSource};
use crate::store::{
    AccountStore, BillingStore, CreditStore, EventLedger, OutboundStore, Outbox, RateLimiter,
    SessionStore, StoreError, UsageStore, UserStore,
};
use crate::usage::{credits::Credits, Usage};
use crate::webhooks::{Ingest, Processor, ProcessorStores, Reconciler};
use secrecy::ExposeSecret;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The plan catalog built into every binary (`infra/plans.toml`), used unless
/// `TOLLGATE_PLANS_FILE` names another.
pub const BUILT_IN_PLANS: &str = include_str!("../../infra/plans.toml");

/// Which signing keys a function holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAccess {
    /// None: the function neither issues nor verifies access tokens.
    None,
    /// The published JWKS only: it verifies tokens (or serves the JWKS).
    Public,
    /// The private key set: it issues tokens.
    Signing,
}

/// What the `mailer` Lambda works the outbox with: mail and outbound events.
#[cfg(feature = "mail")]
#[derive(Clone, Debug)]
pub struct OutboxWorker {
    /// Delivers `MAIL#` items.
    pub mail: Arc<crate::mail::Dispatcher>,
    /// Delivers `HOOK#` items.
    pub outbound: Arc<crate::webhooks::outbound::OutboundDispatcher>,
}

/// What a function builds at start-up; each function crate declares its own (`NEEDS`), and its
/// IAM role in `template.yaml` grants exactly the secrets and table access that implies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Needs {
    /// Signing or verification keys.
    pub keys: KeyAccess,
    /// The account use cases ([`Auth`]: users, sessions, plan access).
    pub accounts: bool,
    /// The billing use cases ([`Billing`]) with the providers' API clients (their API keys).
    pub billing: bool,
    /// Webhook ingest: the webhook signing secrets, the ledger and the queue.
    pub ingest: bool,
    /// Sending mail: the outbox, the one-time secrets it mints, and the mail service (the
    /// `mailer` function; the dev server runs its dispatcher in-process).
    pub mail: bool,
    /// Sign-in with identity providers: their client secrets (with `accounts`).
    pub oauth: bool,
    /// Delivering outbound events: the customer's endpoints and their signing secrets (the
    /// `mailer` function, which works the whole outbox).
    pub outbound: bool,
}

impl Needs {
    /// Everything: the dev server, which serves every route in one process.
    pub const ALL: Needs = Needs {
        keys: KeyAccess::Signing,
        accounts: true,
        billing: true,
        ingest: true,
        mail: true,
        oauth: true,
        outbound: true,
    };

    /// Nothing at all (a function serving static documents).
    pub const NOTHING: Needs = Needs {
        keys: KeyAccess::None,
        accounts: false,
        billing: false,
        ingest: false,
        mail: false,
        oauth: false,
        outbound: false,
    };

    /// Whether the function uses the table.
    pub fn table(&self) -> bool {
        self.accounts || self.billing || self.ingest || self.mail || self.outbound
    }

    /// Whether the function reads the plan catalog.
    pub fn catalog(&self) -> bool {
        self.accounts || self.billing
    }
}

/// A handler asked for a part its function does not build (its `NEEDS` is wrong): a bug, which
/// the routes and events tests catch by running every route on a state built from its
/// function's own `NEEDS`.
#[derive(Debug, thiserror::Error)]
#[error("this function was not built with {0}")]
pub struct NotBuilt(pub &'static str);

/// Shared, cloneable handler state.
#[derive(Clone)]
pub struct AppState(Arc<Parts>);

struct Parts {
    config: Config,
    verifier: Option<AccessVerifier>,
    auth: Option<Auth>,
    billing: Option<Billing>,
    ingest: Option<Ingest>,
    limiter: Option<Limiter>,
    usage: Option<Usage>,
    admin: Option<Admin>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("verifier", &self.0.verifier.is_some())
            .field("auth", &self.0.auth.is_some())
            .field("billing", &self.0.billing.is_some())
            .field("ingest", &self.0.ingest.is_some())
            .finish()
    }
}

impl AppState {
    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.0.config
    }

    /// The access-token verifier (public keys).
    ///
    /// # Errors
    /// [`NotBuilt`] for a function without keys.
    pub fn verifier(&self) -> Result<&AccessVerifier, NotBuilt> {
        self.0.verifier.as_ref().ok_or(NotBuilt("keys"))
    }

    /// The account service.
    ///
    /// # Errors
    /// [`NotBuilt`] for a function without accounts.
    pub fn auth(&self) -> Result<&Auth, NotBuilt> {
        self.0.auth.as_ref().ok_or(NotBuilt("accounts"))
    }

    /// The billing service.
    ///
    /// # Errors
    /// [`NotBuilt`] for a function without billing.
    pub fn billing(&self) -> Result<&Billing, NotBuilt> {
        self.0.billing.as_ref().ok_or(NotBuilt("billing"))
    }

    /// The rate limiter: built for every function that uses the table; `None` without one (or
    /// with every rule off and no accounts).
    pub fn limiter(&self) -> Option<&Limiter> {
        self.0.limiter.as_ref()
    }

    /// Usage metering (built with accounts).
    ///
    /// # Errors
    /// [`NotBuilt`] for a function without accounts.
    pub fn usage(&self) -> Result<&Usage, NotBuilt> {
        self.0.usage.as_ref().ok_or(NotBuilt("accounts"))
    }

    /// The admin use cases (built with accounts and billing).
    ///
    /// # Errors
    /// [`NotBuilt`] for a function without accounts or billing.
    pub fn admin(&self) -> Result<&Admin, NotBuilt> {
        self.0.admin.as_ref().ok_or(NotBuilt("admin"))
    }

    /// Webhook ingest.
    ///
    /// # Errors
    /// [`NotBuilt`] for a function without ingest.
    pub fn ingest(&self) -> Result<&Ingest, NotBuilt> {
        self.0.ingest.as_ref().ok_or(NotBuilt("ingest"))
    }

    /// A state holding what `needs` asks for, taken from `c`.
    ///
    /// # Panics
    /// Never; a part whose inputs `c` lacks (ingest without a queue) is left unbuilt.
    pub fn assemble(c: &Components, needs: Needs) -> Self {
        let ring = |keys| Arc::new(KeyRing::fixed(keys, c.clock.clone()));
        let signer =
            (needs.keys == KeyAccess::Signing).then(|| ring(Keys::signing(c.keys.clone())));
        let verifier = match (&signer, needs.keys) {
            (Some(signer), _) => Some(AccessVerifier::new(signer.clone(), c.clock.clone())),
            (None, KeyAccess::Public) => Some(AccessVerifier::new(
                ring(Keys::public(c.keys.public().clone())),
                c.clock.clone(),
            )),
            (None, _) => None,
        };
        let access = PlanAccess::new(
            c.billing_store.clone(),
            c.catalog.clone(),
            c.config.billing.past_due_grace,
        );
        let limiter = needs.table().then(|| {
            Limiter::new(
                c.rate_limiter.clone(),
                c.config.rate_limits.clone(),
                c.clock.clone(),
            )
        });
        let auth = needs.accounts.then(|| {
            let auth = Auth::new(
                AccountStores {
                    users: c.users.clone(),
                    sessions: c.sessions.clone(),
                    accounts: c.accounts.clone(),
                },
                signer,
                c.clock.clone(),
                c.config.auth.clone(),
                access.clone(),
            );
            let auth = match &limiter {
                Some(limiter) => auth.with_limiter(limiter.clone()),
                None => auth,
            };
            if needs.oauth {
                auth.with_identity_providers(c.identity_providers.clone())
            } else {
                auth
            }
        });
        let new_billing = || {
            Billing::new(
                c.users.clone(),
                c.billing_store.clone(),
                c.providers.clone(),
                access.clone(),
                c.clock.clone(),
                c.config.billing.clone(),
            )
        };
        let billing = needs.billing.then(new_billing);
        let usage = needs.accounts.then(|| {
            Usage::new(
                c.usage_store.clone(),
                c.billing_store.clone(),
                c.catalog.clone(),
                c.clock.clone(),
                c.config.billing.past_due_grace,
                Credits::new(c.credit_store.clone(), c.config.auth.audit_retention),
            )
        });
        let admin = match (&usage, needs.accounts && needs.billing) {
            (Some(usage), true) => Some(Admin::new(
                AdminParts {
                    users: c.users.clone(),
                    sessions: c.sessions.clone(),
                    accounts: c.accounts.clone(),
                    billing: new_billing(),
                    usage: usage.clone(),
                },
                c.clock.clone(),
                c.config.auth.audit_retention,
            )),
            _ => None,
        };
        let ingest = match (&c.queue, needs.ingest) {
            (Some(queue), true) => Some(Ingest::new(
                c.ledger.clone(),
                queue.clone(),
                c.webhook_secrets.clone(),
                c.clock.clone(),
            )),
            _ => None,
        };
        Self(Arc::new(Parts {
            config: c.config.clone(),
            verifier,
            auth,
            billing,
            ingest,
            limiter,
            usage,
            admin,
        }))
    }
}

/// Why the state could not be built at start-up. Each case keeps its cause.
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
    /// A secret's content is unusable (named, never shown).
    #[error("secret {name:?} is unusable")]
    BadSecret {
        /// The secret's id.
        name: String,
        /// What is wrong with it.
        #[source]
        source: crate::error::BoxError,
    },
    /// The store could not be opened or reached.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A local file or directory (the dev server's data directory).
    #[error("{what} {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Where.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A payment provider's client could not be built.
    #[error("a payment provider client could not be built")]
    Provider(#[source] crate::payments::ProviderError),
    /// A mail template override is unknown or broken.
    #[error("mail templates")]
    Templates(#[source] crate::error::BoxError),
    /// The identity providers could not be built.
    #[error("identity providers")]
    IdentityProviders(#[source] crate::error::BoxError),
}

/// Every part a state is assembled from. Every I/O boundary is a trait object.
#[derive(Clone)]
pub struct Components {
    /// Validated configuration.
    pub config: Config,
    /// Users and email claims.
    pub users: Arc<dyn UserStore>,
    /// Sessions.
    pub sessions: Arc<dyn SessionStore>,
    /// Atomic account changes, one-time secrets, the audit log.
    pub accounts: Arc<dyn AccountStore>,
    /// The mail outbox.
    pub outbox: Arc<dyn Outbox>,
    /// Subscriptions and customer claims.
    pub billing_store: Arc<dyn BillingStore>,
    /// The webhook ledger.
    pub ledger: Arc<dyn EventLedger>,
    /// Request counters and failed-login records.
    pub rate_limiter: Arc<dyn RateLimiter>,
    /// Usage counters and track idempotency keys.
    pub usage_store: Arc<dyn UsageStore>,
    /// Credit balances and their ledger.
    pub credit_store: Arc<dyn CreditStore>,
    /// Outbound events to the customer's app.
    pub outbound_store: Arc<dyn OutboundStore>,
    /// The webhook queue (without one, ingest is not built).
    pub queue: Option<Arc<dyn EventQueue>>,
    /// Signing keys (and their public half).
    pub keys: Arc<KeySet>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Configured payment providers.
    pub providers: Providers,
    /// The plan catalog.
    pub catalog: Arc<Catalog>,
    /// Webhook signing secrets per provider.
    pub webhook_secrets: BTreeMap<Provider, WebhookSecrets>,
    /// The identity providers sign-in offers.
    pub identity_providers: IdentityProviders,
}

impl Components {
    /// The mail dispatcher over these parts, sending through `mailer` (the dev server runs it
    /// in-process).
    #[cfg(feature = "mail")]
    pub fn dispatcher(
        &self,
        mailer: Arc<dyn crate::mailer::Mailer>,
        templates: Arc<crate::mail::Templates>,
    ) -> crate::mail::Dispatcher {
        crate::mail::Dispatcher::new(
            crate::mail::MailStores {
                users: self.users.clone(),
                accounts: self.accounts.clone(),
                outbox: self.outbox.clone(),
            },
            mailer,
            templates,
            self.clock.clone(),
            mail_settings(&self.config),
        )
    }

    /// The outbound event dispatcher over these parts, posting through `sender` to `endpoints`
    /// (the dev server runs it in-process).
    pub fn outbound(
        &self,
        sender: Arc<dyn crate::hooks::HookSender>,
        endpoints: Vec<crate::hooks::Endpoint>,
    ) -> crate::webhooks::outbound::OutboundDispatcher {
        crate::webhooks::outbound::OutboundDispatcher::new(
            self.outbound_store.clone(),
            sender,
            endpoints,
            self.clock.clone(),
        )
    }

    /// The reconciler over these parts, handing events to the queue (`None` without one).
    pub fn reconciler(&self) -> Option<Reconciler> {
        let queue = self.queue.clone()?;
        Some(Reconciler::new(
            Ingest::new(
                self.ledger.clone(),
                queue,
                BTreeMap::new(),
                self.clock.clone(),
            ),
            self.ledger.clone(),
            self.providers.clone(),
            self.clock.clone(),
        ))
    }

    /// The webhook processor over these parts (the dev server runs it in-process).
    pub fn processor(&self) -> Processor {
        Processor::new(
            ProcessorStores {
                ledger: self.ledger.clone(),
                billing: self.billing_store.clone(),
                users: self.users.clone(),
                credits: self.credit_store.clone(),
            },
            self.providers.clone(),
            self.catalog.clone(),
            self.clock.clone(),
            self.config.auth.audit_retention,
        )
    }
}

/// The plan catalog: `config.plans_file` if set, else the built-in one.
///
/// # Errors
/// [`StartupError::Catalog`] listing every problem (or that the file cannot be read).
pub fn load_catalog(config: &Config) -> Result<Arc<Catalog>, StartupError> {
    let text = match &config.plans_file {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| CatalogError(vec![format!("{path}: {e}")]))?
        }
        None => BUILT_IN_PLANS.to_owned(),
    };
    Ok(Arc::new(Catalog::from_toml(&text)?))
}

/// The mail settings of a configuration.
#[cfg(feature = "mail")]
pub fn mail_settings(config: &Config) -> crate::mail::MailSettings {
    crate::mail::MailSettings {
        app_name: config.mail.app_name.clone(),
        app_url: config.mail.app_url.clone(),
        passwordless_signup: config.auth.passwordless_signup,
    }
}

/// The mail templates: the built-in ones with the files of `config.mail.templates_dir` in place
/// of those of the same names, each kind rendered once with sample values (so a broken override
/// fails the start, not the first mail).
///
/// # Errors
/// [`StartupError::Io`] if the directory cannot be read; [`StartupError::Templates`] for an
/// unknown file name or a template that does not parse or render.
#[cfg(feature = "mail")]
pub fn load_templates(config: &Config) -> Result<Arc<crate::mail::Templates>, StartupError> {
    let mut overrides = BTreeMap::new();
    if let Some(dir) = &config.mail.templates_dir {
        let io = |source| StartupError::Io {
            what: "cannot read mail templates in",
            path: dir.clone(),
            source,
        };
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            if !entry.file_type().map_err(io)?.is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let source = std::fs::read_to_string(entry.path()).map_err(io)?;
            overrides.insert(name, source);
        }
    }
    let templates = crate::mail::Templates::with_overrides(overrides)
        .map_err(|e| StartupError::Templates(Box::new(e)))?;
    templates
        .check()
        .map_err(|e| StartupError::Templates(Box::new(e)))?;
    Ok(Arc::new(templates))
}

/// Parses the webhook signing secrets that are set, per provider.
///
/// # Errors
/// [`SignatureError::NoSecrets`] for a value that holds no secret (only separators).
pub fn webhook_secrets(
    secrets: &WebhookSigningSecrets,
) -> Result<BTreeMap<Provider, WebhookSecrets>, SignatureError> {
    let mut map = BTreeMap::new();
    for (provider, value) in [
        (Provider::Stripe, &secrets.stripe),
        (Provider::Whop, &secrets.whop),
    ] {
        if let Some(value) = value {
            map.insert(provider, WebhookSecrets::parse(value.expose_secret())?);
        }
    }
    Ok(map)
}

/// The providers that have API keys, with their base URLs, sharing one HTTP client.
///
/// # Errors
/// [`StartupError::Provider`] if a client cannot be built.
pub fn providers_from(keys: &ProviderKeys) -> Result<Providers, StartupError> {
    #[allow(unused_mut)]
    let mut providers = Providers::default();
    #[cfg(any(feature = "stripe", feature = "whop"))]
    if !keys.is_empty() {
        let http = crate::payments::http_client().map_err(StartupError::Provider)?;
        #[cfg(feature = "stripe")]
        if let Some(key) = &keys.stripe_secret_key {
            let stripe = crate::payments::stripe::StripeProvider::new(
                http.clone(),
                key,
                keys.stripe_api_base.as_deref(),
            )
            .map_err(StartupError::Provider)?;
            providers = providers.with(Arc::new(stripe));
        }
        #[cfg(feature = "whop")]
        if let Some(key) = &keys.whop_api_key {
            let base = keys
                .whop_api_base
                .as_deref()
                .unwrap_or(crate::payments::whop::DEFAULT_API_BASE);
            let whop = crate::payments::whop::WhopProvider::new(http.clone(), base, key.clone());
            providers = providers.with(Arc::new(whop));
        }
    }
    #[cfg(not(any(feature = "stripe", feature = "whop")))]
    let _ = keys;
    Ok(providers)
}

/// The identity providers `config` names, with their client secrets from `secrets` (GitHub's
/// is required; an OIDC provider without one is a public client, PKCE only), sharing one HTTP
/// client. Discovery of OIDC providers happens on first use, not here.
///
/// # Errors
/// [`StartupError::BadSecret`] naming `GITHUB_CLIENT_SECRET` when GitHub is configured without
/// it; [`StartupError::IdentityProviders`] if the HTTP client cannot be built.
#[cfg(feature = "oauth")]
pub fn identity_providers_from(
    config: &crate::config::OAuthConfig,
    secrets: &OAuthClientSecrets,
) -> Result<IdentityProviders, StartupError> {
    use crate::idp::{github, http::Http, oidc};
    let mut providers = IdentityProviders::default();
    if config.github.is_none() && config.oidc.is_empty() {
        return Ok(providers);
    }
    let http = Http::new().map_err(|e| StartupError::IdentityProviders(Box::new(e)))?;
    if let Some(gh) = &config.github {
        let client_secret = secrets
            .get("GITHUB_CLIENT_SECRET")
            .cloned()
            .ok_or_else(|| StartupError::BadSecret {
                name: "GITHUB_CLIENT_SECRET".to_owned(),
                source: "TOLLGATE_GITHUB_CLIENT_ID is set but the client secret is not".into(),
            })?;
        providers = providers.with(Arc::new(github::GitHub::new(
            github::GitHubConfig {
                client_id: gh.client_id.clone(),
                client_secret,
                web_base: gh.web_base.clone(),
                api_base: gh.api_base.clone(),
            },
            http.clone(),
        )));
    }
    for provider in &config.oidc {
        let secret_name = if provider.name == "google" {
            "GOOGLE_CLIENT_SECRET".to_owned()
        } else {
            crate::secrets::providers::oidc_secret_name(&provider.name)
        };
        providers = providers.with(Arc::new(oidc::Oidc::new(
            oidc::OidcConfig {
                name: provider.name.clone(),
                issuer: provider.issuer.clone(),
                client_id: provider.client_id.clone(),
                client_secret: secrets.get(&secret_name).cloned(),
                scopes: provider.scopes.clone(),
            },
            http.clone(),
        )));
    }
    Ok(providers)
}

/// Without feature `oauth`, no identity provider can be built.
///
/// # Errors
/// [`StartupError::IdentityProviders`] if `config` names any.
#[cfg(not(feature = "oauth"))]
pub fn identity_providers_from(
    config: &crate::config::OAuthConfig,
    _secrets: &OAuthClientSecrets,
) -> Result<IdentityProviders, StartupError> {
    if config.github.is_none() && config.oidc.is_empty() {
        Ok(IdentityProviders::default())
    } else {
        Err(StartupError::IdentityProviders(
            "this build has no identity provider support (feature `oauth`)".into(),
        ))
    }
}

/// Reads the private key set named by `config.jwt_keys_secret_id`.
///
/// # Errors
/// [`StartupError::Secret`] if unreadable; [`StartupError::BadSecret`] if unusable.
pub async fn load_signing_keys(
    config: &Config,
    secrets: &dyn SecretSource,
) -> Result<Arc<KeySet>, StartupError> {
    let name = &config.jwt_keys_secret_id;
    let json = secrets.get_secret(name).await?;
    KeySet::from_json(
        json.expose_secret(),
        &config.auth.issuer,
        &config.auth.audience,
    )
    .map(Arc::new)
    .map_err(|e| bad_keys(name, e))
}

fn bad_keys(name: &str, e: KeySetError) -> StartupError {
    StartupError::BadSecret {
        name: name.to_owned(),
        source: Box::new(e),
    }
}

/// The parts of the dev server's state: the embedded store in `<data_dir>/tollgate.redb`, the
/// signing keys in `<data_dir>/jwt-keys.json` (generated on first start, file mode 0600),
/// provider keys and webhook secrets from the environment, the built-in (or configured) catalog.
/// The caller adds a queue and providers, assembles, runs the store's flusher and flushes it at
/// shutdown.
///
/// # Errors
/// [`StartupError`] if the directory, store, keys or catalog cannot be created or read.
#[cfg(feature = "embedded")]
pub async fn embedded_components(
    config: Config,
    data_dir: &std::path::Path,
) -> Result<(Components, crate::store::embedded::EmbeddedStore), StartupError> {
    use crate::auth::SigningKeyFile;
    use crate::clock::SystemClock;
    use crate::secrets::FileSecretSource;
    let io = |what: &'static str| {
        move |source| StartupError::Io {
            what,
            path: data_dir.display().to_string(),
            source,
        }
    };
    std::fs::create_dir_all(data_dir).map_err(io("cannot create"))?;
    let files = FileSecretSource::new(data_dir);
    let key_path = files.path(&config.jwt_keys_secret_id);
    if !key_path.exists() {
        let file = SigningKeyFile::generate(SystemClock.now())
            .map_err(|e| bad_keys(&config.jwt_keys_secret_id, e))?;
        let json = serde_json::to_string_pretty(&file)
            .map_err(|e| bad_keys(&config.jwt_keys_secret_id, KeySetError::Json(e)))?;
        crate::secrets::write_private(&key_path, json.as_bytes())
            .map_err(io("cannot write keys in"))?;
        tracing::info!(path = %key_path.display(), "generated a development signing key");
    }
    let keys = load_signing_keys(&config, &files).await?;
    let catalog = load_catalog(&config)?;
    let store = crate::store::embedded::EmbeddedStore::open(&data_dir.join("tollgate.redb"))?;
    let providers = providers_from(&ProviderKeys::from_env())?;
    let webhook_secrets = webhook_secrets(&WebhookSigningSecrets::from_env()).map_err(|e| {
        StartupError::BadSecret {
            name: "STRIPE_WEBHOOK_SECRET / WHOP_WEBHOOK_SECRET".to_owned(),
            source: Box::new(e),
        }
    })?;
    let identity_providers =
        identity_providers_from(&config.oauth, &OAuthClientSecrets::from_env())?;
    let shared = Arc::new(store.clone());
    Ok((
        Components {
            config,
            users: shared.clone(),
            sessions: shared.clone(),
            accounts: shared.clone(),
            outbox: shared.clone(),
            billing_store: shared.clone(),
            ledger: shared.clone(),
            rate_limiter: shared.clone(),
            usage_store: shared.clone(),
            credit_store: shared.clone(),
            outbound_store: shared,
            queue: None,
            keys,
            clock: Arc::new(SystemClock),
            providers,
            catalog,
            webhook_secrets,
            identity_providers,
        },
        store,
    ))
}

#[cfg(all(feature = "aws", feature = "mail", feature = "ses"))]
pub use aws::mail_dispatcher_from_env;
#[cfg(all(feature = "aws", feature = "mail", feature = "ses", feature = "hooks"))]
pub use aws::mailer_from_env;
#[cfg(feature = "aws")]
pub use aws::{processor_from_env, reconciler_from_env, AwsStart};

#[cfg(feature = "aws")]
mod aws {
    use super::*;
    use crate::auth::{KeySecret, PublicKeys, SecretKeySource};
    use crate::clock::SystemClock;
    use crate::store::dynamo::DynamoStore;

    /// What every Lambda builds at start-up: configuration, the AWS SDK configuration and the
    /// Secrets Manager client, and — when the function uses the table — the DynamoDB store and
    /// catalog. Clients are built once per cold start.
    pub struct AwsStart {
        /// Validated configuration.
        pub config: Config,
        /// The AWS SDK configuration (region, credentials, endpoint).
        pub aws: aws_config::SdkConfig,
        /// Secrets Manager.
        pub secrets: crate::secrets::aws::AwsSecretSource,
    }

    impl AwsStart {
        /// Reads and validates the configuration and loads the AWS SDK configuration.
        ///
        /// # Errors
        /// [`StartupError::Config`] listing every problem.
        pub async fn new() -> Result<Self, StartupError> {
            let config = Config::from_env()?;
            let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            let secrets = crate::secrets::aws::AwsSecretSource::new(
                aws_sdk_secretsmanager::Client::new(&aws),
            );
            Ok(Self {
                config,
                aws,
                secrets,
            })
        }

        /// The table's store, its connection warmed (a `DescribeTable`, so the first request does
        /// not pay for TLS set-up: 912 ms unwarmed against 21 ms warmed at 128 MB, BENCHMARKS.md).
        async fn store(&self) -> Arc<DynamoStore> {
            let store = Arc::new(DynamoStore::new(
                aws_sdk_dynamodb::Client::new(&self.aws),
                self.config.table_name.clone(),
            ));
            if let Err(e) = store.warm().await {
                // Not fatal: the first request retries the connection.
                tracing::warn!(error = %crate::error::Chain(&e), "could not warm the DynamoDB connection");
            }
            store
        }

        async fn public_keys(&self) -> Result<Arc<PublicKeys>, StartupError> {
            let name = &self.config.jwks_secret_id;
            let json = self.secrets.get_secret(name).await?;
            PublicKeys::from_json(
                json.expose_secret(),
                &self.config.auth.issuer,
                &self.config.auth.audience,
            )
            .map(Arc::new)
            .map_err(|e| bad_keys(name, e))
        }

        async fn provider_keys(&self) -> Result<ProviderKeys, StartupError> {
            let name = &self.config.provider_secrets_id;
            let json = self.secrets.get_secret(name).await?;
            ProviderKeys::from_json(&json).map_err(|e| StartupError::BadSecret {
                name: name.clone(),
                source: crate::error::message(e),
            })
        }

        /// The customer's outbound endpoints with their signing secrets.
        #[cfg(feature = "hooks")]
        async fn outbound_endpoints(&self) -> Result<Vec<crate::hooks::Endpoint>, StartupError> {
            let name = &self.config.outbound_endpoints_secret_id;
            let json = self.secrets.get_secret(name).await?;
            crate::hooks::parse_endpoints(json.expose_secret()).map_err(|e| {
                StartupError::BadSecret {
                    name: name.clone(),
                    source: crate::error::message(e),
                }
            })
        }

        /// The identity providers with their client secrets — read even when none is configured,
        /// so a missing or broken secret fails the start, not the first sign-in.
        async fn identity_providers(&self) -> Result<IdentityProviders, StartupError> {
            let oauth = &self.config.oauth;
            let name = &self.config.oauth_secrets_id;
            let json = self.secrets.get_secret(name).await?;
            let secrets =
                OAuthClientSecrets::from_json(&json).map_err(|e| StartupError::BadSecret {
                    name: name.clone(),
                    source: crate::error::message(e),
                })?;
            identity_providers_from(oauth, &secrets)
        }

        async fn webhook_secrets(
            &self,
        ) -> Result<BTreeMap<Provider, WebhookSecrets>, StartupError> {
            let name = &self.config.webhook_secrets_id;
            let json = self.secrets.get_secret(name).await?;
            let bad = |source: crate::error::BoxError| StartupError::BadSecret {
                name: name.clone(),
                source,
            };
            let raw = WebhookSigningSecrets::from_json(&json)
                .map_err(|e| bad(crate::error::message(e)))?;
            webhook_secrets(&raw).map_err(|e| bad(Box::new(e)))
        }
    }

    async fn maybe<T, F: std::future::Future<Output = Result<T, StartupError>>>(
        wanted: bool,
        f: F,
    ) -> Result<Option<T>, StartupError> {
        if wanted {
            f.await.map(Some)
        } else {
            Ok(None)
        }
    }

    impl AppState {
        /// The production state of a function that needs `needs`: DynamoDB store (warmed),
        /// Secrets Manager secrets read concurrently — the private key set or the published
        /// JWKS, the provider API keys, the webhook secrets — each only if needed, and the SQS
        /// queue for ingest.
        ///
        /// # Errors
        /// [`StartupError`]: bad configuration or catalog, a needed secret missing or unusable
        /// (named), ingest without `TOLLGATE_QUEUE_URL`.
        pub async fn from_env(needs: Needs) -> Result<Self, StartupError> {
            let start = AwsStart::new().await?;
            let config = &start.config;
            if needs.ingest && config.queue_url.is_none() {
                return Err(crate::config::ConfigError(vec![
                    "TOLLGATE_QUEUE_URL: webhook ingest needs the SQS FIFO queue".to_owned(),
                ])
                .into());
            }
            let catalog = if needs.catalog() {
                Some(load_catalog(config)?)
            } else {
                None
            };
            let (signing, public, provider_keys, webhook_secrets, identity_providers, store) = tokio::join!(
                maybe(
                    needs.keys == KeyAccess::Signing,
                    load_signing_keys(config, &start.secrets)
                ),
                maybe(needs.keys == KeyAccess::Public, start.public_keys()),
                maybe(needs.billing, start.provider_keys()),
                maybe(needs.ingest, start.webhook_secrets()),
                maybe(needs.oauth, start.identity_providers()),
                async {
                    if needs.table() {
                        Some(start.store().await)
                    } else {
                        None
                    }
                },
            );
            let (signing, public) = (signing?, public?);
            let (provider_keys, webhook_secrets) = (provider_keys?, webhook_secrets?);
            let identity_providers = identity_providers?;
            let clock: Arc<dyn Clock> = Arc::new(SystemClock);
            // Keys loaded again while warm (a rotation since the cold start), from the secret
            // they came from: `auth::key_ring`.
            let secrets: Arc<dyn crate::secrets::SecretSource> = Arc::new(start.secrets.clone());
            let reloading = |keys, name: &str, kind| {
                let source = SecretKeySource::new(
                    secrets.clone(),
                    name,
                    kind,
                    config.auth.issuer.clone(),
                    config.auth.audience.clone(),
                );
                Arc::new(KeyRing::reloading(keys, Arc::new(source), clock.clone()))
            };
            let signing = signing.map(|set| {
                reloading(
                    Keys::signing(set),
                    &config.jwt_keys_secret_id,
                    KeySecret::Signing,
                )
            });
            let ring = signing.clone().or_else(|| {
                public.map(|p| reloading(Keys::public(p), &config.jwks_secret_id, KeySecret::Jwks))
            });
            let verifier = ring.map(|keys| AccessVerifier::new(keys, clock.clone()));
            let access = match (&store, &catalog) {
                (Some(store), Some(catalog)) => Some(PlanAccess::new(
                    store.clone(),
                    catalog.clone(),
                    config.billing.past_due_grace,
                )),
                _ => None,
            };
            let limiter = store.as_ref().map(|store| {
                Limiter::new(store.clone(), config.rate_limits.clone(), clock.clone())
            });
            let usage = match (&store, &catalog) {
                (Some(store), Some(catalog)) if needs.accounts => Some(Usage::new(
                    store.clone(),
                    store.clone(),
                    catalog.clone(),
                    clock.clone(),
                    config.billing.past_due_grace,
                    Credits::new(store.clone(), config.auth.audit_retention),
                )),
                _ => None,
            };
            let auth = match (&store, &access) {
                (Some(store), Some(access)) if needs.accounts => Some(
                    Auth::new(
                        AccountStores {
                            users: store.clone(),
                            sessions: store.clone(),
                            accounts: store.clone(),
                        },
                        signing,
                        clock.clone(),
                        config.auth.clone(),
                        access.clone(),
                    )
                    .with_identity_providers(identity_providers.unwrap_or_default())
                    .with_limiter(Limiter::new(
                        store.clone(),
                        config.rate_limits.clone(),
                        clock.clone(),
                    )),
                ),
                _ => None,
            };
            let providers = provider_keys.as_ref().map(providers_from).transpose()?;
            let new_billing = || match (&store, &access, &providers) {
                (Some(store), Some(access), Some(providers)) => Some(Billing::new(
                    store.clone(),
                    store.clone(),
                    providers.clone(),
                    access.clone(),
                    clock.clone(),
                    config.billing.clone(),
                )),
                _ => None,
            };
            let billing = new_billing();
            let admin = match (&store, &usage, new_billing()) {
                (Some(store), Some(usage), Some(billing)) if needs.accounts => Some(Admin::new(
                    AdminParts {
                        users: store.clone(),
                        sessions: store.clone(),
                        accounts: store.clone(),
                        billing,
                        usage: usage.clone(),
                    },
                    clock.clone(),
                    config.auth.audit_retention,
                )),
                _ => None,
            };
            let ingest = match (&store, webhook_secrets, &config.queue_url) {
                (Some(store), Some(secrets), Some(url)) => {
                    let queue: Arc<dyn EventQueue> = Arc::new(crate::queue::sqs::SqsQueue::new(
                        aws_sdk_sqs::Client::new(&start.aws),
                        url.clone(),
                    ));
                    Some(Ingest::new(store.clone(), queue, secrets, clock.clone()))
                }
                _ => None,
            };
            Ok(Self(Arc::new(Parts {
                config: start.config,
                verifier,
                auth,
                billing,
                ingest,
                limiter,
                usage,
                admin,
            })))
        }
    }

    /// The outbox worker alone, for the `mailer` Lambda: the mail dispatcher over the DynamoDB
    /// store (outbox, users, one-time secrets), SES v2 from `TOLLGATE_MAIL_FROM` (through
    /// `TOLLGATE_SES_CONFIGURATION_SET` when set) and the templates; the outbound dispatcher
    /// with the endpoints of `TOLLGATE_OUTBOUND_ENDPOINTS_SECRET_ID` — no signing keys, no
    /// provider or webhook secrets.
    ///
    /// # Errors
    /// [`StartupError`] for bad configuration, broken template overrides, or a missing or
    /// malformed endpoints secret.
    #[cfg(all(feature = "mail", feature = "ses", feature = "hooks"))]
    pub async fn mailer_from_env() -> Result<OutboxWorker, StartupError> {
        let start = AwsStart::new().await?;
        let (store, endpoints) = tokio::join!(start.store(), start.outbound_endpoints());
        let sender = crate::hooks::http::HttpHookSender::new().map_err(|e| {
            StartupError::Config(crate::config::ConfigError(vec![format!(
                "outbound HTTP client: {}",
                crate::error::Chain(&e)
            )]))
        })?;
        Ok(OutboxWorker {
            mail: Arc::new(mail_dispatcher(&start, store.clone())?),
            outbound: Arc::new(crate::webhooks::outbound::OutboundDispatcher::new(
                store,
                Arc::new(sender),
                endpoints?,
                Arc::new(SystemClock),
            )),
        })
    }

    /// The mail dispatcher alone (`tollgate-admin mail drain`): as the mailer's, without the
    /// outbound endpoints.
    ///
    /// # Errors
    /// [`StartupError`] for bad configuration or broken template overrides.
    #[cfg(all(feature = "mail", feature = "ses"))]
    pub async fn mail_dispatcher_from_env() -> Result<Arc<crate::mail::Dispatcher>, StartupError> {
        let start = AwsStart::new().await?;
        let store = start.store().await;
        Ok(Arc::new(mail_dispatcher(&start, store)?))
    }

    /// The mail dispatcher over `store` and SES v2 as `start` configures it.
    #[cfg(all(feature = "mail", feature = "ses"))]
    fn mail_dispatcher(
        start: &AwsStart,
        store: Arc<DynamoStore>,
    ) -> Result<crate::mail::Dispatcher, StartupError> {
        let templates = load_templates(&start.config)?;
        // A send that takes longer than this is abandoned (and retried) well before the mail's
        // claim lapses (`MAIL_LEASE_SECONDS`), so a slow send is never doubled by a takeover.
        let ses_config = aws_sdk_sesv2::config::Builder::from(&start.aws)
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_timeout(std::time::Duration::from_secs(10))
                    .build(),
            )
            .build();
        let ses = crate::mailer::ses::SesMailer::new(
            aws_sdk_sesv2::Client::from_conf(ses_config),
            start.config.mail.from.clone(),
            start.config.mail.ses_configuration_set.clone(),
        );
        Ok(crate::mail::Dispatcher::new(
            crate::mail::MailStores {
                users: store.clone(),
                accounts: store.clone(),
                outbox: store,
            },
            Arc::new(ses),
            templates,
            Arc::new(SystemClock),
            mail_settings(&start.config),
        ))
    }

    /// The reconciler alone, for its scheduled Lambda: the DynamoDB store (ledger and
    /// checkpoints), the queue (`TOLLGATE_QUEUE_URL`) and the provider API keys — no signing
    /// keys, no webhook secrets.
    ///
    /// # Errors
    /// [`StartupError`] for bad configuration, a missing queue URL, or missing or unusable
    /// provider keys.
    pub async fn reconciler_from_env() -> Result<Arc<Reconciler>, StartupError> {
        let start = AwsStart::new().await?;
        let url = start.config.queue_url.clone().ok_or_else(|| {
            StartupError::Config(crate::config::ConfigError(vec![
                "TOLLGATE_QUEUE_URL: the reconciler hands events to the SQS FIFO queue".to_owned(),
            ]))
        })?;
        let (keys, store) = tokio::join!(start.provider_keys(), start.store());
        let queue: Arc<dyn EventQueue> = Arc::new(crate::queue::sqs::SqsQueue::new(
            aws_sdk_sqs::Client::new(&start.aws),
            url,
        ));
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        Ok(Arc::new(Reconciler::new(
            Ingest::new(store.clone(), queue, BTreeMap::new(), clock.clone()),
            store,
            providers_from(&keys?)?,
            clock,
        )))
    }

    /// The webhook processor alone, for its SQS Lambda: the DynamoDB store, the provider API
    /// keys and the catalog — no signing keys and no webhook secrets (it issues no tokens and
    /// verifies no deliveries, so its role has no access to those secrets).
    ///
    /// # Errors
    /// [`StartupError`] for bad configuration or catalog, or missing or unusable provider keys.
    pub async fn processor_from_env() -> Result<Arc<Processor>, StartupError> {
        let start = AwsStart::new().await?;
        let catalog = load_catalog(&start.config)?;
        let (keys, store) = tokio::join!(start.provider_keys(), start.store());
        Ok(Arc::new(Processor::new(
            ProcessorStores {
                ledger: store.clone(),
                billing: store.clone(),
                users: store.clone(),
                credits: store,
            },
            providers_from(&keys?)?,
            catalog,
            Arc::new(SystemClock),
            start.config.auth.audit_retention,
        )))
    }
}
