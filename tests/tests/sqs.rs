//! The queue path against SQS FIFO in moto_server: group ordering, deduplication, partial batch
//! failure (the failed record and every later record of its group), redrive to the DLQ after the
//! configured receives, and replay from the DLQ. Runs when `AWS_ENDPOINT_URL` is set (always in
//! CI, where skipping is refused).

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use aws_sdk_sqs::Client;
use serde_json::json;
use std::sync::Arc;
use tollgate::domain::EventStatus;
use tollgate::domain::{Provider, ProviderSubscription, SubscriptionStatus};
use tollgate::lambda::batch_from_sqs;
use tollgate::payments::signature::WebhookSecrets;
use tollgate::payments::stripe::signature::sign as sign_stripe;
use tollgate::payments::Providers;
use tollgate::queue::sqs::{replay_dead_letters, SqsQueue};
use tollgate::store::{BillingStore, EventLedger};
use tollgate::{AppState, Clock};
use tollgate_tests::{components_at, now, FakeProvider};

const SECRET: &str = "whsec_sqs_test";

async fn sqs() -> Option<Client> {
    let _ = tollgate_tests::dynamo_client().await?; // same skip / refuse-to-skip rule
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "tollgate-tests",
        ))
        .load()
        .await;
    Some(Client::new(&config))
}

async fn queue_pair(client: &Client, max_receives: u32) -> (String, String) {
    let suffix = uuid::Uuid::now_v7().simple().to_string();
    let dlq = client
        .create_queue()
        .queue_name(format!("dlq-{suffix}.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .expect("create dlq")
        .queue_url
        .expect("dlq url");
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("dlq attributes")
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("dlq arn");
    let queue = client
        .create_queue()
        .queue_name(format!("events-{suffix}.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::ContentBasedDeduplication, "false")
        .attributes(QueueAttributeName::VisibilityTimeout, "1")
        .attributes(
            QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives}).to_string(),
        )
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url");
    (queue, dlq)
}

/// Receives like the Lambda event source mapping and returns the SQS event it would hand over.
async fn receive(
    client: &Client,
    queue: &str,
) -> (
    aws_lambda_events::event::sqs::SqsEvent,
    Vec<(String, String)>,
) {
    let out = client
        .receive_message()
        .queue_url(queue)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .wait_time_seconds(0)
        .send()
        .await
        .expect("receive");
    let messages = out.messages.unwrap_or_default();
    let records: Vec<_> = messages
        .iter()
        .map(|m| {
            let attrs: serde_json::Map<String, serde_json::Value> = m
                .attributes
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.as_str().to_owned(), json!(v)))
                .collect();
            json!({
                "messageId": m.message_id, "receiptHandle": m.receipt_handle, "body": m.body,
                "attributes": attrs, "messageAttributes": {}, "md5OfBody": m.md5_of_body,
                "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:events.fifo", "awsRegion": "us-east-1",
            })
        })
        .collect();
    let handles = messages
        .iter()
        .map(|m| {
            (
                m.message_id.clone().unwrap_or_default(),
                m.receipt_handle.clone().unwrap_or_default(),
            )
        })
        .collect();
    let event = serde_json::from_value(json!({"Records": records}))
        .expect("an SQS event as Lambda delivers it");
    (event, handles)
}

