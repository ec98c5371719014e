//! The webhook pipeline with the shared fixtures: ingest (valid, duplicate, bad signature,
//! stale timestamp, rotated secrets, unknown type, oversize) through the real `webhook-ingest`
//! router, the processor's guarantees, partial batch failures, and convergence under
//! duplicates, reordering, concurrency and injected failures.

use async_trait::async_trait;
use axum::body::Body;
use http_body_util::BodyExt;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tollgate::domain::{
    CheckoutSessionId, CustomerId, EventId, PriceId, Proration, SubscriptionId, SubscriptionWrite,
    UserId,
};
use tollgate::domain::{EventEffects, EventStatus, WebhookEvent};
use tollgate::domain::{Provider, ProviderSubscription, Subscription, SubscriptionStatus};
use tollgate::payments::signature::{sign_standard_webhooks, WebhookSecrets};
use tollgate::payments::stripe::signature::sign as sign_stripe;
use tollgate::payments::Providers;
use tollgate::payments::{CheckoutRequest, CheckoutSession, PaymentProvider, ProviderError};
use tollgate::queue::EventMessage;
use tollgate::store::embedded::EmbeddedStore;
use tollgate::store::{BillingStore, EventLedger, EventMark, StoreError};
use tollgate::webhooks::{BatchItem, ProcessOutcome, Processor};
use tollgate::{AppState, Clock};
use tollgate_tests::{components_at, fixture, now, FakeProvider, ManualClock, RecordingQueue};
use tower::ServiceExt;

const STRIPE_SECRET: &str = "whsec_test_secret";
const WHOP_SECRET: &str = "ws_test_0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab";

struct Harness {
    state: AppState,
    processor: Arc<Processor>,
    store: Arc<EmbeddedStore>,
    queue: Arc<RecordingQueue>,
    stripe: Arc<FakeProvider>,
    clock: Arc<ManualClock>,
}

fn harness(stripe_secrets: &str) -> Harness {
    let (mut c, clock, store) = components_at(now());
    let queue = Arc::new(RecordingQueue::default());
    let stripe = Arc::new(FakeProvider::new(Provider::Stripe));
    c.queue = Some(queue.clone());
    c.providers = Providers::default().with(stripe.clone());
    c.webhook_secrets = [
        (
            Provider::Stripe,
            WebhookSecrets::parse(stripe_secrets).expect("secrets"),
        ),
        (
            Provider::Whop,
            WebhookSecrets::parse(WHOP_SECRET).expect("secrets"),
        ),
    ]
    .into();
    Harness {
        state: AppState::assemble(&c, tollgate::Needs::ALL),
        processor: Arc::new(c.processor()),
        store,
        queue,
        stripe,
        clock,
    }
}

async fn deliver(
    state: &AppState,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, Value) {
    let mut req = http::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let app = tollgate::http_app(webhook_ingest::routes(), state.clone());
    let res = app
        .oneshot(req.body(Body::from(body.to_vec())).expect("request"))
        .await
        .expect("infallible");
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn deliver_stripe(h: &Harness, body: &[u8], secret: &str, at: i64) -> (u16, Value) {
    deliver(
        &h.state,
        "/webhooks/stripe",
        &[("stripe-signature", sign_stripe(body, secret, at))],
        body,
    )
    .await
}

fn event_id(body: &[u8]) -> EventId {
    serde_json::from_slice::<Value>(body).expect("json")["id"]
        .as_str()
        .expect("id")
        .into()
}

#[tokio::test]
async fn a_valid_stripe_event_is_stored_then_enqueued_then_acknowledged() {
    let h = harness(STRIPE_SECRET);
    let body = fixture("stripe/events/customer.subscription.updated.activated.json");
    let (status, reply) = deliver_stripe(&h, &body, STRIPE_SECRET, h.clock.now()).await;
    assert_eq!(
        (status, reply["duplicate"].as_bool()),
        (200, Some(false)),
        "{reply}"
    );
    let stored = h
        .store
        .get_event(Provider::Stripe, &event_id(&body))
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored.status, EventStatus::Received);
    assert_eq!(
        stored.body.as_bytes(),
        &body[..],
        "the raw body is kept byte for byte"
    );
    let sent = h.queue.0.lock().expect("lock").clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].1.as_str(), sent[0].2.as_str()),
        ("sub_1TestSubscr0000001", event_id(&body).as_str()),
        "group = subscription, dedup = event id"
    );
}

