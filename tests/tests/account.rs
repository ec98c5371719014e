//! The account lifecycle's rules, through the account service on the embedded store with a
//! manual clock, mail delivered by the real dispatcher into the dev server's outbox directory:
//! link and code lifetimes, one reset spending the other reset links, login waiting for a verified
//! email when required, sign-in codes for unknown emails (nothing sent unless passwordless
//! sign-up is on), the recent-login rule for deletion, the common-password refusal over HTTP.

use serde_json::Value;
use std::sync::Arc;
use tollgate::auth::{AuthError, Reauthentication, SignupOutcome};
use tollgate::domain::RequestOrigin;
use tollgate::mail::{Dispatcher, Templates};
use tollgate::state::Components;
use tollgate::{AppState, Config, Needs};
use tollgate_tests::{components_at, random_email, ManualClock, PASSWORD};

struct Rig {
    state: AppState,
    clock: Arc<ManualClock>,
    dispatcher: Dispatcher,
    mailer: Arc<dev_server::mail::DevMailer>,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rig_with(configure: impl FnOnce(&mut Config)) -> Rig {
    let (mut components, clock, _) = components_at(tollgate_tests::now());
    configure(&mut components.config);
    rig_from(components, clock)
}

fn rig_from(components: Components, clock: Arc<ManualClock>) -> Rig {
    let dir = std::env::temp_dir().join(format!(
        "tollgate-account-{}",
        uuid::Uuid::now_v7().simple()
    ));
    let mailer = Arc::new(
        dev_server::mail::DevMailer::new(dir.clone(), None, "Tollgate <no-reply@example.com>")
            .expect("outbox dir"),
    );
    let dispatcher = components.dispatcher(mailer.clone(), Arc::new(Templates::built_in()));
    Rig {
        state: AppState::assemble(&components, Needs::ALL),
        clock,
        dispatcher,
        mailer,
        _dir: TempDir(dir),
    }
}

impl Rig {
    fn auth(&self) -> &tollgate::auth::Auth {
        self.state.auth().expect("accounts")
    }

    /// Delivers every queued mail; returns the mails to `to`, newest first.
    async fn mail_to(&self, to: &str) -> Vec<dev_server::mail::StoredMail> {
        self.dispatcher.drain(1_000).await.expect("drain");
        self.mailer
            .list()
            .into_iter()
            .filter(|m| m.to == to)
            .collect()
    }