fn subscription(user: tollgate::domain::UserId, id: &str) -> ProviderSubscription {
    ProviderSubscription {
        provider: Provider::Stripe,
        subscription_id: id.into(),
        customer_id: Some(format!("cus_{id}").into()),
        user_id: Some(user),
        status: SubscriptionStatus::Active,
        price_id: "price_1TestProMonthly01".into(),
        current_period_end: Some(now() + 86_400),
        cancel_at_period_end: false,
        trial_end: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_groups_dedup_partial_failures_dlq_redrive_and_replay() {
    let Some(client) = sqs().await else { return };
    let (queue_url, dlq_url) = queue_pair(&client, 2).await;
    let (mut c, _, store) = components_at(now());
    let provider = Arc::new(FakeProvider::new(Provider::Stripe));
    c.queue = Some(Arc::new(SqsQueue::new(client.clone(), queue_url.clone())));
    c.providers = Providers::default().with(provider.clone());
    c.webhook_secrets = [(
        Provider::Stripe,
        WebhookSecrets::parse(SECRET).expect("secret"),
    )]
    .into();
    let state = AppState::assemble(&c, tollgate::Needs::ALL);
    let processor = Arc::new(c.processor());
    let (user, _) = tollgate_tests::sign_up(&state).await;
    let (a, b) = (
        subscription(user.id, "sub_groupA"),
        subscription(user.id, "sub_groupB"),
    );
    provider.set(b.clone()); // group A's subscription is not at the provider yet: its fetches fail

    // Two events in group A, one in group B; the first is delivered twice (SQS drops the copy).
    let events = [("evt_a1", &a), ("evt_b1", &b), ("evt_a2", &a)];
    for (id, sub) in events.iter().chain(std::iter::once(&events[0])) {
        let body = tollgate_tests::stripe_subscription_event(id, sub);
        let header: http::HeaderValue = sign_stripe(&body, SECRET, tollgate::SystemClock.now())
            .parse()
            .expect("header");
        let mut headers = http::HeaderMap::new();
        headers.insert("stripe-signature", header);
        state
            .ingest()
            .expect("ingest")
            .ingest(Provider::Stripe, &headers, &body)
            .await
            .expect("ingest");
    }

    let (event, handles) = receive(&client, &queue_url).await;
    let order: Vec<String> = event
        .records
        .iter()
        .filter_map(|r| r.body.clone())
        .map(|b| {
            serde_json::from_str::<serde_json::Value>(&b).expect("json")["event_id"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(
        order.len(),
        3,
        "the duplicate send was deduplicated: {order:?}"
    );
    let a_order: Vec<_> = order.iter().filter(|e| e.starts_with("evt_a")).collect();
    assert_eq!(a_order, vec!["evt_a1", "evt_a2"], "group order kept");

    // Process as the Lambda would: group A fails, so both A records are reported; B succeeds.
    let (items, unreadable) = batch_from_sqs(event);
    assert!(unreadable.is_empty());
    let ids_by_event: std::collections::HashMap<String, String> = items
        .iter()
        .map(|i| (i.message.event_id.to_string(), i.message_id.clone()))
        .collect();
    let mut failed = processor.process_batch(items).await;
    failed.sort();
    let mut want = vec![
        ids_by_event["evt_a1"].clone(),
        ids_by_event["evt_a2"].clone(),
    ];
    want.sort();
    assert_eq!(
        failed, want,
        "the failed record and the later record of its group"
    );
    for (id, handle) in &handles {
        if !failed.contains(id) {
            client
                .delete_message()
                .queue_url(&queue_url)
                .receipt_handle(handle)
                .send()
                .await
                .expect("delete");
        }
    }
    assert_eq!(
        store
            .get_event(Provider::Stripe, &"evt_b1".into())
            .await
            .expect("read")
            .map(|e| e.status),
        Some(EventStatus::Processed)
    );

    // Redelivered after each visibility timeout and failing again, until the redrive policy
    // (2 receives) moves both to the DLQ. (moto's accounting at the boundary may move a message
    // one receive earlier than AWS; the test asserts the outcome, not that boundary.)
    let count_of = |url: String| {
        let client = client.clone();
        async move {
            let attrs = client
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                .send()
                .await
                .expect("attributes")
                .attributes
                .unwrap_or_default();
            let n = |k: QueueAttributeName| {
                attrs
                    .get(&k)
                    .and_then(|v| v.parse::<u32>().ok())
                    .unwrap_or(0)
            };
            n(QueueAttributeName::ApproximateNumberOfMessages)
                + n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        }
    };
    let mut redeliveries = 0;
    for _ in 0..8 {
        if count_of(dlq_url.clone()).await == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
        let (event, _) = receive(&client, &queue_url).await;
        for r in &event.records {
            let count: u32 = r
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            assert!(
                count <= 2,
                "received {count} times, beyond the configured 2"
            );
            assert!(
                r.body.as_deref().unwrap_or("").contains("evt_a"),
                "only group A is redelivered"
            );
        }
        redeliveries += event.records.len();
        let (items, _) = batch_from_sqs(event);
        let n = items.len();
        assert_eq!(
            processor.process_batch(items).await.len(),
            n,
            "still failing"
        );
    }
    assert!(
        redeliveries >= 1,
        "failed records are redelivered before the DLQ"
    );
    assert_eq!(
        count_of(queue_url.clone()).await,
        0,
        "nothing left in the queue"
    );
    let dlq_count = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .expect("attributes")
        .attributes
        .and_then(|a| {
            a.get(&QueueAttributeName::ApproximateNumberOfMessages)
                .cloned()
        });
    assert_eq!(dlq_count.as_deref(), Some("2"));
    assert_eq!(
        store
            .get_event(Provider::Stripe, &"evt_a1".into())
            .await
            .expect("read")
            .map(|e| e.status),
        Some(EventStatus::Failed)
    );

    // Fix the cause, replay, and the events take effect.
    provider.set(a.clone());
    assert_eq!(
        replay_dead_letters(&client, &dlq_url, &queue_url, 100)
            .await
            .expect("replay"),
        2
    );
    let (event, handles) = receive(&client, &queue_url).await;
    assert_eq!(event.records.len(), 2);
    let (items, _) = batch_from_sqs(event);
    assert!(processor.process_batch(items).await.is_empty());
    for (_, handle) in handles {
        client
            .delete_message()
            .queue_url(&queue_url)
            .receipt_handle(handle)
            .send()
            .await
            .expect("delete");
    }
    for id in ["evt_a1", "evt_a2"] {
        assert_eq!(
            store
                .get_event(Provider::Stripe, &(*id).into())
                .await
                .expect("read")
                .map(|e| e.status),
            Some(EventStatus::Processed),
            "{id}"
        );
    }
    let stored = store
        .get_subscription(&user.id)
        .await
        .expect("read")
        .expect("written");
    assert_eq!(stored.status, SubscriptionStatus::Active);
}
