//! Issue #13's reconciler, on both stores: a Stripe event that was never delivered (listed by a
//! wiremock Stripe through the real client, `GET /v1/events`) is applied by one run and not
//! again by the next; a Whop membership change with no webhook (wiremock Whop, `GET
//! /memberships`) likewise; a run that dies part-way moves no checkpoint, and the next run
//! loses nothing.

use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tollgate::domain::{Provider, ProviderSubscription, SubscriptionStatus, UserId};
use tollgate::payments::stripe::StripeProvider;
use tollgate::payments::whop::WhopProvider;
use tollgate::payments::{PaymentProvider, Providers};
use tollgate::state::Components;
use tollgate::webhooks::Processor;
use tollgate::{AppState, Clock};
use tollgate_tests::{stripe_object, Backend, FakeProvider, ManualClock, RecordingQueue};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// 2026-11-30 12:00 UTC.
const NOW: i64 = 1_796_040_000;

struct Rig {
    components: Components,
    clock: Arc<ManualClock>,
    queue: Arc<RecordingQueue>,
    processor: Processor,
    state: AppState,
}

async fn rig(backend: Backend, provider: Arc<dyn PaymentProvider>) -> Option<Rig> {
    let (mut components, clock, _) = tollgate_tests::components_at(NOW);
    if let Backend::Dynamo = backend {
        // Checkpoints are per table: each case has a table of its own.
        let store = Arc::new(tollgate_tests::dynamo_store_of_its_own("reconcile").await?);
        tollgate_tests::use_store(&mut components, store);
    }
    let queue = Arc::new(RecordingQueue::default());
    components.queue = Some(queue.clone());
    components.providers = Providers::default().with(provider);
    Some(Rig {
        processor: components.processor(),
        state: AppState::assemble(&components, tollgate::Needs::ALL),
        components,
        clock,
        queue,
    })
}

impl Rig {
    async fn reconcile(&self, provider: Provider) -> tollgate::webhooks::ReconcileReport {
        self.components
            .reconciler()
            .expect("a queue")
            .run_provider(provider, None)
            .await
            .expect("reconcile")
    }

    /// Processes every queued pointer, as the SQS-triggered processor would.
    async fn drain(&self) -> usize {
        let queued: Vec<_> = std::mem::take(&mut *self.queue.0.lock().expect("lock"));
        for (message, _, _) in &queued {
            self.processor.process_one(message).await.expect("process");
        }
        queued.len()
    }

