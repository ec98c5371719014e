//! Issue #13's billing mail and outbound events, on both stores.
//!
//! - Billing mails: a trial that ends in two days, its `trial_will_end`, a paid and a failed
//!   invoice, a plan change and a cancellation — every Stripe event delivered twice under two
//!   event ids (as Stripe does for `invoice.paid` / `invoice.payment_succeeded`) — leave exactly
//!   one mail per cause, each sent once to the account's address with its facts.
//! - Outbound events: delivered to an endpoint run by the Python `standardwebhooks` library
//!   (tests/hooks/receiver.py), which verifies every signature; an endpoint that fails is
//!   retried after the backoff; an event that keeps failing becomes a dead-letter record and is
//!   delivered when replayed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tollgate::domain::{
    EventStatus, OutboundStatus, OutboundType, Provider, ProviderSubscription, SubscriptionStatus,
    WebhookEvent, OUTBOUND_MAX_ATTEMPTS,
};
use tollgate::hooks::{http::HttpHookSender, parse_endpoints};
use tollgate::mail::Templates;
use tollgate::mailer::{Mailer, MailerError, OutgoingMail};
use tollgate::payments::Providers;
use tollgate::queue::EventMessage;
use tollgate::state::Components;
use tollgate::webhooks::outbound::Attempt;
use tollgate::Clock;
use tollgate_tests::{on_both_stores, Backend, FakeProvider, ManualClock};

const DAY: i64 = 86_400;

#[derive(Default)]
struct RecordingMailer(Mutex<Vec<OutgoingMail>>);

#[async_trait::async_trait]
impl Mailer for RecordingMailer {
    async fn send(&self, mail: &OutgoingMail) -> Result<String, MailerError> {
        self.0.lock().expect("lock").push(mail.clone());
        Ok(format!("m-{}", mail.id))
    }
}

struct Rig {
    components: Components,
    clock: Arc<ManualClock>,
    stripe: Arc<FakeProvider>,
    user: tollgate::domain::User,
    unique: String,
    step: std::sync::atomic::AtomicU32,
}

async fn rig(backend: Backend, now: i64) -> Option<Rig> {
    let (mut components, clock, _) = tollgate_tests::components_at(now);
    if let Backend::Dynamo = backend {
        let store = Arc::new(tollgate_tests::dynamo_store().await?);
        tollgate_tests::use_store(&mut components, store);
    }
    let stripe = Arc::new(FakeProvider::new(Provider::Stripe));
    components.providers = Providers::default().with(stripe.clone());
    let state = tollgate::AppState::assemble(&components, tollgate::Needs::ALL);
    let (user, _) = tollgate_tests::sign_up(&state).await;
    Some(Rig {
        components,
        clock,
        stripe,
        user,
        unique: uuid::Uuid::now_v7().simple().to_string(),
        step: Default::default(),
    })
}

impl Rig {
    fn sub_id(&self) -> String {
        format!("sub_{}", self.unique)
    }

    /// Sets Stripe's state of the rig's subscription.
    fn set(&self, price: &str, status: SubscriptionStatus, cancel: bool, trial_end: Option<i64>) {
        let now = self.clock.now();
        self.stripe.set(ProviderSubscription {
            provider: Provider::Stripe,
            subscription_id: self.sub_id().as_str().into(),
            customer_id: Some(format!("cus_{}", self.unique).as_str().into()),
            user_id: Some(self.user.id),
            status,
            price_id: price.into(),
            current_period_end: Some(now + 30 * DAY),
            cancel_at_period_end: cancel,
            trial_end,
        });
    }

    /// Records `body` in the ledger as event `id` and processes it.
    async fn process(&self, id: &str, body: serde_json::Value) {
        let now = self.clock.now();
        let event = WebhookEvent {
            provider: Provider::Stripe,
            event_id: id.into(),
            event_type: body["type"].as_str().unwrap_or_default().to_owned(),
            body: body.to_string(),
            group_id: self.sub_id(),
            received_at: now,
            status: EventStatus::Received,
            attempts: 0,
            last_error: None,
            processed_at: None,
            expires_at: now + DAY,
        };
        self.components
            .ledger
            .record_event(&event)
            .await
            .expect("record");
        self.components
            .processor()
            .process_one(&EventMessage {
                provider: Provider::Stripe,
                event_id: id.into(),
            })
            .await
            .expect("processed");
    }

