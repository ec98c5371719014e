//! Issue #11 end to end: rate limits shared by processes through DynamoDB (moto), the
//! failed-login throttle (no enumeration, same store round trips), API keys that inherit the
//! owner's current plan, per-user limits with their headers, and the authorizer's emulation on
//! the dev server. The account and key cases run on both stores.

use async_trait::async_trait;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tollgate::domain::{
    AuditAction, Provider, RateLimits, Subscription, SubscriptionStatus, SubscriptionWrite, User,
    UserId,
};
use tollgate::store::{AccountStore, BillingStore, StoreError, UserStore};
use tollgate::{AppState, Needs};
use tollgate_tests::{random_email, Backend, ManualClock, PASSWORD};

/// Counts the profile and email-claim reads of the user store it wraps.
struct CountingUsers {
    inner: Arc<dyn UserStore>,
    reads: AtomicUsize,
}

#[async_trait]
impl UserStore for CountingUsers {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        self.inner.create_user(user).await
    }
    async fn get_user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get_user(id).await
    }
    async fn find_user_id_by_email(&self, email: &str) -> Result<Option<UserId>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.find_user_id_by_email(email).await
    }
    async fn list_users(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<User>, Option<String>), StoreError> {
        self.inner.list_users(cursor, limit).await
    }
    async fn update_user(&self, user: &User, expected: u64) -> Result<(), StoreError> {
        self.inner.update_user(user, expected).await
    }
}

struct Rig {
    base: String,
    http: reqwest::Client,
    clock: Arc<ManualClock>,
    state: AppState,
    accounts: Arc<dyn AccountStore>,
    billing: Arc<dyn BillingStore>,
    users: Arc<CountingUsers>,
}

async fn rig(backend: Backend, limits: &str) -> Option<Rig> {
    let (mut components, clock, _) = tollgate_tests::components_at(tollgate_tests::now());
    if let Backend::Dynamo = backend {
        let store = Arc::new(tollgate_tests::dynamo_store().await?);
        tollgate_tests::use_store(&mut components, store);
    }
    components.config.rate_limits = RateLimits::parse(limits).expect("rules");
    components.config.auth.max_api_keys = 3;
    let users = Arc::new(CountingUsers {
        inner: components.users.clone(),
        reads: AtomicUsize::new(0),
    });
    components.users = users.clone();
    let state = AppState::assemble(&components, Needs::ALL);
    Some(Rig {
        base: tollgate_tests::spawn_app(state.clone()).await,
        http: reqwest::Client::new(),
        clock,
        accounts: components.accounts.clone(),
        billing: components.billing_store.clone(),
        state,
        users,
    })
}

impl Rig {
    async fn post(&self, path: &str, bearer: Option<&str>, body: Value) -> reqwest::Response {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        req.send().await.expect("request")
    }

    async fn get(&self, path: &str, bearer: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(bearer)
            .send()
            .await
            .expect("request")
    }

    async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.post(
            "/auth/login",
            None,
            json!({"email": email, "password": password}),
        )
        .await
    }

    /// One more key for the bearer `at` is refused: 409 `api_key_limit_reached`.
    async fn assert_key_limit_reached(&self, at: &str) {
        let (status, _, body) = problem(
            self.post("/auth/api-keys", Some(at), json!({"name": "one too many"}))
                .await,
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::CONFLICT, Some("api_key_limit_reached"))
        );
    }

    async fn actions(&self, user: &User) -> Vec<AuditAction> {
        self.accounts
            .list_audit(&user.id, None, 100)
            .await
            .expect("audit")
            .into_iter()
            .map(|r| r.action)
            .collect()
    }
}

async fn problem(r: reqwest::Response) -> (StatusCode, Option<String>, Value) {
    let status = r.status();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().expect("ascii").to_owned());
    (status, retry, r.json().await.unwrap_or(Value::Null))
}

