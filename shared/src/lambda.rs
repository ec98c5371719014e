//! The Lambda entry helper: every function's `main.rs` is one call to [`run_http`].

use crate::state::AppState;
use axum::Router;

/// Initialises JSON logs (`RUST_LOG` as `target=level,…`, default `info`), builds
/// [`AppState::from_env`] once per cold start, and serves `routes` through `lambda_http` (API Gateway HTTP API, payload v2).
///
/// # Errors
/// Start-up errors (configuration, secrets, keys) end the init phase with the error logged.
pub async fn run_http(routes: Router<AppState>) -> Result<(), lambda_http::Error> {
    init_tracing();
    let state = AppState::from_env().await.map_err(|e| {
        tracing::error!(error = %e, "start-up failed");
        e
    })?;
    lambda_http::run(crate::http_app(routes, state)).await
}

/// The SQS entry point of the webhook processor: builds [`AppState::processor_from_env`] once
/// (no signing keys: the processor issues no tokens), then for
/// each batch parses every record alone (a record that does not parse is reported failed, not the
/// batch), processes them and returns the partial batch failure response
/// (`ReportBatchItemFailures`).
///
/// # Errors
/// Start-up errors end the init phase with the error logged.
pub async fn run_sqs() -> Result<(), lambda_runtime::Error> {
    use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
    init_tracing();
    let processor = AppState::processor_from_env().await.map_err(|e| {
        tracing::error!(error = %e, "start-up failed");
        e
    })?;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<SqsEvent>| {
            let processor = processor.clone();
            async move {
                let (items, mut failed) = crate::webhooks::process::batch_from_sqs(event.payload);
                failed.extend(processor.process_batch(items).await);
                let mut response = SqsBatchResponse::default();
                response.batch_item_failures = failed
                    .into_iter()
                    .map(|id| {
                        let mut f = BatchItemFailure::default();
                        f.item_identifier = id;
                        f
                    })
                    .collect();
                Ok::<_, lambda_runtime::Error>(response)
            }
        },
    ))
    .await
}

/// JSON logs filtered by `RUST_LOG` in `tracing`'s `target=level,…` syntax (default `info`; an
/// unparsable value falls back to `info`). `filter::Targets` rather than `EnvFilter`: the same
/// syntax for targets and levels, and the linker can drop the regex engine EnvFilter needs for
/// its span and field filters (no function uses them).
fn init_tracing() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter: tracing_subscriber::filter::Targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            tracing_subscriber::filter::Targets::new()
                .with_default(tracing_subscriber::filter::LevelFilter::INFO)
        });
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(false)
                .without_time(), // CloudWatch stamps each line
        )
        .with(filter)
        .try_init();
}
