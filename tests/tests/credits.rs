//! Issue #12's credits over HTTP, on both stores: a Stripe credit pack bought through a
//! `mode=payment` checkout (wiremock Stripe), its Stripe-signed `checkout.session.completed`
//! delivered three times and once more as another event of the same payment → granted once;
//! `charge.refunded` events of partial refunds claw back each part's share, and the whole grant
//! once refunded in full (repeats and a late event of an earlier part take nothing); a Whop one-time plan likewise; 50 concurrent spends of one
//! credit against a balance of 20 → exactly 20; the plan's monthly allowance granted once per
//! period; the credits and audit trails.

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;
use tollgate::domain::{CreditEntry, CreditKind, Provider, UserId};
use tollgate::domain::{Interval, Subscription, SubscriptionStatus, SubscriptionWrite};
use tollgate::payments::signature::{sign_standard_webhooks, WebhookSecrets};
use tollgate::payments::stripe::signature::sign as sign_stripe;
use tollgate::payments::stripe::StripeProvider;
use tollgate::payments::Providers;
use tollgate::state::Components;
use tollgate::store::BillingStore;
use tollgate::webhooks::Processor;
use tollgate::{AppState, Clock};
use tollgate_tests::{fixture, stripe_object, Backend, ManualClock, RecordingQueue};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const STRIPE_SECRET: &str = "whsec_credits_test";
const WHOP_SECRET: &str = "ws_test_0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab";
/// 2026-11-15 12:00 UTC.
const NOV_15: i64 = 1_794_744_000;

struct Rig {
    base: String,
    http: reqwest::Client,
    clock: Arc<ManualClock>,
    state: AppState,
    queue: Arc<RecordingQueue>,
    processor: Processor,
    billing: Arc<dyn BillingStore>,
    customer: String,
    _stripe: MockServer,
}

async fn rig(backend: Backend) -> Option<Rig> {
    let (mut components, clock, _) = tollgate_tests::components_at(NOV_15);
    if let Backend::Dynamo = backend {
        let store = Arc::new(tollgate_tests::dynamo_store().await?);
        tollgate_tests::use_store(&mut components, store);
    }
    let stripe = MockServer::start().await;
    // One customer per rig: DynamoDB's table (and its customer claims) outlives a test.
    let customer = unique("cus");
    Mock::given(method("POST"))
        .and(path("/v1/customers"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(stripe_object("customer", json!({"id": customer}))),
        )
        .mount(&stripe)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/checkout/sessions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(stripe_object(
            "checkout.session",
            json!({"id": "cs_test_pack", "url": "https://checkout.stripe.com/c/pay/cs_test_pack"}),
        )))
        .mount(&stripe)
        .await;
    components.providers = Providers::default().with(Arc::new(
        StripeProvider::new(
            tollgate::payments::http_client().expect("http"),
            &"sk_test_credits".to_owned().into(),
            Some(&stripe.uri()),
        )
        .expect("client"),
    ));
    let queue = Arc::new(RecordingQueue::default());
    components.queue = Some(queue.clone());
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
    let mut rig = build(components, clock, queue, stripe).await;
    rig.customer = customer;
    Some(rig)
}

async fn build(
    components: Components,
    clock: Arc<ManualClock>,
    queue: Arc<RecordingQueue>,
    stripe: MockServer,
) -> Rig {
    let state = AppState::assemble(&components, tollgate::Needs::ALL);
    Rig {
        base: tollgate_tests::spawn_app(state.clone()).await,
        http: reqwest::Client::new(),
        processor: components.processor(),
        billing: components.billing_store.clone(),
        customer: String::new(),
        clock,
        state,
        queue,
        _stripe: stripe,
    }
}

