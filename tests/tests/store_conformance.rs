//! One store conformance suite, run against the embedded store and DynamoDB (moto_server), over
//! every store trait: users, sessions, billing (subscriptions, customer claims, payments) and the
//! webhook event ledger. Each case is a plain async function over the store traits; the macro
//! expands one `#[tokio::test]` per case and backend, so a failure names both. A store trait
//! added later adds its cases here.

use std::sync::Arc;
use tollgate::domain::{
    EventEffects, EventStatus, Payment, PaymentStatus, Provider, RevokeReason, Session, SessionId,
    SessionPolicy, Subscription, SubscriptionStatus, SubscriptionWrite, TokenHash, User, UserId,
    UserStatus, WebhookEvent, EVENT_RETENTION_SECONDS,
};
use tollgate::store::{
    BillingStore, Conflict, EventLedger, EventMark, SessionStore, StoreError, UserStore,
};
use tollgate_tests::random_email;

trait Stores: UserStore + SessionStore + BillingStore + EventLedger + 'static {}
impl<T: UserStore + SessionStore + BillingStore + EventLedger + 'static> Stores for T {}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

fn subscription(user_id: UserId, version: u64, status: SubscriptionStatus) -> Subscription {
    Subscription {
        user_id,
        provider: Provider::Stripe,
        subscription_id: "sub_conformance".into(),
        customer_id: Some("cus_conformance".into()),
        plan: "pro".into(),
        interval: None,
        price_id: "price_1TestProMonthly01".into(),
        status,
        current_period_end: Some(1_800_000_000),
        cancel_at_period_end: false,
        trial_end: None,
        past_due_since: None,
        source_fetched_at_us: 1_795_248_000_000_000 + version as i64,
        version,
        updated_at: 1_795_248_000,
    }
}

fn webhook_event(id: &str) -> WebhookEvent {
    WebhookEvent {
        provider: Provider::Stripe,
        event_id: id.into(),
        event_type: "invoice.paid".into(),
        body: r#"{"id":"evt"}"#.into(),
        group_id: "sub_conformance".into(),
        received_at: 1_795_248_000,
        status: EventStatus::Received,
        attempts: 0,
        last_error: None,
        processed_at: None,
        expires_at: 1_795_248_000 + EVENT_RETENTION_SECONDS,
    }
}

fn failed(attempts: u32, error: &str, at: i64) -> EventMark {
    EventMark {
        status: EventStatus::Failed,
        attempts,
        error: Some(error.into()),
        at,
    }
}

/// The stored event `id` (it must exist).
async fn stored_event(s: &impl EventLedger, id: &str) -> WebhookEvent {
    s.get_event(Provider::Stripe, &id.into())
        .await
        .expect("read")
        .expect("event")
}

fn payment(user_id: UserId, id: &str) -> Payment {
    Payment {
        user_id,
        provider: Provider::Stripe,
        payment_id: id.into(),
        amount_minor: 1500,
        currency: "usd".into(),
        subscription_id: Some("sub_conformance".into()),
        status: PaymentStatus::Paid,
        paid_at: 1_795_248_100,
    }
}

