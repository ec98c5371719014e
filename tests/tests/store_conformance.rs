//! One store conformance suite, run against the embedded store and DynamoDB (moto_server).
//! Each case is a plain async function over the store traits; the macro expands one
//! `#[tokio::test]` per case and backend, so a failure names both.

use std::sync::Arc;
use tollgate::domain::{
    RevokeReason, Session, SessionId, SessionPolicy, TokenHash, User, UserId, UserStatus,
};
use tollgate::store::{SessionStore, StoreError, UserStore};
use tollgate_tests::random_email;

trait Stores: UserStore + SessionStore + 'static {}
impl<T: UserStore + SessionStore + 'static> Stores for T {}

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
            ]
        );
    };
}

all_cases!(
    embedded,
    Some(tollgate::store::embedded::EmbeddedStore::in_memory().expect("store"))
);
all_cases!(dynamodb, tollgate_tests::dynamo_store().await);
