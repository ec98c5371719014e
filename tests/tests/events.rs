//! Every file under `events/` is a real Lambda event. Each HTTP one (API Gateway HTTP API,
//! payload v2) is fed through its function's router via `lambda_http`'s own event parsing, on a
//! state built from that function's own `NEEDS` only, and the status must match the one in the
//! file name (`<case>.<status>.json`). Placeholders: `${ACCESS_TOKEN}`, `${REFRESH_TOKEN}` and
//! `${SESSION_ID}` are a freshly signed-up `ada@example.com`'s; `${VERIFY_TOKEN}`,
//! `${RESET_TOKEN}`, `${MAGIC_TOKEN}` and `${OTP_CODE}` are link tokens and a sign-in code minted
//! for her, `${OAUTH_STATE}` a GitHub authorization she started and `${OAUTH_CODE}` an OAuth
//! exchange code for her (she also has a linked GitHub identity; GitHub itself is configured at
//! an address nothing answers); `${STRIPE_SIGNATURE}`, `${WEBHOOK_ID}`, `${TIMESTAMP}` and `${WHOP_SIGNATURE}` sign
//! the event's body now. The SQS batch of the webhook processor goes through `batch_from_sqs` and
//! the processor; the mailer's DynamoDB stream batch through `mail_ids_from_stream` and the
//! dispatcher.

use http_body_util::BodyExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tollgate::domain::{Provider, ProviderSubscription, SubscriptionStatus};
use tollgate::payments::signature::{sign_standard_webhooks, WebhookSecrets};
use tollgate::payments::stripe::signature::sign;
use tollgate::payments::Providers;
use tollgate::{AppState, Needs};
use tower::ServiceExt;

const STRIPE_SECRET: &str = "whsec_events_test";
const WHOP_SECRET: &str = "ws_events_test_secret";

fn event_files() -> Vec<(String, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    let mut files = Vec::new();
    for dir in std::fs::read_dir(&root).expect("events/ exists") {
        let dir = dir.expect("entry").path();
        if !dir.is_dir() {
            continue;
        }
        let function = dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_owned();
        for file in std::fs::read_dir(&dir).expect("function dir") {
            let path = file.expect("entry").path();
            if path.extension().and_then(|e| e.to_str()) == Some("json") {
                files.push((function.clone(), path));
            }
        }
    }
    files.sort();
    files
}

/// Fills the signature placeholders of an API Gateway event from its body, signed at `now`.
fn sign_placeholders(raw: &str, now: i64) -> String {
    let event: serde_json::Value = serde_json::from_str(raw).expect("event JSON");
    let body = event["body"].as_str().unwrap_or_default().as_bytes();
    let webhook_id = "msg_events_0001";
    raw.replace("${STRIPE_SIGNATURE}", &sign(body, STRIPE_SECRET, now))
        .replace("${WEBHOOK_ID}", webhook_id)
        .replace("${TIMESTAMP}", &now.to_string())
        .replace(
            "${WHOP_SIGNATURE}",
            &sign_standard_webhooks(webhook_id, body, WHOP_SECRET, now),
        )
}

/// `${API_KEY}` (with `${API_KEY_ID}`) and `${REVOKED_API_KEY}`: a live and a revoked user key
/// of `user`.
async fn mint_api_keys(
    state: &AppState,
    store: &(impl tollgate::store::AccountStore + ?Sized),
    user: &tollgate::domain::User,
) -> Vec<(&'static str, String)> {
    let auth = state.auth().expect("accounts");
    let origin = tollgate::domain::RequestOrigin::default();
    let kind = tollgate::domain::ApiKeyKind::User;
    let live = auth
        .create_api_key(&user.id, kind, "events", None, &origin)
        .await
        .expect("key");
    let revoked = auth
        .create_api_key(&user.id, kind, "revoked", None, &origin)
        .await
        .expect("key");
    store
        .commit(&[tollgate::store::Change::RevokeApiKey {
            user_id: user.id,
            key_id: revoked.key.key_id.clone(),
            at: tollgate_tests::now(),
        }])
        .await
        .expect("revoke");
    vec![
        ("${API_KEY_ID}", live.key.key_id.clone()),
        ("${API_KEY}", live.secret),
        ("${REVOKED_API_KEY}", revoked.secret),
    ]
}

