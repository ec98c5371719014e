//! Support for Tollgate's cross-function tests: app states on a manual clock, a server on a random
//! port, the vendored fixtures, provider and queue doubles, and the DynamoDB (moto) connection.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use tollgate::auth::{KeySet, SigningKeyFile};
use tollgate::domain::{
    CheckoutSessionId, CustomerId, PriceId, Proration, Provider, ProviderSubscription,
    SubscriptionId, UserId,
};
use tollgate::payments::{CheckoutRequest, CheckoutSession, PaymentProvider, ProviderError};
use tollgate::state::Components;
use tollgate::store::embedded::EmbeddedStore;
use tollgate::store::{
    AccountStore, BillingStore, CreditStore, EventLedger, OutboundStore, Outbox, RateLimiter,
    SessionStore, UsageStore, UserStore,
};
use tollgate::{AppState, Clock, Config, Needs};

/// A clock that only moves when told to: for tests of expiry and grace windows. Its microsecond
/// reading also ticks by one on every call, so successive fetches stay ordered.
#[derive(Debug)]
pub struct ManualClock(AtomicI64, AtomicI64);

impl ManualClock {
    /// A clock standing at `now` (Unix seconds).
    pub fn new(now: i64) -> Self {
        Self(AtomicI64::new(now), AtomicI64::new(0))
    }

    /// Moves the clock forward by `seconds`.
    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }

    fn now_micros(&self) -> i64 {
        // Within one second, 1,000,000 distinct readings before it would spill into the next.
        let tick = self.1.fetch_add(1, Ordering::SeqCst).rem_euclid(1_000_000);
        self.now().saturating_mul(1_000_000) + tick
    }
}

/// One HTTP function: its name (= crate = binary = SAM function), declared routes, start-up
/// needs, router and OpenAPI part.
pub struct Function {
    /// The function's name.
    pub name: &'static str,
    /// Its `ROUTES`.
    pub routes: &'static [(&'static str, &'static str)],
    /// Its `NEEDS`.
    pub needs: Needs,
    /// Its `routes()`.
    pub router: fn() -> axum::Router<AppState>,
    /// Its `openapi()`.
    pub openapi: fn() -> utoipa::openapi::OpenApi,
}

/// Every HTTP function (the webhook processor is an SQS consumer, without routes).
pub fn functions() -> Vec<Function> {
    macro_rules! function {
        ($name:literal, $krate:ident) => {
            Function {
                name: $name,
                routes: $krate::ROUTES,
                needs: $krate::NEEDS,
                router: $krate::routes,
                openapi: $krate::openapi,
            }
        };
    }
    vec![
        function!("signup", signup),
        function!("login", login),
        function!("account", account),
        function!("oauth", oauth),
        function!("token-refresh", token_refresh),
        function!("jwks", jwks),
        function!("subscription-lookup", subscription_lookup),
        function!("checkout", checkout),
        function!("webhook-ingest", webhook_ingest),
        function!("web", web),
        function!("whoami", whoami),
        function!("usage", usage),
        function!("admin", admin),
    ]
}

/// The function called `name`.
///
/// # Panics
/// For an unknown name.
pub fn function(name: &str) -> Function {
    functions()
        .into_iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no function {name}"))
}

/// Password used by seeded users.
pub const PASSWORD: &str = "correct horse battery staple";

/// A fresh in-memory state on a manual clock standing at `now` (Unix seconds).
///
/// # Panics
/// If the embedded store or key cannot be created (a test failure).
pub fn state_at(now: i64) -> (AppState, Arc<ManualClock>) {
    let (state, clock, _) = state_with_store(now);
    (state, clock)
}

/// Like [`state_at`], also returning the store so tests can inspect what was written.
///
/// # Panics
/// If the embedded store or key cannot be created (a test failure).
pub fn state_with_store(now: i64) -> (AppState, Arc<ManualClock>, Arc<EmbeddedStore>) {
    let (components, clock, store) = components_at(now);
    (AppState::assemble(&components, Needs::ALL), clock, store)
}