    async fn link_to(&self, to: &str, page: &str) -> String {
        let mails = self.mail_to(to).await;
        let link = mails
            .iter()
            .flat_map(|m| m.links.iter())
            .find(|l| l.contains(page))
            .unwrap_or_else(|| panic!("no {page} link to {to}"));
        link.split("token=").nth(1).expect("token").to_owned()
    }
}

fn origin() -> RequestOrigin {
    RequestOrigin {
        ip: Some("203.0.113.7".into()),
        user_agent: Some("tests".into()),
    }
}

#[tokio::test]
async fn one_reset_spends_the_other_reset_links_and_links_expire() {
    let rig = rig_with(|_| {});
    let email = random_email();
    tollgate_tests::sign_up_as(&rig.state, &email).await;
    rig.auth().forgot_password(&email).await.expect("forgot");
    let first = rig.link_to(&email, "/reset-password").await;
    rig.auth()
        .forgot_password(&email)
        .await
        .expect("forgot again");
    let mails = rig.mail_to(&email).await;
    let second = mails[0].links[0]
        .split("token=")
        .nth(1)
        .expect("token")
        .to_owned();
    assert_ne!(first, second);
    rig.auth()
        .reset_password(&second, "a brand new passphrase".into(), &origin())
        .await
        .expect("reset");
    let stale = rig
        .auth()
        .reset_password(&first, "another new passphrase".into(), &origin())
        .await;
    assert!(matches!(stale, Err(AuthError::InvalidLink)), "{stale:?}");

    // A reset link lives 30 minutes.
    rig.auth().forgot_password(&email).await.expect("forgot");
    let late = rig.mail_to(&email).await[0].links[0]
        .split("token=")
        .nth(1)
        .expect("token")
        .to_owned();
    rig.clock.advance(30 * 60);
    let expired = rig
        .auth()
        .reset_password(&late, "a third new passphrase".into(), &origin())
        .await;
    assert!(
        matches!(expired, Err(AuthError::InvalidLink)),
        "{expired:?}"
    );
}

#[tokio::test]
async fn a_verification_link_lives_a_day() {
    let rig = rig_with(|_| {});
    let email = random_email();
    tollgate_tests::sign_up_as(&rig.state, &email).await;
    let token = rig.link_to(&email, "/verify-email").await;
    rig.clock.advance(24 * 3600);
    let expired = rig.auth().verify_email(&token, &origin()).await;
    assert!(
        matches!(expired, Err(AuthError::InvalidLink)),
        "{expired:?}"
    );
}

#[tokio::test]
async fn login_waits_for_a_verified_email_when_required() {
    let rig = rig_with(|c| c.auth.require_verified_email = true);
    let email = random_email();
    let outcome = rig
        .auth()
        .signup(&email, PASSWORD.into(), &origin())
        .await
        .expect("signup");
    assert!(matches!(outcome, SignupOutcome::VerificationRequired(_)));
    let wrong = rig
        .auth()
        .login(&email, "not the password".into(), &origin())
        .await;
    assert!(matches!(wrong, Err(AuthError::InvalidCredentials)));
    let unverified = rig.auth().login(&email, PASSWORD.into(), &origin()).await;
    assert!(
        matches!(unverified, Err(AuthError::EmailNotVerified)),
        "{unverified:?}"
    );
    let token = rig.link_to(&email, "/verify-email").await;
    rig.auth()
        .verify_email(&token, &origin())
        .await
        .expect("verify");
    rig.auth()
        .login(&email, PASSWORD.into(), &origin())
        .await
        .expect("verified: login works");
}

#[tokio::test]
async fn codes_for_unknown_emails_send_nothing_unless_passwordless_signup_is_on() {
    let rig = rig_with(|_| {});
    let ghost = random_email();
    rig.auth().request_code(&ghost).await.expect("202");
    assert!(rig.mail_to(&ghost).await.is_empty(), "nothing sent");
    for code in ["000000", "123456", "999999"] {
        let r = rig.auth().verify_code(&ghost, code, &origin()).await;
        assert!(matches!(r, Err(AuthError::InvalidCode)), "{r:?}");
    }

    let rig = rig_with(|c| c.auth.passwordless_signup = true);
    let newcomer = random_email();
    rig.auth().request_code(&newcomer).await.expect("202");
    let mail = rig.mail_to(&newcomer).await;
    let code = mail[0].code.clone().expect("a code");
    let (user, tokens) = rig
        .auth()
        .verify_code(&newcomer, &code, &origin())
        .await
        .expect("passwordless sign-up");
    assert!(user.email_verified && user.password_hash.is_none());
    assert!(!tokens.access_token.is_empty());
    let password = rig
        .auth()
        .login(&newcomer, "any password at all".into(), &origin())
        .await;
    assert!(matches!(password, Err(AuthError::InvalidCredentials)));
}

#[tokio::test]
async fn a_code_lives_ten_minutes_and_a_new_request_replaces_it() {
    let rig = rig_with(|_| {});
    let email = random_email();
    tollgate_tests::sign_up_as(&rig.state, &email).await;
    rig.auth().request_code(&email).await.expect("202");
    let first = rig
        .mail_to(&email)
        .await
        .iter()
        .find_map(|m| m.code.clone())
        .expect("code");
    rig.auth().request_code(&email).await.expect("202");
    let second = rig.mail_to(&email).await[0].code.clone().expect("code");
    if first != second {
        let replaced = rig.auth().verify_code(&email, &first, &origin()).await;
        assert!(
            matches!(replaced, Err(AuthError::InvalidCode)),
            "one live code per email"
        );
    }
    rig.clock.advance(600);
    let expired = rig.auth().verify_code(&email, &second, &origin()).await;
    assert!(
        matches!(expired, Err(AuthError::InvalidCode)),
        "{expired:?}"
    );
}

#[tokio::test]
async fn deleting_an_account_needs_a_recent_login_or_proof() {
    let rig = rig_with(|_| {});
    let email = random_email();
    let (_, tokens) = tollgate_tests::sign_up_as(&rig.state, &email).await;
    let who = rig
        .state
        .verifier()
        .expect("keys")
        .verify(&tokens.access_token)
        .await
        .expect("token");
    let billing = rig.state.billing().expect("billing");
    rig.clock.advance(301);
    let stale = rig
        .auth()
        .delete_account(&who, Reauthentication::default(), billing, &origin())
        .await;
    assert!(
        matches!(stale, Err(AuthError::ReauthenticationRequired)),
        "{stale:?}"
    );
    let wrong = Reauthentication {
        password: Some("not the password".into()),
        code: None,
    };
    let wrong = rig
        .auth()
        .delete_account(&who, wrong, billing, &origin())
        .await;
    assert!(matches!(wrong, Err(AuthError::WrongPassword)), "{wrong:?}");
    let bad_code = Reauthentication {
        password: None,
        code: Some("000000".into()),
    };
    let bad_code = rig
        .auth()
        .delete_account(&who, bad_code, billing, &origin())
        .await;
    assert!(
        matches!(bad_code, Err(AuthError::InvalidCode)),
        "{bad_code:?}"
    );
    rig.auth().request_code(&email).await.expect("202");
    let code = rig.mail_to(&email).await[0].code.clone().expect("code");
    let proof = Reauthentication {
        password: None,
        code: Some(code),
    };
    rig.auth()
        .delete_account(&who, proof, billing, &origin())
        .await
        .expect("deleted with an email code");
    let gone = rig.auth().login(&email, PASSWORD.into(), &origin()).await;
    assert!(matches!(gone, Err(AuthError::InvalidCredentials)));
    let notice = rig.mail_to(&email).await;
    assert!(
        notice.iter().any(|m| m.subject.contains("deleted")),
        "a notice is mailed"
    );
}

#[tokio::test]
async fn a_common_password_is_refused_with_422_and_says_why() {
    use tower::ServiceExt as _;
    let rig = rig_with(|_| {});
    let app = tollgate::http_app(signup::routes(), rig.state.clone());
    let request = http::Request::post("/auth/signup")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(
            serde_json::json!({"email": random_email(), "password": "Password123"}).to_string(),
        ))
        .expect("request");
    let response = app.oneshot(request).await.expect("infallible");
    assert_eq!(response.status().as_u16(), 422);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("body")
        .to_bytes();
    let problem: Value = serde_json::from_slice(&body).expect("problem json");
    assert_eq!(problem["code"], "validation_failed");
    assert_eq!(problem["errors"][0]["field"], "password");
    let message = problem["errors"][0]["message"].as_str().expect("message");
    assert!(message.contains("most commonly used"), "{message}");
}

