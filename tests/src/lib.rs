//! Support for Tollgate's cross-function tests: app states, a server on a random port, and the
//! DynamoDB (moto) connection.

use std::sync::Arc;
use tollgate::auth::{KeySet, SigningKeyFile};
use tollgate::state::Components;
use tollgate::store::embedded::EmbeddedStore;
use tollgate::{AppState, Clock, Config, ManualClock};

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
    static KEYS: std::sync::LazyLock<SigningKeyFile> =
        std::sync::LazyLock::new(|| SigningKeyFile::generate(0).expect("generate a test key"));
    let clock = Arc::new(ManualClock::new(now));
    let store = Arc::new(EmbeddedStore::in_memory().expect("in-memory store"));
    let config = Config::default();
    let keys = Arc::new(KeySet::from_file(&KEYS, &config.issuer, &config.audience).expect("keys"));
    let catalog = AppState::load_catalog(&config).expect("catalog");
    let state = AppState::assemble(Components {
        config,
        users: store.clone(),
        sessions: store.clone(),
        billing_store: store.clone(),
        ledger: store.clone(),
        queue: None,
        keys,
        clock: clock.clone() as Arc<dyn Clock>,
        providers: Default::default(),
        catalog,
        provider_secrets: Default::default(),
        local_webhook_secret: None,
    });
    (state, clock, store)
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

/// A random, valid email address.
pub fn random_email() -> String {
    format!("user-{}@example.com", uuid::Uuid::now_v7().simple())
}
