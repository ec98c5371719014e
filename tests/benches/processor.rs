//! Webhook processor throughput on the embedded store (a redb file, as the dev server uses):
//! events already stored by ingest (`customer.subscription.updated`, Stripe-shaped, 10 events for
//! each of 20 subscriptions), processed (a) one at a time as the dev server's worker does
//! (`Processor::process_one`) and (b) in SQS-sized batches of 10 (`Processor::process_batch`,
//! the Lambda path, one refetch per subscription per batch). The provider refetch is an
//! in-memory double, so the figures are the processor's and the store's cost, not a provider's
//! latency. Run: `cargo bench -p tollgate-tests --bench processor`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::sync::Arc;
use tollgate::domain::{
    EventStatus, Provider, ProviderSubscription, SubscriptionStatus, User, UserId, UserStatus,
    WebhookEvent, EVENT_RETENTION_SECONDS,
};
use tollgate::payments::Providers;
use tollgate::queue::EventMessage;
use tollgate::store::embedded::EmbeddedStore;
use tollgate::store::{EventLedger, UserStore};
use tollgate::webhooks::{BatchItem, Processor};
use tollgate_tests::{components_at, now, stripe_subscription_event, FakeProvider};

const SUBSCRIPTIONS: usize = 20;
const EVENTS_PER_SUBSCRIPTION: usize = 10;
const EVENTS: usize = SUBSCRIPTIONS * EVENTS_PER_SUBSCRIPTION;

struct Setup {
    processor: Arc<Processor>,
    items: Vec<BatchItem>,
    _dir: TempDir,
}

/// A directory removed when dropped.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh store file with `EVENTS` events recorded, and the processor over it.
fn setup(rt: &tokio::runtime::Runtime, run: usize) -> Setup {
    let dir = std::env::temp_dir().join(format!(
        "tollgate-bench-processor-{}-{run}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let store = Arc::new(EmbeddedStore::open(&dir.join("tollgate.redb")).expect("store"));
    let (mut c, _, _) = components_at(now());
    c.users = store.clone();
    c.sessions = store.clone();
    c.billing_store = store.clone();
    c.ledger = store.clone();
    let stripe = Arc::new(FakeProvider::new(Provider::Stripe));
    c.providers = Providers::default().with(stripe.clone());
    let processor = Arc::new(c.processor());
    let mut items = Vec::with_capacity(EVENTS);
    rt.block_on(async {
        let subs: Vec<ProviderSubscription> = (0..SUBSCRIPTIONS)
            .map(|i| ProviderSubscription {
                provider: Provider::Stripe,
                subscription_id: format!("sub_bench{i:06}").into(),
                customer_id: Some(format!("cus_bench{i:06}").into()),
                user_id: Some(UserId::new()),
                status: SubscriptionStatus::Active,
                price_id: "price_1TestProMonthly01".into(),
                current_period_end: Some(now() + 30 * 86_400),
                cancel_at_period_end: false,
                trial_end: None,
            })
            .collect();
        for (i, s) in subs.iter().enumerate() {
            stripe.set(s.clone());
            // The processor only applies events to existing users.
            let id = s.user_id.expect("user id");
            store
                .create_user(&User {
                    id,
                    email: format!("bench{i}@example.com"),
                    password_hash: None,
                    status: UserStatus::Active,
                    email_verified: false,
                    name: None,
                    roles: Vec::new(),
                    session_epoch: 0,
                    created_at: now(),
                    updated_at: now(),
                    version: 1,
                })
                .await
                .expect("user");
        }
        // Interleaved across subscriptions, as deliveries arrive.
        for n in 0..EVENTS_PER_SUBSCRIPTION {
            for s in &subs {
                let event_id = format!("evt_{}_{n}", s.subscription_id);
                let body = stripe_subscription_event(&event_id, s);
                store
                    .record_event(&WebhookEvent {
                        provider: Provider::Stripe,
                        event_id: event_id.clone().into(),
                        event_type: "customer.subscription.updated".into(),
                        body: String::from_utf8(body).expect("utf8"),
                        group_id: s.subscription_id.to_string(),
                        received_at: now(),
                        status: EventStatus::Received,
                        attempts: 0,
                        last_error: None,
                        processed_at: None,
                        expires_at: now() + EVENT_RETENTION_SECONDS,
                    })
                    .await
                    .expect("record");
                items.push(BatchItem {
                    message_id: event_id.clone(),
                    message: EventMessage {
                        provider: Provider::Stripe,
                        event_id: event_id.into(),
                    },
                    group_id: s.subscription_id.to_string(),
                });
            }
        }
    });
    Setup {
        processor,
        items,
        _dir: TempDir(dir),
    }
}

type Run = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

/// The dev server's worker: one event at a time.
fn one_at_a_time(processor: Arc<Processor>, items: Vec<BatchItem>) -> Run {
    Box::pin(async move {
        for item in &items {
            processor
                .process_one(&item.message)
                .await
                .expect("processed");
        }
    })
}

/// The Lambda path: SQS batches of 10 (the FIFO maximum).
fn in_batches_of_10(processor: Arc<Processor>, items: Vec<BatchItem>) -> Run {
    Box::pin(async move {
        for batch in items.chunks(10) {
            assert!(processor.process_batch(batch.to_vec()).await.is_empty());
        }
    })
}

fn processor(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut run = 0;
    let mut g = c.benchmark_group("processor");
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.sample_size(20);
    let mut bench = |name: &str, process: fn(Arc<Processor>, Vec<BatchItem>) -> Run| {
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    run += 1;
                    setup(&rt, run)
                },
                |mut s| {
                    let items = std::mem::take(&mut s.items);
                    rt.block_on(process(s.processor.clone(), items));
                    s // dropped (store file removed) outside the timed part
                },
                BatchSize::PerIteration,
            )
        });
    };
    bench("process_one (dev server worker)", one_at_a_time);
    bench("process_batch of 10 (Lambda)", in_batches_of_10);
    g.finish();
}

criterion_group!(benches, processor);
criterion_main!(benches);