    /// A subscription event of `kind` (refetched from the double), twice under two ids.
    async fn subscription_event_twice(&self, kind: &str) {
        let step = self.step.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        for n in 0..2 {
            let body = serde_json::json!({
                "id": format!("evt_{kind}_{step}_{n}_{}", self.unique),
                "object": "event",
                "type": kind,
                "created": self.clock.now(),
                "data": {"object": {
                    "id": self.sub_id(),
                    "object": "subscription",
                    "customer": format!("cus_{}", self.unique),
                    "metadata": {"user_id": self.user.id.to_string()},
                }},
            });
            let id = body["id"].as_str().expect("id").to_owned();
            self.process(&id, body).await;
        }
    }

    /// The invoice fixture of `kind` for the rig's subscription, invoice `invoice`, twice
    /// under two event ids.
    async fn invoice_event_twice(&self, kind: &str, invoice: &str) {
        let text = String::from_utf8(tollgate_tests::fixture(&format!(
            "stripe/events/{kind}.json"
        )))
        .expect("utf-8")
        .replace("sub_1TestSubscr0000001", &self.sub_id())
        .replace("cus_TestAlice000001", &format!("cus_{}", self.unique))
        .replace("user_7f3c2a", &self.user.id.to_string());
        let mut body: serde_json::Value = serde_json::from_str(&text).expect("json");
        body["data"]["object"]["id"] = invoice.into();
        // Paid (or failed) now: a payment days old gets no mail (a late replay).
        let now = self.clock.now();
        body["created"] = now.into();
        body["data"]["object"]["created"] = now.into();
        if body["data"]["object"]["status_transitions"].is_object() {
            body["data"]["object"]["status_transitions"]["paid_at"] = now.into();
        }
        for n in 0..2 {
            body["id"] = format!("evt_{kind}_{n}_{}", self.unique).into();
            self.process(body["id"].as_str().expect("id"), body.clone())
                .await;
        }
    }

    async fn sent_mail(&self) -> Vec<OutgoingMail> {
        let mailer = Arc::new(RecordingMailer::default());
        let dispatcher = self
            .components
            .dispatcher(mailer.clone(), Arc::new(Templates::built_in()));
        // Twice: a second drain finds nothing left.
        for _ in 0..2 {
            dispatcher.drain(1_000).await.expect("drain");
        }
        let sent = mailer.0.lock().expect("lock").clone();
        sent.into_iter()
            .filter(|m| m.id.contains(&self.unique) || m.to == self.user.email)
            .collect()
    }
}

/// The one cause id of `sent` starting with `prefix` (or `prefix` itself, which then fails).
fn by_cause_prefix(sent: &[OutgoingMail], prefix: &str) -> String {
    let found: Vec<&String> = sent
        .iter()
        .map(|m| &m.id)
        .filter(|id| id.starts_with(prefix))
        .collect();
    match found.as_slice() {
        [one] => (*one).clone(),
        _ => prefix.to_owned(),
    }
}

