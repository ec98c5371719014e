//! `tollgate-admin`: operator commands.
//!
//! **Bootstrap** the keys and secrets:
//!
//! ```text
//! STRIPE_SECRET_KEY=sk_live_… STRIPE_WEBHOOK_SECRET=whsec_… GITHUB_CLIENT_SECRET=… \
//!   cargo run -p tollgate-admin -- bootstrap --stack tollgate [--rotate-keys]
//! ```
//!
//! It finds the stack's five secrets by their tags; creates the JWT signing key set if its secret
//! has none (or, with `--rotate-keys`, adds a new signing key and drops keys whose tokens have all
//! expired) and publishes the public JWKS in its own secret; and records the provider API keys
//! ([`PROVIDER_KEY_NAMES`]), webhook secrets ([`WEBHOOK_SECRET_NAMES`]) and identity providers'
//! client secrets ([`OAUTH_SECRET_NAMES`] and `OIDC_<NAME>_CLIENT_SECRET`) present in the
//! environment, each group in its secret (values are read from the environment, never from
//! arguments, so they stay out of shell history). Run it again at any time: without
//! `--rotate-keys` and provider variables it changes nothing. It prints key ids and secret names,
//! never values. `--data-dir` does the same for a dev server's `jwt-keys.json`.
//!
//! **Drain the mail outbox** — send every mail still pending (after the mailer's stream retries
//! gave up, e.g. while the SES identity was unverified), with the mailer's own configuration:
//!
//! ```text
//! TOLLGATE_TABLE_NAME=<table> TOLLGATE_MAIL_FROM='App <no-reply@example.com>' \
//!   cargo run -p tollgate-admin -- mail drain [--limit 1000]
//! ```
//!
//! **Create a service key** — an API key for the customer's backend that may track usage for any
//! user (`POST /usage/track` with `user_id`); the key is printed once, on standard output:
//!
//! ```text
//! TOLLGATE_TABLE_NAME=<table> cargo run -p tollgate-admin -- api-key create-service \
//!   --owner ops@example.com --name "billing backend"
//! ```
//!
//! It claims each item as the mailer does, so it never sends a mail the mailer is sending or has
//! sent; it prints what it did (sent, skipped, failed, left for later).
//!
//! **Make the first admin** — the admin API (`/admin/*`) is for users holding the role `admin`:
//!
//! ```text
//! TOLLGATE_TABLE_NAME=<table> TOLLGATE_PROVIDER_SECRETS_ID=<id> \
//!   cargo run -p tollgate-admin -- grant-admin ops@example.com
//! ```
//!
//! **Reconcile** — run the reconciler now (as its schedule does), from the checkpoints or from
//! `--since` (Unix seconds); or resync one user's subscription from the provider:
//!
//! ```text
//! TOLLGATE_TABLE_NAME=<table> TOLLGATE_QUEUE_URL=<queue url> TOLLGATE_PROVIDER_SECRETS_ID=<id> \
//!   cargo run -p tollgate-admin -- reconcile [--since 1796000000]
//! TOLLGATE_TABLE_NAME=<table> TOLLGATE_PROVIDER_SECRETS_ID=<id> \
//!   cargo run -p tollgate-admin -- reconcile --user <user id>
//! ```
//!
//! **Outbound events** — list the dead-letter records (events the customer's endpoints did not
//! accept after every retry), replay them once the endpoint is fixed, and make a signing secret
//! for a new endpoint (configured like the mailer function):
//!
//! ```text
//! TOLLGATE_TABLE_NAME=<table> cargo run -p tollgate-admin -- outbound dead
//! TOLLGATE_TABLE_NAME=<table> cargo run -p tollgate-admin -- outbound replay msg_… [msg_…] | --all-dead
//! cargo run -p tollgate-admin -- outbound new-secret
//! ```
//!
//! **Push the plans** (plans as code) — make Stripe's products and prices match the catalog and
//! write the resulting price ids back into it (`plans` module; `--dry-run` lists the actions and
//! changes nothing):
//!
//! ```text
//! STRIPE_SECRET_KEY=sk_test_… cargo run -p tollgate-admin -- plans push [--dry-run] \
//!   [--file infra/plans.toml]
//! ```

mod plans;

use clap::{Parser, Subcommand};
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::process::ExitCode;
use tollgate::auth::keys::{ensure_signing_keys, KeySecrets};
use tollgate::secrets::providers::{
    is_oauth_secret_name, OAUTH_SECRET_NAMES, PROVIDER_KEY_NAMES, WEBHOOK_SECRET_NAMES,
};
use tollgate::secrets::{record_values, SecretWriter};
use tollgate::{Clock, Config, SystemClock};