#[tokio::test]
async fn duplicates_are_reenqueued_until_processed_then_acknowledged_at_once() {
    let h = harness(STRIPE_SECRET);
    let body = fixture("stripe/events/invoice.paid.json");
    assert_eq!(
        deliver_stripe(&h, &body, STRIPE_SECRET, h.clock.now())
            .await
            .0,
        200
    );
    let (status, reply) = deliver_stripe(&h, &body, STRIPE_SECRET, h.clock.now()).await;
    assert_eq!(
        (status, reply["duplicate"].as_bool()),
        (200, Some(false)),
        "received but not processed: enqueued again"
    );
    assert_eq!(h.queue.0.lock().expect("lock").len(), 2);
    h.store
        .mark_event(
            Provider::Stripe,
            &event_id(&body),
            &EventMark {
                status: EventStatus::Ignored,
                attempts: 1,
                error: None,
                at: 0,
            },
        )
        .await
        .expect("mark");
    let (status, reply) = deliver_stripe(&h, &body, STRIPE_SECRET, h.clock.now()).await;
    assert_eq!((status, reply["duplicate"].as_bool()), (200, Some(true)));
    assert_eq!(
        h.queue.0.lock().expect("lock").len(),
        2,
        "not enqueued again"
    );
}

#[tokio::test]
async fn bad_signatures_and_stale_timestamps_are_refused_with_nothing_stored() {
    let h = harness(STRIPE_SECRET);
    let body = fixture("stripe/events/customer.subscription.created.json");
    let id = event_id(&body);
    let now = h.clock.now();
    let mut tampered = body.clone();
    tampered[20] ^= 1;
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, Vec<u8>);
    let cases: Vec<Case> = vec![
        (
            "wrong secret",
            vec![("stripe-signature", sign_stripe(&body, "whsec_wrong", now))],
            body.clone(),
        ),
        (
            "tampered body",
            vec![("stripe-signature", sign_stripe(&body, STRIPE_SECRET, now))],
            tampered,
        ),
        (
            "stale timestamp",
            vec![(
                "stripe-signature",
                sign_stripe(&body, STRIPE_SECRET, now - 301),
            )],
            body.clone(),
        ),
        ("missing header", vec![], body.clone()),
        (
            "garbage header",
            vec![("stripe-signature", "t=,v1=zz".to_owned())],
            body.clone(),
        ),
    ];
    for (name, headers, b) in cases {
        let (status, reply) = deliver(&h.state, "/webhooks/stripe", &headers, &b).await;
        assert_eq!(
            (status, reply["code"].as_str()),
            (400, Some("invalid_signature")),
            "{name}: {reply}"
        );
    }
    assert_eq!(
        h.store
            .get_event(Provider::Stripe, &id)
            .await
            .expect("read"),
        None,
        "nothing stored"
    );
    assert!(
        h.queue.0.lock().expect("lock").is_empty(),
        "nothing enqueued"
    );
}

