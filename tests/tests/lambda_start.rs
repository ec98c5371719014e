//! What the Lambdas read at start-up, against moto (Secrets Manager, DynamoDB): the HTTP
//! functions need the signing-key secret; the webhook processor starts without it, which is why
//! its IAM role in template.yaml has no access to that secret.
//!
//! One test in this binary: it sets the process environment the start-ups read, before any of
//! them runs.

use tollgate::secrets::SecretError;
use tollgate::state::StartupError;
use tollgate::AppState;

#[tokio::test]
async fn the_processor_starts_without_the_signing_key_secret_and_http_functions_do_not() {
    if tollgate_tests::dynamo_store().await.is_none() {
        return; // no emulator outside CI (dynamo_client refuses to skip when CI=true)
    }
    let absent = format!("tollgate/absent-{}", uuid::Uuid::now_v7());
    std::env::set_var("TOLLGATE_TABLE_NAME", tollgate_tests::TEST_TABLE);
    std::env::set_var("TOLLGATE_JWT_KEYS_SECRET_ID", &absent);
    std::env::remove_var("TOLLGATE_PROVIDER_SECRETS_ID");
    std::env::remove_var("TOLLGATE_QUEUE_URL");

    let processor = AppState::processor_from_env().await;
    assert!(processor.is_ok(), "{:?}", processor.err());

    match AppState::from_env().await {
        Err(StartupError::Secret(SecretError::NotFound(id))) => assert_eq!(id, absent),
        other => panic!(
            "an HTTP function must not start without its signing keys: {:?}",
            other.map(|_| "started")
        ),
    }
}
