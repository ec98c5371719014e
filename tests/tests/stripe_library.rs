//! The paid flow with Stripe-shaped events signed by a Stripe library's own signing code (the
//! official `stripe` npm package's `webhooks.generateTestHeaderString`, run by Node from
//! `tests/stripe-node/`), not by Tollgate's signer: sign up → checkout (real Stripe client against
//! a `wiremock` Stripe) → the checkout and subscription events land → `/billing/subscription`
//! shows the paid plan with access → refresh carries the plan → cancel at period end keeps access.
//! Events signed with the wrong secret, too long ago, or altered after signing are refused with
//! nothing stored and nothing enqueued.
//!
//! Needs `node` and `npm ci --prefix tests/stripe-node` (done by `infra/test.sh`); without them the
//! test says so and passes, except when `CI=true`, where it fails.

use serde_json::{json, Value};
use std::sync::Arc;
use tollgate::domain::Provider;
use tollgate::payments::signature::WebhookSecrets;
use tollgate::payments::stripe::signature::sign as sign_stripe;
use tollgate::payments::stripe::StripeProvider;
use tollgate::payments::Providers;
use tollgate::store::EventLedger;
use tollgate::webhooks::{BatchItem, Processor};
use tollgate::{AppState, Clock};
use tollgate_tests::{components_at, fixture, stripe_object, RecordingQueue, PASSWORD};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "whsec_stripe_library_test_secret";
const SUBSCRIPTION: &str = "sub_1TestSubscr0000001";
const CUSTOMER: &str = "cus_TestAlice000001";

/// One payload for the Stripe library to sign.
struct ToSign<'a> {
    payload: &'a str,
    secret: &'a str,
    timestamp: i64,
}

/// `Stripe-Signature` header values from stripe-node, in order; `None` when Node or the package
/// is missing outside CI.
fn stripe_node_sign(items: &[ToSign<'_>]) -> Option<Vec<String>> {
    use std::io::Write as _;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("stripe-node");
    let missing = |why: String| {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and the Stripe library signer cannot run: {why} \
             (infra/test.sh runs `npm ci --prefix tests/stripe-node`)"
        );
        eprintln!("skipped: {why}; run `npm ci --prefix tests/stripe-node`");
        None
    };
    if !dir.join("node_modules/stripe/package.json").exists() {
        return missing("tests/stripe-node/node_modules/stripe is not installed".into());
    }
    let input = serde_json::to_vec(
        &items
            .iter()
            .map(|i| json!({"payload": i.payload, "secret": i.secret, "timestamp": i.timestamp}))
            .collect::<Vec<_>>(),
    )
    .expect("json");
    let mut child = match std::process::Command::new("node")
        .arg("sign.mjs")
        .current_dir(&dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return missing(format!("node cannot start: {e}")),
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&input)
        .expect("write to node");
    let out = child.wait_with_output().expect("node output");
    assert!(out.status.success(), "sign.mjs failed: {:?}", out.status);
    let headers: Vec<String> = serde_json::from_slice(&out.stdout).expect("headers json");
    assert_eq!(headers.len(), items.len());
    Some(headers)
}

/// A fixture event with the fixture's user id replaced by `user`.
fn event(name: &str, user: &str) -> String {
    String::from_utf8(fixture(&format!("stripe/events/{name}.json")))
        .expect("utf8")
        .replace("user_7f3c2a", user)
}

/// What `GET /v1/subscriptions/<id>` answers: the subscription object of `event_body` (the
/// provider's state at that event) completed with Stripe's sample object.
fn subscription_state(event_body: &str) -> Value {
    let e: Value = serde_json::from_str(event_body).expect("json");
    stripe_object("subscription", e["data"]["object"].clone())
}

async fn stripe_double(state: &Value) -> MockServer {
    let stripe = MockServer::start().await;
    mount_state(&stripe, state).await;
    stripe
}