#[tokio::test]
async fn rotated_secrets_accept_either_secret() {
    let h = harness("whsec_old_secret, whsec_test_secret");
    let body = fixture("stripe/events/customer.subscription.deleted.json");
    assert_eq!(
        deliver_stripe(&h, &body, "whsec_test_secret", h.clock.now())
            .await
            .0,
        200
    );
    let body2 = fixture("stripe/events/customer.subscription.created.json");
    assert_eq!(
        deliver_stripe(&h, &body2, "whsec_old_secret", h.clock.now())
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn unknown_event_types_are_acknowledged_and_recorded_as_ignored() {
    let h = harness(STRIPE_SECRET);
    let body = br#"{"id":"evt_unknown_1","object":"event","type":"payout.paid","data":{"object":{"object":"payout","id":"po_1"}}}"#;
    assert_eq!(
        deliver_stripe(&h, body, STRIPE_SECRET, h.clock.now())
            .await
            .0,
        200
    );
    let outcome = h
        .processor
        .process_one(&EventMessage {
            provider: Provider::Stripe,
            event_id: "evt_unknown_1".into(),
        })
        .await
        .expect("ok");
    assert_eq!(outcome, ProcessOutcome::Ignored);
    let stored = h
        .store
        .get_event(Provider::Stripe, &"evt_unknown_1".into())
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored.status, EventStatus::Ignored);
    // A verified body that is not an event at all is refused.
    let (status, reply) = deliver_stripe(&h, b"[1,2,3]", STRIPE_SECRET, h.clock.now()).await;
    assert_eq!(
        (status, reply["code"].as_str()),
        (400, Some("malformed_event"))
    );
}

#[tokio::test]
async fn oversize_bodies_get_413() {
    let h = harness(STRIPE_SECRET);
    let body = vec![b' '; tollgate::webhooks::MAX_WEBHOOK_BYTES + 1];
    let (status, reply) = deliver_stripe(&h, &body, STRIPE_SECRET, h.clock.now()).await;
    assert_eq!(
        (status, reply["code"].as_str()),
        (413, Some("payload_too_large"))
    );
}

#[tokio::test]
async fn whop_events_verify_with_the_raw_secret_bytes() {
    let h = harness(STRIPE_SECRET);
    let body = fixture("whop/events/membership.activated.json");
    let id = "msg_2TestActivated000000000001";
    let ts = h.clock.now();
    let headers = vec![
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", ts.to_string()),
        (
            "webhook-signature",
            sign_standard_webhooks(id, &body, WHOP_SECRET, ts),
        ),
    ];
    assert_eq!(
        deliver(&h.state, "/webhooks/whop", &headers, &body).await.0,
        200
    );
    let stored = h
        .store
        .get_event(Provider::Whop, &id.into())
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored.group_id, "mem_TestAlice00001");
    let mut bad = headers.clone();
    bad[2].1 = sign_standard_webhooks(id, &body, "ws_other", ts);
    let (status, _) = deliver(
        &h.state,
        "/webhooks/whop",
        &bad,
        b"{\"id\":\"x\",\"type\":\"membership.activated\",\"data\":{}}",
    )
    .await;
    assert_eq!(status, 400);
}

fn provider_sub(
    user: UserId,
    sub: &str,
    status: SubscriptionStatus,
    price: &str,
    cancel: bool,
) -> ProviderSubscription {
    ProviderSubscription {
        provider: Provider::Stripe,
        subscription_id: sub.into(),
        customer_id: Some(format!("cus_{}", &sub[4..]).into()),
        user_id: Some(user),
        status,
        price_id: price.into(),
        current_period_end: Some(now() + 30 * 86_400),
        cancel_at_period_end: cancel,
        trial_end: None,
    }
}

#[tokio::test]
async fn an_event_takes_effect_once_and_records_its_payment() {
    let h = harness(STRIPE_SECRET);
    let (user, tokens) = tollgate_tests::sign_up(&h.state).await;
    h.stripe.set(provider_sub(
        user.id,
        "sub_1TestSubscr0000001",
        SubscriptionStatus::Active,
        "price_1TestProMonthly01",
        false,
    ));
    // invoice.paid carries the user id only in the subscription's metadata (set at checkout).
    let body = String::from_utf8(fixture("stripe/events/invoice.paid.json"))
        .expect("utf8")
        .replace("user_7f3c2a", &user.id.to_string());
    assert_eq!(
        deliver_stripe(&h, body.as_bytes(), STRIPE_SECRET, h.clock.now())
            .await
            .0,
        200
    );
    let msg = EventMessage {
        provider: Provider::Stripe,
        event_id: event_id(body.as_bytes()),
    };
    assert_eq!(
        h.processor.process_one(&msg).await.expect("ok"),
        ProcessOutcome::Processed {
            wrote_subscription: true
        }
    );
    assert_eq!(
        h.processor.process_one(&msg).await.expect("ok"),
        ProcessOutcome::AlreadyDone
    );
    let sub = h
        .store
        .get_subscription(&user.id)
        .await
        .expect("read")
        .expect("written");
    assert_eq!(
        (sub.plan.as_str(), sub.status, sub.version),
        ("pro", SubscriptionStatus::Active, 1),
        "written once"
    );
    assert_eq!(
        h.store
            .find_customer(Provider::Stripe, &"cus_1TestSubscr0000001".into())
            .await
            .expect("read"),
        Some(user.id),
        "the customer is claimed for later events"
    );
    assert_eq!(h.stripe.fetches.load(Ordering::SeqCst), 1);
    let view = h
        .state
        .billing()
        .expect("billing")
        .subscription(&user.id, None)
        .await
        .expect("view");
    assert!(view.access.has_access);
    // A token issued before the payment still says "free"; /auth/me answers with the plan now.
    let who = h
        .state
        .verifier()
        .expect("keys")
        .verify(&tokens.access_token)
        .await
        .expect("valid token");
    assert_eq!(who.claims.plan, "free");
    assert_eq!(
        h.state
            .auth()
            .expect("accounts")
            .me(&who)
            .await
            .expect("me")
            .plan,
        "pro"
    );
}