/// The parts of a test state on an in-memory store and a manual clock at `now` (with a
/// [`RecordingQueue`], no providers and no webhook secrets), to adjust before
/// [`AppState::assemble`].
///
/// # Panics
/// If the embedded store or key cannot be created (a test failure).
pub fn components_at(now: i64) -> (Components, Arc<ManualClock>, Arc<EmbeddedStore>) {
    static KEYS: std::sync::LazyLock<SigningKeyFile> =
        std::sync::LazyLock::new(|| SigningKeyFile::generate(0).expect("generate a test key"));
    let clock = Arc::new(ManualClock::new(now));
    let store = Arc::new(EmbeddedStore::in_memory().expect("in-memory store"));
    let config = Config::default();
    let keys = Arc::new(
        KeySet::from_file(&KEYS, &config.auth.issuer, &config.auth.audience).expect("keys"),
    );
    let catalog = tollgate::state::load_catalog(&config).expect("catalog");
    let mut components = components_on(store.clone(), config, keys, catalog);
    components.clock = clock.clone() as Arc<dyn Clock>;
    (components, clock, store)
}

/// Every store trait at once: what each backend implements (the conformance suite's bound).
pub trait AllStores:
    UserStore
    + SessionStore
    + AccountStore
    + Outbox
    + OutboundStore
    + BillingStore
    + EventLedger
    + RateLimiter
    + UsageStore
    + CreditStore
    + 'static
{
}

impl<T> AllStores for T where
    T: UserStore
        + SessionStore
        + AccountStore
        + Outbox
        + OutboundStore
        + BillingStore
        + EventLedger
        + RateLimiter
        + UsageStore
        + CreditStore
        + 'static
{
}

/// Every part of a state on one `store` (both backends implement every store trait), with the
/// system clock, no payment or identity provider, and a recording webhook queue.
pub fn components_on<S>(
    store: Arc<S>,
    config: Config,
    keys: Arc<KeySet>,
    catalog: Arc<tollgate::domain::Catalog>,
) -> Components
where
    S: AllStores,
{
    Components {
        config,
        users: store.clone(),
        sessions: store.clone(),
        accounts: store.clone(),
        outbox: store.clone(),
        billing_store: store.clone(),
        ledger: store.clone(),
        rate_limiter: store.clone(),
        usage_store: store.clone(),
        credit_store: store.clone(),
        outbound_store: store,
        queue: Some(Arc::new(RecordingQueue::default())),
        keys,
        clock: Arc::new(tollgate::SystemClock),
        providers: Default::default(),
        catalog,
        webhook_secrets: Default::default(),
        identity_providers: Default::default(),
    }
}

/// Points every store of `components` at `store`.
pub fn use_store<S>(components: &mut Components, store: Arc<S>)
where
    S: AllStores,
{
    components.users = store.clone();
    components.sessions = store.clone();
    components.accounts = store.clone();
    components.outbox = store.clone();
    components.billing_store = store.clone();
    components.ledger = store.clone();
    components.rate_limiter = store.clone();
    components.usage_store = store.clone();
    components.credit_store = store.clone();
    components.outbound_store = store;
}

/// Which store a case of an HTTP test runs on ([`on_both_stores!`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The embedded store, in memory.
    Embedded,
    /// DynamoDB in moto (the case returns early when moto is not configured, outside CI).
    Dynamo,
}

/// Expands one `#[tokio::test]` per case and store: `mod embedded` and `mod dynamodb`, each
/// calling `case(Backend::…)`, so a failure names both.
#[macro_export]
macro_rules! on_both_stores {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::Backend::Embedded).await;
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::Backend::Dynamo).await;
                }
            )*
        }
    };
}

/// The current Unix time in seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Reads a file of the vendored fixtures (`tests/fixtures/<path>`, sources in each folder's
/// `SOURCES.md`).
///
/// # Panics
/// If the fixture is missing.
pub fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!("{}/fixtures/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// Stripe's sample object for `resource` from `openapi-fixtures3.json` (complete, so
/// async-stripe's typed parse accepts it), with `changes` merged in.
///
/// # Panics
/// If the resource is missing.
pub fn stripe_object(resource: &str, changes: serde_json::Value) -> serde_json::Value {
    static FIXTURES: std::sync::LazyLock<serde_json::Value> = std::sync::LazyLock::new(|| {
        serde_json::from_slice(&fixture("stripe/openapi-fixtures3.json")).expect("fixtures3 json")
    });
    let mut object = FIXTURES["resources"][resource].clone();
    assert!(object.is_object(), "no resource {resource}");
    if let (Some(o), serde_json::Value::Object(c)) = (object.as_object_mut(), changes) {
        o.extend(c);
    }
    object
}

/// Serves `dev_server::app(state)` on `127.0.0.1:<random port>`; returns its base URL.
///
/// # Panics
/// If no port can be bound.
pub async fn spawn_app(state: AppState) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, dev_server::app(state)).await;
    });
    format!("http://{addr}")
}