async fn failed_logins_slow_the_account_from_any_ip_and_unknown_emails_alike(backend: Backend) {
    let Some(rig) = rig(backend, "off").await else {
        return;
    };
    let (ada, _) = tollgate_tests::sign_up(&rig.state).await;
    let stranger = random_email();
    let auth = rig.state.auth().expect("accounts");
    for email in [ada.email.as_str(), stranger.as_str()] {
        // Each failure from another client IP: the count is the account's, not the address's.
        for i in 0..5u8 {
            let origin = tollgate::domain::RequestOrigin {
                ip: Some(format!("198.51.100.{i}")),
                user_agent: None,
            };
            let refused = auth
                .login(email, "wrong password!".into(), &origin)
                .await
                .expect_err("wrong password");
            assert!(
                matches!(refused, tollgate::auth::AuthError::InvalidCredentials),
                "failure {i}: {refused:?}"
            );
        }
    }
    // The sixth attempt waits 30 s — even with the right password, and the same for an email
    // without an account: nothing tells them apart.
    let (known, known_retry, known_body) = problem(rig.login(&ada.email, PASSWORD).await).await;
    let (unknown, unknown_retry, unknown_body) =
        problem(rig.login(&stranger, PASSWORD).await).await;
    assert_eq!(known, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        (known, known_retry.as_deref()),
        (unknown, unknown_retry.as_deref())
    );
    assert_eq!(known_retry.as_deref(), Some("30"));
    assert_eq!(known_body["code"], "rate_limited");
    assert_eq!(known_body, unknown_body);
    assert!(rig
        .actions(&ada)
        .await
        .contains(&AuditAction::LoginThrottled));
    // Once the delay passed, the right password signs in and resets the count.
    rig.clock.advance(31);
    let r = rig.login(&ada.email, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    let (status, _, _) = problem(rig.login(&ada.email, "wrong password!").await).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a fresh count: no delay after one failure"
    );
    assert_eq!(
        rig.login(&ada.email, PASSWORD).await.status(),
        StatusCode::OK
    );
    // The stranger's count was not reset; its next failure doubles the delay.
    let (status, _, _) = problem(rig.login(&stranger, "wrong password!").await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, retry, _) = problem(rig.login(&stranger, "wrong password!").await).await;
    assert_eq!(
        (status, retry.as_deref()),
        (StatusCode::TOO_MANY_REQUESTS, Some("60"))
    );
}

async fn known_and_unknown_emails_make_the_same_store_reads(backend: Backend) {
    let Some(rig) = rig(backend, "off").await else {
        return;
    };
    let (ada, _) = tollgate_tests::sign_up(&rig.state).await;
    let reads = |rig: &Rig| rig.users.reads.swap(0, Ordering::SeqCst);
    reads(&rig);
    rig.login(&ada.email, "wrong password!").await;
    let known = reads(&rig);
    rig.login(&random_email(), "wrong password!").await;
    let unknown = reads(&rig);
    assert_eq!(known, 2, "the email claim, then the profile");
    assert_eq!(unknown, known, "an unknown email reads a profile too");
}

