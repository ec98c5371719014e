//! Issue #12's metering over HTTP, on both stores: the seed's free plan (5 exports a month), a
//! retried key counted once, 100 concurrent tracks against pro's 50, a plan change mid-period
//! applying the new limit to the count so far, the period rolling over on a manual clock, and
//! service keys naming the user; and the billing reads: `GET /billing/plans` and `GET
//! /billing/payments`.

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;
use tollgate::domain::{
    ApiKeyKind, Interval, Provider, Subscription, SubscriptionStatus, SubscriptionWrite, UserId,
};
use tollgate::store::{BillingStore, EventLedger};
use tollgate::{AppState, Needs};
use tollgate_tests::{Backend, ManualClock};

struct Rig {
    base: String,
    http: reqwest::Client,
    clock: Arc<ManualClock>,
    state: AppState,
    billing: Arc<dyn BillingStore>,
    ledger: Arc<dyn EventLedger>,
}

/// 2026-11-15 12:00 UTC: mid-month, so the free period is November.
const NOV_15: i64 = 1_794_744_000;

async fn rig(backend: Backend) -> Option<Rig> {
    let (mut components, clock, _) = tollgate_tests::components_at(NOV_15);
    if let Backend::Dynamo = backend {
        let store = Arc::new(tollgate_tests::dynamo_store().await?);
        tollgate_tests::use_store(&mut components, store);
    }
    let state = AppState::assemble(&components, Needs::ALL);
    Some(Rig {
        base: tollgate_tests::spawn_app(state.clone()).await,
        http: reqwest::Client::new(),
        clock,
        billing: components.billing_store.clone(),
        ledger: components.ledger.clone(),
        state,
    })
}

impl Rig {
    async fn track(&self, bearer: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}/usage/track", self.base))
            .bearer_auth(bearer)
            .json(&body)
            .send()
            .await
            .expect("track");
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    async fn usage(&self, bearer: &str) -> Value {
        self.http
            .get(format!("{}/usage?feature=exports", self.base))
            .bearer_auth(bearer)
            .send()
            .await
            .expect("usage")
            .json()
            .await
            .expect("json")
    }

    async fn subscribe(&self, user: UserId, plan: &str, version: u64) {
        let sub = Subscription {
            user_id: user,
            provider: Provider::Stripe,
            subscription_id: "sub_usage".into(),
            customer_id: Some("cus_usage".into()),
            plan: plan.into(),
            interval: Some(Interval::Month),
            price_id: "price_1TestProMonthly01".into(),
            status: SubscriptionStatus::Active,
            current_period_end: Some(NOV_15 + 20 * 86_400),
            cancel_at_period_end: false,
            trial_end: None,
            past_due_since: None,
            source_fetched_at_us: version as i64,
            version,
            updated_at: NOV_15,
        };
        self.billing
            .put_subscription(&SubscriptionWrite {
                subscription: sub,
                expected_version: (version > 1).then_some(version - 1),
            })
            .await
            .expect("subscription");
    }
}

fn export(key: &str) -> Value {
    json!({"feature": "exports", "idempotency_key": key})
}

