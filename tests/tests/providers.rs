//! Checkout, portal, cancel and plan change against `wiremock` doubles of Stripe and Whop,
//! asserting the exact requests (form encoding, idempotency keys, metadata) — through the real
//! HTTP route (`functions/checkout`) and the real provider clients.

use serde_json::{json, Value};
use std::sync::Arc;
use tollgate::domain::{
    Interval, Provider, ProviderSubscription, Subscription, SubscriptionStatus,
};
use tollgate::payments::stripe::StripeProvider;
use tollgate::payments::whop::WhopProvider;
use tollgate::payments::Providers;
use tollgate::store::BillingStore;
use tollgate::AppState;
use tollgate_tests::{components_at, now, stripe_object};
use wiremock::matchers::{body_string_contains, header, header_exists, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn field<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The real Stripe provider (async-stripe over reqwest), pointed at the double `stripe`.
fn stripe_at(stripe: &MockServer) -> Providers {
    Providers::default().with(Arc::new(
        StripeProvider::new(
            tollgate::payments::http_client().expect("http"),
            &"sk_test_wire".to_owned().into(),
            Some(&stripe.uri()),
        )
        .expect("client"),
    ))
}

async fn signed_up(state: &AppState) -> (tollgate::domain::UserId, String) {
    let (user, tokens) = tollgate_tests::sign_up(state).await;
    (user.id, tokens.access_token)
}

async fn post(base: &str, path: &str, token: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn stripe_checkout_creates_one_customer_and_a_session_with_the_user_everywhere() {
    let stripe = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/customers"))
        .and(header_exists("idempotency-key"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(stripe_object("customer", json!({"id": "cus_Wire0001"}))),
        )
        .expect(1)
        .mount(&stripe)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/checkout/sessions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(stripe_object(
            "checkout.session",
            json!({"id": "cs_test_wire", "url": "https://checkout.stripe.com/c/pay/cs_test_wire"}),
        )))
        .expect(2)
        .mount(&stripe)
        .await;
    let (mut c, _, _) = components_at(now());
    c.providers = stripe_at(&stripe);
    let state = AppState::assemble(&c, tollgate::Needs::ALL);
    let (user, token) = signed_up(&state).await;
    let base = tollgate_tests::spawn_app(state).await;

    let (status, body) = post(
        &base,
        "/billing/checkout",
        &token,
        json!({"plan": "pro", "interval": "month"}),
    )
    .await;
    assert_eq!(
        (status, body["provider"].as_str()),
        (200, Some("stripe")),
        "{body}"
    );
    assert_eq!(
        body["url"],
        "https://checkout.stripe.com/c/pay/cs_test_wire"
    );
    // A second attempt reuses the stored customer (no second POST /v1/customers) with a new key.
    let (status, _) = post(&base, "/billing/checkout", &token, json!({"plan": "team"})).await;
    assert_eq!(status, 200);

    let requests = stripe.received_requests().await.expect("recorded");
    let customer = requests
        .iter()
        .find(|r| r.url.path() == "/v1/customers")
        .expect("customer call");
    assert_eq!(
        customer
            .headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok()),
        Some(format!("customer-{user}").as_str())
    );
    assert_eq!(
        customer
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer sk_test_wire")
    );
    // The API version async-stripe 1.0.0-rc.10 is generated for, and a form body.
    assert_eq!(
        customer
            .headers
            .get("stripe-version")
            .and_then(|v| v.to_str().ok()),
        Some("2026-09-30.endive")
    );
    assert_eq!(
        customer
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/x-www-form-urlencoded")
    );
    let cf = form(&customer.body);
    assert_eq!(
        field(&cf, "metadata[user_id]"),
        Some(user.to_string().as_str())
    );
    let sessions: Vec<_> = requests
        .iter()
        .filter(|r| r.url.path() == "/v1/checkout/sessions")
        .collect();
    let keys: Vec<_> = sessions
        .iter()
        .map(|r| {
            r.headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert!(
        keys.iter()
            .all(|k| k.starts_with(&format!("checkout-{user}-"))),
        "{keys:?}"
    );
    assert_ne!(keys[0], keys[1], "an idempotency key per attempt");
    let f = form(&sessions[0].body);
    let uid = user.to_string();
    for (k, v) in [
        ("mode", "subscription"),
        ("customer", "cus_Wire0001"),
        ("client_reference_id", uid.as_str()),
        ("metadata[user_id]", uid.as_str()),
        ("subscription_data[metadata][user_id]", uid.as_str()),
        ("line_items[0][price]", "price_1TestProMonthly01"),
        ("line_items[0][quantity]", "1"),
        ("subscription_data[trial_period_days]", "14"),
    ] {
        assert_eq!(field(&f, k), Some(v), "{k} in {f:?}");
    }
    assert!(field(&f, "success_url").is_some_and(|u| u.contains("{CHECKOUT_SESSION_ID}")));
    assert_eq!(
        field(&form(&sessions[1].body), "line_items[0][price]"),
        Some("price_1TestTeamMonthly1")
    );
}

async fn with_subscription(
    provider: Provider,
    providers: Providers,
) -> (String, tollgate::domain::UserId, String) {
    let (base, user, token, _) = with_subscription_and_store(provider, providers).await;
    (base, user, token)
}

async fn with_subscription_and_store(
    provider: Provider,
    providers: Providers,
) -> (
    String,
    tollgate::domain::UserId,
    String,
    Arc<tollgate::store::embedded::EmbeddedStore>,
) {
    let (mut c, _, store) = components_at(now());
    c.providers = providers;
    let catalog = c.catalog.clone();
    let state = AppState::assemble(&c, tollgate::Needs::ALL);
    let (user, token) = signed_up(&state).await;
    let fetched = ProviderSubscription {
        provider,
        subscription_id: if provider == Provider::Whop {
            "mem_Wire0001".into()
        } else {
            "sub_Wire0001".into()
        },
        customer_id: Some("cus_Wire0001".into()),
        user_id: Some(user),
        status: SubscriptionStatus::Active,
        price_id: if provider == Provider::Whop {
            "plan_TestProMonthly".into()
        } else {
            "price_1TestProMonthly01".into()
        },
        current_period_end: Some(now() + 86_400),
        cancel_at_period_end: false,
        trial_end: None,
    };
    let sub = Subscription::from_provider(user, &fetched, None, &catalog, now() * 1000);
    assert_eq!(
        sub.interval,
        if provider == Provider::Whop {
            None
        } else {
            Some(Interval::Month)
        }
    );
    store
        .put_subscription(&tollgate::domain::SubscriptionWrite {
            subscription: sub,
            expected_version: None,
        })
        .await
        .expect("seed subscription");
    (tollgate_tests::spawn_app(state).await, user, token, store)
}

#[tokio::test]
async fn stripe_portal_cancel_resume_and_change_send_the_expected_requests() {
    let stripe = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/billing_portal/sessions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(stripe_object(
            "billing_portal.session",
            json!({"url": "https://billing.stripe.com/p/session/wire"}),
        )))
        .mount(&stripe)
        .await;
    let subscription = stripe_object("subscription", json!({"id": "sub_Wire0001"}));
    Mock::given(method("GET"))
        .and(path("/v1/subscriptions/sub_Wire0001"))
        .respond_with(ResponseTemplate::new(200).set_body_json(subscription.clone()))
        .mount(&stripe)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/subscriptions/sub_Wire0001"))
        .respond_with(ResponseTemplate::new(200).set_body_json(subscription.clone()))
        .mount(&stripe)
        .await;
    let providers = stripe_at(&stripe);
    let (base, _, token) = with_subscription(Provider::Stripe, providers).await;

    let (status, body) = post(&base, "/billing/portal", &token, json!({})).await;
    assert_eq!(
        (status, body["url"].as_str()),
        (200, Some("https://billing.stripe.com/p/session/wire"))
    );
    assert_eq!(
        post(&base, "/billing/subscription/cancel", &token, json!({}))
            .await
            .0,
        202
    );
    assert_eq!(
        post(&base, "/billing/subscription/resume", &token, json!({}))
            .await
            .0,
        202
    );
    assert_eq!(
        post(
            &base,
            "/billing/subscription/change",
            &token,
            json!({"plan": "team"})
        )
        .await
        .0,
        202
    );
    let (status, body) = post(
        &base,
        "/billing/subscription/change",
        &token,
        json!({"plan": "pro"}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("validation_failed")),
        "already on pro"
    );

    let requests = stripe.received_requests().await.expect("recorded");
    let portal = requests
        .iter()
        .find(|r| r.url.path() == "/v1/billing_portal/sessions")
        .expect("portal");
    assert_eq!(field(&form(&portal.body), "customer"), Some("cus_Wire0001"));
    let updates: Vec<_> = requests
        .iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == "/v1/subscriptions/sub_Wire0001")
        .map(|r| form(&r.body))
        .collect();
    assert_eq!(updates.len(), 3, "cancel, resume, change");
    assert_eq!(field(&updates[0], "cancel_at_period_end"), Some("true"));
    assert_eq!(field(&updates[1], "cancel_at_period_end"), Some("false"));
    let item_id = subscription["items"]["data"][0]["id"]
        .as_str()
        .expect("item id");
    assert_eq!(field(&updates[2], "items[0][id]"), Some(item_id));
    assert_eq!(
        field(&updates[2], "items[0][price]"),
        Some("price_1TestTeamMonthly1")
    );
    assert_eq!(
        field(&updates[2], "proration_behavior"),
        Some("always_invoice"),
        "the team plan's proration"
    );
}

#[tokio::test]
async fn stripe_errors_become_problems_and_refusals_are_not_retried() {
    let stripe = MockServer::start().await;
    let providers = stripe_at(&stripe);
    let (base, _, token) = with_subscription(Provider::Stripe, providers).await;
    // (Stripe's answer, the route's answer): a refusal (4xx) is the provider's word, an outage
    // (5xx, 429) is retryable, a 2xx body that is not the expected object is an outage too.
    let cases = [
        (
            ResponseTemplate::new(400).set_body_json(json!({"error": {
                "type": "invalid_request_error", "code": "resource_missing",
                "message": "No such customer: 'cus_Wire0001'", "param": "customer"}})),
            (502, "provider_error"),
        ),
        (
            ResponseTemplate::new(500)
                .insert_header("stripe-should-retry", "true")
                .set_body_string("<html>upstream</html>"),
            (503, "unavailable"),
        ),
        (
            ResponseTemplate::new(429)
                .set_body_json(json!({"error": {"type": "rate_limit_error"}})),
            (503, "unavailable"),
        ),
        (
            ResponseTemplate::new(200).set_body_json(json!({"object": "billing_portal.session"})),
            (503, "unavailable"),
        ),
    ];
    for (answer, expected) in cases {
        stripe.reset().await;
        Mock::given(method("POST"))
            .and(path("/v1/billing_portal/sessions"))
            .respond_with(answer)
            .expect(1) // one attempt: Tollgate's requests use `RequestStrategy::Once`
            .mount(&stripe)
            .await;
        let (status, body) = post(&base, "/billing/portal", &token, json!({})).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (expected.0, Some(expected.1)),
            "{body}"
        );
        assert!(!body.to_string().contains("sk_test"), "{body}");
        stripe.verify().await;
    }
}