/// A DynamoDB client for the local emulator, or `None` when `AWS_ENDPOINT_URL` is unset.
///
/// # Panics
/// When `CI=true` and `AWS_ENDPOINT_URL` is unset: in CI the DynamoDB cases must run, never skip.
pub async fn dynamo_client() -> Option<aws_sdk_dynamodb::Client> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|v| !v.is_empty());
    if endpoint.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but AWS_ENDPOINT_URL is unset: the DynamoDB cases must run in CI (use infra/test.sh)"
        );
        eprintln!(
            "AWS_ENDPOINT_URL unset: skipping a DynamoDB case (infra/test.sh starts moto_server)"
        );
        return None;
    }
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(
            std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
        ))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "tollgate-tests",
        ))
        .load()
        .await;
    Some(aws_sdk_dynamodb::Client::new(&config))
}

/// The endpoint of a moto_server of this test process's own (started once, on a free port, from
/// `infra/local/moto_atomic.py`; it exits with the process), for tests that read moto's whole
/// recorded state (`/moto-api/data.json`, e.g. the mail SES was asked to send) and so must not
/// share a server whose state every other test grows; `None` when skipped (as
/// [`dynamo_client`]).
///
/// # Panics
/// If the server does not start.
pub async fn own_moto() -> Option<String> {
    static ENDPOINT: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    // Same rule as the shared emulator: run where one is configured, never skip in CI.
    dynamo_client().await?;
    let endpoint = ENDPOINT
        .get_or_init(|| async {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("free port");
            let launcher = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../infra/local/moto_atomic.py");
            let log = std::fs::File::create(
                std::env::temp_dir().join(format!("tollgate-own-moto-{port}.log")),
            )
            .expect("log file");
            // Kept for the process's lifetime; the server exits when this process does
            // (MOTO_EXIT_WITH_PARENT), so nothing waits for it.
            static SERVER: std::sync::Mutex<Option<std::process::Child>> =
                std::sync::Mutex::new(None);
            let child = std::process::Command::new("python3")
                .arg(launcher)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env("MOTO_EXIT_WITH_PARENT", std::process::id().to_string())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("start moto_server");
            *SERVER.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
            let endpoint = format!("http://127.0.0.1:{port}");
            for _ in 0..200 {
                if reqwest::get(format!("{endpoint}/moto-api/")).await.is_ok() {
                    return endpoint;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            panic!("own moto_server did not start on {port}");
        })
        .await;
    Some(endpoint.clone())
}

/// The issuer URL of this test process's own OpenID Connect server (`tests/oidc-mock/server.mjs`:
/// oauth2-mock-server, started once on a free port; it exits when this process does), or `None`
/// — with a message — when its npm package is not installed (`npm ci --prefix tests/oidc-mock`,
/// which `infra/test.sh` runs).
///
/// # Panics
/// When `CI=true` and the package is missing (in CI the OIDC cases must run, never skip), or if
/// the server does not start.
pub async fn oidc_mock() -> Option<String> {
    static ISSUER: tokio::sync::OnceCell<Option<String>> = tokio::sync::OnceCell::const_new();
    ISSUER
        .get_or_init(|| async {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("oidc-mock");
            if !dir.join("node_modules/oauth2-mock-server").is_dir() {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "CI=true but tests/oidc-mock is not installed (infra/test.sh runs npm ci)"
                );
                eprintln!("tests/oidc-mock not installed (npm ci --prefix tests/oidc-mock): skipping an OIDC case");
                return None;
            }
            // Kept for the process's lifetime: the server exits when its stdin closes, which
            // happens when this process ends.
            static SERVER: std::sync::Mutex<Option<std::process::Child>> =
                std::sync::Mutex::new(None);
            let mut child = std::process::Command::new("node")
                .arg(dir.join("server.mjs"))
                .arg("--exit-with-stdin")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::inherit())
                .spawn()
                .expect("start node tests/oidc-mock/server.mjs");
            let stdout = child.stdout.take().expect("stdout");
            *SERVER.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
            let line = tokio::task::spawn_blocking(move || {
                let mut line = String::new();
                std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
                    .map(|_| line)
            })
            .await
            .expect("join")
            .expect("read the OIDC server's address");
            let started: serde_json::Value =
                serde_json::from_str(&line).expect("the OIDC server prints its issuer");
            Some(
                started["issuer"]
                    .as_str()
                    .expect("issuer")
                    .to_owned(),
            )
        })
        .await
        .clone()
}

/// The AWS SDK configuration for `endpoint` (test credentials, `AWS_REGION` or us-east-1).
pub async fn aws_config_at(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(
            std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
        ))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "tollgate-tests",
        ))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// The table the DynamoDB cases share (created once per process; items never collide because
