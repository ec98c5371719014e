//! One store conformance suite, run against the embedded store and DynamoDB (moto_server), over
//! every store trait: users, sessions, atomic account changes (one-time tokens, sign-in codes,
//! the audit log, linked identities, OAuth states, API keys, erasure), the mail outbox, billing
//! (subscriptions, customer claims, payments), the webhook event ledger, the rate counters and
//! the usage counters, credit balances and their ledger. Each case is a plain async function over the store traits; the macro
//! expands one `#[tokio::test]` per case and backend, so a failure names both. A store trait
//! added later adds its cases here.

use std::sync::Arc;
use tollgate::domain::{
    ApiKey, ApiKeyKind, AuditAction, AuditRecord, CreditEntry, CreditKind, EmailOtp, EventEffects,
    EventStatus, Identity, MailKind, MailStatus, Notices, OAuthMode, OAuthState, OneTimeToken,
    OutboundEvent, OutboundStatus, OutboundType, OutboxMail, Payment, PaymentStatus, Period,
    Provider, RateRule, RequestOrigin, RevokeReason, Session, SessionId, SessionOrigin,
    SessionPolicy, Subscription, SubscriptionStatus, SubscriptionWrite, TokenHash, TokenPurpose,
    User, UserId, UserStatus, WebhookEvent, EVENT_RETENTION_SECONDS, OTP_MAX_ATTEMPTS,
};
use tollgate::store::{
    Change, Conflict, CreditApplied, CreditWrite, EventLedger, EventMark, MailClaim, MailOutcome,
    OutboundClaim, OutboundOutcome, StoreError, TrackRequest, Tracked,
};
use tollgate_tests::{random_email, AllStores as Stores};

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
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned()),
        status: UserStatus::Active,
        email_verified: false,
        name: Some("Ada".into()),
        roles: vec!["member".into()],
        session_epoch: 3,
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
        SessionOrigin {
            user_agent: Some("test-agent".into()),
            ip: Some("203.0.113.9".into()),
            method: Some(tollgate::domain::SignInMethod::Password),
            epoch: 3,
        },
    )
}

fn one_time_token(purpose: TokenPurpose) -> OneTimeToken {
    OneTimeToken {
        hash: h(&unique("token")),
        purpose,
        user_id: Some(UserId::new()),
        email: random_email(),
        epoch: 3,
        note: Some("github".into()),
        created_at: 1_795_248_000,
        expires_at: 1_795_248_000 + purpose.lifetime(),
    }
}

fn identity(provider: &str, user_id: UserId) -> Identity {
    Identity {
        provider: provider.to_owned(),
        subject: unique("subject"),
        user_id,
        email: Some(random_email()),
        email_verified: true,
        created_at: 1_795_248_000,
    }
}

fn oauth_state(mode: OAuthMode) -> OAuthState {
    OAuthState {
        hash: h(&unique("state")),
        provider: "github".into(),
        pkce_verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into(),
        nonce: "n-0S6_WzA2Mj".into(),
        redirect_to: "https://app.example.com/auth/callback?x=1".into(),
        mode,
        created_at: 1_795_248_000,
        expires_at: 1_795_248_600,
    }
}

fn otp(email: &str) -> EmailOtp {
    EmailOtp {
        email: email.to_owned(),
        id: unique("otp"),
        code_hash: h("code-hash"),
        attempts: 0,
        user_id: None,
        created_at: 1_795_248_000,
        expires_at: 1_795_248_600,
    }
}

/// Commits `changes(i)` from 8 tasks at once; each must succeed or lose with `lost`. Returns how
/// many succeeded.
async fn concurrent_commits<S: Stores>(
    s: &Arc<S>,
    lost: Conflict,
    changes: impl Fn(usize) -> Vec<Change>,
) -> usize {
    let tries: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            let changes = changes(i);
            tokio::spawn(async move {
                match s.commit(&changes).await {
                    Ok(()) => true,
                    Err(StoreError::Conflict(c)) if c == lost => false,
                    Err(e) => panic!("unexpected {e:?}"),
                }
            })
        })
        .collect();
    let mut wins = 0;
    for t in tries {
        wins += usize::from(t.await.expect("join"));
    }
    wins
}

fn audit(user_id: UserId, action: AuditAction) -> AuditRecord {
    AuditRecord::new(
        user_id,
        action,
        &RequestOrigin {
            ip: Some("203.0.113.9".into()),
            user_agent: Some("test-agent".into()),
        },
        1_795_248_000,
        400 * 86_400,
    )
}

fn mail(kind: MailKind) -> OutboxMail {
    OutboxMail::new(kind, random_email(), Some(UserId::new()), 1_795_248_000).with("how", "change")
}