#[tokio::test]
async fn whop_checkout_and_cancel_send_the_expected_requests() {
    let whop = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/checkout_configurations"))
        .and(header("authorization", "Bearer whop_key_wire"))
        .and(body_string_contains("plan_TestProMonthly"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"id": "ch_Wire0001", "purchase_url": "https://whop.com/checkout/ch_Wire0001"}),
        ))
        .expect(1)
        .mount(&whop)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v1/memberships/mem_Wire0001/cancel"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "mem_Wire0001"})))
        .expect(1)
        .mount(&whop)
        .await;
    let client = Arc::new(WhopProvider::new(
        tollgate::payments::http_client().expect("http"),
        &format!("{}/api/v1", whop.uri()),
        "whop_key_wire".to_owned().into(),
    ));
    let (mut c, _, _) = components_at(now());
    c.providers = Providers::default().with(client.clone());
    let state = AppState::assemble(&c, tollgate::Needs::ALL);
    let (user, token) = signed_up(&state).await;
    let base = tollgate_tests::spawn_app(state).await;
    let (status, body) = post(
        &base,
        "/billing/checkout",
        &token,
        json!({"plan": "pro", "provider": "whop"}),
    )
    .await;
    assert_eq!(
        (status, body["url"].as_str()),
        (200, Some("https://whop.com/checkout/ch_Wire0001")),
        "{body}"
    );
    let requests = whop.received_requests().await.expect("recorded");
    let sent: Value = serde_json::from_slice(&requests[0].body).expect("json body");
    assert_eq!(sent["plan_id"], "plan_TestProMonthly");
    assert_eq!(sent["metadata"]["user_id"], user.to_string());
    assert!(requests[0].headers.get("idempotency-key").is_some());

    let (base, _, token) =
        with_subscription(Provider::Whop, Providers::default().with(client)).await;
    assert_eq!(
        post(&base, "/billing/subscription/cancel", &token, json!({}))
            .await
            .0,
        202
    );
    let requests = whop.received_requests().await.expect("recorded");
    let cancel = requests
        .iter()
        .find(|r| r.url.path().ends_with("/cancel"))
        .expect("cancel");
    let sent: Value = serde_json::from_slice(&cancel.body).expect("json");
    assert_eq!(sent["cancellation_mode"], "at_period_end");
}