#[tokio::test]
async fn a_failure_reports_the_record_and_every_later_record_of_its_group() {
    let h = harness(STRIPE_SECRET);
    let (user, _) = tollgate_tests::sign_up(&h.state).await;
    // Group A's subscription is unknown to the provider (fetch fails); group B's is fine.
    h.stripe.set(provider_sub(
        user.id,
        "sub_B000000000001",
        SubscriptionStatus::Active,
        "price_1TestProMonthly01",
        false,
    ));
    let mut items = Vec::new();
    for (i, (group, sub)) in [
        ("A", "sub_A000000000001"),
        ("B", "sub_B000000000001"),
        ("A", "sub_A000000000001"),
        ("A", "sub_A000000000001"),
    ]
    .iter()
    .enumerate()
    {
        let id = format!("evt_batch_{i}");
        let body = tollgate_tests::stripe_subscription_event(
            &id,
            &provider_sub(user.id, sub, SubscriptionStatus::Active, "x", false),
        );
        h.store
            .record_event(&WebhookEvent {
                provider: Provider::Stripe,
                event_id: id.clone().into(),
                event_type: "customer.subscription.updated".into(),
                body: String::from_utf8(body).expect("utf8"),
                group_id: group.to_string(),
                received_at: 0,
                status: EventStatus::Received,
                attempts: 0,
                last_error: None,
                processed_at: None,
                expires_at: 0,
            })
            .await
            .expect("record");
        items.push(BatchItem {
            message_id: format!("m{i}"),
            message: EventMessage {
                provider: Provider::Stripe,
                event_id: id.into(),
            },
            group_id: group.to_string(),
        });
    }
    let mut failed = h.processor.process_batch(items).await;
    failed.sort();
    assert_eq!(failed, vec!["m0", "m2", "m3"]);
    let a = h
        .store
        .get_event(Provider::Stripe, &"evt_batch_0".into())
        .await
        .expect("read")
        .expect("event");
    assert_eq!((a.status, a.attempts), (EventStatus::Failed, 1));
    assert!(a.last_error.is_some());
    let later = h
        .store
        .get_event(Provider::Stripe, &"evt_batch_2".into())
        .await
        .expect("read")
        .expect("event");
    assert_eq!(
        later.attempts, 0,
        "later records of the failed group were not tried"
    );
    let b = h
        .store
        .get_event(Provider::Stripe, &"evt_batch_1".into())
        .await
        .expect("read")
        .expect("event");
    assert_eq!(b.status, EventStatus::Processed);
}

/// A store that fails some calls transiently — before the write, or after it committed
/// (an ambiguous timeout) — to prove retries are safe.
struct FlakyStore {
    inner: Arc<EmbeddedStore>,
    calls: AtomicU64,
    every: u64,
    enabled: std::sync::atomic::AtomicBool,
}

impl FlakyStore {
    fn roll(&self) -> Option<bool> {
        if !self.enabled.load(Ordering::SeqCst) {
            return None;
        }
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        n.is_multiple_of(self.every)
            .then_some(n.is_multiple_of(2 * self.every))
    }
}

fn injected() -> StoreError {
    StoreError::Unavailable(tollgate::error::message("injected store failure"))
}