#[tokio::test]
async fn profile_names_are_set_and_removed_and_resend_knows_a_verified_email() {
    let rig = rig_with(|_| {});
    let email = random_email();
    let (_, tokens) = tollgate_tests::sign_up_as(&rig.state, &email).await;
    let who = rig
        .state
        .verifier()
        .expect("keys")
        .verify(&tokens.access_token)
        .await
        .expect("token");
    let named = rig
        .auth()
        .update_profile(&who, Some("  Ada Lovelace "), &origin())
        .await
        .expect("name");
    assert_eq!(named.name.as_deref(), Some("Ada Lovelace"));
    let empty = rig
        .auth()
        .update_profile(&who, Some("   "), &origin())
        .await;
    assert!(matches!(empty, Err(AuthError::Validation(_))));
    let cleared = rig
        .auth()
        .update_profile(&who, None, &origin())
        .await
        .expect("clear");
    assert_eq!(cleared.name, None);
    rig.auth()
        .resend_verification(&who, &origin())
        .await
        .expect("resend");
    let token = rig.link_to(&email, "/verify-email").await;
    rig.auth()
        .verify_email(&token, &origin())
        .await
        .expect("verify");
    let again = rig.auth().resend_verification(&who, &origin()).await;
    assert!(matches!(again, Err(AuthError::EmailAlreadyVerified)));
    let actions: Vec<&str> = rig
        .auth()
        .audit_log(&who, None, 50)
        .await
        .expect("audit")
        .iter()
        .map(|r| r.action.as_str())
        .collect();
    assert_eq!(
        actions,
        [
            "email_verified",
            "verification_requested",
            "profile_updated",
            "profile_updated",
            "signed_up"
        ],
        "newest first"
    );
}
