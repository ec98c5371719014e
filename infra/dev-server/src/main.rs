//! `dev-server`: the whole Tollgate API on `127.0.0.1:3000` (by default), on an embedded store
//! persisted under `--data-dir`. Stop it with Ctrl-C (or SIGTERM): pending writes are flushed.

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;

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
    let mut config = tollgate::Config::from_env()?;
    // Local HTTP: browsers accept Secure cookies on localhost, curl does not; default it off here.
    if std::env::var("TOLLGATE_COOKIE_SECURE").is_err() {
        config.cookie_secure = false;
    }
    if std::env::var("TOLLGATE_ISSUER").is_err() {
        config.issuer = format!("http://{}", args.addr);
    }
    let (state, store) = tollgate::AppState::embedded(config, &args.data_dir).await?;
    let flusher = store.spawn_flusher();
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    tracing::info!(addr = %args.addr, data_dir = %args.data_dir.display(), "Tollgate dev server listening");
    axum::serve(listener, dev_server::app(state))
        .with_graceful_shutdown(shutdown())
        .await?;
    flusher.abort();
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