#[async_trait]
impl EventLedger for FlakyStore {
    async fn reconcile_checkpoint(&self, p: Provider) -> Result<Option<i64>, StoreError> {
        self.inner.reconcile_checkpoint(p).await
    }
    async fn set_reconcile_checkpoint(&self, p: Provider, at: i64) -> Result<(), StoreError> {
        self.inner.set_reconcile_checkpoint(p, at).await
    }
    async fn record_event(&self, event: &WebhookEvent) -> Result<(WebhookEvent, bool), StoreError> {
        match self.roll() {
            Some(false) => Err(injected()),
            Some(true) => self
                .inner
                .record_event(event)
                .await
                .and_then(|_| Err(injected())),
            None => self.inner.record_event(event).await,
        }
    }
    async fn get_event(
        &self,
        provider: Provider,
        event_id: &EventId,
    ) -> Result<Option<WebhookEvent>, StoreError> {
        self.inner.get_event(provider, event_id).await
    }
    async fn mark_event(
        &self,
        provider: Provider,
        event_id: &EventId,
        mark: &EventMark,
    ) -> Result<(), StoreError> {
        self.inner.mark_event(provider, event_id, mark).await
    }
    async fn apply_event(
        &self,
        provider: Provider,
        event_id: &EventId,
        effects: &EventEffects,
        at: i64,
    ) -> Result<(), StoreError> {
        match self.roll() {
            Some(false) => Err(injected()),
            Some(true) => self
                .inner
                .apply_event(provider, event_id, effects, at)
                .await
                .and_then(|_| Err(injected())),
            None => {
                self.inner
                    .apply_event(provider, event_id, effects, at)
                    .await
            }
        }
    }
}

#[async_trait]
impl BillingStore for FlakyStore {
    async fn get_subscription(&self, user_id: &UserId) -> Result<Option<Subscription>, StoreError> {
        match self.roll() {
            Some(_) => Err(injected()),
            None => self.inner.get_subscription(user_id).await,
        }
    }
    async fn put_subscription_with(
        &self,
        w: &SubscriptionWrite,
        n: &tollgate::domain::Notices,
    ) -> Result<(), StoreError> {
        self.inner.put_subscription_with(w, n).await
    }
    async fn claim_customer(
        &self,
        p: Provider,
        c: &CustomerId,
        u: &UserId,
    ) -> Result<UserId, StoreError> {
        self.inner.claim_customer(p, c, u).await
    }
    async fn find_customer(
        &self,
        p: Provider,
        c: &CustomerId,
    ) -> Result<Option<UserId>, StoreError> {
        self.inner.find_customer(p, c).await
    }
    async fn customer_of(&self, p: Provider, u: &UserId) -> Result<Option<CustomerId>, StoreError> {
        self.inner.customer_of(p, u).await
    }
    async fn list_payments(
        &self,
        u: &UserId,
    ) -> Result<Vec<tollgate::domain::Payment>, StoreError> {
        self.inner.list_payments(u).await
    }
    async fn trial_used(&self, u: &UserId) -> Result<bool, StoreError> {
        self.inner.trial_used(u).await
    }
}