/// Link tokens of every purpose and a sign-in code for `user`, stored as the mailer stores them:
/// `(placeholder, value)`.
async fn mint_secrets(
    store: &impl tollgate::store::AccountStore,
    user: &tollgate::domain::User,
    now: i64,
) -> Vec<(&'static str, String)> {
    use tollgate::auth::one_time::{code_hash, LinkToken};
    use tollgate::domain::{EmailOtp, OneTimeToken, TokenPurpose};
    use tollgate::store::Change;
    let mut changes = Vec::new();
    let mut minted = Vec::new();
    for (placeholder, purpose) in [
        ("${VERIFY_TOKEN}", TokenPurpose::VerifyEmail),
        ("${RESET_TOKEN}", TokenPurpose::ResetPassword),
        ("${MAGIC_TOKEN}", TokenPurpose::MagicLink),
    ] {
        let link = LinkToken::generate().expect("random");
        changes.push(Change::PutToken(OneTimeToken {
            hash: link.hash.clone(),
            purpose,
            user_id: Some(user.id),
            email: user.email().normalized().to_owned(),
            epoch: user.session_epoch,
            note: None,
            created_at: now,
            expires_at: now + purpose.lifetime(),
        }));
        minted.push((placeholder, link.token));
    }
    let code = "135790";
    let email = user.email().normalized().to_owned();
    changes.push(Change::PutOtp(EmailOtp {
        code_hash: code_hash(&email, code).expect("6 digits"),
        email,
        id: "otp-events".into(),
        attempts: 0,
        user_id: Some(user.id),
        created_at: now,
        expires_at: now + tollgate::domain::OTP_LIFETIME_SECONDS,
    }));
    minted.push(("${OTP_CODE}", code.to_owned()));
    let exchange = LinkToken::generate().expect("random");
    changes.push(Change::PutToken(OneTimeToken {
        hash: exchange.hash.clone(),
        purpose: TokenPurpose::OAuthExchange,
        user_id: Some(user.id),
        email: user.email().normalized().to_owned(),
        epoch: user.session_epoch,
        note: Some("github".into()),
        created_at: now,
        expires_at: now + TokenPurpose::OAuthExchange.lifetime(),
    }));
    minted.push(("${OAUTH_CODE}", exchange.token));
    let state = LinkToken::generate().expect("random").token;
    changes.push(Change::PutOAuthState(tollgate::domain::OAuthState {
        hash: tollgate::auth::state_hash(&state),
        provider: "github".into(),
        pkce_verifier: LinkToken::generate().expect("random").token,
        nonce: "events-nonce".into(),
        redirect_to: "http://127.0.0.1:3000/auth/done".into(),
        mode: tollgate::domain::OAuthMode::Login,
        created_at: now,
        expires_at: now + tollgate::domain::OAUTH_STATE_LIFETIME_SECONDS,
    }));
    minted.push(("${OAUTH_STATE}", state));
    changes.push(Change::LinkIdentity(tollgate::domain::Identity {
        provider: "github".into(),
        subject: "583231".into(),
        user_id: user.id,
        email: Some(user.email.clone()),
        email_verified: true,
        created_at: now,
    }));
    store.commit(&changes).await.expect("mint");
    minted
}

