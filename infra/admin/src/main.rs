//! `tollgate-admin`: operator commands. Today one, the keys-and-secrets bootstrap:
//!
//! ```text
//! STRIPE_SECRET_KEY=sk_live_… STRIPE_WEBHOOK_SECRET=whsec_… \
//!   cargo run -p tollgate-admin -- bootstrap --stack tollgate [--rotate-keys]
//! ```
//!
//! It finds the stack's two secrets by their tags, creates the JWT signing key set if the secret
//! has none (or, with `--rotate-keys`, adds a new signing key and drops keys whose tokens have all
//! expired), and records the provider secrets present in the environment (names of
//! [`tollgate::secrets::providers::PROVIDER_SECRET_NAMES`]; values are read from the environment,
//! never from arguments, so they stay out of shell history). Run it again at any time: without
//! `--rotate-keys` and provider variables it changes nothing. It prints key ids and secret names,
//! never values. `--data-dir` does the same for a dev server's `jwt-keys.json`.

use clap::{Parser, Subcommand};
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::process::ExitCode;
use tollgate::secrets::bootstrap::{ensure_signing_keys, record_provider_secrets};
use tollgate::secrets::providers::PROVIDER_SECRET_NAMES;
use tollgate::secrets::SecretWriter;
use tollgate::{Clock, Config, SystemClock};

#[derive(Parser)]
#[command(version, about = "Tollgate operator commands")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create or rotate the JWT signing key set and record provider secrets from the environment.
    Bootstrap {
        /// The deployed stack's name: its secrets are found by their `tollgate:stack` tag.
        #[arg(long, conflicts_with_all = ["jwt_keys_secret_id", "data_dir"])]
        stack: Option<String>,
        /// The signing key set's secret id (name or ARN), instead of --stack.
        #[arg(long, requires = "provider_secrets_id", conflicts_with = "data_dir")]
        jwt_keys_secret_id: Option<String>,
        /// The provider secret's id (name or ARN), with --jwt-keys-secret-id.
        #[arg(long)]
        provider_secrets_id: Option<String>,
        /// A dev server's data directory (its `jwt-keys.json`); provider secrets are not stored
        /// there (the dev server reads them from the environment).
        #[arg(long)]
        data_dir: Option<std::path::PathBuf>,
        /// Add a new signing key; keys retired more than one access-token lifetime ago are dropped.
        #[arg(long)]
        rotate_keys: bool,
        /// Access-token lifetime in seconds, as deployed (`TOLLGATE_ACCESS_TOKEN_TTL_SECONDS`).
        #[arg(long, env = "TOLLGATE_ACCESS_TOKEN_TTL_SECONDS", default_value_t = Config::default().access_token_ttl)]
        access_token_ttl_seconds: i64,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let Command::Bootstrap {
        stack,
        jwt_keys_secret_id,
        provider_secrets_id,
        data_dir,
        rotate_keys,
        access_token_ttl_seconds,
    } = Cli::parse().command;
    let result = async {
        let (store, keys_id, providers_id): (Box<dyn SecretWriter>, String, Option<String>) =
            if let Some(dir) = data_dir {
                let config = Config::default();
                (
                    Box::new(tollgate::secrets::FileSecretSource::new(dir)),
                    config.jwt_keys_secret_id,
                    None,
                )
            } else {
                let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
                let source = tollgate::secrets::aws::AwsSecretSource::new(
                    aws_sdk_secretsmanager::Client::new(&aws),
                );
                let (keys, providers) = match (stack, jwt_keys_secret_id, provider_secrets_id) {
                    (Some(stack), _, _) => {
                        let found = source.find_stack_secrets(&stack).await?;
                        (found.jwt_keys, found.provider_secrets)
                    }
                    (None, Some(k), Some(p)) => (k, p),
                    _ => {
                        return Err(
                            "give --stack, or --jwt-keys-secret-id with --provider-secrets-id, or --data-dir"
                                .into(),
                        )
                    }
                };
                (Box::new(source), keys, Some(providers))
            };
        let report = ensure_signing_keys(
            store.as_ref(),
            &keys_id,
            rotate_keys,
            SystemClock.now(),
            access_token_ttl_seconds,
        )
        .await?;
        println!(
            "signing keys in {keys_id}: {} ; signing kid {} ; JWKS publishes {} key(s): {} ; dropped {}",
            report.action,
            report.signing_kid,
            report.published.len(),
            report.published.join(", "),
            report.dropped
        );
        if let Some(id) = providers_id {
            let values: BTreeMap<String, SecretString> = PROVIDER_SECRET_NAMES
                .iter()
                .filter_map(|name| {
                    std::env::var(name)
                        .ok()
                        .filter(|v| !v.trim().is_empty())
                        .map(|v| ((*name).to_owned(), SecretString::from(v)))
                })
                .collect();
            let set = record_provider_secrets(store.as_ref(), &id, &values).await?;
            println!(
                "provider secrets in {id}: updated {} ; set now: {}",
                if values.is_empty() { "none".to_owned() } else { values.keys().cloned().collect::<Vec<_>>().join(", ") },
                if set.is_empty() { "none (billing answers 503 until a provider key is recorded)".to_owned() } else { set.join(", ") }
            );
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tollgate-admin: {e}");
            ExitCode::FAILURE
        }
    }
}