    async fn plan_of(&self, user: UserId) -> Option<(String, u64)> {
        self.components
            .billing_store
            .get_subscription(&user)
            .await
            .expect("read")
            .map(|s| (s.plan, s.version))
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// Stripe's subscription object (the vendored OpenAPI fixture) as `user`'s active pro.
fn stripe_subscription(id: &str, customer: &str, user: UserId) -> Value {
    let mut s = stripe_object(
        "subscription",
        json!({"id": id, "customer": customer, "status": "active",
               "cancel_at_period_end": false, "trial_end": null,
               "metadata": {"user_id": user.to_string()}}),
    );
    let item = &mut s["items"]["data"][0];
    item["price"]["id"] = json!("price_1TestProMonthly01");
    item["current_period_end"] = json!(NOW + 20 * 86_400);
    s
}

async fn a_missed_stripe_event_is_applied_by_one_run_and_not_again(backend: Backend) {
    let stripe = MockServer::start().await;
    let client = Arc::new(
        StripeProvider::new(
            tollgate::payments::http_client().expect("http"),
            &"sk_test_reconcile".to_owned().into(),
            Some(&stripe.uri()),
        )
        .expect("client"),
    );
    let Some(rig) = rig(backend, client).await else {
        return;
    };
    let (user, _) = tollgate_tests::sign_up(&rig.state).await;
    let (sub, customer, event_id) = (unique("sub"), unique("cus"), unique("evt"));
    let subscription = stripe_subscription(&sub, &customer, user.id);
    let missed = json!({
        "id": event_id, "object": "event", "type": "customer.subscription.updated",
        "created": NOW - 600, "api_version": "2026-09-30.endive", "livemode": false,
        "data": {"object": subscription},
    });
    Mock::given(method("GET"))
        .and(path("/v1/events"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "list", "url": "/v1/events", "has_more": false, "data": [missed],
        })))
        .mount(&stripe)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/subscriptions/{sub}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(subscription))
        .mount(&stripe)
        .await;

    let first = rig.reconcile(Provider::Stripe).await;
    assert_eq!(
        (first.listed, first.recorded, first.already_done),
        (1, 1, 0),
        "{first:?}"
    );
    assert_eq!(
        first.since,
        NOW - tollgate::webhooks::reconcile::FIRST_LOOKBACK_SECONDS
    );
    assert_eq!(rig.drain().await, 1);
    let applied = rig.plan_of(user.id).await.expect("a subscription");
    assert_eq!(applied.0, "pro");
    let request = stripe
        .received_requests()
        .await
        .expect("recorded")
        .into_iter()
        .find(|r| r.url.path() == "/v1/events")
        .expect("listed");
    let query: Vec<(String, String)> = request.url.query_pairs().into_owned().collect();
    assert!(
        query.contains(&("created[gte]".into(), first.since.to_string())),
        "{query:?}"
    );
    assert!(
        query
            .iter()
            .any(|(k, v)| k.starts_with("types[") && v == "invoice.payment_failed"),
        "only the handled types: {query:?}"
    );

    rig.clock.advance(900);
    let second = rig.reconcile(Provider::Stripe).await;
    assert_eq!(
        (second.recorded, second.requeued, second.already_done),
        (0, 0, 1),
        "{second:?}"
    );
    assert_eq!(
        second.since,
        first.checkpoint - tollgate::webhooks::reconcile::OVERLAP_SECONDS,
        "from the checkpoint, with the overlap"
    );
    assert_eq!(rig.drain().await, 0, "nothing enqueued again");
    assert_eq!(
        rig.plan_of(user.id).await,
        Some(applied),
        "not applied twice"
    );
}