/// The secret ids the bootstrap writes.
struct Targets {
    keys: String,
    jwks: String,
    /// `(secret id, names it may hold)` of the provider API keys, the webhook secrets and the
    /// identity providers' client secrets; none for a dev server's data directory (the dev
    /// server reads them from the environment).
    values: Vec<(String, Vec<String>)>,
}

#[derive(Parser)]
#[command(version, about = "Tollgate operator commands")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Operate on the mail outbox.
    Mail {
        #[command(subcommand)]
        command: MailCommand,
    },
    /// Create or rotate the JWT signing key set and record provider secrets from the environment.
    Bootstrap(BootstrapArgs),
    /// Operate on API keys.
    ApiKey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
    /// Grant the admin role to the user with this email (how the first admin is made).
    GrantAdmin {
        /// The user's email.
        email: String,
    },
    /// Repair missed webhooks now (the reconciler), or resync one user from the provider.
    Reconcile {
        /// List from this time (Unix seconds) instead of each provider's checkpoint.
        #[arg(long, conflicts_with = "user")]
        since: Option<i64>,
        /// Resync this user's subscription from the provider instead.
        #[arg(long)]
        user: Option<String>,
    },
    /// Outbound events to the customer's endpoints: the dead-letter records and their replay.
    Outbound {
        #[command(subcommand)]
        command: OutboundCommand,
    },
    /// The plan catalog as code (infra/plans.toml).
    Plans {
        #[command(subcommand)]
        command: PlansCommand,
    },
}