/// Deterministic pseudo-random numbers (xorshift64*), so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_subscription_converges_to_the_provider_state_under_duplicates_reordering_and_failures(
) {
    const USERS: usize = 40;
    let seed = 0x5eed_0000_0000_0001_u64;
    let mut rng = Rng(seed);
    let (mut c, _clock, store) = components_at(now());
    let flaky = Arc::new(FlakyStore {
        inner: store.clone(),
        calls: AtomicU64::new(0),
        every: 7,
        enabled: Default::default(),
    });
    let queue = Arc::new(RecordingQueue::default());
    let provider = Arc::new(FakeProvider::new(Provider::Stripe));
    provider.fail_every.store(5, Ordering::SeqCst);
    provider.max_latency_us.store(3_000, Ordering::SeqCst);
    c.billing_store = flaky.clone();
    c.ledger = flaky.clone();
    c.queue = Some(queue.clone());
    c.providers = Providers::default().with(provider.clone());
    c.webhook_secrets = [(
        Provider::Stripe,
        WebhookSecrets::parse(STRIPE_SECRET).expect("secret"),
    )]
    .into();
    let state = AppState::assemble(&c, tollgate::Needs::ALL);
    let processor = Arc::new(c.processor());

    // Each user's history at the provider: checkout, activation, plan change, past due,
    // recovery, cancel at period end, deletion. Every step is one event.
    use SubscriptionStatus::*;
    let history: [(SubscriptionStatus, &str, bool); 7] = [
        (Incomplete, "price_1TestProMonthly01", false),
        (Active, "price_1TestProMonthly01", false),
        (Active, "price_1TestTeamMonthly1", false),
        (PastDue, "price_1TestTeamMonthly1", false),
        (Active, "price_1TestTeamMonthly1", false),
        (Active, "price_1TestTeamMonthly1", true),
        (Canceled, "price_1TestTeamMonthly1", true),
    ];
    let mut users = Vec::new();
    for _ in 0..USERS {
        let (u, _) = tollgate_tests::sign_up(&state).await;
        users.push(u.id);
    }
    flaky.enabled.store(true, Ordering::SeqCst);
    // Some users stop midway, so final states differ.
    let stops: Vec<usize> = (0..USERS)
        .map(|_| 1 + rng.below(history.len() as u64) as usize)
        .collect();
    let mut deliveries: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    for (ui, &user) in users.iter().enumerate() {
        for (step, &(status, price, cancel)) in history.iter().enumerate().take(stops[ui]) {
            let sub = provider_sub(
                user,
                &format!("sub_u{ui:03}_{:08x}", seed as u32),
                status,
                price,
                cancel,
            );
            let body =
                tollgate_tests::stripe_subscription_event(&format!("evt_u{ui:03}_s{step}"), &sub);
            for _ in 0..(1 + rng.below(3)) {
                deliveries.push((ui, step, body.clone()));
            }
        }
    }
    // Shuffle across users and within a user.
    for i in (1..deliveries.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        deliveries.swap(i, j);
    }
    // The provider's state moves forward as events are sent: each delivery first advances its
    // user's provider state to at least that step (as the real provider would have done before
    // sending), then is delivered by one of 8 concurrent senders that retry until 2xx.
    let progress: Arc<std::sync::Mutex<Vec<usize>>> =
        Arc::new(std::sync::Mutex::new(vec![0; USERS]));
    let deliveries = Arc::new(std::sync::Mutex::new(deliveries));
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (deliveries, progress, provider, state) = (
            deliveries.clone(),
            progress.clone(),
            provider.clone(),
            state.clone(),
        );
        let users = users.clone();
        senders.spawn(async move {
            loop {
                let Some((ui, step, body)) = deliveries.lock().expect("lock").pop() else {
                    break;
                };
                {
                    let mut p = progress.lock().expect("lock");
                    if p[ui] <= step {
                        let (status, price, cancel) = history[step];
                        provider.set(provider_sub(
                            users[ui],
                            &format!("sub_u{ui:03}_{:08x}", seed as u32),
                            status,
                            price,
                            cancel,
                        ));
                        p[ui] = step + 1;
                    }
                }
                let mut tries = 0;
                loop {
                    tries += 1;
                    let sig = sign_stripe(&body, STRIPE_SECRET, tollgate::SystemClock.now());
                    let (status, _) = deliver(
                        &state,
                        "/webhooks/stripe",
                        &[("stripe-signature", sig)],
                        &body,
                    )
                    .await;
                    if status == 200 {
                        break;
                    }
                    assert_eq!(status, 503, "only transient failures are expected");
                    assert!(tries < 50, "a delivery never succeeded");
                }
            }
        });
    }
    // Meanwhile three processor workers drain the queue in batches of up to 10, redelivering
    // failures (up to 10 receives, then the DLQ) — as SQS with a redrive policy would. Running
    // them concurrently lets two fetches of one subscription race, which the version and
    // fetch-time guards must survive (SQS FIFO alone would serialise a group; the checkout
    // redirect sync and DLQ replays do not).
    // (message id, pointer, group): the id is fixed when the message is enqueued and kept across
    // redeliveries, and receives are counted per message, as SQS does.
    type Pending = std::collections::VecDeque<(String, EventMessage, String)>;
    let pending: Arc<std::sync::Mutex<Pending>> = Default::default();
    let receives: Arc<std::sync::Mutex<std::collections::HashMap<String, u32>>> =
        Default::default();
    let dlq: Arc<std::sync::Mutex<Vec<EventMessage>>> = Default::default();
    let in_flight = Arc::new(AtomicU64::new(0));
    let counter = Arc::new(AtomicU64::new(0));
    let senders_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..3 {
        let (pending, receives, dlq, in_flight, counter, senders_done, queue) = (
            pending.clone(),
            receives.clone(),
            dlq.clone(),
            in_flight.clone(),
            counter.clone(),
            senders_done.clone(),
            queue.clone(),
        );
        let processor = processor.clone();
        workers.spawn(async move {
            loop {
                let batch: Vec<(String, EventMessage, String)> = {
                    let mut p = pending.lock().expect("lock");
                    p.extend(queue.0.lock().expect("lock").drain(..).map(|(m, g, _)| {
                        (counter.fetch_add(1, Ordering::SeqCst).to_string(), m, g)
                    }));
                    let take = p.len().min(10);
                    if take > 0 {
                        in_flight.fetch_add(1, Ordering::SeqCst);
                    }
                    p.drain(..take).collect()
                };
                if batch.is_empty() {
                    if senders_done.load(Ordering::SeqCst)
                        && in_flight.load(Ordering::SeqCst) == 0
                        && queue.0.lock().expect("lock").is_empty()
                    {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    continue;
                }
                let items: Vec<BatchItem> = batch
                    .iter()
                    .map(|(id, m, g)| BatchItem {
                        message_id: id.clone(),
                        message: m.clone(),
                        group_id: g.clone(),
                    })
                    .collect();
                let failed = processor.process_batch(items.clone()).await;
                for item in items.into_iter().filter(|i| failed.contains(&i.message_id)) {
                    let mut r = receives.lock().expect("lock");
                    let n = r.entry(item.message_id.clone()).or_default();
                    *n += 1;
                    if *n >= 10 {
                        dlq.lock().expect("lock").push(item.message);
                    } else {
                        pending.lock().expect("lock").push_back((
                            item.message_id,
                            item.message,
                            item.group_id,
                        ));
                    }
                }
                in_flight.fetch_sub(1, Ordering::SeqCst);
            }
        });
    }
    while let Some(r) = senders.join_next().await {
        r.expect("sender");
    }
    senders_done.store(true, Ordering::SeqCst);
    while let Some(r) = workers.join_next().await {
        r.expect("worker");
    }
    let dlq = dlq.lock().expect("lock").clone();
    if let Some(first) = dlq.first() {
        let e = store
            .get_event(first.provider, &first.event_id)
            .await
            .expect("read");
        panic!("nothing should reach the DLQ with transient failures: {dlq:?}; first: {e:?}");
    }

    // Every subscription equals the provider's final state; every event took effect.
    let catalog = c.catalog.clone();
    for (ui, &user) in users.iter().enumerate() {
        let (status, price, cancel) = history[stops[ui] - 1];
        let stored = store
            .get_subscription(&user)
            .await
            .expect("read")
            .unwrap_or_else(|| panic!("user {ui} has no subscription"));
        let want_plan = catalog
            .by_price(Provider::Stripe, &price.into())
            .map(|(p, _)| p.id.clone())
            .expect("price in catalog");
        assert_eq!(
            (
                stored.status,
                stored.plan.clone(),
                stored.cancel_at_period_end
            ),
            (status, want_plan, cancel),
            "user {ui} (stopped after {} steps)",
            stops[ui]
        );
        for step in 0..stops[ui] {
            let e = store
                .get_event(Provider::Stripe, &format!("evt_u{ui:03}_s{step}").into())
                .await
                .expect("read")
                .expect("every event is in the ledger");
            assert_eq!(
                e.status,
                EventStatus::Processed,
                "user {ui} step {step}: {e:?}"
            );
        }
    }
    assert!(provider.fetches.load(Ordering::SeqCst) > 0);
    assert!(flaky.calls.load(Ordering::SeqCst) > 0);
}