async fn a_whop_membership_change_without_a_webhook_is_applied_once(backend: Backend) {
    let whop = MockServer::start().await;
    let client = Arc::new(WhopProvider::new(
        tollgate::payments::http_client().expect("http"),
        &format!("{}/api/v1", whop.uri()),
        "whop_key_reconcile".to_owned().into(),
    ));
    let Some(rig) = rig(backend, client).await else {
        return;
    };
    let (user, _) = tollgate_tests::sign_up(&rig.state).await;
    let membership_id = unique("mem");
    let membership = json!({
        "id": membership_id, "status": "active",
        "created_at": "2026-11-29T09:00:00.000Z", "updated_at": "2026-11-30T11:50:00.000Z",
        "member": {"id": unique("mber")}, "user": {"id": "user_TestWhop"},
        "renewal_period_end": "2026-12-29T09:00:00.000Z", "cancel_at_period_end": false,
        "plan": {"id": "plan_TestProMonthly"},
        "metadata": {"user_id": user.id.to_string()},
    });
    let stale = json!({
        "id": unique("mem"), "status": "active", "updated_at": "2026-10-01T00:00:00.000Z",
        "plan": {"id": "plan_TestProMonthly"}, "metadata": {},
    });
    Mock::given(method("GET"))
        .and(path("/api/v1/memberships"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [membership, stale],
            "page_info": {"end_cursor": "c1", "has_next_page": false},
        })))
        .mount(&whop)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/api/v1/memberships/{membership_id}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(membership.clone()))
        .mount(&whop)
        .await;
    // A credit pack bought on Whop whose payment.succeeded never arrived, listed on the second
    // page of payments; an old payment on the first page is not listed.
    let text = String::from_utf8(tollgate_tests::fixture(
        "whop/events/payment.succeeded.one_time_credits.json",
    ))
    .expect("utf-8")
    .replace("user_7f3c2a", &user.id.to_string());
    let mut pack_payment =
        serde_json::from_str::<serde_json::Value>(&text).expect("json")["data"].clone();
    pack_payment["id"] = json!(unique("pay"));
    pack_payment["member"]["id"] = json!(unique("mber"));
    pack_payment["paid_at"] = json!("2026-11-30T11:55:00.000Z");
    let old_payment =
        json!({"id": unique("pay"), "status": "paid", "paid_at": "2026-10-01T00:00:00.000Z"});
    Mock::given(method("GET"))
        .and(path("/api/v1/payments"))
        .and(wiremock::matchers::query_param("after", "p1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [pack_payment],
            "page_info": {"end_cursor": "p2", "has_next_page": false},
        })))
        .with_priority(1)
        .mount(&whop)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/payments"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [old_payment],
            "page_info": {"end_cursor": "p1", "has_next_page": true},
        })))
        .with_priority(2)
        .mount(&whop)
        .await;
    let first = rig.reconcile(Provider::Whop).await;
    assert_eq!(
        (first.listed, first.recorded),
        (2, 2),
        "only the membership updated since and the pack's payment: {first:?}"
    );
    rig.drain().await;
    let applied = rig.plan_of(user.id).await.expect("a subscription");
    assert_eq!(applied.0, "pro");
    let balance = || async {
        rig.components
            .credit_store
            .credit_balance(&user.id)
            .await
            .expect("balance")
    };
    assert_eq!(balance().await, 1000, "the missed pack purchase granted");
    rig.clock.advance(900);
    let second = rig.reconcile(Provider::Whop).await;
    assert_eq!((second.recorded, second.already_done), (0, 2), "{second:?}");
    assert_eq!(rig.drain().await, 0);
    assert_eq!(rig.plan_of(user.id).await, Some(applied));
    assert_eq!(balance().await, 1000, "granted once");
}

async fn a_run_that_dies_part_way_moves_no_checkpoint_and_loses_nothing(backend: Backend) {
    let stripe = Arc::new(FakeProvider::new(Provider::Stripe));
    let Some(rig) = rig(backend, stripe.clone()).await else {
        return;
    };
    let mut users = Vec::new();
    let mut bodies = Vec::new();
    for _ in 0..3 {
        let (user, _) = tollgate_tests::sign_up(&rig.state).await;
        let sub = ProviderSubscription {
            provider: Provider::Stripe,
            subscription_id: unique("sub").as_str().into(),
            customer_id: Some(unique("cus").as_str().into()),
            user_id: Some(user.id),
            status: SubscriptionStatus::Active,
            price_id: "price_1TestProMonthly01".into(),
            current_period_end: Some(NOW + 86_400),
            cancel_at_period_end: false,
            trial_end: None,
        };
        stripe.set(sub.clone());
        let body = tollgate_tests::stripe_subscription_event(&unique("evt"), &sub);
        bodies.push(String::from_utf8(body).expect("utf8"));
        users.push(user.id);
    }
    *stripe.listed.lock().expect("lock") = bodies;
    stripe.page_size.store(1, Ordering::SeqCst);
    stripe.fail_page.store(2, Ordering::SeqCst);
    let reconciler = rig.components.reconciler().expect("a queue");
    let died = reconciler.run_provider(Provider::Stripe, None).await;
    assert!(died.is_err(), "page 2 fails: {died:?}");
    assert_eq!(
        rig.components
            .ledger
            .reconcile_checkpoint(Provider::Stripe)
            .await
            .expect("read"),
        None,
        "no checkpoint after a partial run"
    );
    // The first page's event was handed over (and its pointer lost with the run, say).
    rig.queue.0.lock().expect("lock").clear();

    stripe.fail_page.store(0, Ordering::SeqCst);
    rig.clock.advance(60);
    let rerun = rig.reconcile(Provider::Stripe).await;
    assert_eq!(
        (rerun.pages, rerun.recorded, rerun.requeued),
        (3, 2, 1),
        "{rerun:?}"
    );
    assert_eq!(
        rerun.since,
        rig.clock.now() - tollgate::webhooks::reconcile::FIRST_LOOKBACK_SECONDS,
        "still the first run's span"
    );
    assert_eq!(rig.drain().await, 3);
    for user in users {
        assert_eq!(
            rig.plan_of(user).await.map(|(p, _)| p).as_deref(),
            Some("pro")
        );
    }
    assert_eq!(
        rig.components
            .ledger
            .reconcile_checkpoint(Provider::Stripe)
            .await
            .expect("read"),
        Some(rig.clock.now())
    );
}