impl Rig {
    async fn get(&self, bearer: &str, path: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(bearer)
            .send()
            .await
            .expect("get");
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, bearer: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(bearer)
            .json(&body)
            .send()
            .await
            .expect("post");
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    async fn stripe_event(&self, body: &Value) -> Value {
        let bytes = serde_json::to_vec(body).expect("json");
        let r = self
            .http
            .post(format!("{}/webhooks/stripe", self.base))
            .header("content-type", "application/json")
            .header(
                "stripe-signature",
                sign_stripe(&bytes, STRIPE_SECRET, self.clock.now()),
            )
            .body(bytes)
            .send()
            .await
            .expect("deliver");
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.expect("json")
    }

    async fn whop_event(&self, body: &Value) {
        let bytes = serde_json::to_vec(body).expect("json");
        let id = body["id"].as_str().expect("id");
        let ts = self.clock.now();
        let r = self
            .http
            .post(format!("{}/webhooks/whop", self.base))
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header(
                "webhook-signature",
                sign_standard_webhooks(id, &bytes, WHOP_SECRET, ts),
            )
            .body(bytes)
            .send()
            .await
            .expect("deliver");
        assert_eq!(r.status(), StatusCode::OK);
    }

    /// Stores an active monthly `plan` subscription for `user` ending at `period_end`.
    async fn subscribe(&self, user: UserId, plan: &str, period_end: i64) {
        let stored = self.billing.get_subscription(&user).await.expect("read");
        let version = stored.as_ref().map_or(1, |s| s.version + 1);
        let sub = Subscription {
            user_id: user,
            provider: Provider::Stripe,
            subscription_id: "sub_credits".into(),
            customer_id: Some("cus_Credits0001".into()),
            plan: plan.into(),
            interval: Some(Interval::Month),
            price_id: "price_1TestProMonthly01".into(),
            status: SubscriptionStatus::Active,
            current_period_end: Some(period_end),
            cancel_at_period_end: false,
            trial_end: None,
            past_due_since: None,
            source_fetched_at_us: version as i64,
            version,
            updated_at: self.clock.now(),
        };
        self.billing
            .put_subscription(&SubscriptionWrite {
                subscription: sub,
                expected_version: stored.map(|s| s.version),
            })
            .await
            .expect("subscription");
    }

    /// Processes every queued pointer, as the SQS-triggered processor would (each in turn).
    async fn drain(&self) {
        let queued: Vec<_> = std::mem::take(&mut *self.queue.0.lock().expect("lock"));
        for (message, _, _) in queued {
            self.processor.process_one(&message).await.expect("process");
        }
    }

    async fn credits(&self, bearer: &str) -> Value {
        let (status, body) = self.get(bearer, "/billing/credits?limit=100").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    fn entries<'a>(credits: &'a Value, kind: &str) -> Vec<&'a Value> {
        credits["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .filter(|e| e["kind"] == kind)
            .collect()
    }
}

/// Stripe's `checkout.session.completed` in `mode=payment` (the vendored fixture) for `user`'s
/// purchase of `credits_1000` with payment intent `intent`, as the rig's customer.
fn pack_paid(rig: &Rig, event_id: &str, event_type: &str, user: UserId, intent: &str) -> Value {
    let mut event: Value = serde_json::from_slice(&fixture(
        "stripe/events/checkout.session.completed.payment.json",
    ))
    .expect("fixture");
    event["id"] = json!(event_id);
    event["type"] = json!(event_type);
    let o = &mut event["data"]["object"];
    o["client_reference_id"] = json!(user.to_string());
    o["customer"] = json!(rig.customer);
    o["payment_intent"] = json!(intent);
    o["metadata"] = json!({"user_id": user.to_string(), "pack": "credits_1000"});
    assert_eq!(o["mode"], "payment");
    event
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

async fn a_stripe_pack_is_granted_once_and_a_refund_claws_it_back(backend: Backend) {
    let Some(rig) = rig(backend).await else {
        return;
    };
    let (user, tokens) = tollgate_tests::sign_up(&rig.state).await;
    let at = tokens.access_token.as_str();
    let (status, body) = rig
        .post(at, "/billing/checkout", json!({"pack": "credits_1000"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sessions: Vec<_> = rig
        ._stripe
        .received_requests()
        .await
        .expect("recorded")
        .into_iter()
        .filter(|r| r.url.path() == "/v1/checkout/sessions")
        .collect();
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&sessions[0].body)
        .into_owned()
        .collect();
    let field = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(field("mode"), Some("payment"), "{form:?}");
    assert_eq!(
        field("line_items[0][price]"),
        Some("price_1TestCredits1000")
    );
    assert_eq!(field("metadata[pack]"), Some("credits_1000"));
    assert_eq!(
        field("payment_intent_data[metadata][user_id]"),
        Some(user.id.to_string().as_str())
    );
    assert!(
        !form.iter().any(|(k, _)| k.starts_with("subscription_data")),
        "{form:?}"
    );

    let intent = unique("pi");
    let event_id = unique("evt");
    let paid = pack_paid(
        &rig,
        &event_id,
        "checkout.session.completed",
        user.id,
        &intent,
    );
    let mut duplicates = Vec::new();
    for _ in 0..3 {
        duplicates.push(rig.stripe_event(&paid).await["duplicate"].clone());
        rig.drain().await;
    }
    assert_eq!(duplicates, [json!(false), json!(true), json!(true)]);
    // The same payment reported by another event (async payment succeeded): not granted again.
    let again = pack_paid(
        &rig,
        &unique("evt"),
        "checkout.session.async_payment_succeeded",
        user.id,
        &intent,
    );
    rig.stripe_event(&again).await;
    rig.drain().await;
    let credits = rig.credits(at).await;
    assert_eq!(credits["balance"], 1000, "{credits}");
    let purchases = Rig::entries(&credits, "purchase");
    assert_eq!(purchases.len(), 1, "{credits}");
    assert_eq!(purchases[0]["pack"], "credits_1000");
    assert_eq!(purchases[0]["payment_id"], intent.as_str());
    let (_, payments) = rig.get(at, "/billing/payments").await;
    assert_eq!(payments["payments"][0]["id"], intent.as_str(), "{payments}");

    // `renders` costs 2 credits a unit, always.
    for i in 0..3 {
        let (status, body) = rig
            .post(
                at,
                "/usage/track",
                json!({"feature": "renders", "idempotency_key": format!("r{i}")}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["credits_spent"], 2);
        assert_eq!(body["credit_balance"], 1000 - 2 * (i + 1));
    }
    let (_, replay) = rig
        .post(
            at,
            "/usage/track",
            json!({"feature": "renders", "idempotency_key": "r2"}),
        )
        .await;
    assert_eq!(
        (
            replay["replayed"].as_bool(),
            replay["credits_spent"].as_u64()
        ),
        (Some(true), Some(0)),
        "a retry spends nothing: {replay}"
    );
    assert_eq!(rig.credits(at).await["balance"], 994);

    // Refunded in parts: each `charge.refunded` carries the refunded total of the 15.00 payment,
    // and takes back that share of the 1000 credits (rounded up) less what earlier parts took.
    let charge = unique("ch");
    let refunded = |total: i64| -> Value {
        json!({
            "id": unique("evt"),
            "object": "event",
            "type": "charge.refunded",
            "created": NOV_15 + 60,
            "data": {"object": {
                "id": charge,
                "object": "charge",
                "customer": rig.customer,
                "payment_intent": intent,
                "amount": 1500,
                "amount_refunded": total,
                "refunded": total == 1500,
            }},
        })
    };
    let mut balances = Vec::new();
    // 5.00 back; the same total again (another event); 10.00 back in all; a delayed event of
    // the first part; everything back; the full refund once more.
    for total in [500, 500, 1000, 500, 1500, 1500] {
        rig.stripe_event(&refunded(total)).await;
        rig.drain().await;
        balances.push(rig.credits(at).await["balance"].as_i64().expect("balance"));
    }
    assert_eq!(
        balances,
        [660, 660, 327, 327, -6, -6],
        "a third (334, rounded up), then two thirds (333 more), then the rest (333): the whole \
         grant taken back once, across parts, repeats and reordering"
    );
    let credits = rig.credits(at).await;
    let refunds: Vec<i64> = Rig::entries(&credits, "refund")
        .iter()
        .map(|e| e["amount"].as_i64().expect("amount"))
        .collect();
    assert_eq!(refunds, [-333, -333, -334], "newest first: {credits}");
    let (status, body) = rig
        .post(
            at,
            "/usage/track",
            json!({"feature": "renders", "idempotency_key": "after-refund"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::PAYMENT_REQUIRED, Some("insufficient_credits")),
        "{body}"
    );
    assert_eq!(body["credits"], json!({"cost": 2, "balance": -6}));
    let (_, audit) = rig.get(at, "/auth/audit?limit=100").await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    for action in ["credits_granted", "credits_spent", "credits_refunded"] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
}

async fn a_whop_one_time_plan_grants_once_and_its_refund_claws_back(backend: Backend) {
    let Some(rig) = rig(backend).await else {
        return;
    };
    let (user, tokens) = tollgate_tests::sign_up(&rig.state).await;
    let mut paid: Value = serde_json::from_slice(&fixture(
        "whop/events/payment.succeeded.one_time_credits.json",
    ))
    .expect("fixture");
    let payment = unique("pay");
    paid["id"] = json!(unique("msg"));
    paid["data"]["id"] = json!(payment);
    paid["data"]["metadata"]["user_id"] = json!(user.id.to_string());
    paid["data"]["member"]["id"] = json!(unique("mber"));
    for _ in 0..3 {
        rig.whop_event(&paid).await;
        rig.drain().await;
    }
    let at = tokens.access_token.as_str();
    let credits = rig.credits(at).await;
    assert_eq!(credits["balance"], 1000, "{credits}");
    assert_eq!(Rig::entries(&credits, "purchase")[0]["provider"], "whop");
    let refund = json!({
        "id": unique("msg"),
        "api_version": "v1",
        "type": "refund.created",
        "timestamp": "2026-11-15T12:05:00.000Z",
        "data": {"id": unique("rfnd"), "status": "succeeded", "payment": {"id": payment}},
    });
    rig.whop_event(&refund).await;
    rig.drain().await;
    assert_eq!(rig.credits(at).await["balance"], 0);
}

/// The free plan's 20 `generations` a month are free; past them each costs one credit. With a
/// balance of 20, 50 concurrent tracks past the allowance → exactly 20 succeed, the balance is
/// 0 and was never negative, and the 30 refused counted nothing.
async fn fifty_concurrent_spends_against_twenty_credits_spend_exactly_twenty(backend: Backend) {
    let Some(rig) = rig(backend).await else {
        return;
    };
    let (user, tokens) = tollgate_tests::sign_up(&rig.state).await;
    let at = Arc::new(tokens.access_token);
    for i in 0..20 {
        let (status, body) = rig
            .post(
                &at,
                "/usage/track",
                json!({"feature": "generations", "idempotency_key": format!("free{i}")}),
            )
            .await;
        assert_eq!(
            (status, body["credits_spent"].as_u64()),
            (StatusCode::OK, Some(0)),
            "{body}"
        );
    }
    let mut grant = CreditEntry::new(
        user.id,
        unique("adjustment"),
        CreditKind::Adjustment,
        20,
        rig.clock.now(),
    );
    grant.note = Some("test grant".into());
    rig.state
        .usage()
        .expect("usage")
        .credits()
        .apply(grant, false)
        .await
        .expect("grant");
    let tries: Vec<_> = (0..50)
        .map(|i| {
            let (http, base, at) = (rig.http.clone(), rig.base.clone(), at.clone());
            tokio::spawn(async move {
                let r = http
                    .post(format!("{base}/usage/track"))
                    .bearer_auth(at.as_str())
                    .json(&json!({"feature": "generations", "idempotency_key": format!("paid{i}")}))
                    .send()
                    .await
                    .expect("track");
                let status = r.status();
                let body: Value = r.json().await.expect("json");
                (status, body)
            })
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for t in tries {
        let (status, body) = t.await.expect("join");
        match status {
            StatusCode::OK => {
                ok += 1;
                assert!(body["credit_balance"].as_i64() >= Some(0), "{body}");
            }
            StatusCode::PAYMENT_REQUIRED => {
                assert_eq!(body["code"], "insufficient_credits", "{body}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((ok, refused), (20, 30));
    let credits = rig.credits(&at).await;
    assert_eq!(credits["balance"], 0);
    assert_eq!(Rig::entries(&credits, "spend").len(), 20);
    let (_, usage) = rig.get(&at, "/usage?feature=generations").await;
    assert_eq!(usage["usage"][0]["used"], 40, "{usage}");
}

/// A plan's monthly allowance is granted once per period, however often it is read.
async fn the_plan_allowance_is_granted_once_per_period(backend: Backend) {
    let Some(rig) = rig(backend).await else {
        return;
    };
    let (user, tokens) = tollgate_tests::sign_up(&rig.state).await;
    rig.subscribe(user.id, "pro", NOV_15 + 20 * 86_400).await;
    let at = tokens.access_token.as_str();
    let reads: Vec<_> = (0..5)
        .map(|_| {
            let (http, base, at) = (rig.http.clone(), rig.base.clone(), at.to_owned());
            tokio::spawn(async move {
                http.get(format!("{base}/billing/credits"))
                    .bearer_auth(at)
                    .send()
                    .await
                    .expect("credits")
                    .json::<Value>()
                    .await
                    .expect("json")
            })
        })
        .collect();
    for r in reads {
        r.await.expect("join");
    }
    let credits = rig.credits(at).await;
    assert_eq!(
        credits["balance"], 100,
        "pro grants 100 a period: {credits}"
    );
    assert_eq!(Rig::entries(&credits, "allowance").len(), 1);
    // The next period (the renewal seen): another 100. The access token has expired by then;
    // a user API key reads.
    let key = rig
        .state
        .auth()
        .expect("accounts")
        .create_api_key(
            &user.id,
            tollgate::domain::ApiKeyKind::User,
            "reader",
            None,
            &Default::default(),
        )
        .await
        .expect("key");
    rig.clock.advance(21 * 86_400);
    rig.subscribe(user.id, "pro", NOV_15 + 50 * 86_400).await;
    let credits = rig.credits(&key.secret).await;
    assert_eq!(credits["balance"], 200, "{credits}");
}

tollgate_tests::on_both_stores!(
    a_stripe_pack_is_granted_once_and_a_refund_claws_it_back,
    a_whop_one_time_plan_grants_once_and_its_refund_claws_back,
    fifty_concurrent_spends_against_twenty_credits_spend_exactly_twenty,
    the_plan_allowance_is_granted_once_per_period,
);
