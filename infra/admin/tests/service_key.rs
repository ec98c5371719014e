//! `tollgate-admin api-key create-service` against DynamoDB in moto: the key printed once is a
//! service key of the named user, only its hash is stored, and an unknown owner is refused.
//! Without `AWS_ENDPOINT_URL` the test says so and passes, except when `CI=true`.

use std::process::Command;
use tollgate::domain::{ApiKeyKind, User, UserId, UserStatus};
use tollgate::store::dynamo::{ensure_table, DynamoStore};
use tollgate::store::{AccountStore, UserStore};

fn create(table: &str, owner: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate-admin"))
        .args([
            "api-key",
            "create-service",
            "--owner",
            owner,
            "--name",
            "backend",
        ])
        .env("TOLLGATE_TABLE_NAME", table)
        .output()
        .expect("run tollgate-admin")
}

#[tokio::test]
async fn a_service_key_is_created_for_an_existing_user_and_shown_once() {
    if std::env::var("AWS_ENDPOINT_URL").is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true needs AWS_ENDPOINT_URL (moto_server; infra/test.sh starts it)"
        );
        eprintln!("skipped: AWS_ENDPOINT_URL is not set (run infra/test.sh)");
        return;
    }
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let dynamo = aws_sdk_dynamodb::Client::new(&aws);
    let table = format!("tollgate-keys-{}", uuid::Uuid::now_v7().simple());
    ensure_table(&dynamo, &table).await.expect("table");
    let store = DynamoStore::new(dynamo, &table);
    let owner = User {
        id: UserId::new(),
        email: "ops@example.com".into(),
        password_hash: None,
        status: UserStatus::Active,
        email_verified: true,
        name: None,
        roles: vec!["member".into()],
        session_epoch: 0,
        created_at: 1_795_248_000,
        updated_at: 1_795_248_000,
        version: 1,
    };
    store.create_user(&owner).await.expect("create user");
    let out = create(&table, "OPS@example.com");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let id = tollgate::domain::api_key_id(&key).expect("a tg_ key on stdout");
    let stored = store.get_api_key(id).await.expect("read").expect("stored");
    assert_eq!(
        (stored.user_id, stored.kind),
        (owner.id, ApiKeyKind::Service)
    );
    assert_eq!(stored.hash, tollgate::auth::one_time::hash_text(&key));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains(&key),
        "the key goes to stdout only"
    );
    let refused = create(&table, "nobody@example.com");
    assert!(!refused.status.success(), "an unknown owner is refused");
}