#[tokio::test]
async fn billing_routes_refuse_what_they_cannot_do() {
    let (c, _, _) = components_at(now());
    let state = AppState::assemble(&c, tollgate::Needs::ALL);
    let (_, token) = signed_up(&state).await;
    let base = tollgate_tests::spawn_app(state).await;
    let (status, body) = post(&base, "/billing/checkout", &token, json!({"plan": "pro"})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("provider_not_configured"))
    );
    let (status, body) = post(
        &base,
        "/billing/checkout",
        &token,
        json!({"plan": "gold", "provider": "stripe"}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("validation_failed"))
    );
    let (status, body) = post(&base, "/billing/portal", &token, json!({})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("no_subscription"))
    );
    let (status, _) = post(
        &base,
        "/billing/checkout",
        "not-a-token",
        json!({"plan": "pro"}),
    )
    .await;
    assert_eq!(status, 401);
}

/// Deleting an account cancels its live subscription at Stripe at once (`DELETE
/// /v1/subscriptions/{id}`, exactly once) before anything is deleted; then the user is gone
/// (login refused, the email free) and its payment records are kept. When Stripe refuses, nothing
/// is deleted.
#[tokio::test]
async fn deleting_an_account_cancels_its_stripe_subscription_and_keeps_its_payments() {
    use tollgate::store::{EventLedger, UserStore};
    let stripe = MockServer::start().await;
    let (base, user, token, store) =
        with_subscription_and_store(Provider::Stripe, stripe_at(&stripe)).await;
    // A payment recorded through the ledger, as the webhook processor does.
    let event = tollgate::domain::WebhookEvent {
        provider: Provider::Stripe,
        event_id: "evt_Wire0001".into(),
        event_type: "invoice.paid".into(),
        body: "{}".into(),
        group_id: "sub_Wire0001".into(),
        received_at: now(),
        status: tollgate::domain::EventStatus::Received,
        attempts: 0,
        last_error: None,
        processed_at: None,
        expires_at: now() + 86_400,
    };
    store.record_event(&event).await.expect("record");
    let payment = tollgate::domain::Payment {
        user_id: user,
        provider: Provider::Stripe,
        payment_id: "in_Wire0001".into(),
        amount_minor: 1500,
        currency: "usd".into(),
        subscription_id: Some("sub_Wire0001".into()),
        status: tollgate::domain::PaymentStatus::Paid,
        paid_at: now(),
    };
    store
        .apply_event(
            Provider::Stripe,
            &event.event_id,
            &tollgate::domain::EventEffects {
                subscription: None,
                payment: Some(payment),
                credits: None,
                notices: Default::default(),
            },
            now(),
        )
        .await
        .expect("payment");
    let email = store
        .get_user(&user)
        .await
        .expect("read")
        .expect("user")
        .email;
    let delete = || async {
        let r = reqwest::Client::new()
            .delete(format!("{base}/auth/me"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.unwrap_or(Value::Null))
    };

    // Stripe refuses first: 502, and nothing is deleted.
    let refusal = Mock::given(method("DELETE"))
        .and(path("/v1/subscriptions/sub_Wire0001"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": {"type": "invalid_request_error", "message": "refused"}
        })))
        .expect(1)
        .mount_as_scoped(&stripe)
        .await;
    let (status, body) = delete().await;
    assert_eq!(
        (status, body["code"].as_str()),
        (502, Some("provider_error")),
        "{body}"
    );
    assert!(
        store.get_user(&user).await.expect("read").is_some(),
        "nothing deleted"
    );
    drop(refusal);

    Mock::given(method("DELETE"))
        .and(path("/v1/subscriptions/sub_Wire0001"))
        .and(header("authorization", "Bearer sk_test_wire"))
        .respond_with(ResponseTemplate::new(200).set_body_json(stripe_object(
            "subscription",
            json!({"id": "sub_Wire0001", "status": "canceled"}),
        )))
        .expect(1)
        .mount(&stripe)
        .await;
    let (status, body) = delete().await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(store.get_user(&user).await.expect("read"), None);
    assert_eq!(
        store
            .find_user_id_by_email(&email.to_lowercase())
            .await
            .expect("find"),
        None,
        "the email is free"
    );
    assert_eq!(
        store.list_payments(&user).await.expect("payments").len(),
        1,
        "kept"
    );
    assert_eq!(store.get_subscription(&user).await.expect("read"), None);
    let r = reqwest::Client::new()
        .post(format!("{base}/auth/login"))
        .json(&json!({"email": email, "password": tollgate_tests::PASSWORD}))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status().as_u16(), 401);
    // MockServer checks `expect(1)` on drop.
}

