//! `tollgate-admin bootstrap` against Secrets Manager in moto (`AWS_ENDPOINT_URL`, started by
//! `infra/test.sh`): the five secrets are created and tagged as `template.yaml` does, the binary
//! finds them by stack name, creates the key set and publishes its JWKS, records the provider API
//! keys, the webhook secrets and the identity providers' client secrets — each in its own
//! secret — from the environment without printing
//! them, and a rotation keeps the old key published. Without `AWS_ENDPOINT_URL`
//! the test says so and passes, except when `CI=true`, where it fails.

use aws_sdk_secretsmanager::types::Tag;
use std::process::Command;
use tollgate::secrets::aws::{
    AwsSecretSource, JWKS_ROLE, JWT_KEYS_ROLE, OAUTH_SECRETS_ROLE, PROVIDER_SECRETS_ROLE, ROLE_TAG,
    STACK_TAG, WEBHOOK_SECRETS_ROLE,
};
use tollgate::secrets::SecretSource;

async fn client() -> Option<aws_sdk_secretsmanager::Client> {
    if std::env::var("AWS_ENDPOINT_URL").is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true needs AWS_ENDPOINT_URL (moto_server; infra/test.sh starts it)"
        );
        eprintln!("skipped: AWS_ENDPOINT_URL is not set (run infra/test.sh)");
        return None;
    }
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    Some(aws_sdk_secretsmanager::Client::new(&aws))
}

/// Creates an empty secret tagged like the template's (no value, as CloudFormation leaves it).
async fn create(client: &aws_sdk_secretsmanager::Client, stack: &str, role: &str) -> String {
    client
        .create_secret()
        .name(format!("{stack}-{role}"))
        .tags(Tag::builder().key(STACK_TAG).value(stack).build())
        .tags(Tag::builder().key(ROLE_TAG).value(role).build())
        .send()
        .await
        .expect("create secret")
        .arn
        .expect("arn")
}

