//! `dev-server`: the whole Tollgate API on `127.0.0.1:3000` (by default), on an embedded store
//! persisted under `--data-dir`. Stop it with Ctrl-C (or SIGTERM): pending writes are flushed.

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tollgate::domain::Provider;
use tollgate::payments::signature::WebhookSecrets;

/// Command-line options.
#[derive(Parser, Debug)]
#[command(about = "Tollgate's whole API on one local port, on an embedded store")]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "TOLLGATE_ADDR", default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
    /// Where the store and the generated development signing key live.
    #[arg(long, env = "TOLLGATE_DATA_DIR", default_value = ".tollgate")]
    data_dir: PathBuf,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,dev_server=info".into()),
        )
        .with_target(false)
        .compact()
        .init();
    let args = Args::parse();
    // The issuer (and with it the default checkout redirect URLs) is this server's address
    // unless set explicitly.
    if std::env::var("TOLLGATE_ISSUER").is_err() {
        std::env::set_var("TOLLGATE_ISSUER", format!("http://{}", args.addr));
    }
    let mut config = tollgate::Config::from_env()?;
    // Local HTTP: browsers accept Secure cookies on localhost, curl does not; default it off here.
    if std::env::var("TOLLGATE_COOKIE_SECURE").is_err() {
        config.cookie_secure = false;
    }
    let base_url = format!("http://{}", args.addr);
    let (mut components, store) =
        tollgate::state::embedded_components(config, &args.data_dir).await?;
    // Without a Stripe key, the offline Stripe stand-in answers Stripe's part: it signs its
    // events with a secret made for this run, added to the Stripe webhook secrets.
    let stand_in = if components.providers.get(Provider::Stripe).is_none() {
        let secret = format!("whsec_local_{}", uuid::Uuid::now_v7().simple());
        let configured = std::env::var("STRIPE_WEBHOOK_SECRET").unwrap_or_default();
        components.webhook_secrets.insert(
            Provider::Stripe,
            WebhookSecrets::parse(&format!("{configured},{secret}"))?,
        );
        let stand_in = Arc::new(dev_server::offline_stripe::OfflineStripe::new(
            base_url,
            secret,
            args.data_dir.join("local-provider.json"),
        ));
        components.providers = components.providers.with(stand_in.clone());
        Some(stand_in)
    } else {
        None
    };
    let (queue, rx) = tollgate::queue::InProcessQueue::new();
    components.queue = Some(Arc::new(queue));
    let worker = dev_server::spawn_worker(Arc::new(components.processor()), rx);
    let smtp_url = std::env::var("TOLLGATE_SMTP_URL")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let mailer = Arc::new(
        dev_server::mail::DevMailer::new(
            args.data_dir.join("mail"),
            smtp_url.as_deref(),
            &components.config.mail.from,
        )
        .map_err(|e| format!("mail: {e}"))?,
    );
    let templates = tollgate::state::load_templates(&components.config)?;
    let mail_delay = std::env::var("TOLLGATE_DEV_MAIL_DELAY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(std::time::Duration::from_millis)
        .unwrap_or_default();
    let mail_worker = dev_server::mail::spawn_worker(
        Arc::new(components.dispatcher(mailer.clone(), templates)),
        mail_delay,
    );
    let endpoints = match std::env::var("TOLLGATE_OUTBOUND_ENDPOINTS") {
        Ok(json) if !json.trim().is_empty() => tollgate::hooks::parse_endpoints(&json)
            .map_err(|e| format!("TOLLGATE_OUTBOUND_ENDPOINTS: {e}"))?,
        _ => Vec::new(),
    };
    let outbound_worker = dev_server::mail::spawn_outbound_worker(Arc::new(components.outbound(
        Arc::new(tollgate::hooks::http::HttpHookSender::new()?),
        endpoints,
    )));
    let state = tollgate::AppState::assemble(&components, tollgate::Needs::ALL);
    let flusher = store.spawn_flusher();
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    tracing::info!(
        addr = %args.addr,
        data_dir = %args.data_dir.display(),
        providers = ?components.providers,
        offline_stripe = stand_in.is_some(),
        smtp = smtp_url.is_some(),
        "Tollgate dev server listening; mail at /dev/mail"
    );
    let app = dev_server::app_with(
        state,
        dev_server::DevParts {
            stripe: stand_in,
            mail: Some(mailer),
        },
    );
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown())
    .await?;
    flusher.abort();
    worker.abort();
    mail_worker.abort();
    outbound_worker.abort();
    store.flush()?;
    tracing::info!("stopped; store flushed");
    Ok(())
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return ctrl_c.await.unwrap_or(()),
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
