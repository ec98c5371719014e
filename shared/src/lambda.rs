//! The Lambda entry helpers: every function's `main.rs` is one call to [`run_http`] (or
//! [`run_sqs`] for the webhook processor).

use crate::auth::authorizer::AuthorizerContext;
use crate::error::Chain;
use crate::http::{ClientIp, RequestId};
use crate::state::{AppState, Needs};
use crate::webhooks::BatchItem;
use axum::Router;

/// Initialises JSON logs (`RUST_LOG` as `target=level,…`, default `info`), builds
/// [`AppState::from_env`] for `needs` once per cold start, and serves `routes` through
/// `lambda_http` (API Gateway HTTP API, payload v2), each request's span carrying API Gateway's
/// `requestContext.requestId`.
///
/// # Errors
/// Start-up errors (configuration, secrets, keys) end the init phase with the error logged.
pub async fn run_http(routes: Router<AppState>, needs: Needs) -> Result<(), lambda_http::Error> {
    init_tracing();
    let state = AppState::from_env(needs)
        .await
        .inspect_err(|e| tracing::error!(error = %Chain(e), "start-up failed"))?;
    lambda_http::run(app(routes, state)).await
}

/// The app a Lambda serves: [`crate::http::app`], with API Gateway's
/// `requestContext.requestId` (which `lambda_http` leaves in the request's extensions) as each
/// request's id, so logs, `x-request-id` and 5xx problem bodies carry the id API Gateway logs,
/// `requestContext.http.sourceIp` as the [`ClientIp`], and a Lambda authorizer's
/// `requestContext.authorizer.lambda` as the [`AuthorizerContext`] (routes behind the Tollgate
/// authorizer).
pub fn app(routes: Router<AppState>, state: AppState) -> Router {
    crate::http::app(routes, state).layer(axum::middleware::map_request(
        |mut req: axum::extract::Request| async move {
            use lambda_http::RequestExt as _;
            let (id, ip, authorized) = match req.request_context_ref() {
                Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) => (
                    ctx.request_id.clone(),
                    ctx.http.source_ip.clone(),
                    ctx.authorizer
                        .as_ref()
                        .map(|a| &a.fields)
                        .filter(|fields| !fields.is_empty())
                        .and_then(|fields| {
                            serde_json::to_value(fields)
                                .and_then(serde_json::from_value::<AuthorizerContext>)
                                .ok()
                        }),
                ),
                _ => (None, None, None),
            };
            if let Some(id) = id {
                req.extensions_mut().insert(RequestId(id));
            }
            if let Some(ip) = ip {
                req.extensions_mut().insert(ClientIp(ip));
            }
            if let Some(context) = authorized {
                req.extensions_mut().insert(context);
            }
            req
        },
    ))
}

/// The entry point of the `authorizer` function (an API Gateway HTTP API Lambda authorizer,
/// payload 2.0, simple responses): builds [`AppState::from_env`] for `needs` once, then answers
/// each request event with [`authorize_event`].
///
/// # Errors
/// Start-up errors end the init phase with the error logged.
pub async fn run_authorizer(needs: Needs) -> Result<(), lambda_runtime::Error> {
    use aws_lambda_events::event::apigw::ApiGatewayV2CustomAuthorizerV2Request;
    init_tracing();
    let state = AppState::from_env(needs)
        .await
        .inspect_err(|e| tracing::error!(error = %Chain(e), "start-up failed"))?;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<ApiGatewayV2CustomAuthorizerV2Request>| {
            let state = state.clone();
            async move { Ok::<_, lambda_runtime::Error>(authorize_event(&state, event.payload).await) }
        },
    ))
    .await
}

/// Answers one authorizer request: the bearer credential of its `Authorization` header (the
/// identity source) through [`Auth::authorize`](crate::auth::Auth::authorize). Authorized:
/// `isAuthorized: true` with the [`AuthorizerContext`]; refused: `isAuthorized: false` (API
/// Gateway answers 403), with the reason — `no_credential`, `invalid_token`, `invalid_api_key`,
/// `account_disabled`, `rate_limited`, `store_unavailable` — in the log, never the credential.
/// A function built without accounts or keys refuses everything (logged as a start-up bug).
pub async fn authorize_event(
    state: &AppState,
    event: aws_lambda_events::event::apigw::ApiGatewayV2CustomAuthorizerV2Request,
) -> aws_lambda_events::event::apigw::ApiGatewayV2CustomAuthorizerSimpleResponse<
    Option<AuthorizerContext>,
