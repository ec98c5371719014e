//! What each Lambda reads at start-up, against moto (Secrets Manager, DynamoDB): every function
//! starts with exactly the secrets its `NEEDS` implies — the private key set (functions that
//! issue tokens), the published JWKS (functions that only verify), the provider API keys
//! (functions that call Stripe or Whop), the webhook secrets (ingest), the identity providers'
//! client secrets (oauth) — and fails loudly, naming
//! the secret, when one of those is missing; a secret it does not need may be absent. The
//! template test checks that each function's IAM role grants exactly these secrets.
//!
//! One test in this binary: it sets the process environment the start-ups read.

use aws_sdk_secretsmanager::Client;
use tollgate::auth::SigningKeyFile;
use tollgate::secrets::SecretError;
use tollgate::state::StartupError;
use tollgate::{AppState, KeyAccess, Needs};

const SECRETS: [&str; 6] = [
    "TOLLGATE_JWT_KEYS_SECRET_ID",
    "TOLLGATE_JWKS_SECRET_ID",
    "TOLLGATE_PROVIDER_SECRETS_ID",
    "TOLLGATE_WEBHOOK_SECRETS_ID",
    "TOLLGATE_OAUTH_SECRETS_ID",
    "TOLLGATE_OUTBOUND_ENDPOINTS_SECRET_ID",
];

/// Which of [`SECRETS`] a function with `needs` reads.
fn reads(needs: Needs) -> [bool; 6] {
    [
        needs.keys == KeyAccess::Signing,
        needs.keys == KeyAccess::Public,
        needs.billing,
        needs.ingest,
        needs.oauth,
        needs.outbound,
    ]
}

async fn put(client: &Client, name: &str, value: &str) {
    client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .expect("create secret in moto");
}

#[tokio::test]
async fn every_function_starts_with_exactly_its_own_secrets() {
    if tollgate_tests::dynamo_store().await.is_none() {
        return; // no emulator outside CI (dynamo_client refuses to skip when CI=true)
    }
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = Client::new(&aws);
    let run = uuid::Uuid::now_v7().simple().to_string();
    let names: Vec<String> = [
        "jwt-keys",
        "jwks",
        "provider-secrets",
        "webhook-secrets",
        "oauth-secrets",
        "outbound-endpoints",
    ]
    .iter()
    .map(|n| format!("tollgate-start-{run}/{n}"))
    .collect();
    let config = tollgate::Config::default();
    let keys = SigningKeyFile::generate(tollgate_tests::now()).expect("key");
    let set = tollgate::auth::KeySet::from_file(&keys, &config.auth.issuer, &config.auth.audience)
        .expect("keys");
    put(
        &client,
        &names[0],
        &serde_json::to_string(&keys).expect("json"),
    )
    .await;
    put(
        &client,
        &names[1],
        &serde_json::to_string(set.public().jwks()).expect("json"),
    )
    .await;
    put(&client, &names[2], "{}").await;
    put(&client, &names[3], "{}").await;
    put(
        &client,
        &names[4],
        r#"{"GITHUB_CLIENT_SECRET":"start-test"}"#,
    )
    .await;
    put(
        &client,
        &names[5],
        r#"[{"name":"app","url":"https://app.example.com/hooks","secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}]"#,
    )
    .await;
    // GitHub is configured: the oauth function builds it with the secret's client secret.
    std::env::set_var("TOLLGATE_GITHUB_CLIENT_ID", "start-test-client");
    std::env::set_var("TOLLGATE_TABLE_NAME", tollgate_tests::TEST_TABLE);
    std::env::set_var(
        "TOLLGATE_QUEUE_URL",
        "https://sqs.us-east-1.amazonaws.com/123456789012/tollgate-start.fifo",
    );
    let absent = format!("tollgate-start-{run}/absent");
    let set_all = || {
        for (var, name) in SECRETS.iter().zip(&names) {
            std::env::set_var(var, name);
        }
    };
    let mut starts: Vec<(&str, [bool; 6])> = tollgate_tests::functions()
        .iter()
        .map(|f| (f.name, reads(f.needs)))
        .collect();
    starts.push((
        "webhook-processor",
        [false, false, true, false, false, false],
    ));
    starts.push(("mailer", reads(mailer::NEEDS)));
    for (function, needed) in starts {
        let start = || async {
            match function {
                "webhook-processor" => tollgate::state::processor_from_env().await.map(|_| ()),
                "mailer" => tollgate::state::mailer_from_env().await.map(|_| ()),
                name => AppState::from_env(tollgate_tests::function(name).needs)
                    .await
                    .map(|_| ()),
            }
        };
        set_all();
        let all = start().await;
        assert!(all.is_ok(), "{function} with every secret: {:?}", all.err());
        for (i, var) in SECRETS.iter().enumerate() {
            set_all();
            std::env::set_var(var, &absent);
            match (start().await, needed[i]) {
                (Ok(()), false) => {}
                (Err(StartupError::Secret(SecretError::NotFound(id))), true) => {
                    assert_eq!(id, absent, "{function}: the error names the missing secret")
                }
                (Ok(()), true) => panic!("{function} started without {var}, which it needs"),
                (Err(e), _) => panic!("{function} without {var}: {e:?}"),
            }
        }
    }
}
