//! The dev server's app (`dev_server::app`: every function's routes) as its own process on a
//! DynamoDB table instead of the embedded store — what two Lambda instances share. For the test
//! that two processes enforce one rate limit together (`tests/tests/limits.rs`).
//!
//! Environment: `AWS_ENDPOINT_URL` (moto), `TOLLGATE_TABLE_NAME`, `TOLLGATE_TEST_KEY_FILE` (a
//! signing key set as JSON, the same for every process, so each verifies the others' tokens),
//! and any `TOLLGATE_*` configuration (`TOLLGATE_RATE_LIMITS`). Listens on a free port of
//! 127.0.0.1 with the peer address as the client IP, and prints `listening http://<addr>` once it
//! accepts connections.

use std::net::SocketAddr;
use std::sync::Arc;
use tollgate::auth::{KeySet, SigningKeyFile};
use tollgate::store::dynamo::DynamoStore;
use tollgate::{AppState, Config, Needs, SystemClock};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_env()?;
    let keys: SigningKeyFile =
        serde_json::from_slice(&std::fs::read(std::env::var("TOLLGATE_TEST_KEY_FILE")?)?)?;
    let keys = Arc::new(KeySet::from_file(
        &keys,
        &config.auth.issuer,
        &config.auth.audience,
    )?);
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = aws_sdk_dynamodb::Client::new(&aws);
    tollgate::store::dynamo::ensure_table(&client, &config.table_name).await?;
    let store = Arc::new(DynamoStore::new(client, &config.table_name));
    let catalog = tollgate::state::load_catalog(&config)?;
    let mut components = tollgate_tests::components_on(store, config, keys, catalog);
    components.clock = Arc::new(SystemClock);
    let state = AppState::assemble(&components, Needs::ALL);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        dev_server::app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