fn user(email: &str) -> User {
    User {
        id: UserId::new(),
        email: email.to_owned(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        status: UserStatus::Active,
        email_verified: false,
        roles: vec!["member".into()],
        created_at: 1_795_248_000,
        updated_at: 1_795_248_000,
        version: 1,
    }
}

fn h(s: &str) -> TokenHash {
    TokenHash(s.to_owned())
}

fn session(user_id: UserId) -> Session {
    Session::start(
        user_id,
        SessionId::new(),
        h("hash-0"),
        1_795_248_000,
        &SessionPolicy::default(),
        Some("test-agent".into()),
    )
}

mod cases {
    use super::*;

    pub async fn created_user_reads_back_by_id_and_email(s: Arc<impl Stores>) {
        let email = random_email();
        let u = user(&email.to_uppercase());
        s.create_user(&u).await.expect("create");
        assert_eq!(s.get_user(&u.id).await.expect("get"), Some(u.clone()));
        assert_eq!(
            s.find_user_id_by_email(&email).await.expect("find"),
            Some(u.id)
        );
    }

    pub async fn missing_items_read_as_none(s: Arc<impl Stores>) {
        assert_eq!(s.get_user(&UserId::new()).await.expect("get"), None);
        assert_eq!(
            s.find_user_id_by_email(&random_email())
                .await
                .expect("find"),
            None
        );
        assert_eq!(
            s.get_session(&UserId::new(), &SessionId::new())
                .await
                .expect("get"),
            None
        );
    }

    pub async fn email_is_unique_case_insensitively_and_the_first_user_is_kept(
        s: Arc<impl Stores>,
    ) {
        let email = random_email();
        let first = user(&email);
        s.create_user(&first).await.expect("create");
        let second = user(&email.to_uppercase());
        assert!(matches!(
            s.create_user(&second).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(
            s.get_user(&second.id).await.expect("get"),
            None,
            "nothing of the loser is written"
        );
        assert_eq!(
            s.find_user_id_by_email(&email).await.expect("find"),
            Some(first.id)
        );
        assert_eq!(s.get_user(&first.id).await.expect("get"), Some(first));
    }

    pub async fn concurrent_signups_for_one_email_have_one_winner(s: Arc<impl Stores>) {
        let email = random_email();
        let attempts = (0..6).map(|_| {
            let s = s.clone();
            let u = user(&email);
            tokio::spawn(async move { s.create_user(&u).await.is_ok() })
        });
        let mut wins = 0;
        for a in attempts {
            wins += usize::from(a.await.expect("join"));
        }
        assert_eq!(wins, 1);
    }

    pub async fn user_update_requires_the_expected_version(s: Arc<impl Stores>) {
        let mut u = user(&random_email());
        s.create_user(&u).await.expect("create");
        u.password_hash = "new".into();
        u.version = 2;
        assert!(matches!(
            s.update_user(&u, 7).await,
            Err(StoreError::Conflict(_))
        ));
        s.update_user(&u, 1).await.expect("update at version 1");
        assert_eq!(
            s.get_user(&u.id)
                .await
                .expect("get")
                .map(|x| x.password_hash),
            Some("new".into())
        );
        assert!(
            matches!(s.update_user(&u, 1).await, Err(StoreError::Conflict(_))),
            "version 1 is stale now"
        );
    }

    pub async fn session_round_trips_every_field(s: Arc<impl Stores>) {
        let u = UserId::new();
        let mut sess = session(u).rotated(
            h("hash-1"),
            "sealed".into(),
            1_795_248_100,
            &SessionPolicy::default(),
        );
        sess.retired_hashes = vec![h("old-1"), h("old-2")];
        s.create_session(&sess).await.expect("create");
        assert_eq!(
            s.get_session(&u, &sess.id).await.expect("get"),
            Some(sess.clone())
        );
        assert!(
            matches!(s.create_session(&sess).await, Err(StoreError::Conflict(_))),
            "ids are unique"
        );
    }

    pub async fn rotation_requires_the_current_hash(s: Arc<impl Stores>) {
        let sess = session(UserId::new());
        s.create_session(&sess).await.expect("create");
        let next = sess.rotated(
            h("hash-1"),
            "sealed".into(),
            1_795_248_100,
            &SessionPolicy::default(),
        );
        assert!(matches!(
            s.rotate_session(&next, &h("wrong")).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(
            s.get_session(&sess.user_id, &sess.id).await.expect("get"),
            Some(sess.clone()),
            "unchanged"
        );
        s.rotate_session(&next, &h("hash-0")).await.expect("rotate");
        assert_eq!(
            s.get_session(&sess.user_id, &sess.id).await.expect("get"),
            Some(next.clone())
        );
        assert!(
            matches!(
                s.rotate_session(&next, &h("hash-0")).await,
                Err(StoreError::Conflict(_))
            ),
            "rotates once"
        );
    }

    pub async fn concurrent_rotations_of_one_token_have_one_winner(s: Arc<impl Stores>) {
        let sess = session(UserId::new());
        s.create_session(&sess).await.expect("create");
        let attempts = (0..8).map(|i| {
            let s = s.clone();
            let next = sess.rotated(
                h(&format!("next-{i}")),
                "sealed".into(),
                1_795_248_100,
                &SessionPolicy::default(),
            );
            tokio::spawn(async move { s.rotate_session(&next, &h("hash-0")).await.is_ok() })
        });
        let mut wins = 0;
        for a in attempts {
            wins += usize::from(a.await.expect("join"));
        }
        assert_eq!(wins, 1);
    }

    pub async fn revoked_sessions_cannot_rotate(s: Arc<impl Stores>) {
        let sess = session(UserId::new());
        s.create_session(&sess).await.expect("create");
        s.revoke_session(&sess.user_id, &sess.id, 1_795_248_050, RevokeReason::Logout)
            .await
            .expect("revoke");
        let next = sess.rotated(
            h("hash-1"),
            "sealed".into(),
            1_795_248_100,
            &SessionPolicy::default(),
        );
        assert!(matches!(
            s.rotate_session(&next, &h("hash-0")).await,
            Err(StoreError::Conflict(_))
        ));
        let stored = s
            .get_session(&sess.user_id, &sess.id)
            .await
            .expect("get")
            .expect("exists");
        assert_eq!(stored.current_hash, h("hash-0"));
        assert_eq!(stored.revoked_at, Some(1_795_248_050));
    }

    pub async fn revoking_twice_keeps_the_first_time_and_reason(s: Arc<impl Stores>) {
        let sess = session(UserId::new());
        s.create_session(&sess).await.expect("create");
        s.revoke_session(&sess.user_id, &sess.id, 10, RevokeReason::Reuse)
            .await
            .expect("revoke");
        s.revoke_session(&sess.user_id, &sess.id, 20, RevokeReason::Logout)
            .await
            .expect("again is ok");
        let stored = s
            .get_session(&sess.user_id, &sess.id)
            .await
            .expect("get")
            .expect("exists");
        assert_eq!(
            (stored.revoked_at, stored.revoked_reason),
            (Some(10), Some(RevokeReason::Reuse))
        );
    }

    pub async fn revoking_a_missing_session_is_not_found(s: Arc<impl Stores>) {
        let r = s
            .revoke_session(&UserId::new(), &SessionId::new(), 1, RevokeReason::Logout)
            .await;
        assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    }

    pub async fn sessions_are_listed_per_user_oldest_first(s: Arc<impl Stores>) {
        let owner = user(&random_email());
        s.create_user(&owner).await.expect("create user");
        let a = session(owner.id);
        let b = session(owner.id);
        let other = session(UserId::new());
        for x in [&a, &b, &other] {
            s.create_session(x).await.expect("create");
        }
        let ids: Vec<_> = s
            .list_sessions(&owner.id)
            .await
            .expect("list")
            .into_iter()
            .map(|x| x.id)
            .collect();
        assert_eq!(
            ids,
            vec![a.id, b.id],
            "the profile item and other users' sessions are not listed"
        );
    }

    pub async fn subscription_writes_require_the_expected_version(s: Arc<impl Stores>) {
        let user = UserId::new();
        let first = subscription(user, 1, SubscriptionStatus::Active);
        s.put_subscription(&SubscriptionWrite {
            subscription: first.clone(),
            expected_version: None,
        })
        .await
        .expect("first write");
        assert_eq!(s.get_subscription(&user).await.expect("read"), Some(first));
        for stale in [None, Some(2)] {
            let r = s
                .put_subscription(&SubscriptionWrite {
                    subscription: subscription(user, 2, SubscriptionStatus::Canceled),
                    expected_version: stale,
                })
                .await;
            assert!(
                matches!(r, Err(StoreError::Conflict(Conflict::StaleVersion))),
                "expected {stale:?}: {r:?}"
            );
        }
        let second = subscription(user, 2, SubscriptionStatus::PastDue);
        s.put_subscription(&SubscriptionWrite {
            subscription: second.clone(),
            expected_version: Some(1),
        })
        .await
        .expect("the expected version wins");
        assert_eq!(s.get_subscription(&user).await.expect("read"), Some(second));
    }

    pub async fn a_customer_is_claimed_once(s: Arc<impl Stores>) {
        let (a, b) = (UserId::new(), UserId::new());
        let customer = unique("cus").into();
        assert_eq!(
            s.claim_customer(Provider::Stripe, &customer, &a)
                .await
                .expect("claim"),
            a
        );
        assert_eq!(
            s.claim_customer(Provider::Stripe, &customer, &b)
                .await
                .expect("claim again"),
            a,
            "the claim never moves"
        );
        assert_eq!(
            s.claim_customer(Provider::Stripe, &customer, &a)
                .await
                .expect("claim by its owner"),
            a
        );
        assert_eq!(
            s.find_customer(Provider::Stripe, &customer)
                .await
                .expect("find"),
            Some(a)
        );
        assert_eq!(
            s.find_customer(Provider::Whop, &customer)
                .await
                .expect("find"),
            None,
            "claims are per provider"
        );
        assert_eq!(
            s.customer_of(Provider::Stripe, &a).await.expect("of a"),
            Some(customer)
        );
        assert_eq!(
            s.customer_of(Provider::Stripe, &b).await.expect("of b"),
            None
        );
    }

    pub async fn a_duplicate_event_keeps_the_first_recording(s: Arc<impl Stores>) {
        let id = unique("evt");
        let (stored, new) = s.record_event(&webhook_event(&id)).await.expect("record");
        assert!(new);
        let mut again = webhook_event(&id);
        again.body = r#"{"id":"changed"}"#.into();
        again.received_at += 60;
        let (kept, new) = s.record_event(&again).await.expect("record again");
        assert!(!new);
        assert_eq!(kept, stored, "the duplicate changes nothing");
        assert_eq!(
            s.get_event(Provider::Stripe, &id.as_str().into())
                .await
                .expect("read"),
            Some(stored)
        );
    }

    pub async fn apply_commits_the_subscription_the_payment_and_processed_together(
        s: Arc<impl Stores>,
    ) {
        let user = UserId::new();
        let id = unique("evt");
        s.record_event(&webhook_event(&id)).await.expect("record");
        let effects = EventEffects {
            subscription: Some(SubscriptionWrite {
                subscription: subscription(user, 1, SubscriptionStatus::Active),
                expected_version: None,
            }),
            payment: Some(payment(user, "in_conformance_1")),
        };
        s.apply_event(
            Provider::Stripe,
            &id.as_str().into(),
            &effects,
            1_795_248_200,
        )
        .await
        .expect("apply");
        let event = stored_event(s.as_ref(), &id).await;
        assert_eq!(
            (event.status, event.processed_at),
            (EventStatus::Processed, Some(1_795_248_200))
        );
        assert_eq!(
            s.get_subscription(&user)
                .await
                .expect("read")
                .map(|x| x.version),
            Some(1)
        );
        assert_eq!(
            s.list_payments(&user).await.expect("payments"),
            vec![payment(user, "in_conformance_1")]
        );
    }

    pub async fn a_processed_event_takes_effect_once(s: Arc<impl Stores>) {
        let user = UserId::new();
        let id = unique("evt");
        s.record_event(&webhook_event(&id)).await.expect("record");
        let effects = EventEffects {
            subscription: None,
            payment: Some(payment(user, "in_conformance_once")),
        };
        s.apply_event(Provider::Stripe, &id.as_str().into(), &effects, 1)
            .await
            .expect("apply");
        let again = s
            .apply_event(Provider::Stripe, &id.as_str().into(), &effects, 2)
            .await;
        assert!(
            matches!(again, Err(StoreError::Conflict(Conflict::AlreadyProcessed))),
            "{again:?}"
        );
        // A failure recorded after the fact changes nothing.
        s.mark_event(Provider::Stripe, &id.as_str().into(), &failed(9, "late", 3))
            .await
            .expect("mark");
        let event = stored_event(s.as_ref(), &id).await;
        assert_eq!(
            (event.status, event.processed_at),
            (EventStatus::Processed, Some(1))
        );
        assert_eq!(
            s.list_payments(&user).await.expect("payments").len(),
            1,
            "the payment is written once"
        );
    }

    pub async fn a_stale_subscription_version_fails_the_whole_apply(s: Arc<impl Stores>) {
        let user = UserId::new();
        s.put_subscription(&SubscriptionWrite {
            subscription: subscription(user, 1, SubscriptionStatus::Active),
            expected_version: None,
        })
        .await
        .expect("seed");
        let id = unique("evt");
        s.record_event(&webhook_event(&id)).await.expect("record");
        let effects = EventEffects {
            subscription: Some(SubscriptionWrite {
                subscription: subscription(user, 2, SubscriptionStatus::Canceled),
                expected_version: None, // stale: version 1 is stored
            }),
            payment: Some(payment(user, "in_conformance_stale")),
        };
        let r = s
            .apply_event(Provider::Stripe, &id.as_str().into(), &effects, 1)
            .await;
        assert!(
            matches!(r, Err(StoreError::Conflict(Conflict::StaleVersion))),
            "{r:?}"
        );
        let event = stored_event(s.as_ref(), &id).await;
        assert_eq!(event.status, EventStatus::Received, "not marked processed");
        assert!(
            s.list_payments(&user).await.expect("payments").is_empty(),
            "nothing of the apply was written"
        );
        assert_eq!(
            s.get_subscription(&user)
                .await
                .expect("read")
                .map(|x| x.status),
            Some(SubscriptionStatus::Active)
        );
    }

    pub async fn concurrent_applies_of_one_event_have_one_winner(s: Arc<impl Stores>) {
        let user = UserId::new();
        let id = unique("evt");
        s.record_event(&webhook_event(&id)).await.expect("record");
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let s = s.clone();
                let id = id.clone();
                tokio::spawn(async move {
                    let effects = EventEffects {
                        subscription: Some(SubscriptionWrite {
                            subscription: subscription(user, 1, SubscriptionStatus::Active),
                            expected_version: None,
                        }),
                        payment: Some(payment(user, &format!("in_race_{i}"))),
                    };
                    s.apply_event(Provider::Stripe, &id.as_str().into(), &effects, i)
                        .await
                })
            })
            .collect();
        let mut won = 0;
        for t in tasks {
            match t.await.expect("join") {
                Ok(()) => won += 1,
                Err(StoreError::Conflict(Conflict::AlreadyProcessed | Conflict::StaleVersion)) => {}
                // DynamoDB cancels transactions that race on the same items; a retry decides.
                Err(StoreError::Unavailable(_)) => {}
                Err(e) => panic!("unexpected: {e:?}"),
            }
        }
        assert_eq!(won, 1, "exactly one apply takes effect");
        assert_eq!(s.list_payments(&user).await.expect("payments").len(), 1);
        assert_eq!(
            s.get_event(Provider::Stripe, &id.as_str().into())
                .await
                .expect("read")
                .map(|e| e.status),
            Some(EventStatus::Processed)
        );
    }

    pub async fn failures_are_recorded_until_processed_and_missing_events_are_not_found(
        s: Arc<impl Stores>,
    ) {
        let id = unique("evt");
        s.record_event(&webhook_event(&id)).await.expect("record");
        let mark = failed(2, "provider unavailable", 5);
        s.mark_event(Provider::Stripe, &id.as_str().into(), &mark)
            .await
            .expect("mark");
        let event = stored_event(s.as_ref(), &id).await;
        assert_eq!(
            (event.status, event.attempts, event.last_error.as_deref()),
            (EventStatus::Failed, 2, Some("provider unavailable"))
        );
        let missing = unique("evt_missing");
        assert!(matches!(
            s.mark_event(Provider::Stripe, &missing.as_str().into(), &mark)
                .await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            s.apply_event(
                Provider::Stripe,
                &missing.as_str().into(),
                &EventEffects::default(),
                1
            )
            .await,
            Err(StoreError::NotFound)
        ));
    }
}

macro_rules! conformance {
    ($backend:ident, $make:expr, [$($case:ident),* $(,)?]) => {
        mod $backend {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(store) = $make else { return };
                    cases::$case(Arc::new(store)).await;
                }
            )*
        }
    };
}

macro_rules! all_cases {
    ($backend:ident, $make:expr) => {
        conformance!(
            $backend,
            $make,
            [
                created_user_reads_back_by_id_and_email,
                missing_items_read_as_none,
                email_is_unique_case_insensitively_and_the_first_user_is_kept,
                concurrent_signups_for_one_email_have_one_winner,
                user_update_requires_the_expected_version,
                session_round_trips_every_field,
                rotation_requires_the_current_hash,
                concurrent_rotations_of_one_token_have_one_winner,
                revoked_sessions_cannot_rotate,
                revoking_twice_keeps_the_first_time_and_reason,
                revoking_a_missing_session_is_not_found,
                sessions_are_listed_per_user_oldest_first,
                subscription_writes_require_the_expected_version,
                a_customer_is_claimed_once,
                a_duplicate_event_keeps_the_first_recording,
                apply_commits_the_subscription_the_payment_and_processed_together,
                a_processed_event_takes_effect_once,
                a_stale_subscription_version_fails_the_whole_apply,
                concurrent_applies_of_one_event_have_one_winner,
                failures_are_recorded_until_processed_and_missing_events_are_not_found,
            ]
        );
    };
}

all_cases!(
    embedded,
    Some(tollgate::store::embedded::EmbeddedStore::in_memory().expect("store"))
);
all_cases!(dynamodb, tollgate_tests::dynamo_store().await);