> {
    let mut response = aws_lambda_events::event::apigw::ApiGatewayV2CustomAuthorizerSimpleResponse::<
        Option<AuthorizerContext>,
    >::default();
    let credential = crate::http::bearer(&event.headers).ok();
    let route = event.route_key.as_deref().unwrap_or_default();
    let (auth, verifier) = match (state.auth(), state.verifier()) {
        (Ok(auth), Ok(verifier)) => (auth, verifier),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "the authorizer was built without accounts or keys");
            return response;
        }
    };
    match auth.authorize(verifier, credential).await {
        Ok(authorized) => {
            tracing::info!(route, user_id = %authorized.user_id, key_id = authorized.key_id.as_deref().unwrap_or("-"), "authorized");
            response.is_authorized = true;
            response.context = Some(AuthorizerContext::from(&authorized));
        }
        Err(refusal) => {
            tracing::info!(route, reason = refusal.reason(), detail = %refusal, "refused");
        }
    }
    response
}

/// The SQS entry point of the webhook processor: builds
/// [`processor_from_env`](crate::state::processor_from_env) once (no signing keys: the processor
/// issues no tokens), then for each batch parses every record alone (a record that does not parse
/// is reported failed, not the batch), processes them and returns the partial batch failure
/// response (`ReportBatchItemFailures`).
///
/// # Errors
/// Start-up errors end the init phase with the error logged.
pub async fn run_sqs() -> Result<(), lambda_runtime::Error> {
    use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
    init_tracing();
    let processor = crate::state::processor_from_env()
        .await
        .inspect_err(|e| tracing::error!(error = %Chain(e), "start-up failed"))?;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<SqsEvent>| {
            let processor = processor.clone();
            async move {
                let (items, mut failed) = batch_from_sqs(event.payload);
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

/// Runs the reconciler Lambda: each invocation (an EventBridge schedule's event, or any JSON; an
/// optional `since` in Unix seconds overrides the checkpoints) reconciles every configured
/// provider and answers the reports. If any provider failed the invocation fails (its error in
/// the log), so the function's `Errors` metric and alarm see it; the providers that succeeded
/// have moved their checkpoints.
///
/// # Errors
/// Start-up failures; an invocation's failure is reported to the runtime, which records it.
pub async fn run_reconciler() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let reconciler = crate::state::reconciler_from_env()
        .await
        .inspect_err(|e| tracing::error!(error = %Chain(e), "start-up failed"))?;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            let reconciler = reconciler.clone();
            async move {
                let since = event
                    .payload
                    .get("since")
                    .and_then(serde_json::Value::as_i64);
                reconcile_answer(&reconciler, since).await
            }
        },
    ))
    .await
}

/// One reconciler invocation's answer: `{reports: [{provider, since, pages, listed, recorded,
/// requeued, already_done, unreadable, checkpoint}]}`, or an error naming the providers that
/// failed (each failure logged with its cause).
///
/// # Errors
/// When any provider's run failed.
pub async fn reconcile_answer(
    reconciler: &crate::webhooks::Reconciler,
    since: Option<i64>,
) -> Result<serde_json::Value, lambda_runtime::Error> {
    let mut reports = Vec::new();
    let mut failed = Vec::new();
    for result in reconciler.run(since).await {
        match result {
            Ok(r) => reports.push(serde_json::json!({
                "provider": r.provider.map(|p| p.as_str()),
                "since": r.since,
                "pages": r.pages,
                "listed": r.listed,
                "recorded": r.recorded,
                "requeued": r.requeued,
                "already_done": r.already_done,
                "unreadable": r.unreadable,
                "checkpoint": r.checkpoint,
            })),
            Err(e) => {
                tracing::error!(error = %Chain(&e), "reconciling failed; the checkpoint stays");
                failed.push(e.to_string());
            }
        }
    }
    if failed.is_empty() {
        Ok(serde_json::json!({ "reports": reports }))
    } else {
        Err(failed.join("; ").into())
    }
}

/// Reads an SQS batch: each record's body must be an event pointer
/// (`crate::queue::EventMessage`) and carry a `MessageGroupId` (else the event id is its
/// group). Returns the items to process and the message ids of records that do not parse
/// (reported failed so they reach the dead-letter queue instead of being lost).
pub fn batch_from_sqs(
    event: aws_lambda_events::event::sqs::SqsEvent,
) -> (Vec<BatchItem>, Vec<String>) {
    let mut items = Vec::new();
    let mut failed = Vec::new();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let message = record
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str::<crate::queue::EventMessage>(b).ok());
        match message {
            Some(message) => items.push(BatchItem {
                group_id: record
                    .attributes
                    .get("MessageGroupId")
                    .cloned()
                    .unwrap_or_else(|| message.event_id.to_string()),
                message_id: id,
                message,
            }),
            None => {
                tracing::error!(message_id = %id, "unreadable SQS record: reporting it failed");
                failed.push(id);
            }
        }
    }
    (items, failed)
}