/// every id is a fresh UUIDv7 and every email random).
pub const TEST_TABLE: &str = "tollgate-conformance";

/// A DynamoDB store on [`TEST_TABLE`], creating the table on first use; `None` when skipped.
///
/// # Panics
/// If the emulator is configured but the table cannot be created.
pub async fn dynamo_store() -> Option<tollgate::store::dynamo::DynamoStore> {
    static CREATED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    let client = dynamo_client().await?;
    CREATED
        .get_or_init(|| async {
            tollgate::store::dynamo::ensure_table(&client, TEST_TABLE)
                .await
                .expect("create the test table in moto");
        })
        .await;
    Some(tollgate::store::dynamo::DynamoStore::new(
        client, TEST_TABLE,
    ))
}

/// A DynamoDB store on a table of its own (created now, named `tollgate-<prefix>-<uuid>`), for
/// cases about table-wide items such as the reconciler's checkpoints; `None` when skipped.
///
/// # Panics
/// If the emulator is configured but the table cannot be created.
pub async fn dynamo_store_of_its_own(prefix: &str) -> Option<tollgate::store::dynamo::DynamoStore> {
    let client = dynamo_client().await?;
    let table = format!("tollgate-{prefix}-{}", uuid::Uuid::now_v7().simple());
    tollgate::store::dynamo::ensure_table(&client, &table)
        .await
        .expect("create a table in moto");
    Some(tollgate::store::dynamo::DynamoStore::new(client, table))
}

/// Signs up a user with a [`random_email`] and [`PASSWORD`] through the account service (no
/// HTTP), returning the user and its first tokens.
///
/// # Panics
/// If the signup fails.
pub async fn sign_up(state: &AppState) -> (tollgate::domain::User, tollgate::auth::IssuedTokens) {
    sign_up_as(state, &random_email()).await
}

/// Signs up `email` with [`PASSWORD`] through the account service (no HTTP), returning the user
/// and its first tokens.
///
/// # Panics
/// If the signup fails or starts no session.
pub async fn sign_up_as(
    state: &AppState,
    email: &str,
) -> (tollgate::domain::User, tollgate::auth::IssuedTokens) {
    match state
        .auth()
        .expect("accounts")
        .signup(
            email,
            PASSWORD.to_owned(),
            &tollgate::domain::RequestOrigin::default(),
        )
        .await
        .expect("signup")
    {
        tollgate::auth::SignupOutcome::SignedIn(user, tokens) => (user, tokens),
        tollgate::auth::SignupOutcome::VerificationRequired(_) => {
            panic!("signup started no session (TOLLGATE_REQUIRE_VERIFIED_EMAIL is on)")
        }
    }
}

/// A random, valid email address.
pub fn random_email() -> String {
    format!("user-{}@example.com", uuid::Uuid::now_v7().simple())
}

/// A payment provider double that is the source of truth for subscription state, for pipeline
/// tests: subscriptions are set by the test; `fetch_subscription` fails transiently on every
/// `fail_every`-th call (0 = never).
#[derive(Default)]
pub struct FakeProvider {
    /// Current provider state by subscription id.
    pub subscriptions:
        std::sync::Mutex<std::collections::HashMap<SubscriptionId, ProviderSubscription>>,
    /// Fail every n-th fetch with a retryable error (0 = never).
    pub fail_every: std::sync::atomic::AtomicU64,
    /// Fetches made.
    pub fetches: std::sync::atomic::AtomicU64,
    /// Which provider this stands in for.
    pub provider: std::sync::OnceLock<Provider>,
    /// Upper bound of a pseudo-random latency added after reading the state, microseconds (0 =
    /// none): lets a slow fetch of an older state arrive after a newer one.
    pub max_latency_us: std::sync::atomic::AtomicU64,
    /// What `list_events` lists: event bodies, in pages of `page_size` (0: one page).
    pub listed: std::sync::Mutex<Vec<String>>,
    /// Page size of `list_events`.
    pub page_size: std::sync::atomic::AtomicUsize,
    /// `list_events` fails (retryably) on this page number, 1-based (0: never).
    pub fail_page: std::sync::atomic::AtomicUsize,
}

impl FakeProvider {
    /// A double for `provider`.
    pub fn new(provider: Provider) -> Self {
        let f = Self::default();
        let _ = f.provider.set(provider);
        f
    }

    /// Sets the provider's current state of a subscription.
    pub fn set(&self, s: ProviderSubscription) {
        self.subscriptions
            .lock()
            .expect("lock")
            .insert(s.subscription_id.clone(), s);
    }
}

