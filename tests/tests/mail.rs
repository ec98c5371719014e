//! The mail path against moto (DynamoDB and SES v2, which records what it was asked to send):
//! each mail goes out exactly once per cause when SES fails once, when a sender dies after
//! claiming it, and when senders race; the verification mail's link verifies the email.
//! Skipped without `AWS_ENDPOINT_URL` (never in CI: see `tollgate_tests::dynamo_client`).

use std::sync::Arc;
use tollgate::domain::{MailKind, OutboxMail, RequestOrigin};
use tollgate::mail::{Delivery, DispatchError, Dispatcher, MailSettings, MailStores, Templates};
use tollgate::mailer::ses::SesMailer;
use tollgate::store::dynamo::DynamoStore;
use tollgate::store::{AccountStore, Change, Outbox};
use tollgate::Clock;
use tollgate_tests::{random_email, ManualClock};

/// What moto's SES recorded as sent to `to`: `(subject, body)` (moto keeps the HTML body).
async fn sent_to(rig: &Rig, to: &str) -> Vec<(String, String)> {
    let endpoint = &rig.endpoint;
    let data: serde_json::Value = reqwest::get(format!("{endpoint}/moto-api/data.json"))
        .await
        .expect("moto data")
        .json()
        .await
        .expect("json");
    data["ses"]["Message"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| {
            m["destinations"]["ToAddresses"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == to))
        })
        .map(|m| {
            (
                m["subject"].as_str().unwrap_or_default().to_owned(),
                m["body"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// A sender domain no other test verified, and its `no-reply@` address.
fn fresh_sender() -> (String, String) {
    let domain = format!("mail-{}.example.net", uuid::Uuid::now_v7().simple());
    let from = format!("Tollgate <no-reply@{domain}>");
    (domain, from)
}

async fn verify_identity(rig: &Rig, domain: &str) {
    rig.ses
        .create_email_identity()
        .email_identity(domain)
        .send()
        .await
        .expect("create the SES identity in moto");
}

/// A dispatcher over a DynamoDB store and SES, both in this test binary's own moto_server (its
/// recorded sends stay few, so reading them is quick).
struct Rig {
    endpoint: String,
    ses: aws_sdk_sesv2::Client,
    store: Arc<DynamoStore>,
    clock: Arc<ManualClock>,
    dispatcher: Dispatcher,
}

async fn rig(from: &str) -> Option<Rig> {
    let endpoint = tollgate_tests::own_moto().await?;
    let config = tollgate_tests::aws_config_at(&endpoint).await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    static TABLE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    TABLE
        .get_or_init(|| async {
            tollgate::store::dynamo::ensure_table(&dynamo, "tollgate-mail")
                .await
                .expect("table");
        })
        .await;
    let store = Arc::new(DynamoStore::new(dynamo, "tollgate-mail"));
    let ses = aws_sdk_sesv2::Client::new(&config);
    let clock = Arc::new(ManualClock::new(tollgate_tests::now()));
    let dispatcher = Dispatcher::new(
        MailStores {
            users: store.clone(),
            accounts: store.clone(),
            outbox: store.clone(),
        },
        Arc::new(SesMailer::new(ses.clone(), from, None)),
        Arc::new(Templates::built_in()),
        clock.clone(),
        MailSettings {
            app_name: "Tollgate".into(),
            app_url: "https://app.example.com".into(),
            passwordless_signup: false,
        },
    );
    Some(Rig {
        endpoint,
        ses,
        store,
        clock,
        dispatcher,
    })
}

async fn queue_notice(rig: &Rig, to: &str) -> String {
    let mail = OutboxMail::new(MailKind::PasswordChanged, to, None, rig.clock.now());
    rig.store
        .commit(&[Change::QueueMail(mail.clone())])
        .await
        .expect("queue");
    mail.id
}

#[tokio::test]
async fn a_mail_goes_out_once_when_ses_fails_once() {
    let (domain, from) = fresh_sender();
    let Some(rig) = rig(&from).await else { return };
    let to = random_email();
    let id = queue_notice(&rig, &to).await;

    // The sender's identity is not verified yet: SES refuses (MessageRejected), a failure an
    // operator fixes, so the mail is handed back for a later attempt.
    let first = rig.dispatcher.deliver(&id).await;
    assert!(matches!(first, Err(DispatchError::Send(_))), "{first:?}");
    let pending = rig.store.get_mail(&id).await.expect("read").expect("mail");
    assert_eq!(pending.status, tollgate::domain::MailStatus::Pending);
    assert!(pending.last_error.is_some());
    assert!(sent_to(&rig, &to).await.is_empty());

    verify_identity(&rig, &domain).await;
    let second = rig.dispatcher.deliver(&id).await.expect("deliver");
    assert!(matches!(second, Delivery::Sent(_)), "{second:?}");
    assert_eq!(
        rig.dispatcher.deliver(&id).await.expect("again"),
        Delivery::AlreadyDone
    );
    let sent = sent_to(&rig, &to).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].0.contains("password was changed"), "{sent:?}");
}

#[tokio::test]
async fn a_sender_that_died_after_claiming_is_replaced_once_its_claim_lapses() {
    let (domain, from) = fresh_sender();
    let Some(rig) = rig(&from).await else { return };
    verify_identity(&rig, &domain).await;
    let to = random_email();
    let id = queue_notice(&rig, &to).await;
    // A sender claims the mail and dies before sending.
    let claim = rig
        .store
        .claim_mail(&id, rig.clock.now(), tollgate::domain::MAIL_LEASE_SECONDS)
        .await
        .expect("claim");
    assert!(matches!(claim, tollgate::store::MailClaim::Claimed(_)));
    let busy = rig.dispatcher.deliver(&id).await;
    assert!(matches!(busy, Err(DispatchError::Busy { .. })), "{busy:?}");
    assert!(sent_to(&rig, &to).await.is_empty());

    rig.clock.advance(tollgate::domain::MAIL_LEASE_SECONDS);
    assert!(matches!(
        rig.dispatcher.deliver(&id).await.expect("take over"),
        Delivery::Sent(_)
    ));
    assert_eq!(sent_to(&rig, &to).await.len(), 1);
}

#[tokio::test]
async fn racing_senders_send_a_mail_once() {
    let (domain, from) = fresh_sender();
    let Some(rig) = rig(&from).await else { return };
    verify_identity(&rig, &domain).await;
    let rig = Arc::new(rig);
    let to = random_email();
    let id = queue_notice(&rig, &to).await;
    let racers: Vec<_> = (0..6)
        .map(|_| {
            let rig = rig.clone();
            let id = id.clone();
            tokio::spawn(async move { rig.dispatcher.deliver(&id).await })
        })
        .collect();
    let mut sent = 0;
    for r in racers {
        if let Ok(Delivery::Sent(_)) = r.await.expect("join") {
            sent += 1;
        }
    }
    assert_eq!(sent, 1);
    assert_eq!(sent_to(&rig, &to).await.len(), 1);
}

#[tokio::test]
async fn the_verification_mail_sent_by_ses_carries_a_link_that_verifies() {
    let (domain, from) = fresh_sender();
    let Some(rig) = rig(&from).await else { return };
    verify_identity(&rig, &domain).await;
    let (mut components, _, _) = tollgate_tests::components_at(rig.clock.now());
    components.users = rig.store.clone();
    components.sessions = rig.store.clone();
    components.accounts = rig.store.clone();
    components.outbox = rig.store.clone();
    components.billing_store = rig.store.clone();
    let state = tollgate::AppState::assemble(&components, tollgate::Needs::ALL);
    let email = random_email();
    let (user, _) = tollgate_tests::sign_up_as(&state, &email).await;
    let queued = {
        let mut found = None;
        for id in rig.store.pending_mail(100_000).await.expect("pending") {
            let mail = rig.store.get_mail(&id).await.expect("read").expect("mail");
            if mail.user_id == Some(user.id) {
                found = Some(id);
            }
        }
        found.expect("signup queued its verification mail")
    };
    assert!(matches!(
        rig.dispatcher.deliver(&queued).await.expect("deliver"),
        Delivery::Sent(_)
    ));
    let sent = sent_to(&rig, &email).await;
    assert_eq!(sent.len(), 1);
    let body = &sent[0].1;
    // HTML-escaped in the body: `/` as `&#x2f;`.
    let body = body.replace("&#x2f;", "/").replace("&#x3d;", "=");
    let token = body
        .split("/verify-email?token=")
        .nth(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect::<String>()
        })
        .expect("a verification link");
    let verified = state
        .auth()
        .expect("accounts")
        .verify_email(&token, &RequestOrigin::default())
        .await
        .expect("the link verifies");
    assert!(verified.email_verified);
}