/// (Re)mounts the Stripe double: customer and checkout session creation, and `state` as the
/// subscription's current state (for retrieve and update).
async fn mount_state(stripe: &MockServer, state: &Value) {
    stripe.reset().await;
    Mock::given(method("POST"))
        .and(path("/v1/customers"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(stripe_object("customer", json!({"id": CUSTOMER}))),
        )
        .mount(stripe)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/checkout/sessions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(stripe_object(
            "checkout.session",
            json!({"id": "cs_test_library", "url": "https://checkout.stripe.com/c/pay/cs_test_library"}),
        )))
        .mount(stripe)
        .await;
    for m in ["GET", "POST"] {
        Mock::given(method(m))
            .and(path(format!("/v1/subscriptions/{SUBSCRIPTION}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(state.clone()))
            .mount(stripe)
            .await;
    }
}

async fn call(
    base: &str,
    m: reqwest::Method,
    route: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = reqwest::Client::new().request(m, format!("{base}{route}"));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let res = r.send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// `GET /billing/subscription` with `token`, asserting 200.
async fn subscription(base: &str, token: &str) -> Value {
    let (status, body) = call(
        base,
        reqwest::Method::GET,
        "/billing/subscription",
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn deliver(base: &str, body: &str, signature: &str) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("{base}/webhooks/stripe"))
        .header("content-type", "application/json")
        .header("stripe-signature", signature)
        .body(body.to_owned())
        .send()
        .await
        .expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Processes everything the ingest route enqueued so far (one batch, in order) and clears it.
async fn process_queue(processor: &Arc<Processor>, queue: &RecordingQueue) {
    let items: Vec<BatchItem> = std::mem::take(&mut *queue.0.lock().expect("lock"))
        .into_iter()
        .enumerate()
        .map(|(i, (message, group_id, _))| BatchItem {
            message_id: format!("m{i}"),
            message,
            group_id,
        })
        .collect();
    assert!(!items.is_empty(), "ingest enqueued nothing");
    let failed = processor.process_batch(items).await;
    assert!(failed.is_empty(), "failed records: {failed:?}");
}

#[tokio::test]
async fn stripe_library_signed_events_drive_the_paid_flow_and_bad_ones_store_nothing() {
    // The fixtures' own time (the cancel event's `created`), so their periods are current.
    let (mut c, clock, store) = components_at(1_793_086_460);
    let created = event("customer.subscription.created", "placeholder");
    let stripe = stripe_double(&subscription_state(&created)).await;
    let queue = Arc::new(RecordingQueue::default());
    c.queue = Some(queue.clone());
    c.providers = Providers::default().with(Arc::new(
        StripeProvider::new(
            tollgate::payments::http_client().expect("http"),
            &"sk_test_library".to_owned().into(),
            Some(&stripe.uri()),
        )
        .expect("client"),
    ));
    c.webhook_secrets = [(
        Provider::Stripe,
        WebhookSecrets::parse(SECRET).expect("secret"),
    )]
    .into();
    let state = AppState::assemble(&c, tollgate::Needs::ALL);
    let processor = Arc::new(c.processor());
    let base = tollgate_tests::spawn_app(state.clone()).await;
    let t = clock.now();

    // Sign up, then checkout through the real Stripe client.
    let (status, signup) = call(
        &base,
        reqwest::Method::POST,
        "/auth/signup",
        None,
        Some(json!({"email": tollgate_tests::random_email(), "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 201, "{signup}");
    let access = signup["access_token"].as_str().expect("access").to_owned();
    let refresh = signup["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let user = state
        .verifier()
        .expect("keys")
        .verify(&access)
        .await
        .expect("valid")
        .claims
        .sub;
    let (status, checkout) = call(
        &base,
        reqwest::Method::POST,
        "/billing/checkout",
        Some(&access),
        Some(json!({"plan": "pro", "interval": "month"})),
    )
    .await;
    assert_eq!(
        (status, checkout["provider"].as_str()),
        (200, Some("stripe"))
    );

    // Stripe completes the checkout: the subscription is active at Stripe, and its events arrive
    // signed by the Stripe library.
    let activated = event("customer.subscription.updated.activated", &user);
    mount_state(&stripe, &subscription_state(&activated)).await;
    let flow = [
        event("checkout.session.completed.subscription", &user),
        event("customer.subscription.created", &user),
        activated,
        event("invoice.paid", &user),
    ];
    let headers = match stripe_node_sign(
        &flow
            .iter()
            .map(|payload| ToSign {
                payload,
                secret: SECRET,
                timestamp: t,
            })
            .collect::<Vec<_>>(),
    ) {
        Some(h) => h,
        None => return,
    };
    for (body, header) in flow.iter().zip(&headers) {
        // The Stripe library and Tollgate's signer agree byte for byte.
        assert_eq!(header, &sign_stripe(body.as_bytes(), SECRET, t));
        let (status, reply) = deliver(&base, body, header).await;
        assert_eq!(status, 200, "{reply}");
    }
    process_queue(&processor, &queue).await;

    let sub = subscription(&base, &access).await;
    assert_eq!(status, 200, "{sub}");
    assert_eq!(
        (
            sub["plan"].as_str(),
            sub["status"].as_str(),
            sub["access"].as_bool()
        ),
        (Some("pro"), Some("active"), Some(true)),
        "{sub}"
    );
    let (status, refreshed) = call(
        &base,
        reqwest::Method::POST,
        "/auth/refresh",
        None,
        Some(json!({"refresh_token": refresh})),
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    let claims = state
        .verifier()
        .expect("keys")
        .verify(refreshed["access_token"].as_str().expect("access"))
        .await
        .expect("valid")
        .claims;
    assert_eq!((claims.plan.as_str(), claims.tier), ("pro", 1));

    // Cancel at period end: Stripe's state and its signed event say so; access remains.
    let (status, reply) = call(
        &base,
        reqwest::Method::POST,
        "/billing/subscription/cancel",
        Some(&access),
        None,
    )
    .await;
    assert_eq!(status, 202, "{reply}");
    let canceled = event("customer.subscription.updated.cancel_at_period_end", &user);
    mount_state(&stripe, &subscription_state(&canceled)).await;
    let header = stripe_node_sign(&[ToSign {
        payload: &canceled,
        secret: SECRET,
        timestamp: t,
    }])
    .expect("signer ran above");
    assert_eq!(deliver(&base, &canceled, &header[0]).await.0, 200);
    process_queue(&processor, &queue).await;
    let sub = subscription(&base, &access).await;
    assert_eq!(
        (
            sub["plan"].as_str(),
            sub["cancel_at_period_end"].as_bool(),
            sub["access"].as_bool()
        ),
        (Some("pro"), Some(true), Some(true)),
        "{sub}"
    );

    // Bad ones, each signed by the Stripe library: refused, nothing stored, nothing enqueued,
    // and the subscription untouched.
    let deleted = event("customer.subscription.deleted", &user);
    let deleted_id = serde_json::from_str::<Value>(&deleted).expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let bad = stripe_node_sign(&[
        ToSign {
            payload: &deleted,
            secret: "whsec_some_other_endpoint",
            timestamp: t,
        },
        ToSign {
            payload: &deleted,
            secret: SECRET,
            timestamp: t - 301, // Stripe's default tolerance is 300 s
        },
        ToSign {
            payload: &deleted,
            secret: SECRET,
            timestamp: t,
        },
    ])
    .expect("signer ran above");
    let altered = deleted.replacen("\"canceled\"", "\"active\"", 1);
    assert_ne!(altered, deleted, "the alteration changes the body");
    let cases = [
        ("wrong secret", &deleted, &bad[0]),
        ("stale timestamp", &deleted, &bad[1]),
        ("altered after signing", &altered, &bad[2]),
    ];
    for (name, body, header) in cases {
        let (status, reply) = deliver(&base, body, header).await;
        assert_eq!(
            (status, reply["code"].as_str()),
            (400, Some("invalid_signature")),
            "{name}: {reply}"
        );
    }
    assert_eq!(
        store
            .get_event(Provider::Stripe, &deleted_id.as_str().into())
            .await
            .expect("read"),
        None,
        "nothing stored"
    );
    assert!(queue.0.lock().expect("lock").is_empty(), "nothing enqueued");
    let after = subscription(&base, &access).await;
    assert_eq!(after, sub, "the subscription is untouched");
}
