//! The account flows over HTTP against the merged app on a random port, with a manual clock.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use tollgate::store::{SessionStore, UserStore};
use tollgate_tests::{random_email, spawn_app, state_at, PASSWORD};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

async fn post(client: &Client, url: String, body: Value) -> Response {
    client.post(url).json(&body).send().await.expect("request")
}

async fn json_of(r: Response) -> Value {
    r.json().await.expect("json body")
}

/// `POST /auth/signup` with `email` and [`PASSWORD`]; the 201 answer's JSON body.
async fn signup_over_http(http: &Client, base: &str, email: &str) -> Value {
    let r = post(
        http,
        format!("{base}/auth/signup"),
        json!({"email": email, "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    json_of(r).await
}

/// The string at `key` of a JSON object.
fn text(body: &Value, key: &str) -> String {
    body[key].as_str().expect(key).to_owned()
}

async fn code_of(r: Response) -> (StatusCode, String) {
    let status = r.status();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert_eq!(ct, "application/problem+json", "errors are problem+json");
    let body = json_of(r).await;
    (status, body["code"].as_str().unwrap_or("").to_owned())
}

#[tokio::test]
async fn signup_me_refresh_reuse_login_logout() {
    let (state, clock) = state_at(now());
    let base = spawn_app(state).await;
    let http = Client::new();
    let email = random_email();

    // Signup: 201 with user and tokens, and the refresh cookie.
    let r = post(
        &http,
        format!("{base}/auth/signup"),
        json!({"email": email, "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(
        cookie.starts_with("tollgate_refresh=")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/auth"),
        "{cookie}"
    );
    let signup = json_of(r).await;
    assert_eq!(signup["user"]["email"], email.as_str());
    assert_eq!(signup["token_type"], "Bearer");
    assert_eq!(signup["expires_in"], 900);
    let access0 = signup["access_token"].as_str().expect("access").to_owned();
    let refresh0 = signup["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();

    // The access token works on /auth/me.
    let r = http
        .get(format!("{base}/auth/me"))
        .bearer_auth(&access0)
        .send()
        .await
        .expect("me");
    assert_eq!(r.status(), StatusCode::OK);
    let me = json_of(r).await;
    assert_eq!(
        (
            me["email"].as_str(),
            me["plan"].as_str(),
            me["email_verified"].as_bool()
        ),
        (Some(email.as_str()), Some("free"), Some(false))
    );
    assert_eq!(me["id"], signup["user"]["id"]);

    // Refresh rotates.
    let r = post(
        &http,
        format!("{base}/auth/refresh"),
        json!({"refresh_token": refresh0}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let refresh1 = json_of(r).await["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    assert_ne!(refresh1, refresh0);

    // A second tab presenting the old token within the grace window gets the same successor.
    clock.advance(5);
    let r = post(
        &http,
        format!("{base}/auth/refresh"),
        json!({"refresh_token": refresh0}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        json_of(r).await["refresh_token"].as_str(),
        Some(refresh1.as_str())
    );

    // After the grace window the old token is reuse: 401 and the whole session is revoked.
    clock.advance(6);
    let (status, code) = code_of(
        post(
            &http,
            format!("{base}/auth/refresh"),
            json!({"refresh_token": refresh0}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "refresh_token_reused")
    );
    let (status, code) = code_of(
        post(
            &http,
            format!("{base}/auth/refresh"),
            json!({"refresh_token": refresh1}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "session_revoked"),
        "the newest token fails too"
    );
    let r = http
        .get(format!("{base}/auth/me"))
        .bearer_auth(&access0)
        .send()
        .await
        .expect("me");
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "/auth/me checks the session"
    );

    // Login again, then log out with the cookie only.
    let r = post(
        &http,
        format!("{base}/auth/login"),
        json!({"email": email.to_uppercase(), "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let login = json_of(r).await;
    let refresh2 = login["refresh_token"].as_str().expect("refresh").to_owned();
    let r = http
        .post(format!("{base}/auth/logout"))
        .header("cookie", format!("tollgate_refresh={refresh2}"))
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .contains("Max-Age=0"));
    let (status, code) = code_of(
        post(
            &http,
            format!("{base}/auth/refresh"),
            json!({"refresh_token": refresh2}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "session_revoked")
    );
    // Logging out twice is fine.
    let r = post(
        &http,
        format!("{base}/auth/logout"),
        json!({"refresh_token": refresh2}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn wrong_password_and_unknown_email_get_the_same_answer() {
    let (state, _) = state_at(now());
    let base = spawn_app(state).await;
    let http = Client::new();
    let email = random_email();
    post(
        &http,
        format!("{base}/auth/signup"),
        json!({"email": email, "password": PASSWORD}),
    )
    .await;
    let wrong = post(
        &http,
        format!("{base}/auth/login"),
        json!({"email": email, "password": "not the password"}),
    )
    .await;
    let unknown = post(
        &http,
        format!("{base}/auth/login"),
        json!({"email": random_email(), "password": PASSWORD}),
    )
    .await;
    let garbage = post(
        &http,
        format!("{base}/auth/login"),
        json!({"email": "not an email", "password": PASSWORD}),
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let (a, b, c) = (
        json_of(wrong).await,
        json_of(unknown).await,
        json_of(garbage).await,
    );
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_eq!(a["code"], "invalid_credentials");
}

#[tokio::test]
async fn refresh_by_cookie_and_session_expiry() {
    let (state, clock) = state_at(now());
    let base = spawn_app(state).await;
    let http = Client::new();
    let email = random_email();
    let refresh = text(
        &signup_over_http(&http, &base, &email).await,
        "refresh_token",
    );
    let r = http
        .post(format!("{base}/auth/refresh"))
        .header("cookie", format!("theme=dark; tollgate_refresh={refresh}"))
        .send()
        .await
        .expect("refresh");
    assert_eq!(r.status(), StatusCode::OK);
    let refresh = json_of(r).await["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();

    // Idle for 30 days: the session has expired; so has the access token.
    clock.advance(30 * 24 * 3600);
    let (status, code) = code_of(
        post(
            &http,
            format!("{base}/auth/refresh"),
            json!({"refresh_token": refresh}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "session_expired")
    );
}

#[tokio::test]
async fn access_tokens_expire_after_fifteen_minutes() {
    let (state, clock) = state_at(now());
    let base = spawn_app(state).await;
    let http = Client::new();
    let access = text(
        &signup_over_http(&http, &base, &random_email()).await,
        "access_token",
    );
    clock.advance(900 + 6);
    let (status, code) = code_of(
        http.get(format!("{base}/auth/me"))
            .bearer_auth(&access)
            .send()
            .await
            .expect("me"),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );
}

#[tokio::test]
async fn access_token_verifies_with_a_standard_library_using_only_the_jwks() {
    let (state, _) = state_at(now());
    let base = spawn_app(state).await;
    let http = Client::new();
    let access = text(
        &signup_over_http(&http, &base, &random_email()).await,
        "access_token",
    );

    let discovery: Value = json_of(
        http.get(format!("{base}/.well-known/openid-configuration"))
            .send()
            .await
            .expect("discovery"),
    )
    .await;
    let issuer = discovery["issuer"].as_str().expect("issuer");
    let jwks_uri = discovery["jwks_uri"].as_str().expect("jwks_uri");
    assert!(jwks_uri.ends_with("/.well-known/jwks.json"));
    // Fetch the JWKS from this server (the issuer in the default config is not this port).
    let jwks: JwkSet = http
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("jwks json");
    let header = jsonwebtoken::decode_header(&access).expect("header");
    let jwk = jwks
        .find(header.kid.as_deref().expect("kid"))
        .expect("kid is published");
    let key = DecodingKey::from_jwk(jwk).expect("key from jwk");
    let mut validation = Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&["tollgate"]);
    let data = jsonwebtoken::decode::<Value>(&access, &key, &validation)
        .expect("verifies with the JWKS alone");
    for claim in [
        "iss",
        "aud",
        "sub",
        "sid",
        "iat",
        "nbf",
        "exp",
        "jti",
        "plan",
        "tier",
        "entitlements",
    ] {
        assert!(data.claims.get(claim).is_some(), "claim {claim} present");
    }
    assert_eq!(
        data.claims["exp"].as_i64().expect("exp") - data.claims["iat"].as_i64().expect("iat"),
        900
    );
}

#[tokio::test]
async fn rejected_requests_change_nothing_stored() {
    let (state, _, store) = tollgate_tests::state_with_store(now());
    let base = spawn_app(state).await;
    let http = Client::new();
    let email = random_email();
    let id: tollgate::domain::UserId = signup_over_http(&http, &base, &email).await["user"]["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    let before = store.get_user(&id).await.expect("read");
    let sessions_before = store.list_sessions(&id).await.expect("list");

    // Bad bodies, oversize bodies, wrong content types, duplicate signups, wrong passwords.
    let bad: Vec<reqwest::RequestBuilder> = vec![
        http.post(format!("{base}/auth/signup"))
            .header("content-type", "application/json")
            .body("{\"email\":"),
        http.post(format!("{base}/auth/signup"))
            .header("content-type", "text/plain")
            .body("x"),
        http.post(format!("{base}/auth/signup"))
            .json(&json!({"email": email, "password": "a different long password"})),
        http.post(format!("{base}/auth/signup"))
            .json(&json!({"email": email, "password": "x".repeat(20_000)})),
        http.post(format!("{base}/auth/signup"))
            .json(&json!({"email": [1, 2], "password": null})),
        http.post(format!("{base}/auth/login"))
            .json(&json!({"email": email, "password": "wrong password"})),
        http.post(format!("{base}/auth/refresh"))
            .json(&json!({"refresh_token": "a.b.c"})),
        http.post(format!("{base}/auth/refresh"))
            .header("content-type", "application/json")
            .body(vec![0xff, 0xfe, 0x00]),
        // A body of whitespace only is not an absent body (Schemathesis sent `\t`).
        http.post(format!("{base}/auth/refresh"))
            .header("content-type", "application/json")
            .body("\t"),
        http.get(format!("{base}/auth/me"))
            .header("authorization", "Bearer not-a-token"),
        http.get(format!("{base}/auth/me"))
            .header("authorization", "Basic Zm9vOmJhcg=="),
    ];
    let mut statuses = Vec::new();
    for req in bad {
        let r = req.send().await.expect("request");
        statuses.push(r.status().as_u16());
        assert!(r.status().is_client_error(), "{}", r.status());
    }
    assert_eq!(
        statuses,
        vec![400, 415, 409, 413, 400, 401, 401, 400, 400, 401, 401]
    );
    assert_eq!(
        store.get_user(&id).await.expect("read"),
        before,
        "the stored user is untouched"
    );
    assert_eq!(
        store.list_sessions(&id).await.expect("list"),
        sessions_before,
        "no session was added or changed"
    );
}
