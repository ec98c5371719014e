//! The README's offline paid flow, against the real `dev-server` binary (the program
//! `cargo run -p dev-server` starts, without a Stripe key): sign up → checkout with the offline
//! Stripe stand-in → "pay" →
//! the signed webhook lands and the in-process processor applies it → `/billing/subscription`
//! shows the paid plan with access → the next refresh's access token carries the plan → cancel at
//! period end keeps access until the period ends.

mod common;

use base64::Engine as _;
use common::{free_port, start};
use serde_json::{json, Value};
use std::time::Duration;

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn send(&self, r: reqwest::RequestBuilder) -> (u16, Value) {
        let res = r.send().await.expect("request");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut r = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        self.send(r).await
    }

    async fn subscription(&self, token: &str) -> Value {
        let (status, body) = self
            .send(
                self.http
                    .get(format!("{}/billing/subscription", self.base))
                    .bearer_auth(token),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Polls `/billing/subscription` until `done` holds (the processor runs asynchronously).
    async fn wait_for(&self, token: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        for _ in 0..100 {
            last = self.subscription(token).await;
            if done(&last) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{what}: not reached within 5 s; last answer {last}");
    }
}

/// The claims of an access token (its signature is checked by the HTTP flow tests).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("claims json")
}

#[tokio::test]
async fn signup_checkout_pay_refresh_and_cancel_offline() {
    let dir = std::env::temp_dir().join(format!("tollgate-local-flow-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let port = free_port();
    let _server = start(&dir, port).await;
    let api = Api {
        base: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::new(),
    };

    let (status, signup) = api
        .post(
            "/auth/signup",
            None,
            json!({"email": "newcomer@example.com", "password": "correct horse battery staple"}),
        )
        .await;
    assert_eq!(status, 201, "{signup}");
    let access = signup["access_token"].as_str().expect("access").to_owned();
    let refresh = signup["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    assert_eq!(claims(&access)["plan"], "free");
    let before = api.subscription(&access).await;
    assert_eq!(
        (before["plan"].as_str(), before["access"].as_bool()),
        (Some("free"), Some(false)),
        "no paid access yet"
    );

    let (status, checkout) = api
        .post("/billing/checkout", Some(&access), json!({"plan": "pro"}))
        .await;
    assert_eq!(
        (status, checkout["provider"].as_str()),
        (200, Some("stripe")),
        "{checkout}"
    );
    let url = checkout["url"].as_str().expect("url");
    assert!(
        url.starts_with(&format!("{}/dev/checkout/cs_local_", api.base)),
        "without a Stripe key the offline stand-in answers: {url}"
    );
    // "Pay" on the offline checkout page: it posts a signed checkout.session.completed to
    // /webhooks/stripe, which ingest verifies, stores and enqueues.
    let (status, paid) = api.send(api.http.post(url)).await;
    assert_eq!(
        (status, paid["completed"].as_bool()),
        (200, Some(true)),
        "{paid}"
    );

    let sub = api
        .wait_for(&access, "the paid plan", |s| s["plan"] == "pro")
        .await;
    assert_eq!(sub["provider"], "stripe");
    assert_eq!(sub["access"], true, "{sub}");
    assert!(
        matches!(sub["status"].as_str(), Some("active" | "trialing")),
        "{sub}"
    );
    let period_end = sub["current_period_end"].clone();
    assert!(period_end.is_string(), "an RFC 3339 time: {sub}");
    assert_eq!(sub["cancel_at_period_end"], false);

    let (status, refreshed) = api
        .post("/auth/refresh", None, json!({"refresh_token": refresh}))
        .await;
    assert_eq!(status, 200, "{refreshed}");
    let new_access = refreshed["access_token"].as_str().expect("access");
    let c = claims(new_access);
    assert_eq!(
        (c["plan"].as_str(), c["tier"].as_u64()),
        (Some("pro"), Some(1)),
        "{c}"
    );
    assert!(c["entitlements"].is_object(), "{c}");

    let (status, reply) = api
        .post("/billing/subscription/cancel", Some(new_access), json!({}))
        .await;
    assert_eq!(status, 202, "{reply}");
    let canceled = api
        .wait_for(new_access, "cancel at period end", |s| {
            s["cancel_at_period_end"] == true
        })
        .await;
    assert_eq!(
        (
            canceled["plan"].as_str(),
            canceled["access"].as_bool(),
            &canceled["current_period_end"]
        ),
        (Some("pro"), Some(true), &period_end),
        "access stays until the period ends: {canceled}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A credit pack bought offline with the `local` provider (the offline Stripe stand-in): the
/// one-time checkout "pays" with a signed `checkout.session.completed` in `payment` mode; paying
/// the same checkout twice grants once; a render spends two credits.
#[tokio::test]
async fn a_credit_pack_bought_offline_is_granted_once() {
    let dir = std::env::temp_dir().join(format!("tollgate-local-pack-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let port = free_port();
    let _server = start(&dir, port).await;
    let api = Api {
        base: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::new(),
    };
    let (status, signup) = api
        .post(
            "/auth/signup",
            None,
            json!({"email": "buyer@example.com", "password": "correct horse battery staple"}),
        )
        .await;
    assert_eq!(status, 201, "{signup}");
    let access = signup["access_token"].as_str().expect("access").to_owned();
    let (status, plans) = api
        .send(api.http.get(format!("{}/billing/plans", api.base)))
        .await;
    assert_eq!(status, 200);
    assert_eq!(plans["credit_packs"][0]["id"], "credits_1000", "{plans}");
    let (status, checkout) = api
        .post(
            "/billing/checkout",
            Some(&access),
            json!({"pack": "credits_1000"}),
        )
        .await;
    assert_eq!(status, 200, "{checkout}");
    let url = checkout["url"].as_str().expect("url").to_owned();
    for _ in 0..2 {
        let (status, paid) = api.send(api.http.post(&url)).await;
        assert_eq!(status, 200, "{paid}");
    }
    let credits = |access: String| {
        let (http, base) = (api.http.clone(), api.base.clone());
        async move {
            http.get(format!("{base}/billing/credits"))
                .bearer_auth(access)
                .send()
                .await
                .expect("credits")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    let mut last = Value::Null;
    for _ in 0..100 {
        last = credits(access.clone()).await;
        if last["balance"] == 1000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(last["balance"], 1000, "granted within 5 s: {last}");
    // Both payments of the one checkout were processed by now or soon: still granted once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = credits(access.clone()).await;
    assert_eq!(after["balance"], 1000, "{after}");
    let (status, render) = api
        .post(
            "/usage/track",
            Some(&access),
            json!({"feature": "renders", "idempotency_key": "first-render"}),
        )
        .await;
    assert_eq!(
        (status, render["credit_balance"].as_i64()),
        (200, Some(998)),
        "{render}"
    );
    let (_, payments) = api
        .send(
            api.http
                .get(format!("{}/billing/payments", api.base))
                .bearer_auth(&access),
        )
        .await;
    assert_eq!(payments["payments"][0]["amount"], 1500, "{payments}");
    let _ = std::fs::remove_dir_all(&dir);
}