#[tokio::test]
async fn every_http_event_sample_gets_the_status_in_its_name() {
    let files: Vec<_> = event_files()
        .into_iter()
        .filter(|(f, _)| {
            !matches!(
                f.as_str(),
                "webhook-processor" | "mailer" | "authorizer" | "reconciler"
            )
        })
        .collect();
    assert!(
        files.len() >= 52,
        "expected the event samples, found {}",
        files.len()
    );
    let covered: std::collections::BTreeSet<&str> = files.iter().map(|(f, _)| f.as_str()).collect();
    for f in tollgate_tests::functions() {
        assert!(covered.contains(f.name), "events/{} has no sample", f.name);
    }
    let dir = std::env::temp_dir().join(format!("tollgate-events-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut failures = Vec::new();
    for (function, path) in &files {
        let name = path.file_stem().and_then(|n| n.to_str()).expect("stem");
        let expected: u16 = name
            .rsplit('.')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{name}: no status in name"));
        let now = tollgate_tests::now();
        let (mut components, _, store) = tollgate_tests::components_at(now);
        // Stripe is the dev server's offline stand-in (its checkout only records a session);
        // both providers' webhooks are configured, and ingest has a queue.
        let stand_in = dev_server::offline_stripe::OfflineStripe::new(
            "http://127.0.0.1:9".into(),
            STRIPE_SECRET.into(),
            dir.join(format!("{name}.json")),
        );
        components.providers = Providers::default().with(Arc::new(stand_in));
        components.webhook_secrets = [
            (
                Provider::Stripe,
                WebhookSecrets::parse(STRIPE_SECRET).expect("secret"),
            ),
            (
                Provider::Whop,
                WebhookSecrets::parse(WHOP_SECRET).expect("secret"),
            ),
        ]
        .into();
        components.queue = Some(Arc::new(tollgate_tests::RecordingQueue::default()));
        components.identity_providers = tollgate::state::identity_providers_from(
            &tollgate::config::OAuthConfig {
                github: Some(tollgate::config::GitHubProviderConfig {
                    client_id: "Iv1.events".into(),
                    web_base: "http://127.0.0.1:9".into(),
                    api_base: "http://127.0.0.1:9".into(),
                }),
                oidc: Vec::new(),
            },
            &tollgate::secrets::providers::OAuthClientSecrets::from_map(
                &[("GITHUB_CLIENT_SECRET".to_owned(), "events".to_owned())].into(),
            ),
        )
        .expect("providers");
        let seeding = AppState::assemble(&components, Needs::ALL);
        let (ada, tokens) = tollgate_tests::sign_up_as(&seeding, "ada@example.com").await;
        let mut minted = mint_secrets(store.as_ref(), &ada, now).await;
        minted.extend(mint_api_keys(&seeding, store.as_ref(), &ada).await);
        minted.push(("${USER_ID}", ada.id.to_string()));
        let session_id = tokens.refresh_token.split('.').nth(1).expect("session id");
        let mut raw = std::fs::read_to_string(path)
            .expect("read event")
            .replace("${ACCESS_TOKEN}", &tokens.access_token)
            .replace("${REFRESH_TOKEN}", &tokens.refresh_token)
            .replace("${SESSION_ID}", session_id);
        for (placeholder, value) in &minted {
            raw = raw.replace(placeholder, value);
        }
        let raw = sign_placeholders(&raw, now);
        let request = lambda_http::request::from_str(&raw)
            .unwrap_or_else(|e| panic!("{}: not an API Gateway event: {e}", path.display()));
        let f = tollgate_tests::function(function);
        let state = AppState::assemble(&components, f.needs);
        // As in Lambda: API Gateway's request id, source IP and authorizer context from the event.
        let app = tollgate::lambda::app((f.router)(), state);
        let response = app.oneshot(request).await.expect("infallible");
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        if status != expected {
            failures.push(format!(
                "{}: expected {expected}, got {status}: {}",
                path.display(),
                String::from_utf8_lossy(&body)
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `events/webhook-processor/batch.json`: two pointers to stored Stripe events and one record
/// that is not a pointer. The unreadable record alone is reported failed; both events take
/// effect.
#[tokio::test]
async fn the_sqs_batch_sample_reports_only_its_unreadable_record() {
    let now = tollgate_tests::now();
    let (mut components, _, store) = tollgate_tests::components_at(now);
    let stripe = Arc::new(tollgate_tests::FakeProvider::new(Provider::Stripe));
    components.providers = Providers::default().with(stripe.clone());
    let state = AppState::assemble(&components, Needs::ALL);
    let (user, _) = tollgate_tests::sign_up(&state).await;
    let subscription = "sub_1TestSubscr0000001";
    stripe.set(ProviderSubscription {
        provider: Provider::Stripe,
        subscription_id: subscription.into(),
        customer_id: Some("cus_TestAlice000001".into()),
        user_id: Some(user.id),
        status: SubscriptionStatus::Active,
        price_id: "price_1TestProMonthly01".into(),
        current_period_end: Some(now + 86_400),
        cancel_at_period_end: false,
        trial_end: None,
    });
    for fixture in [
        "customer.subscription.created",
        "customer.subscription.updated.activated",
    ] {
        let body = tollgate_tests::fixture(&format!("stripe/events/{fixture}.json"));
        let envelope = tollgate::payments::stripe::events::envelope(&body).expect("envelope");
        tollgate::store::EventLedger::record_event(
            store.as_ref(),
            &tollgate::domain::WebhookEvent {
                provider: Provider::Stripe,
                event_id: envelope.event_id,
                event_type: envelope.event_type,
                body: String::from_utf8(body).expect("utf8"),
                group_id: envelope.group_id,
                received_at: now,
                status: tollgate::domain::EventStatus::Received,
                attempts: 0,
                last_error: None,
                processed_at: None,
                expires_at: now + tollgate::domain::EVENT_RETENTION_SECONDS,
            },
        )
        .await
        .expect("record");
    }
    // The fixtures' metadata names no Tollgate user: the customer claim (as checkout writes it)
    // tells the processor whose events these are.
    tollgate::store::BillingStore::claim_customer(
        store.as_ref(),
        Provider::Stripe,
        &"cus_TestAlice000001".into(),
        &user.id,
    )
    .await
    .expect("claim");
    let raw = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/webhook-processor/batch.json"),
    )
    .expect("batch sample");
    let event: aws_lambda_events::event::sqs::SqsEvent =
        serde_json::from_str(&raw).expect("an SQS event");
    let (items, mut failed) = tollgate::lambda::batch_from_sqs(event);
    failed.extend(Arc::new(components.processor()).process_batch(items).await);
    assert_eq!(
        failed,
        vec!["3f1c4a2e-0003-4000-8000-000000000003".to_owned()]
    );
    let sub = tollgate::store::BillingStore::get_subscription(store.as_ref(), &user.id)
        .await
        .expect("read")
        .expect("applied");
    assert_eq!(
        (sub.plan.as_str(), sub.status),
        ("pro", SubscriptionStatus::Active)
    );
}

/// `events/mailer/stream.json`: a DynamoDB stream batch with two outbox inserts and an update.
/// The inserts alone are delivered, in order; nothing is reported failed.
#[tokio::test]
async fn the_mailer_stream_sample_delivers_its_two_new_mails() {
    use tollgate::domain::{MailKind, MailStatus, OutboxMail};
    use tollgate::store::{AccountStore, Change, Outbox};
    let now = tollgate_tests::now();
    let (components, _, store) = tollgate_tests::components_at(now);
    let raw = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/mailer/stream.json"),
    )
    .expect("stream sample");
    let event: aws_lambda_events::event::dynamodb::Event =
        serde_json::from_str(&raw).expect("a DynamoDB stream event");
    let items = tollgate::lambda::mail_ids_from_stream(&event);
    let ids: Vec<&str> = items.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "01937c6e-1111-7000-8000-000000000001",
            "01937c6e-1111-7000-8000-000000000002"
        ]
    );
    for id in &ids {
        let mut mail = OutboxMail::new(MailKind::PasswordChanged, "ada@example.com", None, now);
        mail.id = (*id).to_owned();
        store
            .commit(&[Change::QueueMail(mail)])
            .await
            .expect("queue");
    }
    let dir = std::env::temp_dir().join(format!("tollgate-mailer-events-{}", std::process::id()));
    let mailer = Arc::new(
        dev_server::mail::DevMailer::new(dir.clone(), None, "Tollgate <no-reply@example.com>")
            .expect("outbox"),
    );
    let dispatcher = components.dispatcher(
        mailer.clone(),
        Arc::new(tollgate::mail::Templates::built_in()),
    );
    assert_eq!(dispatcher.deliver_in_order(&items, 0).await, None);
    for id in &ids {
        let mail = store.get_mail(id).await.expect("read").expect("mail");
        assert_eq!(mail.status, MailStatus::Sent);
    }
    assert_eq!(mailer.list().len(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `events/mailer/stream.json` and `scheduled.json` through the mailer's own entry
/// (`tollgate::lambda::mailer_answer`): the stream batch's outbound insert gets its first
/// attempt (its endpoint is down: rescheduled, not reported as a batch failure); after the
/// backoff the scheduled sample's sweep delivers it, signed, to the endpoint now up.
#[tokio::test]
async fn the_mailer_samples_attempt_and_sweep_outbound_events() {
    use tollgate::domain::{OutboundEvent, OutboundStatus, OutboundType, UserId};
    use tollgate::store::{BillingStore, OutboundStore};
    use wiremock::matchers::{header_exists, method};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let now = tollgate_tests::now();
    let (components, clock, store) = tollgate_tests::components_at(now);
    let sample = |name: &str| -> serde_json::Value {
        let raw = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../events/mailer/{name}")),
        )
        .expect("sample");
        serde_json::from_str(&raw).expect("json")
    };
    let id = "msg_0123456789abcdef0123456789abcdef";
    let mut event = OutboundEvent::new(
        "sample",
        OutboundType::SubscriptionUpdated,
        UserId::new(),
        serde_json::json!({"plan": "pro"}),
        now,
    );
    event.id = id.to_owned();
    let first = tollgate::domain::Subscription {
        user_id: event.user_id,
        provider: tollgate::domain::Provider::Stripe,
        subscription_id: "sub_sample".into(),
        customer_id: None,
        plan: "pro".into(),
        interval: None,
        price_id: "price_1TestProMonthly01".into(),
        status: tollgate::domain::SubscriptionStatus::Active,
        current_period_end: None,
        cancel_at_period_end: false,
        trial_end: None,
        past_due_since: None,
        source_fetched_at_us: 1,
        version: 1,
        updated_at: now,
    };
    store
        .put_subscription_with(
            &tollgate::domain::SubscriptionWrite {
                subscription: first,
                expected_version: None,
            },
            &tollgate::domain::Notices {
                mails: vec![],
                outbound: vec![event],
            },
        )
        .await
        .expect("write");
    let endpoint = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&endpoint)
        .await;
    Mock::given(method("POST"))
        .and(header_exists("webhook-signature"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&endpoint)
        .await;
    let endpoints = tollgate::hooks::parse_endpoints(&format!(
        r#"[{{"name":"app","url":"{}/hooks","secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}]"#,
        endpoint.uri()
    ))
    .expect("endpoints");
    let dir = std::env::temp_dir().join(format!("tollgate-mailer-hooks-{}", std::process::id()));
    let worker = tollgate::state::OutboxWorker {
        mail: Arc::new(
            components.dispatcher(
                Arc::new(
                    dev_server::mail::DevMailer::new(
                        dir.clone(),
                        None,
                        "Tollgate <no-reply@example.com>",
                    )
                    .expect("outbox"),
                ),
                Arc::new(tollgate::mail::Templates::built_in()),
            ),
        ),
        outbound: Arc::new(components.outbound(
            Arc::new(tollgate::hooks::http::HttpHookSender::new().expect("client")),
            endpoints,
        )),
    };
    let answer = tollgate::lambda::mailer_answer(&worker, sample("stream.json"))
        .await
        .expect("stream batch");
    // The two mails of the sample are not in this store: skipped as done, nothing failed.
    assert_eq!(
        answer["batchItemFailures"],
        serde_json::json!([]),
        "{answer}"
    );
    let stored = store.get_outbound(id).await.expect("read").expect("event");
    assert_eq!(
        (stored.status, stored.attempts),
        (OutboundStatus::Pending, 1)
    );
    assert!(stored
        .last_error
        .as_deref()
        .unwrap_or_default()
        .contains("HTTP 503"));
    clock.advance(31);
    let report = tollgate::lambda::mailer_answer(&worker, sample("scheduled.json"))
        .await
        .expect("sweep");
    assert_eq!(report["delivered"], 1, "{report}");
    let stored = store.get_outbound(id).await.expect("read").expect("event");
    assert_eq!(stored.status, OutboundStatus::Delivered);
    assert_eq!(endpoint.received_requests().await.map_or(0, |r| r.len()), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `events/authorizer/*.{allow,deny}.json`: API Gateway authorizer requests (payload 2.0) through
/// `tollgate::lambda::authorize_event`, on DynamoDB (moto) when available, else the embedded
/// store, on a state built from the authorizer's own `NEEDS`. Placeholders: `${ACCESS_TOKEN}` is
/// ada's, `${API_KEY}` / `${REVOKED_API_KEY}` a live and a revoked key of hers,
/// `${EXPIRED_ACCESS_TOKEN}` one issued 20 minutes ago, `${DISABLED_ACCESS_TOKEN}` a disabled
/// user's, `${RATE_USED_ACCESS_TOKEN}` a user who has made the free plan's 60 requests this
/// minute (sent first, each allowed).
#[tokio::test]
async fn the_authorizer_samples_allow_or_deny_as_named() {
    let files: Vec<_> = event_files()
        .into_iter()
        .filter(|(f, _)| f == "authorizer")
        .collect();
    assert!(files.len() >= 7, "authorizer samples: {}", files.len());
    for (_, path) in &files {
        let name = path.file_stem().and_then(|n| n.to_str()).expect("stem");
        let allow = match name.rsplit('.').next() {
            Some("allow") => true,
            Some("deny") => false,
            other => panic!("{name}: ends in {other:?}, not allow or deny"),
        };
        let now = tollgate_tests::now();
        let (mut components, clock, embedded) = tollgate_tests::components_at(now);
        let accounts: Arc<dyn tollgate::store::AccountStore> =
            match tollgate_tests::dynamo_store().await {
                Some(store) => {
                    let store = Arc::new(store);
                    tollgate_tests::use_store(&mut components, store.clone());
                    store
                }
                None => embedded,
            };
        let seeding = AppState::assemble(&components, Needs::ALL);
        clock.advance(-20 * 60);
        let (_, expired) = tollgate_tests::sign_up(&seeding).await;
        clock.advance(20 * 60);
        let (ada, tokens) = tollgate_tests::sign_up(&seeding).await;
        let keys = mint_api_keys(&seeding, accounts.as_ref(), &ada).await;
        let (bob, disabled) = tollgate_tests::sign_up(&seeding).await;
        let bob_now = components
            .users
            .get_user(&bob.id)
            .await
            .expect("read")
            .expect("bob");
        let off = bob_now.updated(now, |u| u.status = tollgate::domain::UserStatus::Disabled);
        components
            .users
            .update_user(&off, bob_now.version)
            .await
            .expect("disable");
        let (_, busy) = tollgate_tests::sign_up(&seeding).await;
        let mut raw = std::fs::read_to_string(path)
            .expect("read event")
            .replace("${ACCESS_TOKEN}", &tokens.access_token)
            .replace("${EXPIRED_ACCESS_TOKEN}", &expired.access_token)
            .replace("${DISABLED_ACCESS_TOKEN}", &disabled.access_token)
            .replace("${RATE_USED_ACCESS_TOKEN}", &busy.access_token);
        for (placeholder, value) in &keys {
            raw = raw.replace(placeholder, value);
        }
        let state = AppState::assemble(&components, authorizer::NEEDS);
        let event = || serde_json::from_str(&raw).expect("an authorizer request event");
        if raw.contains(&busy.access_token) {
            for i in 0..60 {
                let warm = tollgate::lambda::authorize_event(&state, event()).await;
                assert!(
                    warm.is_authorized,
                    "{name}: request {i} of the minute's 60 refused"
                );
            }
        }
        let response = tollgate::lambda::authorize_event(&state, event()).await;
        assert_eq!(response.is_authorized, allow, "{}", path.display());
        match response.context {
            Some(context) if allow => {
                assert_eq!(context.plan, "free");
                assert!(context.entitlements.contains("requests_per_minute"));
                assert_eq!(context.key_id.is_some(), raw.contains("tg_"), "{name}");
            }
            None if !allow => {}
            other => panic!("{name}: context {other:?}"),
        }
    }
}