fn admin(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate-admin"));
    cmd.args(args);
    for (name, _) in std::env::vars() {
        if tollgate::secrets::providers::PROVIDER_KEY_NAMES.contains(&name.as_str())
            || tollgate::secrets::providers::WEBHOOK_SECRET_NAMES.contains(&name.as_str())
            || tollgate::secrets::providers::is_oauth_secret_name(&name)
        {
            cmd.env_remove(name);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run tollgate-admin");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn kids(json: &str) -> Vec<String> {
    let set = tollgate::auth::KeySet::from_json(json, "i", "a").expect("a usable key set");
    set.public()
        .jwks()
        .keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect()
}

#[tokio::test]
async fn bootstrap_finds_the_stack_secrets_creates_keys_records_secrets_and_rotates() {
    let Some(client) = client().await else {
        return;
    };
    let stack = format!("tg-admin-{}", std::process::id());
    let keys_arn = create(&client, &stack, JWT_KEYS_ROLE).await;
    let jwks_arn = create(&client, &stack, JWKS_ROLE).await;
    let providers_arn = create(&client, &stack, PROVIDER_SECRETS_ROLE).await;
    let webhooks_arn = create(&client, &stack, WEBHOOK_SECRETS_ROLE).await;
    let oauth_arn = create(&client, &stack, OAUTH_SECRETS_ROLE).await;
    // Another stack's secrets are never touched.
    let other = create(&client, &format!("{stack}-other"), JWT_KEYS_ROLE).await;
    let source = AwsSecretSource::new(client.clone());
    let found = source.find_stack_secrets(&stack).await.expect("found");
    assert_eq!(
        [
            found.jwt_keys.as_str(),
            found.jwks.as_str(),
            found.provider_secrets.as_str(),
            found.webhook_secrets.as_str(),
            found.oauth_secrets.as_str(),
        ],
        [
            keys_arn.as_str(),
            jwks_arn.as_str(),
            providers_arn.as_str(),
            webhooks_arn.as_str(),
            oauth_arn.as_str(),
        ]
    );

    let secret_value = "sk_test_bootstrap_never_printed";
    let (ok, out) = admin(
        &["bootstrap", "--stack", &stack],
        &[
            ("STRIPE_SECRET_KEY", secret_value),
            ("STRIPE_WEBHOOK_SECRET", "whsec_never_printed"),
            ("GITHUB_CLIENT_SECRET", "gh_never_printed"),
            ("OIDC_KEYCLOAK_CLIENT_SECRET", "kc_never_printed"),
        ],
    );
    assert!(ok, "{out}");
    assert!(
        !out.contains("never_printed"),
        "a secret value was printed: {out}"
    );
    let keys = source.get_secret(&keys_arn).await.expect("keys stored");
    let first = kids(secrecy::ExposeSecret::expose_secret(&keys));
    assert_eq!(first.len(), 1);
    assert!(out.contains(&first[0]), "{out}");
    let providers = source
        .get_secret(&providers_arn)
        .await
        .expect("providers stored");
    let map: std::collections::BTreeMap<String, String> =
        serde_json::from_str(secrecy::ExposeSecret::expose_secret(&providers))
            .expect("json object");
    assert_eq!(
        map.get("STRIPE_SECRET_KEY").map(String::as_str),
        Some(secret_value)
    );
    assert!(
        !map.contains_key("STRIPE_WEBHOOK_SECRET"),
        "webhook secrets are kept apart from API keys: {map:?}"
    );
    let parsed = tollgate::secrets::providers::ProviderKeys::from_json(&providers)
        .expect("readable by the functions");
    assert!(parsed.stripe_secret_key.is_some());
    let hooks = source
        .get_secret(&webhooks_arn)
        .await
        .expect("webhook secrets stored");
    let hooks = tollgate::secrets::providers::WebhookSigningSecrets::from_json(&hooks)
        .expect("readable by ingest");
    assert!(hooks.stripe.is_some() && hooks.whop.is_none());
    // The identity providers' client secrets, fixed and per-OIDC-provider names, in their own
    // secret (only the oauth function reads it).
    let oauth = source
        .get_secret(&oauth_arn)
        .await
        .expect("oauth secrets stored");
    let oauth = tollgate::secrets::providers::OAuthClientSecrets::from_json(&oauth)
        .expect("readable by the oauth function");
    for (name, value) in [
        ("GITHUB_CLIENT_SECRET", "gh_never_printed"),
        ("OIDC_KEYCLOAK_CLIENT_SECRET", "kc_never_printed"),
    ] {
        assert_eq!(
            oauth.get(name).map(secrecy::ExposeSecret::expose_secret),
            Some(value),
            "{name}"
        );
    }
    assert!(
        !map.contains_key("GITHUB_CLIENT_SECRET"),
        "client secrets are kept apart from API keys: {map:?}"
    );
    // The published JWKS is the key set's public half, and parses as a JWKS.
    let jwks = source.get_secret(&jwks_arn).await.expect("jwks stored");
    let public = tollgate::auth::PublicKeys::from_json(
        secrecy::ExposeSecret::expose_secret(&jwks),
        "i",
        "a",
    )
    .expect("a JWKS");
    assert_eq!(
        public
            .jwks()
            .keys
            .iter()
            .filter_map(|k| k.common.key_id.clone())
            .collect::<Vec<_>>(),
        first
    );
    assert!(
        !secrecy::ExposeSecret::expose_secret(&jwks).contains("PRIVATE"),
        "no private key in the JWKS"
    );

    // Running again changes nothing; rotating adds a signing key and keeps the old one published.
    let (ok, out) = admin(&["bootstrap", "--stack", &stack], &[]);
    assert!(ok && out.contains("kept"), "{out}");
    let (ok, out) = admin(&["bootstrap", "--stack", &stack, "--rotate-keys"], &[]);
    assert!(ok && out.contains("rotated"), "{out}");
    let rotated = kids(secrecy::ExposeSecret::expose_secret(
        &source.get_secret(&keys_arn).await.expect("keys"),
    ));
    assert_eq!(rotated.len(), 2);
    assert!(
        rotated.contains(&first[0]),
        "the old key is still published"
    );
    let providers_after = source.get_secret(&providers_arn).await.expect("providers");
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(&providers_after),
        secrecy::ExposeSecret::expose_secret(&providers),
        "provider secrets untouched without variables"
    );
    assert!(
        matches!(
            source.get_secret(&other).await,
            Err(tollgate::secrets::SecretError::NotFound(_))
        ),
        "the other stack's secret still has no value"
    );

    // A wrong stack name is a clear error.
    let (ok, out) = admin(&["bootstrap", "--stack", "no-such-stack"], &[]);
    assert!(!ok && out.contains("no-such-stack"), "{out}");
}