/// `Billing::resync` (`tollgate-admin reconcile --user`): the provider's state now replaces an
/// older stored one, through the same apply rule.
#[tokio::test]
async fn one_user_is_resynced_from_the_provider() {
    let stripe = Arc::new(FakeProvider::new(Provider::Stripe));
    let Some(rig) = rig(Backend::Embedded, stripe.clone()).await else {
        return;
    };
    let (user, _) = tollgate_tests::sign_up(&rig.state).await;
    let mut sub = ProviderSubscription {
        provider: Provider::Stripe,
        subscription_id: unique("sub").as_str().into(),
        customer_id: Some(unique("cus").as_str().into()),
        user_id: Some(user.id),
        status: SubscriptionStatus::PastDue,
        price_id: "price_1TestProMonthly01".into(),
        current_period_end: Some(NOW + 86_400),
        cancel_at_period_end: false,
        trial_end: None,
    };
    stripe.set(sub.clone());
    let body = tollgate_tests::stripe_subscription_event(&unique("evt"), &sub);
    *stripe.listed.lock().expect("lock") = vec![String::from_utf8(body).expect("utf8")];
    rig.reconcile(Provider::Stripe).await;
    rig.drain().await;
    let billing = rig.state.billing().expect("billing");
    let before = billing.subscription(&user.id, None).await.expect("read");
    assert_eq!(
        before.subscription.as_ref().map(|s| s.status),
        Some(SubscriptionStatus::PastDue)
    );
    sub.status = SubscriptionStatus::Active;
    stripe.set(sub);
    rig.clock.advance(60);
    let after = billing.resync(&user.id).await.expect("resync");
    assert_eq!(
        after.subscription.as_ref().map(|s| s.status),
        Some(SubscriptionStatus::Active)
    );
    let (stranger, _) = tollgate_tests::sign_up(&rig.state).await;
    assert!(matches!(
        billing.resync(&stranger.id).await,
        Err(tollgate::billing::BillingError::NoSubscription)
    ));
}

/// `events/reconciler/scheduled.json` (an EventBridge schedule's event) through the Lambda's
/// answer: the reports, one per configured provider.
#[tokio::test]
async fn the_scheduled_event_sample_answers_the_reports() {
    let stripe = Arc::new(FakeProvider::new(Provider::Stripe));
    let Some(rig) = rig(Backend::Embedded, stripe).await else {
        return;
    };
    let sample: Value = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../events/reconciler/scheduled.json"
        ))
        .expect("sample"),
    )
    .expect("json");
    assert_eq!(sample["detail-type"], "Scheduled Event");
    let reconciler = rig.components.reconciler().expect("a queue");
    let answer = tollgate::lambda::reconcile_answer(&reconciler, sample["since"].as_i64())
        .await
        .expect("answer");
    assert_eq!(answer["reports"][0]["provider"], "stripe", "{answer}");
    assert_eq!(answer["reports"][0]["checkpoint"], NOW);
}

tollgate_tests::on_both_stores!(
    a_missed_stripe_event_is_applied_by_one_run_and_not_again,
    a_whop_membership_change_without_a_webhook_is_applied_once,
    a_run_that_dies_part_way_moves_no_checkpoint_and_loses_nothing,
);
