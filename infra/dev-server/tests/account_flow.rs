//! The account lifecycle against the real `dev-server` binary, its mail read from the outbox
//! (`GET /dev/mail?format=json`): verification, password reset and change, sign-in codes (the
//! 6th try refused even with the right code), magic links (once), sessions, log out everywhere,
//! account deletion (login refused, the email signs up again, the subscription cancelled at the
//! offline Stripe stand-in), and a mail owed by a committed change that survives the process being
//! killed before the send (sent exactly once after the restart).

mod common;

use base64::Engine as _;
use common::{free_port, kill, start, start_with};
use serde_json::{json, Value};
use std::time::Duration;

const PASSWORD: &str = "correct horse battery staple";

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    fn new(port: u16) -> Self {
        Self {
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        }
    }

    async fn send(&self, r: reqwest::RequestBuilder) -> (u16, Value) {
        let res = r.send().await.expect("request");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut r = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        self.send(r).await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.call("POST", path, token, Some(body)).await
    }

    async fn login(&self, email: &str, password: &str) -> (u16, Value) {
        self.post(
            "/auth/login",
            None,
            json!({"email": email, "password": password}),
        )
        .await
    }

    async fn refresh(&self, token: &str) -> u16 {
        self.post("/auth/refresh", None, json!({"refresh_token": token}))
            .await
            .0
    }

    async fn mail(&self) -> Vec<Value> {
        let (status, body) = self
            .send(self.http.get(format!("{}/dev/mail?format=json", self.base)))
            .await;
        assert_eq!(status, 200);
        body.as_array().cloned().unwrap_or_default()
    }

    /// Mail to `to` whose subject contains `subject`, newest first.
    async fn mails_to(&self, to: &str, subject: &str) -> Vec<Value> {
        self.mail()
            .await
            .into_iter()
            .filter(|m| {
                m["to"] == to && m["subject"].as_str().unwrap_or_default().contains(subject)
            })
            .collect()
    }

    /// Waits (the worker sends asynchronously) for `count` mails to `to` about `subject`; returns
    /// the newest.
    async fn wait_mail(&self, to: &str, subject: &str, count: usize) -> Value {
        for _ in 0..100 {
            let found = self.mails_to(to, subject).await;
            if found.len() >= count {
                assert_eq!(found.len(), count, "more mail than owed: {found:?}");
                return found[0].clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no mail {subject:?} #{count} to {to} within 5 s");
    }

    async fn signup(&self, email: &str) -> Value {
        let (status, body) = self
            .post(
                "/auth/signup",
                None,
                json!({"email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }
}

fn token_in(mail: &Value, page: &str) -> String {
    let link = mail["links"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find(|l| l.contains(page))
        .unwrap_or_else(|| panic!("no {page} link in {mail}"));
    link.split("token=").nth(1).expect("token").to_owned()
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("claims")
}

fn s(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {v}"))
        .to_owned()
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tollgate-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::test]
async fn the_account_lifecycle_through_the_mail_outbox() {
    let dir = temp_dir("account-flow");
    let port = free_port();
    let _server = start(&dir, port).await;
    let api = Api::new(port);

    // Signup → verification mail → verify → email_verified in /auth/me and the next token.
    let email = "verify@example.com";
    let signup = api.signup(email).await;
    assert_eq!(claims(&s(&signup, "access_token"))["email_verified"], false);
    let mail = api.wait_mail(email, "Verify your email", 1).await;
    let (status, user) = api
        .post(
            "/auth/verify-email",
            None,
            json!({"token": token_in(&mail, "/verify-email")}),
        )
        .await;
    assert_eq!(
        (status, &user["email_verified"]),
        (200, &json!(true)),
        "{user}"
    );
    let (status, again) = api
        .post(
            "/auth/verify-email",
            None,
            json!({"token": token_in(&mail, "/verify-email")}),
        )
        .await;
    assert_eq!(
        (status, s(&again, "code")),
        (400, "invalid_link".into()),
        "a link works once"
    );
    let (_, me) = api
        .call("GET", "/auth/me", Some(&s(&signup, "access_token")), None)
        .await;
    assert_eq!(me["email_verified"], true, "{me}");
    let (status, refreshed) = api
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": s(&signup, "refresh_token")}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        claims(&s(&refreshed, "access_token"))["email_verified"],
        true
    );

    // Forgot → mail → reset → every earlier refresh token refused → login with the new password.
    let email = "reset@example.com";
    let first = api.signup(email).await;
    let (_, second) = api.login(email, PASSWORD).await;
    let (status, _) = api
        .post("/auth/password/forgot", None, json!({"email": email}))
        .await;
    assert_eq!(status, 202);
    let mail = api.wait_mail(email, "Reset your", 1).await;
    let new_password = "a much newer passphrase";
    let (status, body) = api
        .post(
            "/auth/password/reset",
            None,
            json!({"token": token_in(&mail, "/reset-password"), "password": "password1"}),
        )
        .await;
    assert_eq!(
        (status, s(&body, "code")),
        (422, "validation_failed".into()),
        "common: {body}"
    );
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("common"));
    let (status, _) = api
        .post(
            "/auth/password/reset",
            None,
            json!({"token": token_in(&mail, "/reset-password"), "password": new_password}),
        )
        .await;
    assert_eq!(status, 204, "the token survived the refused password");
    for tokens in [&first, &second] {
        assert_eq!(
            api.refresh(&s(tokens, "refresh_token")).await,
            401,
            "sessions ended"
        );
    }
    assert_eq!(api.login(email, PASSWORD).await.0, 401);
    assert_eq!(api.login(email, new_password).await.0, 200);
    api.wait_mail(email, "password was changed", 1).await;
    let (status, _) = api
        .post(
            "/auth/password/forgot",
            None,
            json!({"email": "nobody@example.com"}),
        )
        .await;
    assert_eq!(status, 202, "unknown emails get the same answer");

    // Change password: the other session ends, this one stays; a notice is mailed.
    let email = "change@example.com";
    let a = api.signup(email).await;
    let (_, b) = api.login(email, PASSWORD).await;
    let (status, body) = api
        .post(
            "/auth/password/change",
            Some(&s(&a, "access_token")),
            json!({"current_password": "wrong password here", "new_password": new_password}),
        )
        .await;
    assert_eq!((status, s(&body, "code")), (403, "wrong_password".into()));
    let (status, _) = api
        .post(
            "/auth/password/change",
            Some(&s(&a, "access_token")),
            json!({"current_password": PASSWORD, "new_password": new_password}),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        api.refresh(&s(&b, "refresh_token")).await,
        401,
        "the other session ended"
    );
    assert_eq!(
        api.refresh(&s(&a, "refresh_token")).await,
        200,
        "this session stays"
    );
    api.wait_mail(email, "password was changed", 1).await;

    // Sign-in code: request → code from the mail → signed in.
    let email = "code@example.com";
    api.signup(email).await;
    let (status, _) = api
        .post("/auth/otp/request", None, json!({"email": email}))
        .await;
    assert_eq!(status, 202);
    let mail = api.wait_mail(email, "sign-in code", 1).await;
    let code = s(&mail, "code");
    let (status, tokens) = api
        .post(
            "/auth/otp/verify",
            None,
            json!({"email": email, "code": code}),
        )
        .await;
    assert_eq!(status, 200, "{tokens}");
    assert!(tokens["access_token"].is_string());
    // The 6th try is refused even when it is the right code.
    api.post("/auth/otp/request", None, json!({"email": email}))
        .await;
    let mail = api.wait_mail(email, "sign-in code", 2).await;
    let code = s(&mail, "code");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        let (status, body) = api
            .post(
                "/auth/otp/verify",
                None,
                json!({"email": email, "code": wrong}),
            )
            .await;
        assert_eq!((status, s(&body, "code")), (401, "invalid_code".into()));
    }
    let (status, _) = api
        .post(
            "/auth/otp/verify",
            None,
            json!({"email": email, "code": code}),
        )
        .await;
    assert_eq!(status, 401, "five wrong tries killed the code");

    // Magic link: works once.
    api.post("/auth/otp/request", None, json!({"email": email}))
        .await;
    let mail = api.wait_mail(email, "sign-in code", 3).await;
    let link = token_in(&mail, "/magic-link");
    let (status, _) = api
        .post("/auth/magic-link/verify", None, json!({"token": link}))
        .await;
    assert_eq!(status, 200);
    let (status, body) = api
        .post("/auth/magic-link/verify", None, json!({"token": link}))
        .await;
    assert_eq!((status, s(&body, "code")), (400, "invalid_link".into()));
    // Unknown emails: the same 202, and no mail.
    let (status, _) = api
        .post(
            "/auth/otp/request",
            None,
            json!({"email": "ghost@example.com"}),
        )
        .await;
    assert_eq!(status, 202);

    // Sessions: two logins listed, revoke one → its refresh fails; logout-all.
    let email = "sessions@example.com";
    api.signup(email).await;
    let (_, one) = api.login(email, PASSWORD).await;
    let (_, two) = api.login(email, PASSWORD).await;
    let (status, list) = api
        .call(
            "GET",
            "/auth/sessions",
            Some(&s(&one, "access_token")),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let sessions = list["sessions"].as_array().expect("sessions").clone();
    assert_eq!(sessions.len(), 3, "{list}");
    assert_eq!(sessions.iter().filter(|x| x["current"] == true).count(), 1);
    let two_sid = claims(&s(&two, "access_token"))["sid"]
        .as_str()
        .expect("sid")
        .to_owned();
    let (status, _) = api
        .call(
            "DELETE",
            &format!("/auth/sessions/{two_sid}"),
            Some(&s(&one, "access_token")),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(api.refresh(&s(&two, "refresh_token")).await, 401);
    let (status, _) = api
        .call("GET", "/auth/me", Some(&s(&two, "access_token")), None)
        .await;
    assert_eq!(
        status, 401,
        "its access token stops at Tollgate's routes at once"
    );
    let (status, _) = api
        .call(
            "POST",
            "/auth/logout-all",
            Some(&s(&one, "access_token")),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(api.refresh(&s(&one, "refresh_token")).await, 401);
    let (status, audit) = {
        let (_, fresh) = api.login(email, PASSWORD).await;
        api.call(
            "GET",
            "/auth/audit?limit=50",
            Some(&s(&fresh, "access_token")),
            None,
        )
        .await
    };
    assert_eq!(status, 200);
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["action"].as_str())
        .collect();
    for action in [
        "signed_up",
        "login_succeeded",
        "session_revoked",
        "logged_out_everywhere",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }

    // Delete: the subscription is cancelled at the provider, login refused, the email free.
    let email = "delete@example.com";
    let account = api.signup(email).await;
    let access = s(&account, "access_token");
    let (status, checkout) = api
        .post("/billing/checkout", Some(&access), json!({"plan": "pro"}))
        .await;
    assert_eq!(status, 200, "{checkout}");
    let (status, _) = api.send(api.http.post(s(&checkout, "url"))).await;
    assert_eq!(status, 200);
    for _ in 0..100 {
        let (_, sub) = api
            .call("GET", "/billing/subscription", Some(&access), None)
            .await;
        if sub["plan"] == "pro" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = api.call("DELETE", "/auth/me", Some(&access), None).await;
    assert_eq!(status, 204);
    assert_eq!(api.login(email, PASSWORD).await.0, 401);
    let provider: Value = serde_json::from_slice(
        &std::fs::read(dir.join("local-provider.json")).expect("offline stand-in state"),
    )
    .expect("json");
    let statuses: Vec<&str> = provider["subscriptions"]
        .as_object()
        .expect("subscriptions")
        .values()
        .filter_map(|s| s["status"].as_str())
        .collect();
    assert_eq!(
        statuses,
        ["canceled"],
        "cancelled at the provider: {provider}"
    );
    api.wait_mail(email, "account was deleted", 1).await;
    api.signup(email).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_mail_owed_before_a_kill_is_sent_once_after_the_restart() {
    let dir = temp_dir("mail-crash");
    let port = free_port();
    // The worker holds mail back for a minute: the kill lands between the commit and the send.
    let server = start_with(&dir, port, &[("TOLLGATE_DEV_MAIL_DELAY_MS", "60000")]).await;
    let api = Api::new(port);
    let email = "crash@example.com";
    api.signup(email).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        api.mails_to(email, "Verify").await.is_empty(),
        "not sent yet"
    );
    kill(server);

    let _server = start(&dir, port).await;
    api.wait_mail(email, "Verify your email", 1).await;
    // Give the worker a few more rounds: still exactly one.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(api.mails_to(email, "Verify").await.len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}