fn not_used() -> ProviderError {
    ProviderError::Rejected(tollgate::error::message("not used by this double"))
}

#[async_trait::async_trait]
impl PaymentProvider for FakeProvider {
    fn provider(&self) -> Provider {
        *self.provider.get().unwrap_or(&Provider::Stripe)
    }
    async fn create_customer(
        &self,
        _: &UserId,
        _: &str,
        _: &str,
    ) -> Result<Option<CustomerId>, ProviderError> {
        Err(not_used())
    }
    async fn create_checkout(&self, _: &CheckoutRequest) -> Result<CheckoutSession, ProviderError> {
        Err(not_used())
    }
    async fn create_portal(
        &self,
        _: Option<&CustomerId>,
        _: &SubscriptionId,
        _: &str,
    ) -> Result<String, ProviderError> {
        Err(not_used())
    }
    async fn fetch_subscription(
        &self,
        id: &SubscriptionId,
    ) -> Result<ProviderSubscription, ProviderError> {
        let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
        let every = self.fail_every.load(Ordering::SeqCst);
        if every > 0 && n.is_multiple_of(every) {
            return Err(ProviderError::Unavailable(tollgate::error::message(
                "injected provider failure",
            )));
        }
        let state = self
            .subscriptions
            .lock()
            .expect("lock")
            .get(id)
            .cloned()
            .ok_or(ProviderError::NotFound);
        let max = self.max_latency_us.load(Ordering::SeqCst);
        if max > 0 {
            // Deterministic spread from the call number.
            let us = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) % max;
            tokio::time::sleep(std::time::Duration::from_micros(us)).await;
        }
        state
    }
    async fn fetch_checkout_subscription(
        &self,
        _: &CheckoutSessionId,
    ) -> Result<Option<SubscriptionId>, ProviderError> {
        Ok(None)
    }
    async fn set_cancel_at_period_end(
        &self,
        _: &SubscriptionId,
        _: bool,
    ) -> Result<(), ProviderError> {
        Err(not_used())
    }
    async fn cancel_now(&self, _: &SubscriptionId) -> Result<(), ProviderError> {
        Err(not_used())
    }
    async fn change_price(
        &self,
        _: &SubscriptionId,
        _: &PriceId,
        _: Proration,
    ) -> Result<(), ProviderError> {
        Err(not_used())
    }
    async fn list_events(
        &self,
        _since: i64,
        cursor: Option<&str>,
    ) -> Result<tollgate::payments::EventPage, ProviderError> {
        use std::sync::atomic::Ordering;
        let start: usize = cursor.and_then(|c| c.parse().ok()).unwrap_or(0);
        let listed = self.listed.lock().expect("lock").clone();
        let size = match self.page_size.load(Ordering::SeqCst) {
            0 => listed.len().max(1),
            n => n,
        };
        let page_number = start / size + 1;
        if self.fail_page.load(Ordering::SeqCst) == page_number {
            return Err(ProviderError::Unavailable(tollgate::error::message(
                "the double fails this page",
            )));
        }
        let end = (start + size).min(listed.len());
        Ok(tollgate::payments::EventPage {
            events: listed.get(start..end).unwrap_or_default().to_vec(),
            next: (end < listed.len()).then(|| end.to_string()),
        })
    }
}

/// A queue that records what was sent, in order: `(message, group id, dedup id)`.
#[derive(Default)]
pub struct RecordingQueue(
    pub std::sync::Mutex<Vec<(tollgate::queue::EventMessage, String, String)>>,
);

#[async_trait::async_trait]
impl tollgate::queue::EventQueue for RecordingQueue {
    async fn send(
        &self,
        message: &tollgate::queue::EventMessage,
        group_id: &str,
        dedup_id: &str,
    ) -> Result<(), tollgate::queue::QueueError> {
        self.0.lock().expect("lock").push((
            message.clone(),
            group_id.to_owned(),
            dedup_id.to_owned(),
        ));
        Ok(())
    }
}

/// A Stripe `customer.subscription.updated` event for `sub` (as Stripe would send it),
/// with a fresh event id.
pub fn stripe_subscription_event(event_id: &str, sub: &ProviderSubscription) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": event_id,
        "object": "event",
        "type": "customer.subscription.updated",
        "created": 1_795_000_000,
        "data": {"object": {
            "id": sub.subscription_id,
            "object": "subscription",
            "customer": sub.customer_id,
            "status": "active",
            "metadata": {"user_id": sub.user_id.map(|u| u.to_string())},
        }},
    }))
    .expect("json")
}