#[derive(Subcommand)]
enum OutboundCommand {
    /// List the dead-letter records: events given up after every attempt (oldest first).
    Dead {
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Replay dead events now: each is attempted at once, and retried with backoff again if an
    /// endpoint still fails (endpoints that accepted it before are not sent it again).
    Replay {
        /// The event ids (`msg_…`, as `outbound dead` lists them).
        #[arg(required_unless_present = "all_dead")]
        ids: Vec<String>,
        /// Every dead event instead.
        #[arg(long, conflicts_with = "ids")]
        all_dead: bool,
    },
    /// Print a new Standard Webhooks signing secret (`whsec_…`) for an endpoint.
    NewSecret,
}

#[derive(Subcommand)]
enum PlansCommand {
    /// Make Stripe's products and prices match the catalog (by lookup key; changed prices are
    /// replaced and the old ones archived) and write the price ids back into the file.
    Push(plans::PushArgs),
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Create a service key owned by an existing user (an operator's account); prints the key
    /// once. Audited on the owner's account (`api_key_created`).
    CreateService {
        /// The owner's email.
        #[arg(long)]
        owner: String,
        /// A name to tell keys apart.
        #[arg(long)]
        name: String,
    },
}

/// The bootstrap's arguments.
#[derive(clap::Args)]
struct BootstrapArgs {
    /// The deployed stack's name: its secrets are found by their `tollgate:stack` tag.
    #[arg(long, conflicts_with_all = ["jwt_keys_secret_id", "data_dir"])]
    stack: Option<String>,
    /// The private signing key set's secret id (name or ARN), instead of --stack.
    #[arg(long, requires_all = ["jwks_secret_id", "provider_secrets_id", "webhook_secrets_id", "oauth_secrets_id"], conflicts_with = "data_dir")]
    jwt_keys_secret_id: Option<String>,
    /// The published JWKS's secret id, with --jwt-keys-secret-id.
    #[arg(long)]
    jwks_secret_id: Option<String>,
    /// The provider API keys' secret id, with --jwt-keys-secret-id.
    #[arg(long)]
    provider_secrets_id: Option<String>,
    /// The webhook signing secrets' secret id, with --jwt-keys-secret-id.
    #[arg(long)]
    webhook_secrets_id: Option<String>,
    /// The identity providers' client secrets' secret id, with --jwt-keys-secret-id.
    #[arg(long)]
    oauth_secrets_id: Option<String>,
    /// A dev server's data directory (its `jwt-keys.json`); provider secrets are not stored
    /// there (the dev server reads them from the environment).
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
    /// Add a new signing key; keys retired more than one access-token lifetime ago are dropped.
    #[arg(long)]
    rotate_keys: bool,
    /// Access-token lifetime in seconds, as deployed (`TOLLGATE_ACCESS_TOKEN_TTL_SECONDS`).
    #[arg(long, env = "TOLLGATE_ACCESS_TOKEN_TTL_SECONDS", default_value_t = Config::default().auth.access_token_ttl)]
    access_token_ttl_seconds: i64,
}

#[derive(Subcommand)]
enum MailCommand {
    /// Send every pending mail of the outbox (oldest first) through SES, configured like the
    /// mailer function (TOLLGATE_TABLE_NAME, TOLLGATE_MAIL_FROM, TOLLGATE_APP_URL, …).
    Drain {
        /// At most this many mails.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Mail {
            command: MailCommand::Drain { limit },
        } => drain_mail(limit).await,
        Command::Bootstrap(args) => bootstrap(args).await,
        Command::ApiKey {
            command: ApiKeyCommand::CreateService { owner, name },
        } => create_service_key(&owner, &name).await,
        Command::GrantAdmin { email } => grant_admin(&email).await,
        Command::Reconcile { since, user } => match user {
            Some(user) => resync_user(&user).await,
            None => reconcile(since).await,
        },
        Command::Plans {
            command: PlansCommand::Push(args),
        } => plans::push(args).await,
        Command::Outbound { command } => outbound(command).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tollgate-admin: {}", tollgate::error::Chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

type Failure = Box<dyn std::error::Error>;

async fn drain_mail(limit: usize) -> Result<(), Failure> {
    let dispatcher = tollgate::state::mail_dispatcher_from_env().await?;
    let report = dispatcher.drain(limit).await?;
    println!(
        "mail outbox: {} sent, {} skipped (nothing to send), {} failed for good, {} left for a later attempt",
        report.sent, report.skipped, report.failed, report.retry
    );
    Ok(())
}

async fn outbound(command: OutboundCommand) -> Result<(), Failure> {
    if let OutboundCommand::NewSecret = command {
        let secret = tollgate::hooks::new_secret().map_err(|e| -> Failure { e })?;
        println!("{secret}");
        return Ok(());
    }
    let worker = tollgate::state::mailer_from_env().await?;
    match command {
        OutboundCommand::Dead { limit } => {
            let dead = worker.outbound.dead(limit).await?;
            for e in &dead {
                println!(
                    "{}\t{}\tuser {}\t{} attempts\tcreated {}\t{}",
                    e.id,
                    e.event_type.as_str(),
                    e.user_id,
                    e.attempts,
                    tollgate::domain::rfc3339(e.created_at),
                    e.last_error.as_deref().unwrap_or_default()
                );
            }
            println!("{} dead outbound event(s)", dead.len());
        }
        OutboundCommand::Replay { ids, all_dead } => {
            let ids = if all_dead {
                worker
                    .outbound
                    .dead(usize::MAX)
                    .await?
                    .into_iter()
                    .map(|e| e.id)
                    .collect()
            } else {
                ids
            };
            for id in ids {
                match worker.outbound.replay(&id).await? {
                    Some(attempt) => println!("{id}: replayed: {attempt:?}"),
                    None => {
                        println!("{id}: not dead (delivered, pending, or unknown): left as it is")
                    }
                }
            }
        }
        OutboundCommand::NewSecret => {}
    }
    Ok(())
}

async fn grant_admin(email: &str) -> Result<(), Failure> {
    let state = tollgate::AppState::from_env(tollgate::Needs {
        accounts: true,
        billing: true,
        ..tollgate::Needs::NOTHING
    })
    .await?;
    let user = state.admin()?.grant_admin_role(email).await?;
    println!(
        "{} ({}) holds the roles [{}]; their next request to /admin/* is allowed",
        user.email,
        user.id,
        user.roles.join(", ")
    );
    Ok(())
}

async fn reconcile(since: Option<i64>) -> Result<(), Failure> {
    let reconciler = tollgate::state::reconciler_from_env().await?;
    let mut failed = false;
    for result in reconciler.run(since).await {
        match result {
            Ok(r) => println!(
                "{}: from {} — {} page(s), {} listed, {} recorded (missed), {} requeued (unprocessed), {} already done, {} unreadable; checkpoint {}",
                r.provider.map_or("?", |p| p.as_str()),
                r.since,
                r.pages,
                r.listed,
                r.recorded,
                r.requeued,
                r.already_done,
                r.unreadable,
                r.checkpoint
            ),
            Err(e) => {
                failed = true;
                eprintln!("reconciling failed: {}", tollgate::error::Chain(&e));
            }
        }
    }
    if failed {
        Err("a provider could not be reconciled; its checkpoint did not move".into())
    } else {
        Ok(())
    }
}

async fn resync_user(user: &str) -> Result<(), Failure> {
    let user_id: tollgate::domain::UserId = user
        .parse()
        .map_err(|_| format!("{user:?} is not a user id"))?;
    let state = tollgate::AppState::from_env(tollgate::Needs {
        billing: true,
        ..tollgate::Needs::NOTHING
    })
    .await?;
    let view = state.billing()?.resync(&user_id).await?;
    println!(
        "{user_id}: plan {} (access {}), status {}",
        view.access.plan,
        view.access.has_access,
        view.subscription
            .as_ref()
            .map_or("none", |s| s.status.as_str())
    );
    Ok(())
}

async fn create_service_key(owner: &str, name: &str) -> Result<(), Failure> {
    let state = tollgate::AppState::from_env(tollgate::Needs {
        accounts: true,
        ..tollgate::Needs::NOTHING
    })
    .await?;
    let auth = state.auth()?;
    let user = auth
        .user_id_by_email(owner)
        .await?
        .ok_or_else(|| format!("no user with the email {owner:?}"))?;
    let origin = tollgate::domain::RequestOrigin {
        ip: None,
        user_agent: Some("tollgate-admin".to_owned()),
    };
    let created = auth
        .create_api_key(
            &user,
            tollgate::domain::ApiKeyKind::Service,
            name,
            None,
            &origin,
        )
        .await?;
    eprintln!(
        "service key {} ({name}) owned by {owner}: shown once, below",
        created.key.prefix()
    );
    println!("{}", created.secret);
    Ok(())
}

async fn bootstrap(args: BootstrapArgs) -> Result<(), Failure> {
    let BootstrapArgs {
        stack,
        jwt_keys_secret_id,
        jwks_secret_id,
        provider_secrets_id,
        webhook_secrets_id,
        oauth_secrets_id,
        data_dir,
        rotate_keys,
        access_token_ttl_seconds,
    } = args;
    {
        let (store, targets): (Box<dyn SecretWriter>, Targets) = if let Some(dir) = data_dir {
            let config = Config::default();
            (
                Box::new(tollgate::secrets::FileSecretSource::new(dir)),
                Targets {
                    keys: config.jwt_keys_secret_id,
                    jwks: config.jwks_secret_id,
                    values: Vec::new(),
                },
            )
        } else {
            let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            let source = tollgate::secrets::aws::AwsSecretSource::new(
                aws_sdk_secretsmanager::Client::new(&aws),
            );
            let ids = match (
                stack,
                jwt_keys_secret_id,
                jwks_secret_id,
                provider_secrets_id,
                webhook_secrets_id,
                oauth_secrets_id,
            ) {
                (Some(stack), ..) => {
                    let found = source.find_stack_secrets(&stack).await?;
                    (
                        found.jwt_keys,
                        found.jwks,
                        found.provider_secrets,
                        found.webhook_secrets,
                        found.oauth_secrets,
                    )
                }
                (None, Some(k), Some(j), Some(p), Some(w), Some(o)) => (k, j, p, w, o),
                _ => {
                    return Err(
                        "give --stack, or --jwt-keys-secret-id with the four other secret ids, or --data-dir"
                            .into(),
                    )
                }
            };
            let fixed = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect();
            // OIDC providers' secrets have the provider's name in theirs: every such variable
            // that is set may be recorded.
            let mut oauth_names: Vec<String> = fixed(&OAUTH_SECRET_NAMES);
            for (name, _) in std::env::vars() {
                if is_oauth_secret_name(&name) && !oauth_names.contains(&name) {
                    oauth_names.push(name);
                }
            }
            (
                Box::new(source),
                Targets {
                    keys: ids.0,
                    jwks: ids.1,
                    values: vec![
                        (ids.2, fixed(&PROVIDER_KEY_NAMES)),
                        (ids.3, fixed(&WEBHOOK_SECRET_NAMES)),
                        (ids.4, oauth_names),
                    ],
                },
            )
        };
        let report = ensure_signing_keys(
            store.as_ref(),
            KeySecrets {
                private: &targets.keys,
                public: &targets.jwks,
            },
            rotate_keys,
            SystemClock.now(),
            access_token_ttl_seconds,
        )
        .await?;
        println!(
            "signing keys in {}: {} ; signing kid {} ; JWKS in {} publishes {} key(s): {} ; dropped {}",
            targets.keys,
            report.action,
            report.signing_kid,
            targets.jwks,
            report.published.len(),
            report.published.join(", "),
            report.dropped
        );
        for (id, names) in &targets.values {
            let values: BTreeMap<String, SecretString> = names
                .iter()
                .filter_map(|name| {
                    std::env::var(name)
                        .ok()
                        .filter(|v| !v.trim().is_empty())
                        .map(|v| (name.clone(), SecretString::from(v)))
                })
                .collect();
            let allowed: Vec<&str> = names.iter().map(String::as_str).collect();
            let set = record_values(store.as_ref(), id, &allowed, &values).await?;
            println!(
                "{id}: updated {} ; set now: {}",
                if values.is_empty() {
                    "none".to_owned()
                } else {
                    values.keys().cloned().collect::<Vec<_>>().join(", ")
                },
                if set.is_empty() {
                    "none".to_owned()
                } else {
                    set.join(", ")
                }
            );
        }
        Ok(())
    }
}