/// One trial per account, across providers: a user whose Whop membership had a trial (now
/// canceled) checks out with Stripe without one; a user who never had one gets the plan's 14
/// days.
#[tokio::test]
async fn a_user_who_had_a_trial_checks_out_without_one() {
    let stripe = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/checkout/sessions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(stripe_object(
            "checkout.session",
            json!({"id": "cs_test_trial", "url": "https://checkout.stripe.com/c/pay/cs_test_trial"}),
        )))
        .mount(&stripe)
        .await;
    let (mut c, _, store) = components_at(now());
    c.providers = stripe_at(&stripe);
    let catalog = c.catalog.clone();
    let state = AppState::assemble(&c, tollgate::Needs::ALL);
    let (had_trial, token) = signed_up(&state).await;
    let (fresh, fresh_token) = signed_up(&state).await;
    for (user, customer) in [(had_trial, "cus_Trial0001"), (fresh, "cus_Trial0002")] {
        store
            .claim_customer(Provider::Stripe, &customer.into(), &user)
            .await
            .expect("claim");
    }
    let ended = ProviderSubscription {
        provider: Provider::Whop,
        subscription_id: "mem_Trial0001".into(),
        customer_id: Some("mber_Trial0001".into()),
        user_id: Some(had_trial),
        status: SubscriptionStatus::Canceled,
        price_id: "plan_TestProMonthly".into(),
        current_period_end: Some(now() - 86_400),
        cancel_at_period_end: false,
        trial_end: Some(now() - 86_400),
    };
    store
        .put_subscription(&tollgate::domain::SubscriptionWrite {
            subscription: Subscription::from_provider(
                had_trial,
                &ended,
                None,
                &catalog,
                now() * 1000,
            ),
            expected_version: None,
        })
        .await
        .expect("seed the ended trial");
    let base = tollgate_tests::spawn_app(state).await;
    for t in [&token, &fresh_token] {
        let (status, body) = post(&base, "/billing/checkout", t, json!({"plan": "pro"})).await;
        assert_eq!(status, 200, "{body}");
    }
    let sessions: Vec<_> = stripe
        .received_requests()
        .await
        .expect("recorded")
        .into_iter()
        .filter(|r| r.url.path() == "/v1/checkout/sessions")
        .collect();
    let trial_days = |i: usize| {
        field(
            &form(&sessions[i].body),
            "subscription_data[trial_period_days]",
        )
        .map(str::to_owned)
    };
    assert_eq!(trial_days(0), None, "the second trial is refused");
    assert_eq!(
        trial_days(1).as_deref(),
        Some("14"),
        "a first trial is offered"
    );
}