async fn billing_mails_go_out_once_per_cause(backend: Backend) {
    let Some(rig) = rig(backend, tollgate_tests::now()).await else {
        return;
    };
    let pro = "price_1TestProMonthly01";
    let trial_end = rig.clock.now() + 2 * DAY;
    rig.set(pro, SubscriptionStatus::Trialing, false, Some(trial_end));
    rig.subscription_event_twice("customer.subscription.created")
        .await;
    rig.subscription_event_twice("customer.subscription.trial_will_end")
        .await;
    rig.clock.advance(2 * DAY + 60);
    rig.set(pro, SubscriptionStatus::Active, false, Some(trial_end));
    rig.subscription_event_twice("customer.subscription.updated")
        .await;
    let paid = format!("in_paid_{}", rig.unique);
    rig.invoice_event_twice("invoice.paid", &paid).await;
    let failed = format!("in_failed_{}", rig.unique);
    rig.invoice_event_twice("invoice.payment_failed", &failed)
        .await;
    rig.set(
        "price_1TestTeamMonthly1",
        SubscriptionStatus::Active,
        false,
        Some(trial_end),
    );
    rig.subscription_event_twice("customer.subscription.updated")
        .await;
    rig.set(
        "price_1TestTeamMonthly1",
        SubscriptionStatus::Active,
        true,
        Some(trial_end),
    );
    rig.subscription_event_twice("customer.subscription.updated")
        .await;

    let sent = rig.sent_mail().await;
    let mut by_cause: BTreeMap<String, Vec<&OutgoingMail>> = BTreeMap::new();
    for m in &sent {
        by_cause.entry(m.id.clone()).or_default().push(m);
    }
    let ids: Vec<&String> = by_cause.keys().collect();
    assert_eq!(
        sent.len(),
        by_cause.len(),
        "each cause is one mail, sent once: {ids:?}"
    );
    let stripe_sub = format!("stripe:{}", rig.sub_id());
    let expect = [
        format!("trial_ending:{stripe_sub}:{trial_end}"),
        format!("receipt:stripe:{paid}"),
        format!("payment_failed:stripe:{failed}"),
        by_cause_prefix(&sent, &format!("plan_changed:{stripe_sub}:")),
        format!("canceled:{stripe_sub}:{}", rig.clock.now() + 30 * DAY),
    ];
    let welcome = sent
        .iter()
        .filter(|m| !expect.contains(&m.id))
        .map(|m| m.subject.clone())
        .collect::<Vec<_>>();
    for cause in &expect {
        let mail = by_cause
            .get(cause)
            .unwrap_or_else(|| panic!("no mail for {cause}; sent {ids:?}"))[0];
        assert_eq!(mail.to, rig.user.email, "to the account's address");
    }
    assert!(
        welcome
            .iter()
            .all(|s| s.contains("Confirm") || s.contains("erify")),
        "nothing else but the sign-up's verification mail: {welcome:?}"
    );
    let receipt = by_cause[&expect[1]][0];
    assert!(receipt.text.contains("15.00 USD"), "{}", receipt.text);
    assert!(receipt.text.contains("the Pro plan"), "{}", receipt.text);
    let failed_mail = by_cause[&expect[2]][0];
    assert!(
        failed_mail.text.contains("/account#billing")
            && failed_mail.html.contains("Manage billing")
            && failed_mail.subject.contains("failed"),
        "the failed-payment mail links to billing: {}",
        failed_mail.text
    );
    let changed = by_cause[&expect[3]][0];
    assert!(changed.subject.contains("Team"), "{}", changed.subject);
    assert!(
        changed.text.contains("from Pro to Team"),
        "{}",
        changed.text
    );

    // The outbound events of the same changes: one per cause (in any state: on the shared
    // DynamoDB table the other case's sweeps may deliver them meanwhile).
    let mut pending = Vec::new();
    for status in [
        OutboundStatus::Pending,
        OutboundStatus::Sending,
        OutboundStatus::Delivered,
        OutboundStatus::Dead,
    ] {
        pending.extend(
            rig.components
                .outbound_store
                .list_outbound(status, 100_000)
                .await
                .expect("list"),
        );
    }
    let mine: Vec<_> = pending
        .iter()
        .filter(|e| e.user_id == rig.user.id)
        .collect();
    let count = |t: OutboundType| mine.iter().filter(|e| e.event_type == t).count();
    assert_eq!(count(OutboundType::PaymentSucceeded), 1);
    assert_eq!(count(OutboundType::PaymentFailed), 1);
    // Written: created (trialing), activated, team, cancel set.
    assert_eq!(
        count(OutboundType::SubscriptionUpdated),
        4,
        "{:#?}",
        mine.iter().map(|e| &e.payload).collect::<Vec<_>>()
    );
    // free → pro (trial), pro → team.
    assert_eq!(count(OutboundType::EntitlementsChanged), 2);
}