async fn api_keys_act_as_their_user_with_the_current_plan(backend: Backend) {
    let Some(rig) = rig(backend, "off").await else {
        return;
    };
    let (ada, tokens) = tollgate_tests::sign_up(&rig.state).await;
    let at = tokens.access_token.as_str();
    let r = rig
        .post("/auth/api-keys", Some(at), json!({"name": "ci"}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.expect("json");
    let key = created["key"].as_str().expect("key shown once").to_owned();
    let id = created["id"].as_str().expect("id").to_owned();
    assert!(key.starts_with(&format!("tg_{id}_")));
    assert_eq!(created["prefix"], format!("tg_{id}"));
    // Only the SHA-256 is stored.
    let stored = rig
        .accounts
        .get_api_key(&id)
        .await
        .expect("read")
        .expect("key");
    assert_eq!(stored.hash, tollgate::auth::one_time::hash_text(&key));
    // The whole secret part (base64url: it may itself contain `_`).
    let secret = key.strip_prefix(&format!("tg_{id}_")).expect("secret");
    assert!(secret.len() >= 40, "{secret}");
    assert!(!format!("{stored:?}").contains(secret));
    let listed: Value = rig
        .get("/auth/api-keys", at)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(listed["keys"][0]["id"], id.as_str());
    assert!(
        !listed.to_string().contains(&key),
        "lists never show the key"
    );
    // The key acts as ada on the read routes, with her plan now.
    let me: Value = rig.get("/auth/me", &key).await.json().await.expect("json");
    assert_eq!(
        (me["id"].as_str(), me["plan"].as_str()),
        (Some(ada.id.to_string().as_str()), Some("free"))
    );
    let pro = Subscription {
        user_id: ada.id,
        provider: Provider::Stripe,
        subscription_id: "sub_keys".into(),
        customer_id: Some("cus_keys".into()),
        plan: "pro".into(),
        interval: None,
        price_id: "price_1TestProMonthly01".into(),
        status: SubscriptionStatus::Active,
        current_period_end: Some(tollgate_tests::now() + 30 * 86_400),
        cancel_at_period_end: false,
        trial_end: None,
        past_due_since: None,
        source_fetched_at_us: 1,
        version: 1,
        updated_at: tollgate_tests::now(),
    };
    rig.billing
        .put_subscription(&SubscriptionWrite {
            subscription: pro,
            expected_version: None,
        })
        .await
        .expect("upgrade");
    let me: Value = rig.get("/auth/me", &key).await.json().await.expect("json");
    assert_eq!(me["plan"], "pro", "the same key sees the new plan");
    let sub: Value = rig
        .get("/billing/subscription", &key)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        (sub["plan"].as_str(), sub["access"].as_bool()),
        (Some("pro"), Some(true))
    );
    // A key is not an access token: routes that act on a session refuse it.
    assert_eq!(
        rig.get("/auth/sessions", &key).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // last_used_at: written on first use, then at most once a minute.
    let accounts = rig.accounts.clone();
    let used = |id: String| {
        let accounts = accounts.clone();
        async move {
            accounts
                .get_api_key(&id)
                .await
                .expect("read")
                .expect("key")
                .last_used_at
        }
    };
    let first = used(id.clone()).await.expect("used");
    rig.clock.advance(30);
    rig.get("/auth/me", &key).await;
    assert_eq!(
        used(id.clone()).await,
        Some(first),
        "not again within a minute"
    );
    rig.clock.advance(31);
    rig.get("/auth/me", &key).await;
    assert_eq!(used(id.clone()).await, Some(first + 61));
    // Revoked: refused at once.
    let r = rig
        .http
        .delete(format!("{}/auth/api-keys/{id}", rig.base))
        .bearer_auth(at)
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (status, _, body) = problem(rig.get("/auth/me", &key).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_api_key"))
    );
    let again = rig
        .http
        .delete(format!("{}/auth/api-keys/{id}", rig.base))
        .bearer_auth(at)
        .send()
        .await
        .expect("revoke");
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    let actions = rig.actions(&ada).await;
    assert!(actions.contains(&AuditAction::ApiKeyCreated));
    assert!(actions.contains(&AuditAction::ApiKeyRevoked));
    // At most three live keys here (TOLLGATE_MAX_API_KEYS).
    for i in 0..3 {
        let r = rig
            .post("/auth/api-keys", Some(at), json!({"name": format!("k{i}")}))
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    rig.assert_key_limit_reached(at).await;
}

/// The key maximum holds under concurrency: creations that each counted a free place race on
/// the owner's version, so no more than `TOLLGATE_MAX_API_KEYS` (3 here) are ever live.
async fn concurrent_key_creations_never_pass_the_maximum(backend: Backend) {
    let Some(rig) = rig(backend, "off").await else {
        return;
    };
    let (ada, tokens) = tollgate_tests::sign_up(&rig.state).await;
    let at = tokens.access_token.as_str();
    let mut racers = tokio::task::JoinSet::new();
    for i in 0..12 {
        let request = rig
            .http
            .post(format!("{}/auth/api-keys", rig.base))
            .bearer_auth(at)
            .json(&json!({"name": format!("racer {i}")}));
        racers.spawn(async move { request.send().await.expect("request").status() });
    }
    let mut created = 0;
    while let Some(status) = racers.join_next().await {
        match status.expect("racer") {
            StatusCode::CREATED => created += 1,
            // The limit reached, or a write that kept losing the race (retryable).
            StatusCode::CONFLICT | StatusCode::SERVICE_UNAVAILABLE => {}
            other => panic!("unexpected {other}"),
        }
    }
    let live = |rig: &Rig| {
        let accounts = rig.accounts.clone();
        let id = ada.id;
        async move {
            accounts
                .list_api_keys(&id)
                .await
                .expect("list")
                .iter()
                .filter(|k| k.revoked_at.is_none())
                .count()
        }
    };
    assert!((1..=3).contains(&created), "{created} created");
    assert_eq!(
        live(&rig).await,
        created,
        "every answered key is stored, no other"
    );
    while live(&rig).await < 3 {
        let r = rig
            .post("/auth/api-keys", Some(at), json!({"name": "more"}))
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    rig.assert_key_limit_reached(at).await;
    assert_eq!(live(&rig).await, 3);
    let user = rig
        .users
        .get_user(&ada.id)
        .await
        .expect("read")
        .expect("user");
    assert_eq!(
        (user.email, user.updated_at),
        (ada.email.clone(), ada.updated_at),
        "the guard moves only the owner's version"
    );
}

async fn a_per_user_rule_answers_429_with_its_headers(backend: Backend) {
    let Some(rig) = rig(backend, "api_keys.user=2/86400").await else {
        return;
    };
    let (_, tokens) = tollgate_tests::sign_up(&rig.state).await;
    let at = tokens.access_token.as_str();
    for remaining in ["1", "0"] {
        let r = rig
            .post("/auth/api-keys", Some(at), json!({"name": "k"}))
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers()["ratelimit-limit"], "2");
        assert_eq!(r.headers()["ratelimit-remaining"], remaining);
        assert!(r.headers().contains_key("ratelimit-reset"));
    }
    let r = rig
        .post("/auth/api-keys", Some(at), json!({"name": "k"}))
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["ratelimit-remaining"], "0");
    assert!(
        r.headers()["retry-after"]
            .to_str()
            .expect("ascii")
            .parse::<i64>()
            .expect("seconds")
            > 0
    );
    assert_eq!(
        r.json::<Value>().await.expect("json")["code"],
        "rate_limited"
    );
    // Another user has a count of their own.
    let (_, other) = tollgate_tests::sign_up(&rig.state).await;
    let r = rig
        .post(
            "/auth/api-keys",
            Some(&other.access_token),
            json!({"name": "k"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
}

async fn the_dev_server_plays_the_authorizer_for_the_example_route(backend: Backend) {
    let Some(rig) = rig(backend, "off").await else {
        return;
    };
    let (ada, tokens) = tollgate_tests::sign_up(&rig.state).await;
    let r = rig.get("/example/whoami", &tokens.access_token).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers().contains_key("ratelimit-limit"),
        "the plan's rate applies"
    );
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["user_id"], ada.id.to_string());
    assert_eq!(body["plan"], "free");
    assert_eq!(body["entitlements"]["requests_per_minute"], 60);
    assert_eq!(body["key_id"], Value::Null);
    let key: Value = rig
        .post(
            "/auth/api-keys",
            Some(&tokens.access_token),
            json!({"name": "svc"}),
        )
        .await
        .json()
        .await
        .expect("json");
    let body: Value = rig
        .get("/example/whoami", key["key"].as_str().expect("key"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(body["key_id"], key["id"]);
    let (status, _, body) =
        problem(rig.get("/example/whoami", "tg_0123456789abcdef_nope").await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_authorized"))
    );
    let bare = rig
        .http
        .get(format!("{}/example/whoami", rig.base))
        .send()
        .await
        .expect("request");
    assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
}

tollgate_tests::on_both_stores!(
    failed_logins_slow_the_account_from_any_ip_and_unknown_emails_alike,
    known_and_unknown_emails_make_the_same_store_reads,
    api_keys_act_as_their_user_with_the_current_plan,
    concurrent_key_creations_never_pass_the_maximum,
    a_per_user_rule_answers_429_with_its_headers,
    the_dev_server_plays_the_authorizer_for_the_example_route,
);

/// One of the processes of [`two_processes_enforce_one_limit_together`].
struct Instance {
    child: std::process::Child,
    base: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_instance(table: &str, key_file: &std::path::Path) -> Instance {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dev-server-on-dynamodb"))
        .env("TOLLGATE_TABLE_NAME", table)
        .env("TOLLGATE_TEST_KEY_FILE", key_file)
        .env("TOLLGATE_RATE_LIMITS", "login.ip=4/86400")
        .env("TOLLGATE_COOKIE_SECURE", "false")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("start dev-server-on-dynamodb");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the address");
    let base = line
        .trim()
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Instance { child, base }
}

/// Two processes serving the dev server's app over one DynamoDB table (as two Lambda instances
/// would) count one client IP's logins together: the fifth login across both is refused with
/// 429 and the `RateLimit-*` headers.
#[tokio::test]
async fn two_processes_enforce_one_limit_together() {
    let Some(client) = tollgate_tests::dynamo_client().await else {
        return;
    };
    let table = format!("tollgate-limits-{}", uuid::Uuid::now_v7().simple());
    tollgate::store::dynamo::ensure_table(&client, &table)
        .await
        .expect("table");
    let dir = std::env::temp_dir().join(format!("tollgate-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let key_file = dir.join("keys.json");
    let keys = tollgate::auth::SigningKeyFile::generate(tollgate_tests::now()).expect("keys");
    std::fs::write(&key_file, serde_json::to_vec(&keys).expect("json")).expect("write keys");
    let instances = [
        start_instance(&table, &key_file),
        start_instance(&table, &key_file),
    ];
    let http = reqwest::Client::new();
    let mut seen = Vec::new();
    for i in 0..5 {
        let instance = &instances[i % 2];
        let r = http
            .post(format!("{}/auth/login", instance.base))
            .json(&json!({"email": random_email(), "password": "wrong password!"}))
            .send()
            .await
            .expect("login");
        let header = |name: &str| {
            r.headers()
                .get(name)
                .map(|v| v.to_str().expect("ascii").to_owned())
        };
        seen.push((
            r.status().as_u16(),
            header("ratelimit-limit"),
            header("ratelimit-remaining"),
            header("retry-after").is_some(),
        ));
    }
    let expected: Vec<(u16, Option<String>, Option<String>, bool)> = vec![
        (401, Some("4".into()), Some("3".into()), false),
        (401, Some("4".into()), Some("2".into()), false),
        (401, Some("4".into()), Some("1".into()), false),
        (401, Some("4".into()), Some("0".into()), false),
        (429, Some("4".into()), Some("0".into()), true),
    ];
    assert_eq!(seen, expected, "alternating between the two processes");
    drop(instances);
    let _ = std::fs::remove_dir_all(&dir);
}