/// The entry point of the `mailer` function, the outbox worker: builds
/// [`mailer_from_env`](crate::state::mailer_from_env) once (no signing keys, no provider
/// secrets), then answers two kinds of invocation:
/// - a DynamoDB stream batch: the new `MAIL#` items are delivered in order
///   ([`crate::mail::Dispatcher::deliver_in_order`]) and the first one not delivered is reported
///   as the partial batch failure (`ReportBatchItemFailures`), so the stream retries from it;
///   then each new `HOOK#` item gets its first delivery attempt (one that fails is rescheduled
///   in the store with backoff, not retried by the stream);
/// - the scheduled sweep (EventBridge): every outbound event whose retry is due is attempted
///   ([`OutboundDispatcher::sweep`](crate::webhooks::outbound::OutboundDispatcher::sweep)); the
///   answer is the sweep's report, and the invocation fails if the events cannot be listed.
///
/// # Errors
/// Start-up errors end the init phase with the error logged.
#[cfg(all(feature = "mail", feature = "ses", feature = "hooks"))]
pub async fn run_mailer() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let worker = crate::state::mailer_from_env()
        .await
        .inspect_err(|e| tracing::error!(error = %Chain(e), "start-up failed"))?;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            let worker = worker.clone();
            async move { mailer_answer(&worker, event.payload).await }
        },
    ))
    .await
}

/// One invocation of the `mailer` function (see [`run_mailer`]): a stream batch (it has
/// `Records`) or the scheduled sweep (anything else).
///
/// # Errors
/// A payload with `Records` that is not a DynamoDB stream event; a sweep that cannot list the
/// outbound events.
#[cfg(all(feature = "mail", feature = "ses", feature = "hooks"))]
pub async fn mailer_answer(
    worker: &crate::state::OutboxWorker,
    payload: serde_json::Value,
) -> Result<serde_json::Value, lambda_runtime::Error> {
    use aws_lambda_events::event::dynamodb::Event;
    use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
    if payload.get("Records").is_none() {
        let report = worker.outbound.sweep(OUTBOUND_SWEEP_LIMIT).await?;
        tracing::info!(?report, "outbound sweep");
        return Ok(serde_json::json!({
            "delivered": report.delivered,
            "retry": report.retry,
            "dead": report.dead,
        }));
    }
    let event: Event = serde_json::from_value(payload)?;
    let mut response = DynamoDbEventResponse::default();
    // Wait out a lapsed claim within the invocation (60 s timeout, 30 s lease).
    let mail = stream_ids(&event, crate::store::keys::MAIL_PREFIX);
    if let Some(sequence) = worker.mail.deliver_in_order(&mail, 35).await {
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = Some(sequence);
        response.batch_item_failures.push(failure);
    }
    for (_, id) in stream_ids(&event, crate::store::keys::HOOK_PREFIX) {
        if let Err(e) = worker.outbound.deliver(&id).await {
            tracing::warn!(event_id = %id, error = %Chain(&e), "outbound event not attempted; the sweep will");
        }
    }
    Ok(serde_json::to_value(response)?)
}

/// Outbound events one scheduled sweep attempts at most (each endpoint call gives up after
/// 10 s; the function's timeout bounds the rest, and the next sweep goes on).
pub const OUTBOUND_SWEEP_LIMIT: usize = 200;

/// The outbox items a DynamoDB stream batch announces: `(sequence number, id)` of every `INSERT`
/// of an item whose partition key starts with `prefix` (`MAIL#`, `HOOK#`), in stream order.
/// Other records (updates of claimed items, other items — the event source mapping filters them
/// out, this checks again) are skipped.
#[cfg(all(feature = "mail", feature = "ses"))]
pub fn stream_ids(
    event: &aws_lambda_events::event::dynamodb::Event,
    prefix: &str,
) -> Vec<(String, String)> {
    event
        .records
        .iter()
        .filter(|r| r.event_name == "INSERT")
        .filter_map(|r| {
            let pk = match r.change.keys.get(crate::store::keys::PK) {
                Some(serde_dynamo::AttributeValue::S(pk)) => pk,
                _ => return None,
            };
            let id = pk.strip_prefix(prefix)?;
            Some((
                r.change.sequence_number.clone().unwrap_or_default(),
                id.to_owned(),
            ))
        })
        .collect()
}

/// The mail items of a stream batch: [`stream_ids`] with `MAIL#`.
#[cfg(all(feature = "mail", feature = "ses"))]
pub fn mail_ids_from_stream(
    event: &aws_lambda_events::event::dynamodb::Event,
) -> Vec<(String, String)> {
    stream_ids(event, crate::store::keys::MAIL_PREFIX)
}

/// JSON logs filtered by `RUST_LOG` in `tracing`'s `target=level,…` syntax (default `info`; an
/// unparsable value falls back to `info`), with the current span's fields (request and event
/// ids) on every line. `filter::Targets` rather than `EnvFilter`: the same syntax for targets and
/// levels, and the linker can drop the regex engine EnvFilter needs for its span and field
/// filters (no function uses them).
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
                .with_current_span(true)
                .with_span_list(false)
                .without_time(), // CloudWatch stamps each line
        )
        .with(filter)
        .try_init();
}