/// The receiver process, killed on drop.
struct Receiver {
    child: std::process::Child,
    url: String,
    log: std::path::PathBuf,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

impl Receiver {
    fn accepted(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    }
}

/// Starts tests/hooks/receiver.py; `None` outside CI when Python's `standardwebhooks` is
/// missing (infra/test.sh installs it; with `CI=true` a missing library fails the test).
fn receiver(secret: &str, fail_first: u32) -> Option<Receiver> {
    use std::io::BufRead as _;
    let has_lib = std::process::Command::new("python3")
        .args(["-c", "import standardwebhooks"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_lib {
        assert!(
            std::env::var("CI").is_err(),
            "python3 -m pip install standardwebhooks (infra/test.sh does)"
        );
        eprintln!("skipped: Python's standardwebhooks is not installed");
        return None;
    }
    let log = std::env::temp_dir().join(format!(
        "tollgate-hooks-{}.jsonl",
        uuid::Uuid::now_v7().simple()
    ));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/hooks/receiver.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .arg(secret)
        .arg(&log)
        .arg(fail_first.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("port");
    Some(Receiver {
        child,
        url: format!("http://127.0.0.1:{}/hooks", line.trim()),
        log,
    })
}

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn endpoints(url: &str) -> Vec<tollgate::hooks::Endpoint> {
    parse_endpoints(&format!(
        r#"[{{"name":"app","url":"{url}","secret":"{SECRET}"}}]"#
    ))
    .expect("endpoints")
}

async fn outbound_events_are_verified_retried_and_replayable(backend: Backend) {
    // Real time: the receiver checks the signature's timestamp against its clock.
    let Some(rig) = rig(backend, tollgate_tests::now()).await else {
        return;
    };
    let Some(endpoint) = receiver(SECRET, 2) else {
        return;
    };
    let sender = Arc::new(HttpHookSender::new().expect("client"));
    let dispatcher = rig
        .components
        .outbound(sender.clone(), endpoints(&endpoint.url));
    rig.set(
        "price_1TestProMonthly01",
        SubscriptionStatus::Active,
        false,
        None,
    );
    rig.subscription_event_twice("customer.subscription.created")
        .await;
    let mine = |status| {
        let store = rig.components.outbound_store.clone();
        let user = rig.user.id;
        async move {
            store
                .list_outbound(status, 10_000)
                .await
                .expect("list")
                .into_iter()
                .filter(|e| e.user_id == user)
                .collect::<Vec<_>>()
        }
    };
    let events = mine(OutboundStatus::Pending).await;
    assert_eq!(
        events.len(),
        2,
        "subscription.updated and entitlements.changed"
    );
    let first = events[0].id.clone();
    // The endpoint is down for its first two requests: the first attempt of each event fails.
    for e in &events {
        assert!(matches!(
            dispatcher.deliver(&e.id).await.expect("attempt"),
            Attempt::Retry { .. }
        ));
    }
    assert!(endpoint.accepted().is_empty());
    assert!(
        matches!(
            dispatcher.deliver(&first).await.expect("attempt"),
            Attempt::NotNow { .. }
        ),
        "not before the backoff"
    );
    rig.clock.advance(31);
    // (On the shared DynamoDB table the sweep also delivers other tests' leftovers.)
    let report = dispatcher.sweep(100_000).await.expect("sweep");
    assert!(report.delivered >= 2, "{report:?}");
    let accepted = endpoint.accepted();
    let mut types: Vec<String> = accepted
        .iter()
        .filter(|a| a["payload"]["data"]["user_id"] == rig.user.id.to_string())
        .map(|a| a["payload"]["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    types.sort();
    assert_eq!(types, ["entitlements.changed", "subscription.updated"]);
    let ent = accepted
        .iter()
        .find(|a| a["payload"]["type"] == "entitlements.changed")
        .expect("entitlements");
    assert_eq!(ent["payload"]["data"]["plan"], "pro");
    assert_eq!(ent["payload"]["data"]["previous_plan"], "free");
    assert!(mine(OutboundStatus::Pending).await.is_empty());
    assert_eq!(mine(OutboundStatus::Delivered).await.len(), 2);

    // An endpoint that never answers 2xx: the event ends dead after the last attempt.
    let down = receiver(SECRET, u32::MAX).expect("receiver");
    let failing = rig
        .components
        .outbound(sender.clone(), endpoints(&down.url));
    rig.set(
        "price_1TestTeamMonthly1",
        SubscriptionStatus::Active,
        false,
        None,
    );
    rig.subscription_event_twice("customer.subscription.updated")
        .await;
    let start = rig.clock.now();
    let mut attempts = 0;
    loop {
        let due = mine(OutboundStatus::Pending).await;
        if due.is_empty() {
            break;
        }
        for e in &due {
            failing.deliver(&e.id).await.expect("attempt");
        }
        attempts += 1;
        assert!(attempts <= OUTBOUND_MAX_ATTEMPTS + 1, "never gave up");
        rig.clock.advance(13 * 3600);
    }
    let dead = failing.dead(10_000).await.expect("dead");
    let dead: Vec<_> = dead
        .into_iter()
        .filter(|e| e.user_id == rig.user.id)
        .collect();
    assert_eq!(
        dead.len(),
        2,
        "subscription.updated and entitlements.changed"
    );
    assert!(dead.iter().all(|e| e.attempts == OUTBOUND_MAX_ATTEMPTS));
    assert!(dead[0]
        .last_error
        .as_deref()
        .unwrap_or_default()
        .contains("HTTP 500"));
    // Replayed by an operator to the working endpoint, at the real time again.
    rig.clock.advance(start - rig.clock.now());
    for e in &dead {
        assert_eq!(
            dispatcher.replay(&e.id).await.expect("replay"),
            Some(Attempt::Delivered)
        );
        assert_eq!(
            dispatcher.replay(&e.id).await.expect("again"),
            None,
            "no longer dead"
        );
    }
    let replayed: Vec<_> = endpoint
        .accepted()
        .into_iter()
        .filter(|a| dead.iter().any(|d| a["id"] == d.id.as_str()))
        .collect();
    assert_eq!(replayed.len(), 2, "both arrive, verified, after the replay");
    assert_eq!(
        replayed
            .iter()
            .find(|a| a["payload"]["type"] == "entitlements.changed")
            .expect("entitlements")["payload"]["data"]["plan"],
        "team"
    );
}

on_both_stores!(
    billing_mails_go_out_once_per_cause,
    outbound_events_are_verified_retried_and_replayable
);