/// A provider whose first fetch reads the state, then waits for `release` before answering.
struct GatedProvider {
    inner: FakeProvider,
    release: tokio::sync::Notify,
    /// Notified when the first fetch has read its state (and now waits for `release`).
    fetched: tokio::sync::Notify,
    first: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl PaymentProvider for GatedProvider {
    fn provider(&self) -> Provider {
        Provider::Stripe
    }
    async fn create_customer(
        &self,
        u: &UserId,
        e: &str,
        k: &str,
    ) -> Result<Option<CustomerId>, ProviderError> {
        self.inner.create_customer(u, e, k).await
    }
    async fn create_checkout(&self, r: &CheckoutRequest) -> Result<CheckoutSession, ProviderError> {
        self.inner.create_checkout(r).await
    }
    async fn create_portal(
        &self,
        c: Option<&CustomerId>,
        s: &SubscriptionId,
        r: &str,
    ) -> Result<String, ProviderError> {
        self.inner.create_portal(c, s, r).await
    }
    async fn fetch_subscription(
        &self,
        id: &SubscriptionId,
    ) -> Result<ProviderSubscription, ProviderError> {
        let state = self.inner.fetch_subscription(id).await;
        if self.first.swap(false, Ordering::SeqCst) {
            self.fetched.notify_one();
            self.release.notified().await;
        }
        state
    }
    async fn fetch_checkout_subscription(
        &self,
        s: &CheckoutSessionId,
    ) -> Result<Option<SubscriptionId>, ProviderError> {
        self.inner.fetch_checkout_subscription(s).await
    }
    async fn set_cancel_at_period_end(
        &self,
        s: &SubscriptionId,
        c: bool,
    ) -> Result<(), ProviderError> {
        self.inner.set_cancel_at_period_end(s, c).await
    }
    async fn cancel_now(&self, s: &SubscriptionId) -> Result<(), ProviderError> {
        self.inner.cancel_now(s).await
    }
    async fn change_price(
        &self,
        s: &SubscriptionId,
        p: &PriceId,
        r: Proration,
    ) -> Result<(), ProviderError> {
        self.inner.change_price(s, p, r).await
    }
    async fn list_events(
        &self,
        since: i64,
        cursor: Option<&str>,
    ) -> Result<tollgate::payments::EventPage, ProviderError> {
        self.inner.list_events(since, cursor).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_fetch_of_an_older_state_never_overwrites_a_newer_one() {
    let (mut c, _, store) = components_at(now());
    let provider = Arc::new(GatedProvider {
        inner: FakeProvider::new(Provider::Stripe),
        release: tokio::sync::Notify::new(),
        fetched: tokio::sync::Notify::new(),
        first: true.into(),
    });
    c.providers = Providers::default().with(provider.clone());
    let state = AppState::assemble(&c, tollgate::Needs::ALL);
    let (user, _) = tollgate_tests::sign_up(&state).await;
    let record = |id: &str, sub: &ProviderSubscription| WebhookEvent {
        provider: Provider::Stripe,
        event_id: id.into(),
        event_type: "customer.subscription.updated".into(),
        body: String::from_utf8(tollgate_tests::stripe_subscription_event(id, sub)).expect("utf8"),
        group_id: sub.subscription_id.to_string(),
        received_at: 0,
        status: EventStatus::Received,
        attempts: 0,
        last_error: None,
        processed_at: None,
        expires_at: 0,
    };
    let active = provider_sub(
        user.id,
        "sub_race0000001",
        SubscriptionStatus::Active,
        "price_1TestProMonthly01",
        false,
    );
    let canceled = provider_sub(
        user.id,
        "sub_race0000001",
        SubscriptionStatus::Canceled,
        "price_1TestProMonthly01",
        false,
    );
    provider.inner.set(active.clone());
    store
        .record_event(&record("evt_race_1", &active))
        .await
        .expect("record");
    store
        .record_event(&record("evt_race_2", &canceled))
        .await
        .expect("record");

    // Event 1's fetch reads "active" and stalls; the subscription is then canceled, and event
    // 2 is processed completely; only then does event 1's fetch answer.
    let processor = Arc::new(c.processor());
    let slow_processor = processor.clone();
    let slow = tokio::spawn(async move {
        let processor = slow_processor;
        processor
            .process_one(&EventMessage {
                provider: Provider::Stripe,
                event_id: "evt_race_1".into(),
            })
            .await
    });
    // Awaited, not spun on: a loop of `yield_now` could starve the spawned task on a loaded
    // machine (it hung once for minutes while CI shared both cores).
    provider.fetched.notified().await;
    provider.inner.set(canceled.clone());
    let fast = processor
        .process_one(&EventMessage {
            provider: Provider::Stripe,
            event_id: "evt_race_2".into(),
        })
        .await
        .expect("fast");
    assert_eq!(
        fast,
        ProcessOutcome::Processed {
            wrote_subscription: true
        }
    );
    provider.release.notify_one();
    assert_eq!(
        slow.await.expect("join").expect("slow"),
        ProcessOutcome::Processed {
            wrote_subscription: false
        },
        "the stale event is marked processed without writing its state"
    );
    let stored = store
        .get_subscription(&user.id)
        .await
        .expect("read")
        .expect("written");
    assert_eq!(
        stored.status,
        SubscriptionStatus::Canceled,
        "the older state did not overwrite the newer one"
    );
    assert_eq!(
        store
            .get_event(Provider::Stripe, &"evt_race_1".into())
            .await
            .expect("read")
            .map(|e| e.status),
        Some(EventStatus::Processed)
    );
}