fn conflict_of<T: std::fmt::Debug>(r: Result<T, StoreError>) -> Conflict {
    match r {
        Err(StoreError::Conflict(c)) => c,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

/// Ten concurrent claims of outbound event `id` at `now`: the ones that won.
async fn futures_claims(s: &Arc<impl Stores>, id: &str, now: i64) -> Vec<OutboundEvent> {
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let s = s.clone();
        let id = id.to_owned();
        tasks.push(tokio::spawn(
            async move { s.claim_outbound(&id, now, 60).await },
        ));
    }
    let mut wins = Vec::new();
    for t in tasks {
        if let OutboundClaim::Claimed(e) = t.await.expect("task").expect("claim") {
            wins.push(e);
        }
    }
    wins
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
        u.password_hash = Some("new".into());
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
            Some(Some("new".into()))
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
            credits: None,
            notices: Default::default(),
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
            credits: None,
            notices: Default::default(),
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
            credits: None,
            notices: Default::default(),
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
                        credits: None,
                        notices: Default::default(),
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

    pub async fn an_account_change_commits_everything_or_nothing(s: Arc<impl Stores>) {
        let taken = user(&random_email());
        s.create_user(&taken).await.expect("create");
        let mut twin = user(&taken.email);
        twin.id = UserId::new();
        let queued = mail(MailKind::VerifyEmail);
        let record = audit(twin.id, AuditAction::SignedUp);
        let failed = s
            .commit(&[
                Change::QueueMail(queued.clone()),
                Change::Audit(record.clone()),
                Change::CreateUser(twin.clone()),
            ])
            .await;
        assert_eq!(conflict_of(failed), Conflict::EmailTaken);
        assert_eq!(s.get_mail(&queued.id).await.expect("read"), None);
        assert!(s
            .list_audit(&twin.id, None, 10)
            .await
            .expect("list")
            .is_empty());
        assert_eq!(s.get_user(&twin.id).await.expect("read"), None);

        let fresh = user(&random_email());
        let session = session(fresh.id);
        s.commit(&[
            Change::CreateUser(fresh.clone()),
            Change::CreateSession(session.clone()),
            Change::QueueMail(queued.clone()),
            Change::Audit(audit(fresh.id, AuditAction::SignedUp)),
        ])
        .await
        .expect("commit");
        assert_eq!(
            s.get_user(&fresh.id).await.expect("read"),
            Some(fresh.clone())
        );
        assert_eq!(
            s.get_session(&fresh.id, &session.id).await.expect("read"),
            Some(session)
        );
        assert_eq!(
            s.get_mail(&queued.id).await.expect("read"),
            Some(queued.clone())
        );
        assert_eq!(
            s.list_audit(&fresh.id, None, 10).await.expect("list").len(),
            1
        );
        // One cause, one mail.
        assert_eq!(
            conflict_of(s.commit(&[Change::QueueMail(queued)]).await),
            Conflict::ItemExists
        );
    }

    pub async fn a_token_is_spent_once_and_only_for_its_purpose(s: Arc<impl Stores>) {
        let token = one_time_token(TokenPurpose::ResetPassword);
        s.commit(&[Change::PutToken(token.clone())])
            .await
            .expect("put");
        assert_eq!(
            s.get_token(&token.hash).await.expect("read"),
            Some(token.clone())
        );
        assert_eq!(
            conflict_of(s.commit(&[Change::PutToken(token.clone())]).await),
            Conflict::ItemExists
        );
        let spend = |purpose| Change::SpendToken {
            hash: token.hash.clone(),
            purpose,
        };
        assert_eq!(
            conflict_of(s.commit(&[spend(TokenPurpose::MagicLink)]).await),
            Conflict::TokenSpent,
            "another purpose cannot spend it"
        );
        s.commit(&[spend(TokenPurpose::ResetPassword)])
            .await
            .expect("spend");
        assert_eq!(
            conflict_of(s.commit(&[spend(TokenPurpose::ResetPassword)]).await),
            Conflict::TokenSpent
        );
        assert_eq!(s.get_token(&token.hash).await.expect("read"), None);
    }

    pub async fn concurrent_spends_of_one_token_have_one_winner(s: Arc<impl Stores>) {
        let token = one_time_token(TokenPurpose::MagicLink);
        s.commit(&[Change::PutToken(token.clone())])
            .await
            .expect("put");
        let spend = |_| {
            vec![Change::SpendToken {
                hash: token.hash.clone(),
                purpose: TokenPurpose::MagicLink,
            }]
        };
        assert_eq!(concurrent_commits(&s, Conflict::TokenSpent, spend).await, 1);
    }

    pub async fn a_code_counts_every_try_and_dies_after_five(s: Arc<impl Stores>) {
        let email = random_email();
        let code = otp(&email);
        s.commit(&[Change::PutOtp(code.clone())])
            .await
            .expect("put");
        for seen in 0..OTP_MAX_ATTEMPTS {
            let count = Change::CountOtpFailure {
                email: email.clone(),
                id: code.id.clone(),
                attempts_seen: seen,
            };
            s.commit(std::slice::from_ref(&count)).await.expect("count");
            assert_eq!(
                conflict_of(s.commit(&[count]).await),
                Conflict::OtpChanged,
                "a try counted against a stale reading is refused"
            );
        }
        let stored = s.get_otp(&email).await.expect("read").expect("code");
        assert_eq!(stored.attempts, OTP_MAX_ATTEMPTS);
        let spend = Change::SpendOtp {
            email: email.clone(),
            id: code.id.clone(),
        };
        assert_eq!(
            conflict_of(s.commit(&[spend]).await),
            Conflict::OtpChanged,
            "no tries left: the code cannot be spent"
        );
        // A new request replaces the code: the old id is dead, the new one spends once.
        let replacement = otp(&email);
        s.commit(&[Change::PutOtp(replacement.clone())])
            .await
            .expect("replace");
        let old = Change::SpendOtp {
            email: email.clone(),
            id: code.id.clone(),
        };
        assert_eq!(conflict_of(s.commit(&[old]).await), Conflict::OtpChanged);
        let new = Change::SpendOtp {
            email: email.clone(),
            id: replacement.id.clone(),
        };
        s.commit(std::slice::from_ref(&new)).await.expect("spend");
        assert_eq!(s.get_otp(&email).await.expect("read"), None);
        assert_eq!(conflict_of(s.commit(&[new]).await), Conflict::OtpChanged);
    }

    pub async fn concurrent_wrong_tries_at_one_reading_count_once(s: Arc<impl Stores>) {
        let email = random_email();
        let code = otp(&email);
        s.commit(&[Change::PutOtp(code.clone())])
            .await
            .expect("put");
        let tries: Vec<_> = (0..8)
            .map(|_| {
                let s = s.clone();
                let count = Change::CountOtpFailure {
                    email: email.clone(),
                    id: code.id.clone(),
                    attempts_seen: 0,
                };
                tokio::spawn(async move { s.commit(&[count]).await.is_ok() })
            })
            .collect();
        let mut wins = 0;
        for t in tries {
            wins += usize::from(t.await.expect("join"));
        }
        assert_eq!(wins, 1);
        let stored = s.get_otp(&email).await.expect("read").expect("code");
        assert_eq!(stored.attempts, 1);
    }

    pub async fn deleting_a_user_frees_its_email_and_needs_the_version(s: Arc<impl Stores>) {
        let u = user(&random_email());
        s.create_user(&u).await.expect("create");
        let stale = Change::DeleteUser {
            user: u.clone(),
            expected_version: 9,
        };
        assert_eq!(
            conflict_of(s.commit(&[stale]).await),
            Conflict::StaleVersion
        );
        s.commit(&[Change::DeleteUser {
            user: u.clone(),
            expected_version: 1,
        }])
        .await
        .expect("delete");
        assert_eq!(s.get_user(&u.id).await.expect("read"), None);
        assert_eq!(
            s.find_user_id_by_email(&u.email.to_lowercase())
                .await
                .expect("find"),
            None
        );
        let again = user(&u.email);
        s.commit(&[Change::CreateUser(again.clone())])
            .await
            .expect("the email signs up again");
        assert_eq!(
            s.find_user_id_by_email(&u.email.to_lowercase())
                .await
                .expect("find"),
            Some(again.id)
        );
    }

    pub async fn keeping_and_revoking_sessions_in_a_change(s: Arc<impl Stores>) {
        let u = user(&random_email());
        let live = session(u.id);
        s.create_session(&live).await.expect("create");
        s.commit(&[Change::KeepSession {
            user_id: u.id,
            session_id: live.id,
            epoch: 4,
            authenticated_at: Some(1_795_249_000),
        }])
        .await
        .expect("keep");
        let kept = s
            .get_session(&u.id, &live.id)
            .await
            .expect("read")
            .expect("session");
        assert_eq!(
            (kept.epoch, kept.authenticated_at),
            (4, Some(1_795_249_000))
        );
        let revoke = |at| Change::RevokeSession {
            user_id: u.id,
            session_id: live.id,
            at,
            reason: RevokeReason::Revoked,
        };
        s.commit(&[revoke(10)]).await.expect("revoke");
        s.commit(&[revoke(20)]).await.expect("revoke again");
        let revoked = s
            .get_session(&u.id, &live.id)
            .await
            .expect("read")
            .expect("session");
        assert_eq!(
            (revoked.revoked_at, revoked.revoked_reason),
            (Some(10), Some(RevokeReason::Revoked))
        );
        let keep_revoked = Change::KeepSession {
            user_id: u.id,
            session_id: live.id,
            epoch: 5,
            authenticated_at: None,
        };
        assert_eq!(
            conflict_of(s.commit(&[keep_revoked]).await),
            Conflict::SessionChanged
        );
        let missing = Change::RevokeSession {
            user_id: u.id,
            session_id: SessionId::new(),
            at: 1,
            reason: RevokeReason::Revoked,
        };
        assert_eq!(
            conflict_of(s.commit(&[missing]).await),
            Conflict::SessionChanged
        );
    }

    pub async fn audit_pages_run_newest_first_per_user(s: Arc<impl Stores>) {
        let who = UserId::new();
        let mut records = Vec::new();
        for _ in 0..5 {
            let r = audit(who, AuditAction::LoginSucceeded);
            s.commit(&[Change::Audit(r.clone())]).await.expect("append");
            records.push(r);
        }
        s.commit(&[Change::Audit(audit(UserId::new(), AuditAction::SignedUp))])
            .await
            .expect("another user's");
        let ids = |page: Vec<AuditRecord>| page.into_iter().map(|r| r.id).collect::<Vec<_>>();
        let first = s.list_audit(&who, None, 2).await.expect("page 1");
        assert_eq!(first[0], records[4], "every field round-trips");
        assert_eq!(ids(first), [records[4].id.clone(), records[3].id.clone()]);
        let second = s
            .list_audit(&who, Some(&records[3].id), 2)
            .await
            .expect("page 2");
        assert_eq!(ids(second), [records[2].id.clone(), records[1].id.clone()]);
        let last = s
            .list_audit(&who, Some(&records[1].id), 5)
            .await
            .expect("page 3");
        assert_eq!(ids(last), [records[0].id.clone()]);
    }

    pub async fn erasing_keeps_payments_audit_records_and_a_live_profile(s: Arc<impl Stores>) {
        let u = user(&random_email());
        s.create_user(&u).await.expect("create");
        let sess = session(u.id);
        s.create_session(&sess).await.expect("session");
        s.put_subscription(&SubscriptionWrite {
            subscription: subscription(u.id, 1, SubscriptionStatus::Active),
            expected_version: None,
        })
        .await
        .expect("subscription");
        s.claim_customer(Provider::Stripe, &unique("cus").as_str().into(), &u.id)
            .await
            .expect("claim");
        let id = unique("evt");
        s.record_event(&webhook_event(&id)).await.expect("record");
        s.apply_event(
            Provider::Stripe,
            &id.as_str().into(),
            &EventEffects {
                subscription: None,
                payment: Some(payment(u.id, &unique("in"))),
                credits: None,
                notices: Default::default(),
            },
            5,
        )
        .await
        .expect("payment");
        s.commit(&[Change::Audit(audit(u.id, AuditAction::SignedUp))])
            .await
            .expect("audit");
        let mut link = one_time_token(TokenPurpose::VerifyEmail);
        link.user_id = Some(u.id);
        s.commit(&[Change::PutToken(link.clone())])
            .await
            .expect("token");
        let github = identity("github", u.id);
        s.commit(&[Change::LinkIdentity(github.clone())])
            .await
            .expect("identity");

        // A live profile is never erased from under its account.
        s.erase_user_items(&u.id).await.expect("erase");
        assert!(s.get_user(&u.id).await.expect("read").is_some());
        s.commit(&[Change::DeleteUser {
            user: u.clone(),
            expected_version: 1,
        }])
        .await
        .expect("delete");
        assert_eq!(
            s.erase_user_items(&u.id).await.expect("erase"),
            0,
            "already erased"
        );
        assert!(s.list_sessions(&u.id).await.expect("list").is_empty());
        assert_eq!(
            s.get_token(&link.hash).await.expect("read"),
            None,
            "its links are gone"
        );
        assert_eq!(
            s.get_identity("github", &github.subject)
                .await
                .expect("read"),
            None,
            "its identities are gone: the GitHub account may sign up afresh"
        );
        assert!(s.list_identities(&u.id).await.expect("list").is_empty());
        assert_eq!(s.get_subscription(&u.id).await.expect("read"), None);
        assert_eq!(
            s.customer_of(Provider::Stripe, &u.id).await.expect("read"),
            None
        );
        assert_eq!(s.list_payments(&u.id).await.expect("payments").len(), 1);
        assert_eq!(s.list_audit(&u.id, None, 10).await.expect("audit").len(), 1);
    }

    pub async fn an_identity_is_linked_to_one_user_and_a_user_has_one_per_provider(
        s: Arc<impl Stores>,
    ) {
        let (ada, bob) = (UserId::new(), UserId::new());
        let github = identity("github", ada);
        // All or nothing: a link in a change that fails is not stored.
        let missing = Change::SpendToken {
            hash: h(&unique("missing")),
            purpose: TokenPurpose::MagicLink,
        };
        assert_eq!(
            conflict_of(
                s.commit(&[Change::LinkIdentity(github.clone()), missing])
                    .await
            ),
            Conflict::TokenSpent
        );
        assert_eq!(
            s.get_identity("github", &github.subject)
                .await
                .expect("read"),
            None
        );
        assert!(s.list_identities(&ada).await.expect("list").is_empty());

        s.commit(&[Change::LinkIdentity(github.clone())])
            .await
            .expect("link");
        assert_eq!(
            s.get_identity("github", &github.subject)
                .await
                .expect("read"),
            Some(github.clone())
        );
        assert_eq!(
            s.get_identity("google", &github.subject)
                .await
                .expect("read"),
            None,
            "subjects are per provider"
        );
        let taken = Identity {
            user_id: bob,
            ..github.clone()
        };
        assert_eq!(
            conflict_of(s.commit(&[Change::LinkIdentity(taken)]).await),
            Conflict::IdentityTaken
        );
        assert_eq!(
            conflict_of(
                s.commit(&[Change::LinkIdentity(identity("github", ada))])
                    .await
            ),
            Conflict::ProviderLinked,
            "a second GitHub account for the same user"
        );
        let google = identity("google", ada);
        s.commit(&[Change::LinkIdentity(google.clone())])
            .await
            .expect("link google");
        assert_eq!(
            s.list_identities(&ada).await.expect("list"),
            vec![github.clone(), google.clone()],
            "by provider name"
        );
        assert!(s.list_identities(&bob).await.expect("list").is_empty());

        let unlink = Change::UnlinkIdentity {
            user_id: ada,
            provider: "github".into(),
            subject: github.subject.clone(),
        };
        s.commit(std::slice::from_ref(&unlink))
            .await
            .expect("unlink");
        assert_eq!(
            conflict_of(s.commit(&[unlink]).await),
            Conflict::IdentityNotLinked
        );
        assert_eq!(
            s.get_identity("github", &github.subject)
                .await
                .expect("read"),
            None
        );
        assert_eq!(s.list_identities(&ada).await.expect("list"), vec![google]);
        // Unlinked, the identity is free for another user.
        let moved = Identity {
            user_id: bob,
            ..github.clone()
        };
        s.commit(&[Change::LinkIdentity(moved.clone())])
            .await
            .expect("relink");
        assert_eq!(s.list_identities(&bob).await.expect("list"), vec![moved]);
    }

    pub async fn concurrent_links_of_one_identity_have_one_winner(s: Arc<impl Stores>) {
        let subject = unique("subject");
        let link = |_| {
            vec![Change::LinkIdentity(Identity {
                subject: subject.clone(),
                ..identity("github", UserId::new())
            })]
        };
        assert_eq!(
            concurrent_commits(&s, Conflict::IdentityTaken, link).await,
            1
        );
        let linked = s
            .get_identity("github", &subject)
            .await
            .expect("read")
            .expect("linked");
        assert_eq!(
            s.list_identities(&linked.user_id)
                .await
                .expect("list")
                .len(),
            1,
            "the winner's user holds it"
        );
    }

    pub async fn an_oauth_state_round_trips_and_is_spent_once(s: Arc<impl Stores>) {
        for mode in [
            OAuthMode::Login,
            OAuthMode::Link {
                user_id: UserId::new(),
            },
        ] {
            let state = oauth_state(mode);
            s.commit(&[Change::PutOAuthState(state.clone())])
                .await
                .expect("put");
            assert_eq!(
                s.get_oauth_state(&state.hash).await.expect("read"),
                Some(state.clone())
            );
            let spend = Change::SpendOAuthState {
                hash: state.hash.clone(),
            };
            s.commit(std::slice::from_ref(&spend)).await.expect("spend");
            assert_eq!(s.get_oauth_state(&state.hash).await.expect("read"), None);
            assert_eq!(conflict_of(s.commit(&[spend]).await), Conflict::StateSpent);
        }
    }

    pub async fn concurrent_spends_of_one_oauth_state_have_one_winner(s: Arc<impl Stores>) {
        let state = oauth_state(OAuthMode::Login);
        s.commit(&[Change::PutOAuthState(state.clone())])
            .await
            .expect("put");
        let spend = |_| {
            vec![Change::SpendOAuthState {
                hash: state.hash.clone(),
            }]
        };
        assert_eq!(concurrent_commits(&s, Conflict::StateSpent, spend).await, 1);
    }

    pub async fn notices_are_written_once_per_cause_and_outbound_events_claimed_once(
        s: Arc<impl Stores>,
    ) {
        let user = UserId::new();
        let cause = unique("receipt:stripe:in");
        let event = |c: &str| {
            OutboundEvent::new(
                c,
                OutboundType::PaymentSucceeded,
                user,
                serde_json::json!({}),
                100,
            )
        };
        let first = Notices {
            mails: vec![OutboxMail::billing(
                MailKind::PaymentReceipt,
                cause.clone(),
                user,
                100,
            )],
            outbound: vec![event(&cause)],
        };
        s.put_subscription_with(
            &SubscriptionWrite {
                subscription: subscription(user, 1, SubscriptionStatus::Active),
                expected_version: None,
            },
            &first,
        )
        .await
        .expect("write");
        let id = first.outbound[0].id.clone();
        let OutboundClaim::Claimed(claimed) = s.claim_outbound(&id, 100, 60).await.expect("claim")
        else {
            panic!("a due event is claimable")
        };
        assert_eq!(
            (claimed.status, claimed.attempts),
            (OutboundStatus::Sending, 1)
        );
        // A second change owing the same causes and a new one: the stored ones stay as they are
        // (neither reset nor failing the write), the new one is written — through both paths.
        let cause_2 = unique("payment.failed:stripe:in");
        let second = Notices {
            mails: first.mails.clone(),
            outbound: vec![event(&cause), event(&cause_2)],
        };
        s.put_subscription_with(
            &SubscriptionWrite {
                subscription: subscription(user, 2, SubscriptionStatus::Active),
                expected_version: Some(1),
            },
            &second,
        )
        .await
        .expect("write");
        let ev = unique("evt");
        s.record_event(&webhook_event(&ev)).await.expect("record");
        let effects = EventEffects {
            notices: second.clone(),
            ..EventEffects::default()
        };
        s.apply_event(Provider::Stripe, &ev.as_str().into(), &effects, 101)
            .await
            .expect("apply with notices already stored");
        assert_eq!(
            stored_event(s.as_ref(), &ev).await.status,
            EventStatus::Processed
        );
        let stored = s.get_outbound(&id).await.expect("read").expect("stored");
        assert_eq!(
            (stored.status, stored.attempts),
            (OutboundStatus::Sending, 1)
        );
        assert!(s
            .get_outbound(&second.outbound[1].id)
            .await
            .expect("read")
            .is_some());
        assert_eq!(
            s.get_mail(&cause).await.expect("read").map(|m| m.status),
            Some(MailStatus::Pending)
        );
        // Held until the lease ends; finishing needs the claim's attempt.
        assert_eq!(
            s.claim_outbound(&id, 120, 60).await.expect("claim"),
            OutboundClaim::Wait { until: 160 }
        );
        let due = |now: i64| {
            let s = s.clone();
            let id = id.clone();
            async move {
                s.due_outbound(now, 1_000_000)
                    .await
                    .expect("due")
                    .contains(&id)
            }
        };
        assert!(due(100).await, "a claimed event stays in the due index");
        assert!(!due(99).await);
        let retry = OutboundOutcome {
            status: OutboundStatus::Pending,
            delivered_to: vec!["app".into()],
            next_attempt_at: 200,
            claimed_due: 100,
            error: Some("other: HTTP 500".into()),
            at: 121,
        };
        assert_eq!(
            conflict_of(s.finish_outbound(&id, 7, &retry).await),
            Conflict::MailChanged
        );
        s.finish_outbound(&id, 1, &retry).await.expect("finish");
        assert!(!due(199).await, "moved to its next attempt");
        assert!(due(200).await);
        assert_eq!(
            s.claim_outbound(&id, 150, 60).await.expect("claim"),
            OutboundClaim::Wait { until: 200 }
        );
        // Of concurrent claimers exactly one wins.
        let wins = futures_claims(&s, &id, 200).await;
        assert_eq!(wins.len(), 1);
        assert_eq!(wins[0].attempts, 2);
        assert_eq!(wins[0].delivered_to, vec!["app".to_owned()]);
        let dead = OutboundOutcome {
            status: OutboundStatus::Dead,
            delivered_to: vec!["app".into()],
            next_attempt_at: 200,
            claimed_due: 200,
            error: Some("other: HTTP 500".into()),
            at: 201,
        };
        s.finish_outbound(&id, 2, &dead).await.expect("finish");
        assert!(
            !due(i64::from(u32::MAX)).await,
            "a dead event leaves the due index"
        );
        assert_eq!(
            s.claim_outbound(&id, 10_000, 60).await.expect("claim"),
            OutboundClaim::Done
        );
        let listed = s
            .list_outbound(OutboundStatus::Dead, 100_000)
            .await
            .expect("list");
        let mine = listed.iter().find(|e| e.id == id).expect("listed as dead");
        assert_eq!(mine.finished_at, Some(201));
        assert!(s.replay_outbound(&id, 300).await.expect("replay"));
        assert!(due(300).await, "a replayed event is due again");
        assert!(
            !s.replay_outbound(&id, 300).await.expect("replay"),
            "only a dead one"
        );
        let OutboundClaim::Claimed(again) = s.claim_outbound(&id, 300, 60).await.expect("claim")
        else {
            panic!("a replayed event is due at once")
        };
        assert_eq!((again.attempts, again.delivered_to.len()), (1, 1));
        assert_eq!(
            s.claim_outbound("msg_none", 300, 60).await.expect("claim"),
            OutboundClaim::Done
        );
    }

    pub async fn a_mail_is_claimed_by_one_sender_until_its_lease_lapses(s: Arc<impl Stores>) {
        let m = mail(MailKind::PasswordChanged);
        s.commit(&[Change::QueueMail(m.clone())])
            .await
            .expect("queue");
        let MailClaim::Claimed(first) = s.claim_mail(&m.id, 100, 30).await.expect("claim") else {
            panic!("a pending mail is claimable")
        };
        assert_eq!(
            (first.status, first.attempts, first.lease_until),
            (MailStatus::Sending, 1, Some(130))
        );
        assert_eq!(
            s.claim_mail(&m.id, 110, 30).await.expect("claim"),
            MailClaim::Busy { until: 130 }
        );
        let MailClaim::Claimed(second) = s.claim_mail(&m.id, 130, 30).await.expect("claim") else {
            panic!("a lapsed claim is taken over")
        };
        assert_eq!(second.attempts, 2);
        let sent = MailOutcome {
            status: MailStatus::Sent,
            message_id: Some("msg-1".into()),
            note: None,
            at: 131,
        };
        assert_eq!(
            conflict_of(s.finish_mail(&m.id, 1, &sent).await),
            Conflict::MailChanged,
            "the replaced sender cannot finish it"
        );
        s.finish_mail(&m.id, 2, &sent).await.expect("finish");
        assert_eq!(
            s.claim_mail(&m.id, 500, 30).await.expect("claim"),
            MailClaim::Done
        );
        let done = s.get_mail(&m.id).await.expect("read").expect("mail");
        assert_eq!(
            (
                done.status,
                done.message_id.as_deref(),
                done.finished_at,
                done.lease_until
            ),
            (MailStatus::Sent, Some("msg-1"), Some(131), None)
        );
        assert_eq!(
            s.claim_mail(&unique("missing"), 1, 30)
                .await
                .expect("claim"),
            MailClaim::Done
        );
    }

    pub async fn concurrent_claims_of_one_mail_have_one_winner(s: Arc<impl Stores>) {
        let m = mail(MailKind::VerifyEmail);
        s.commit(&[Change::QueueMail(m.clone())])
            .await
            .expect("queue");
        let claims: Vec<_> = (0..8)
            .map(|_| {
                let s = s.clone();
                let id = m.id.clone();
                tokio::spawn(async move {
                    matches!(
                        s.claim_mail(&id, 100, 30).await.expect("claim"),
                        MailClaim::Claimed(_)
                    )
                })
            })
            .collect();
        let mut wins = 0;
        for c in claims {
            wins += usize::from(c.await.expect("join"));
        }
        assert_eq!(wins, 1);
    }

    pub async fn a_released_mail_is_pending_again_until_finished(s: Arc<impl Stores>) {
        let m = mail(MailKind::SignInCode);
        s.commit(&[Change::QueueMail(m.clone())])
            .await
            .expect("queue");
        assert!(s
            .pending_mail(10_000)
            .await
            .expect("pending")
            .contains(&m.id));
        let MailClaim::Claimed(claimed) = s.claim_mail(&m.id, 100, 30).await.expect("claim") else {
            panic!("claimable")
        };
        s.release_mail(&m.id, claimed.attempts, "SES throttled")
            .await
            .expect("release");
        let released = s.get_mail(&m.id).await.expect("read").expect("mail");
        assert_eq!(
            (
                released.status,
                released.last_error.as_deref(),
                released.lease_until
            ),
            (MailStatus::Pending, Some("SES throttled"), None)
        );
        assert!(
            s.pending_mail(10_000)
                .await
                .expect("pending")
                .contains(&m.id),
            "released mail is still to send"
        );
        assert_eq!(
            conflict_of(s.release_mail(&m.id, claimed.attempts, "again").await),
            Conflict::MailChanged,
            "only a claimed mail is released"
        );
        let MailClaim::Claimed(again) = s.claim_mail(&m.id, 101, 30).await.expect("claim") else {
            panic!("claimable at once after a release")
        };
        let skipped = MailOutcome {
            status: MailStatus::Skipped,
            message_id: None,
            note: Some("no account has this email".into()),
            at: 102,
        };
        s.finish_mail(&m.id, again.attempts, &skipped)
            .await
            .expect("finish");
        assert!(!s
            .pending_mail(10_000)
            .await
            .expect("pending")
            .contains(&m.id));
    }

    /// A fixed window counts every instance's requests together and never lets more than the
    /// limit through, however many arrive at once; a refused request is not counted; the next
    /// window starts from zero; rules and keys count apart.
    pub async fn a_rate_window_never_passes_its_limit_under_concurrency<S: Stores>(s: Arc<S>) {
        let rule = RateRule {
            limit: 7,
            window: 60,
        };
        let key = unique("ip");
        let now = 1_795_248_030;
        let tries: Vec<_> = (0..20)
            .map(|_| {
                let (s, key) = (s.clone(), key.clone());
                tokio::spawn(async move { s.hit("test.rule", &rule, &key, now).await })
            })
            .collect();
        let mut allowed = Vec::new();
        for t in tries {
            let d = t.await.expect("join").expect("hit");
            assert_eq!(d.limit, 7);
            assert_eq!(d.reset_at, 1_795_248_060, "the window's end");
            if d.allowed {
                allowed.push(d.remaining);
            } else {
                assert_eq!(d.remaining, 0);
            }
        }
        allowed.sort_unstable();
        assert_eq!(
            allowed,
            (0..7).collect::<Vec<u32>>(),
            "exactly the limit, each count once"
        );
        let refused = s
            .hit("test.rule", &rule, &key, now + 29)
            .await
            .expect("hit");
        assert!(!refused.allowed, "still the same window");
        let next = s
            .hit("test.rule", &rule, &key, now + 30)
            .await
            .expect("hit");
        assert!(
            next.allowed && next.remaining == 6,
            "a new window: {next:?}"
        );
        let other_rule = s.hit("test.other", &rule, &key, now).await.expect("hit");
        let other_key = s
            .hit("test.rule", &rule, &unique("ip"), now)
            .await
            .expect("hit");
        assert!(other_rule.allowed && other_key.allowed);
    }

    /// Failed logins count up atomically, are read back, restart from one past their TTL, and
    /// are cleared by a success.
    pub async fn failed_logins_count_up_and_clear<S: Stores>(s: Arc<S>) {
        let key = unique("account");
        assert_eq!(s.login_failures(&key).await.expect("read"), None);
        let now = 1_795_248_000;
        let tries: Vec<_> = (0..6)
            .map(|i| {
                let (s, key) = (s.clone(), key.clone());
                tokio::spawn(async move { s.record_login_failure(&key, now + i).await })
            })
            .collect();
        let mut counts = Vec::new();
        for t in tries {
            counts.push(t.await.expect("join").expect("record").count);
        }
        counts.sort_unstable();
        assert_eq!(counts, [1, 2, 3, 4, 5, 6], "each failure counted once");
        let read = s
            .login_failures(&key)
            .await
            .expect("read")
            .expect("recorded");
        assert_eq!(read.count, 6);
        let later = now + tollgate::domain::limits::LOGIN_FAILURES_TTL_SECONDS + 10;
        let fresh = s.record_login_failure(&key, later).await.expect("record");
        assert_eq!(
            (fresh.count, fresh.last_failed_at),
            (1, later),
            "a record past its TTL starts again"
        );
        s.clear_login_failures(&key).await.expect("clear");
        assert_eq!(s.login_failures(&key).await.expect("read"), None);
        s.clear_login_failures(&key)
            .await
            .expect("clearing twice is fine");
    }

    fn api_key(owner: UserId) -> ApiKey {
        let id = format!("{:016x}", rand_u64());
        ApiKey {
            key_id: id,
            user_id: owner,
            kind: ApiKeyKind::User,
            name: "ci".into(),
            hash: TokenHash(unique("hash")),
            created_at: 1_795_248_000,
            last_used_at: None,
            expires_at: None,
            revoked_at: None,
        }
    }

    fn rand_u64() -> u64 {
        let id = uuid::Uuid::now_v7();
        let b = id.as_bytes();
        u64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]])
    }

    /// An API key is stored with its owner lookup (a key id is taken once), found by key id,
    /// listed under its owner, touched, revoked once, and erased with its owner.
    pub async fn an_api_key_is_found_by_id_listed_touched_revoked_once_and_erased<S: Stores>(
        s: Arc<S>,
    ) {
        let owner = UserId::new();
        let key = api_key(owner);
        s.commit(&[Change::CreateApiKey(key.clone())])
            .await
            .expect("create");
        let again = api_key(UserId::new());
        let taken = ApiKey {
            key_id: key.key_id.clone(),
            ..again
        };
        assert_eq!(
            conflict_of(s.commit(&[Change::CreateApiKey(taken)]).await),
            Conflict::ItemExists
        );
        assert_eq!(
            s.get_api_key(&key.key_id).await.expect("get"),
            Some(key.clone())
        );
        assert_eq!(s.get_api_key("0000000000000000").await.expect("get"), None);
        let second = api_key(owner);
        s.commit(&[Change::CreateApiKey(second.clone())])
            .await
            .expect("create");
        let mut listed: Vec<String> = s
            .list_api_keys(&owner)
            .await
            .expect("list")
            .into_iter()
            .map(|k| k.key_id)
            .collect();
        listed.sort();
        let mut expected = vec![key.key_id.clone(), second.key_id.clone()];
        expected.sort();
        assert_eq!(listed, expected);
        s.touch_api_key(&owner, &key.key_id, 1_795_248_100)
            .await
            .expect("touch");
        s.touch_api_key(&owner, "ffffffffffffffff", 1_795_248_100)
            .await
            .expect("touching a missing key is not an error");
        let touched = s.get_api_key(&key.key_id).await.expect("get").expect("key");
        assert_eq!(touched.last_used_at, Some(1_795_248_100));
        let revoke = || Change::RevokeApiKey {
            user_id: owner,
            key_id: key.key_id.clone(),
            at: 1_795_248_200,
        };
        s.commit(&[revoke()]).await.expect("revoke");
        assert_eq!(
            conflict_of(s.commit(&[revoke()]).await),
            Conflict::ApiKeyGone,
            "revoked once"
        );
        let revoked = s.get_api_key(&key.key_id).await.expect("get").expect("key");
        assert_eq!(revoked.revoked_at, Some(1_795_248_200));
        assert_eq!(
            revoked.expires_at,
            Some(1_795_248_200 + tollgate::store::REVOKED_API_KEY_RETENTION_SECONDS),
            "the table forgets it later"
        );
        assert_eq!(
            conflict_of(
                s.commit(&[Change::RevokeApiKey {
                    user_id: UserId::new(),
                    key_id: second.key_id.clone(),
                    at: 1_795_248_200,
                }])
                .await
            ),
            Conflict::ApiKeyGone,
            "only the owner's key"
        );
        s.erase_user_items(&owner).await.expect("erase");
        assert_eq!(s.get_api_key(&second.key_id).await.expect("get"), None);
        assert!(s.list_api_keys(&owner).await.expect("list").is_empty());
    }

    fn track<'a>(
        user: UserId,
        key: &'a str,
        quantity: u64,
        ceiling: Option<u64>,
        start: i64,
    ) -> TrackRequest<'a> {
        TrackRequest {
            user_id: user,
            feature: "exports",
            period: Period {
                start,
                end: start + 30 * 86_400,
            },
            quantity,
            ceiling,
            idempotency_key: key,
            spend: None,
            now: start + 10,
        }
    }

    /// Paging through users reaches every user exactly once, pages hold at most `limit`, and a
    /// cursor no page made is refused.
    pub async fn users_page_through_every_user_once<S: Stores>(s: Arc<S>) {
        let mut created = Vec::new();
        for _ in 0..3 {
            let u = user(&random_email());
            s.create_user(&u).await.expect("create");
            created.push(u.id);
        }
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let (page, next) = s.list_users(cursor.as_deref(), 2).await.expect("page");
            assert!(page.len() <= 2);
            seen.extend(page.iter().map(|u| u.id));
            match next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), seen.len(), "a user listed twice");
        assert!(
            created.iter().all(|c| seen.contains(c)),
            "every user listed"
        );
        assert_eq!(
            conflict_of(s.list_users(Some("not-a-cursor"), 2).await),
            Conflict::BadCursor
        );
    }

    fn credit(user: UserId, cause: &str, kind: CreditKind, amount: i64, at: i64) -> CreditWrite {
        let entry = CreditEntry::new(user, cause.to_owned(), kind, amount, at);
        CreditWrite {
            audit: tollgate::usage::credits::audit_of(&entry, 86_400),
            notices: Notices {
                mails: Vec::new(),
                outbound: vec![tollgate::billing::notices::credits_changed(&entry, at)],
            },
            entry,
            require_funds: kind == CreditKind::Spend,
        }
    }

    /// Whether the `credits.changed` event of `cause` is stored.
    async fn credit_noticed<S: Stores>(s: &S, cause: &str) -> bool {
        let id = tollgate::domain::outbound_id(&format!("credits.changed:{cause}"));
        s.get_outbound(&id).await.expect("read").is_some()
    }

    /// A cause takes effect once; a spend the balance does not cover changes nothing; a refund
    /// may go below zero; the ledger pages newest first; each change is audited.
    pub async fn credits_apply_once_per_cause_and_page_newest_first<S: Stores>(s: Arc<S>) {
        let user = UserId::new();
        let grant = unique("purchase:stripe:pi");
        let t = 1_795_248_000;
        let g = credit(user, &grant, CreditKind::Purchase, 100, t);
        assert_eq!(
            s.apply_credits(&g).await.expect("grant"),
            CreditApplied::Applied { balance: 100 }
        );
        assert_eq!(
            s.apply_credits(&credit(user, &grant, CreditKind::Purchase, 100, t + 1))
                .await
                .expect("again"),
            CreditApplied::Duplicate { balance: 100 },
            "a cause takes effect once"
        );
        assert!(
            credit_noticed(s.as_ref(), &grant).await,
            "its notice is written with it"
        );
        let overspend = unique("spend");
        assert_eq!(
            s.apply_credits(&credit(user, &overspend, CreditKind::Spend, -101, t + 2))
                .await
                .expect("overspend"),
            CreditApplied::Insufficient { balance: 100 }
        );
        assert!(
            !credit_noticed(s.as_ref(), &overspend).await,
            "a refused change writes no notice"
        );
        assert_eq!(
            s.apply_credits(&credit(
                user,
                &unique("spend"),
                CreditKind::Spend,
                -30,
                t + 3
            ))
            .await
            .expect("spend"),
            CreditApplied::Applied { balance: 70 }
        );
        let refund = unique("refund:stripe:pi");
        assert_eq!(
            s.apply_credits(&credit(user, &refund, CreditKind::Refund, -100, t + 4))
                .await
                .expect("refund"),
            CreditApplied::Applied { balance: -30 },
            "a refund takes back credits already spent"
        );
        assert_eq!(s.credit_balance(&user).await.expect("balance"), -30);
        assert_eq!(s.credit_balance(&UserId::new()).await.expect("none"), 0);
        assert_eq!(
            s.credit_cause(&grant).await.expect("cause"),
            Some(g.entry.clone())
        );
        assert_eq!(s.credit_cause("purchase:none").await.expect("cause"), None);
        let (first, next) = s.credit_history(&user, None, 2).await.expect("page 1");
        assert_eq!(
            first.iter().map(|e| e.at).collect::<Vec<_>>(),
            vec![t + 4, t + 3],
            "newest first"
        );
        let next = next.expect("a second page");
        let (second, last) = s
            .credit_history(&user, Some(&next), 2)
            .await
            .expect("page 2");
        assert_eq!(second, vec![g.entry.clone()]);
        assert_eq!(last, None);
        let audit = s.list_audit(&user, None, 10).await.expect("audit");
        let actions: Vec<AuditAction> = audit.iter().map(|a| a.action).collect();
        assert_eq!(
            actions
                .iter()
                .filter(|a| **a == AuditAction::CreditsGranted)
                .count(),
            1
        );
        assert!(actions.contains(&AuditAction::CreditsSpent));
        assert!(actions.contains(&AuditAction::CreditsRefunded));
        assert_eq!(audit.len(), 3, "one record per change that took effect");
    }

    /// 50 concurrent tracks spending 1 credit each against a balance of 20: exactly 20 count
    /// and spend, the balance ends at 0 and never below, and a refused track counts nothing.
    pub async fn concurrent_spends_never_take_the_balance_below_zero<S: Stores>(s: Arc<S>) {
        let user = UserId::new();
        let start = 1_795_248_000;
        s.apply_credits(&credit(
            user,
            &unique("purchase:stripe:pi"),
            CreditKind::Purchase,
            20,
            start,
        ))
        .await
        .expect("grant");
        let tries: Vec<_> = (0..50)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    let key = format!("spend{i}");
                    let spend = credit(
                        user,
                        &format!("spend:{user}:{key}"),
                        CreditKind::Spend,
                        -1,
                        start + 10,
                    );
                    let request = TrackRequest {
                        spend: Some(&spend),
                        ..track(user, &key, 1, None, start)
                    };
                    s.track(&request).await
                })
            })
            .collect();
        let (mut counted, mut refused) = (0, 0);
        for t in tries {
            match t.await.expect("join").expect("track") {
                Tracked::Counted { .. } => counted += 1,
                Tracked::InsufficientCredits { balance, .. } => {
                    assert!(balance >= 0, "a refusal reads {balance}");
                    refused += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!((counted, refused), (20, 30));
        assert_eq!(s.credit_balance(&user).await.expect("balance"), 0);
        assert_eq!(s.used(&user, "exports", start).await.expect("used"), 20);
        let (entries, _) = s.credit_history(&user, None, 100).await.expect("history");
        assert_eq!(
            entries
                .iter()
                .filter(|e| e.kind == CreditKind::Spend)
                .count(),
            20
        );
    }

    /// An event's credit change is applied with it once per cause (a second event of the same
    /// payment is processed without granting again); a subscription with a trial marks the user.
    pub async fn an_event_grants_credits_once_and_trials_are_remembered<S: Stores>(s: Arc<S>) {
        let user = UserId::new();
        let cause = unique("purchase:stripe:pi");
        let grant = credit(user, &cause, CreditKind::Purchase, 1000, 5);
        for _ in 0..2 {
            let id = unique("evt");
            s.record_event(&webhook_event(&id)).await.expect("record");
            let effects = EventEffects {
                subscription: None,
                payment: None,
                credits: Some((grant.entry.clone(), grant.audit.clone())),
                notices: Default::default(),
            };
            s.apply_event(Provider::Stripe, &id.as_str().into(), &effects, 6)
                .await
                .expect("apply");
            assert_eq!(
                stored_event(s.as_ref(), &id).await.status,
                EventStatus::Processed
            );
        }
        assert_eq!(s.credit_balance(&user).await.expect("balance"), 1000);
        assert!(!s.trial_used(&user).await.expect("no trial yet"));
        let mut trialing = subscription(user, 1, SubscriptionStatus::Trialing);
        trialing.trial_end = Some(1_796_000_000);
        s.put_subscription(&SubscriptionWrite {
            subscription: trialing,
            expected_version: None,
        })
        .await
        .expect("put");
        assert!(s.trial_used(&user).await.expect("trial"));
        let other = UserId::new();
        let id = unique("evt");
        s.record_event(&webhook_event(&id)).await.expect("record");
        let mut trialing = subscription(other, 1, SubscriptionStatus::Trialing);
        trialing.trial_end = Some(1_796_000_000);
        s.apply_event(
            Provider::Stripe,
            &id.as_str().into(),
            &EventEffects {
                subscription: Some(SubscriptionWrite {
                    subscription: trialing,
                    expected_version: None,
                }),
                payment: None,
                credits: None,
                notices: Default::default(),
            },
            7,
        )
        .await
        .expect("apply");
        assert!(s.trial_used(&other).await.expect("trial by webhook"));
    }

    /// 100 concurrent tracks of one unit against a ceiling of 50: exactly 50 count, the count is
    /// 50, never more.
    pub async fn a_usage_count_never_passes_its_ceiling_under_concurrency<S: Stores>(s: Arc<S>) {
        let user = UserId::new();
        let start = 1_795_248_000;
        let tries: Vec<_> = (0..100)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    let key = format!("k{i}");
                    s.track(&track(user, &key, 1, Some(50), start)).await
                })
            })
            .collect();
        let (mut counted, mut refused) = (Vec::new(), 0);
        for t in tries {
            match t.await.expect("join").expect("track") {
                Tracked::Counted { used } => counted.push(used),
                Tracked::LimitReached { used } => {
                    assert!(used <= 50, "a refusal reads {used}");
                    refused += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!((counted.len(), refused), (50, 50));
        assert!(counted.iter().all(|u| (1..=50).contains(u)), "{counted:?}");
        assert_eq!(s.used(&user, "exports", start).await.expect("used"), 50);
    }

    /// A retried key counts once and answers the count; a key reused for another quantity is a
    /// conflict; a refused track does not remember its key; periods and users count apart.
    pub async fn an_idempotency_key_counts_once_and_periods_count_apart<S: Stores>(s: Arc<S>) {
        let user = UserId::new();
        let start = 1_795_248_000;
        let first = s
            .track(&track(user, "a", 2, Some(3), start))
            .await
            .expect("track");
        assert_eq!(first, Tracked::Counted { used: 2 });
        let again = s
            .track(&track(user, "a", 2, Some(3), start))
            .await
            .expect("track");
        assert_eq!(again, Tracked::Replayed { used: 2 });
        assert_eq!(
            conflict_of(s.track(&track(user, "a", 1, Some(3), start)).await),
            Conflict::IdempotencyMismatch
        );
        let over = s
            .track(&track(user, "b", 2, Some(3), start))
            .await
            .expect("track");
        assert_eq!(over, Tracked::LimitReached { used: 2 });
        let raised = s
            .track(&track(user, "b", 2, Some(10), start))
            .await
            .expect("track");
        assert_eq!(
            raised,
            Tracked::Counted { used: 4 },
            "the refused key was not kept"
        );
        let unlimited = s
            .track(&track(user, "c", 100, None, start))
            .await
            .expect("track");
        assert_eq!(unlimited, Tracked::Counted { used: 104 });
        let next = start + 30 * 86_400;
        let fresh = s
            .track(&track(user, "d", 1, Some(3), next))
            .await
            .expect("track");
        assert_eq!(
            fresh,
            Tracked::Counted { used: 1 },
            "a new period counts from zero"
        );
        assert_eq!(s.used(&user, "exports", start).await.expect("used"), 104);
        assert_eq!(
            s.used(&UserId::new(), "exports", start)
                .await
                .expect("used"),
            0
        );
        let other = s
            .track(&track(UserId::new(), "a", 1, Some(3), start))
            .await
            .expect("track");
        assert_eq!(other, Tracked::Counted { used: 1 }, "keys are per user");
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
                notices_are_written_once_per_cause_and_outbound_events_claimed_once,
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
                an_account_change_commits_everything_or_nothing,
                a_token_is_spent_once_and_only_for_its_purpose,
                concurrent_spends_of_one_token_have_one_winner,
                a_code_counts_every_try_and_dies_after_five,
                concurrent_wrong_tries_at_one_reading_count_once,
                deleting_a_user_frees_its_email_and_needs_the_version,
                keeping_and_revoking_sessions_in_a_change,
                audit_pages_run_newest_first_per_user,
                erasing_keeps_payments_audit_records_and_a_live_profile,
                a_mail_is_claimed_by_one_sender_until_its_lease_lapses,
                concurrent_claims_of_one_mail_have_one_winner,
                a_released_mail_is_pending_again_until_finished,
                an_identity_is_linked_to_one_user_and_a_user_has_one_per_provider,
                concurrent_links_of_one_identity_have_one_winner,
                an_oauth_state_round_trips_and_is_spent_once,
                concurrent_spends_of_one_oauth_state_have_one_winner,
                a_rate_window_never_passes_its_limit_under_concurrency,
                failed_logins_count_up_and_clear,
                an_api_key_is_found_by_id_listed_touched_revoked_once_and_erased,
                a_usage_count_never_passes_its_ceiling_under_concurrency,
                an_idempotency_key_counts_once_and_periods_count_apart,
                credits_apply_once_per_cause_and_page_newest_first,
                concurrent_spends_never_take_the_balance_below_zero,
                an_event_grants_credits_once_and_trials_are_remembered,
                users_page_through_every_user_once,
            ]
        );
    };
}

all_cases!(
    embedded,
    Some(tollgate::store::embedded::EmbeddedStore::in_memory().expect("store"))
);
all_cases!(dynamodb, tollgate_tests::dynamo_store().await);