async fn the_free_plan_allows_five_a_month_and_a_retry_counts_once(backend: Backend) {
    let Some(rig) = rig(backend).await else {
        return;
    };
    let (user, tokens) = tollgate_tests::sign_up(&rig.state).await;
    let at = tokens.access_token.as_str();
    for i in 1..=5u64 {
        let (status, body) = rig.track(at, export(&format!("e{i}"))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            (body["used"].as_u64(), body["remaining"].as_u64()),
            (Some(i), Some(5 - i))
        );
        assert_eq!(body["replayed"], false);
    }
    let (status, body) = rig.track(at, export("e5")).await;
    assert_eq!(
        (status, body["replayed"].as_bool(), body["used"].as_u64()),
        (StatusCode::OK, Some(true), Some(5))
    );
    let (status, body) = rig.track(at, export("e6")).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{body}");
    assert_eq!(body["code"], "usage_limit_reached");
    assert_eq!(body["usage"]["used"], 5);
    assert_eq!(body["usage"]["limit"], 5);
    assert_eq!(body["usage"]["resets_at"], "2026-12-01T00:00:00Z");
    let (status, body) = rig
        .track(
            at,
            json!({"feature": "exports", "quantity": 2, "idempotency_key": "e5"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("idempotency_key_reused")
        )
    );
    let (status, body) = rig
        .track(
            at,
            export("e7")
                .as_object()
                .map(|o| {
                    let mut o = o.clone();
                    o.insert("feature".into(), "teleports".into());
                    Value::Object(o)
                })
                .expect("object"),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"))
    );
    let usage = rig.usage(at).await;
    assert_eq!(usage["usage"][0]["used"], 5);
    assert_eq!(usage["usage"][0]["remaining"], 0);
    // December (the access token long expired: a user key tracks): the count starts again.
    let key = rig
        .state
        .auth()
        .expect("accounts")
        .create_api_key(
            &user.id,
            ApiKeyKind::User,
            "cron",
            None,
            &Default::default(),
        )
        .await
        .expect("key");
    rig.clock.advance(16 * 86_400 + 12 * 3_600);
    let (status, body) = rig.track(&key.secret, export("dec-1")).await;
    assert_eq!((status, body["used"].as_u64()), (StatusCode::OK, Some(1)));
    assert_eq!(body["resets_at"], "2027-01-01T00:00:00Z");
}

async fn concurrent_tracks_stop_exactly_at_the_limit_and_a_plan_change_applies_mid_period(
    backend: Backend,
) {
    let Some(rig) = rig(backend).await else {
        return;
    };
    let (user, tokens) = tollgate_tests::sign_up(&rig.state).await;
    rig.subscribe(user.id, "pro", 1).await;
    let at = Arc::new(tokens.access_token);
    let tries: Vec<_> = (0..100)
        .map(|i| {
            let (http, base, at) = (rig.http.clone(), rig.base.clone(), at.clone());
            tokio::spawn(async move {
                http.post(format!("{base}/usage/track"))
                    .bearer_auth(at.as_str())
                    .json(&export(&format!("c{i}")))
                    .send()
                    .await
                    .expect("track")
                    .status()
            })
        })
        .collect();
    let mut ok = 0;
    for t in tries {
        match t.await.expect("join") {
            StatusCode::OK => ok += 1,
            StatusCode::PAYMENT_REQUIRED => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 50, "pro allows 50 exports a period");
    let usage = rig.usage(&at).await;
    assert_eq!(
        (
            usage["usage"][0]["used"].as_u64(),
            usage["usage"][0]["plan"].as_str()
        ),
        (Some(50), Some("pro"))
    );
    // The same billing period on team (unlimited): the count so far stands, the new limit applies.
    rig.subscribe(user.id, "team", 2).await;
    let (status, body) = rig.track(&at, export("after-upgrade")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (
            body["used"].as_u64(),
            body["limit"].as_u64(),
            body["plan"].as_str()
        ),
        (Some(51), None, Some("team"))
    );
}

async fn a_service_key_counts_for_the_user_it_names(backend: Backend) {
    let Some(rig) = rig(backend).await else {
        return;
    };
    let (admin, _) = tollgate_tests::sign_up(&rig.state).await;
    let (ada, tokens) = tollgate_tests::sign_up(&rig.state).await;
    let auth = rig.state.auth().expect("accounts");
    let origin = Default::default();
    let service = auth
        .create_api_key(&admin.id, ApiKeyKind::Service, "backend", None, &origin)
        .await
        .expect("service key");
    let user_key = auth
        .create_api_key(&ada.id, ApiKeyKind::User, "cli", None, &origin)
        .await
        .expect("user key");
    let for_ada =
        json!({"feature": "exports", "idempotency_key": "svc-1", "user_id": ada.id.to_string()});
    let (status, body) = rig.track(&service.secret, for_ada.clone()).await;
    assert_eq!(
        (status, body["used"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{body}"
    );
    assert_eq!(
        rig.usage(&tokens.access_token).await["usage"][0]["used"],
        1,
        "counted for ada"
    );
    let (status, _) = rig.track(&service.secret, export("svc-2")).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a service key must name the user"
    );
    let (status, body) = rig.track(&user_key.secret, for_ada).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden_for_key"))
    );
    let (status, body) = rig.track(&user_key.secret, export("cli-1")).await;
    assert_eq!(
        (status, body["used"].as_u64()),
        (StatusCode::OK, Some(2)),
        "a user key counts for its user"
    );
}

/// `GET /billing/plans`: public, every plan lowest tier first with its display prices,
/// providers and metered allowances — the seed's 5 / 50 / unlimited exports.
#[tokio::test]
async fn the_plans_route_shows_what_a_pricing_page_needs() {
    let Some(rig) = rig(Backend::Embedded).await else {
        return;
    };
    let r = rig
        .http
        .get(format!("{}/billing/plans", rig.base))
        .send()
        .await
        .expect("plans");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "public, max-age=300");
    let body: Value = r.json().await.expect("json");
    let ids: Vec<&str> = body["plans"]
        .as_array()
        .expect("plans")
        .iter()
        .map(|p| p["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["free", "pro", "team"]);
    let pro = &body["plans"][1];
    assert_eq!(
        pro["prices"][0],
        json!({"interval": "month", "amount": 1900, "currency": "usd"})
    );
    assert_eq!(pro["providers"], json!(["stripe", "whop"]));
    assert_eq!(pro["trial_days"], 14);
    let exports: Vec<&Value> = body["plans"]
        .as_array()
        .expect("plans")
        .iter()
        .map(|p| &p["metered"]["exports"]["limit"])
        .collect();
    assert_eq!(exports, [&json!(5), &json!(50), &Value::Null]);
    assert_eq!(body["plans"][0]["prices"], json!([]));
}

/// `GET /billing/payments`: the user's payments (written by processed webhook events) newest
/// first, in pages that chain by `next_before`; another user's are not listed.
async fn payments_are_listed_newest_first_in_pages(backend: Backend) {
    let Some(rig) = rig(backend).await else {
        return;
    };
    let (user, tokens) = tollgate_tests::sign_up(&rig.state).await;
    let (other, _) = tollgate_tests::sign_up(&rig.state).await;
    for (i, owner) in [(1, user.id), (2, user.id), (3, other.id), (4, user.id)] {
        let event_id = format!("evt_pay_{}_{i}", uuid::Uuid::now_v7().simple());
        let event = tollgate::domain::WebhookEvent {
            provider: Provider::Stripe,
            event_id: event_id.as_str().into(),
            event_type: "invoice.paid".into(),
            body: "{}".into(),
            group_id: "sub_pay".into(),
            received_at: NOV_15,
            status: tollgate::domain::EventStatus::Received,
            attempts: 0,
            last_error: None,
            processed_at: None,
            expires_at: NOV_15 + tollgate::domain::EVENT_RETENTION_SECONDS,
        };
        rig.ledger.record_event(&event).await.expect("record");
        let payment = tollgate::domain::Payment {
            user_id: owner,
            provider: Provider::Stripe,
            payment_id: format!("in_{i}").as_str().into(),
            amount_minor: 1900 * i,
            currency: "usd".into(),
            subscription_id: Some("sub_pay".into()),
            status: tollgate::domain::PaymentStatus::Paid,
            paid_at: NOV_15 - 86_400 * (10 - i),
        };
        let effects = tollgate::domain::EventEffects {
            subscription: None,
            payment: Some(payment),
            credits: None,
            notices: Default::default(),
        };
        rig.ledger
            .apply_event(Provider::Stripe, &event.event_id, &effects, NOV_15)
            .await
            .expect("apply");
    }
    let page = |query: String| {
        let (http, base, at) = (
            rig.http.clone(),
            rig.base.clone(),
            tokens.access_token.clone(),
        );
        async move {
            http.get(format!("{base}/billing/payments?{query}"))
                .bearer_auth(at)
                .send()
                .await
                .expect("payments")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    let first = page("limit=2".into()).await;
    let ids: Vec<&str> = first["payments"]
        .as_array()
        .expect("list")
        .iter()
        .map(|p| p["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["in_4", "in_2"], "newest first, only the user's");
    assert_eq!(first["payments"][0]["amount"], 7600);
    let next = first["next_before"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let second = page(format!("limit=2&before={}", next.replace('#', "%23"))).await;
    let ids: Vec<&str> = second["payments"]
        .as_array()
        .expect("list")
        .iter()
        .map(|p| p["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["in_1"]);
    assert_eq!(second["next_before"], Value::Null);
}

tollgate_tests::on_both_stores!(
    the_free_plan_allows_five_a_month_and_a_retry_counts_once,
    concurrent_tracks_stop_exactly_at_the_limit_and_a_plan_change_applies_mid_period,
    a_service_key_counts_for_the_user_it_names,
    payments_are_listed_newest_first_in_pages,
);
