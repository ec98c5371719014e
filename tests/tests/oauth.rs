//! Sign-in with identity providers, end to end over HTTP against real parts: Google and a generic
//! OpenID Connect provider are a real OIDC server (`tests/oidc-mock`, oauth2-mock-server: real
//! discovery, JWKS, RS256-signed ID tokens, PKCE checked by the server), GitHub is wiremock with
//! the shapes of its REST API. Every case runs on the embedded store and on DynamoDB (moto).
//!
//! The browser is played by the test: it follows Tollgate's 302 to the provider, the provider's
//! 302 back to the callback, and the callback's 302 to the app, then exchanges the code.

use aws_lc_rs::digest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use tollgate::auth::one_time::LinkToken;
use tollgate::config::{GitHubProviderConfig, OAuthConfig, OidcProviderConfig};
use tollgate::domain::{AuditAction, OneTimeToken, RedirectAllowlist, TokenPurpose, UserId};
use tollgate::secrets::providers::OAuthClientSecrets;
use tollgate::store::{AccountStore, Change, UserStore};
use tollgate::{AppState, Needs};
use tollgate_tests::{random_email, ManualClock};
use url::Url;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// Where the app wants the browser back (on the allowlist).
const APP: &str = "http://app.test/auth/done";
const GITHUB_CLIENT_ID: &str = "Iv1.tollgate-test";
const GITHUB_SECRET: &str = "github-client-secret";

struct Rig {
    base: String,
    state: AppState,
    clock: Arc<ManualClock>,
    accounts: Arc<dyn AccountStore>,
    users: Arc<dyn UserStore>,
    http: reqwest::Client,
    issuer: String,
    github: MockServer,
    /// GitHub's answers for the next sign-in: `/user` and `/user/emails`.
    github_user: Arc<std::sync::Mutex<(Value, Value)>>,
}

#[derive(Clone, Copy)]
enum Backend {
    Embedded,
    Dynamo,
}

async fn rig(backend: Backend) -> Option<Rig> {
    let issuer = tollgate_tests::oidc_mock().await?;
    let (mut components, clock, _) = components_at_now();
    if let Backend::Dynamo = backend {
        let store = Arc::new(tollgate_tests::dynamo_store().await?);
        tollgate_tests::use_store(&mut components, store);
    }
    let github = MockServer::start().await;
    let github_user = Arc::new(std::sync::Mutex::new((json!({}), json!([]))));
    mount_github(&github, github_user.clone()).await;
    let oidc = |name: &str| OidcProviderConfig {
        name: name.into(),
        issuer: issuer.clone(),
        client_id: format!("tollgate-{name}"),
        scopes: vec!["email".into(), "profile".into()],
    };
    let config = OAuthConfig {
        github: Some(GitHubProviderConfig {
            client_id: GITHUB_CLIENT_ID.into(),
            web_base: github.uri(),
            api_base: github.uri(),
        }),
        // Google as configured in production (a confidential client), and a generic provider
        // by issuer URL as a public client (PKCE only, no secret).
        oidc: vec![oidc("google"), oidc("keycloak")],
    };
    let secrets = OAuthClientSecrets::from_map(&HashMap::from([
        ("GITHUB_CLIENT_SECRET".to_owned(), GITHUB_SECRET.to_owned()),
        (
            "GOOGLE_CLIENT_SECRET".to_owned(),
            "google-secret".to_owned(),
        ),
    ]));
    components.identity_providers =
        tollgate::state::identity_providers_from(&config, &secrets).expect("providers");
    components.config.auth.oauth_redirects =
        RedirectAllowlist::parse([APP, "http://app.test/settings"]).expect("allowlist");
    let accounts = components.accounts.clone();
    let users = components.users.clone();
    let state = AppState::assemble(&components, Needs::ALL);
    let base = tollgate_tests::spawn_app(state.clone()).await;
    Some(Rig {
        base,
        state,
        clock,
        accounts,
        users,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        issuer,
        github,
        github_user,
    })
}

fn components_at_now() -> (
    tollgate::state::Components,
    Arc<ManualClock>,
    Arc<tollgate::store::embedded::EmbeddedStore>,
) {
    tollgate_tests::components_at(tollgate_tests::now())
}

fn s256(verifier: &str) -> String {
    B64.encode(digest::digest(&digest::SHA256, verifier.as_bytes()).as_ref())
}

fn form(request: &Request) -> HashMap<String, String> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

/// GitHub's endpoints with the shapes of docs.github.com: the token endpoint (form body with
/// the client credentials, the code and the PKCE verifier; JSON answer with `Accept:
/// application/json`), `GET /user`, `GET /user/emails`. The token endpoint issues
/// `gho_<code>` for a code whose verifier matches the challenge the authorization sent
/// (remembered per code by [`Rig::authorize_at_github`]).
async fn mount_github(server: &MockServer, user: Arc<std::sync::Mutex<(Value, Value)>>) {
    Mock::given(method("POST"))
        .and(path("/login/oauth/access_token"))
        .and(header("accept", "application/json"))
        .respond_with(|request: &Request| {
            let f = form(request);
            let challenge = CHALLENGES
                .lock()
                .expect("lock")
                .get(f.get("code").map(String::as_str).unwrap_or(""))
                .cloned();
            let pkce_ok = matches!((&challenge, f.get("code_verifier")), (Some(c), Some(v)) if *c == s256(v));
            let client_ok = f.get("client_id").map(String::as_str) == Some(GITHUB_CLIENT_ID)
                && f.get("client_secret").map(String::as_str) == Some(GITHUB_SECRET);
            if !(pkce_ok && client_ok) {
                // GitHub answers a bad code with 200 and an error object.
                return ResponseTemplate::new(200).set_body_json(json!({
                    "error": "bad_verification_code",
                    "error_description": "The code passed is incorrect or expired.",
                    "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code"
                }));
            }
            ResponseTemplate::new(200).set_body_json(json!({
                "access_token": format!("gho_{}", f["code"]),
                "token_type": "bearer",
                "scope": "read:user,user:email"
            }))
        })
        .mount(server)
        .await;
    // `GET /user` answers the profile, `GET /user/emails` the addresses, each only with a token
    // the token endpoint issued.
    for (route, pick) in [("/user", 0), ("/user/emails", 1)] {
        let user = user.clone();
        Mock::given(method("GET"))
            .and(path(route))
            .and(header("x-github-api-version", "2022-11-28"))
            .respond_with(move |request: &Request| {
                if !has_github_token(request) {
                    return ResponseTemplate::new(401)
                        .set_body_json(json!({"message": "Bad credentials"}));
                }
                let answers = user.lock().expect("lock");
                let body = if pick == 0 { &answers.0 } else { &answers.1 };
                ResponseTemplate::new(200).set_body_json(body.clone())
            })
            .mount(server)
            .await;
    }
}

fn has_github_token(request: &Request) -> bool {
    request
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer gho_"))
}

/// Code → PKCE challenge of the GitHub authorizations the test approved.
static CHALLENGES: std::sync::LazyLock<std::sync::Mutex<HashMap<String, String>>> =
    std::sync::LazyLock::new(Default::default);

fn with_query(base: &str, pairs: &[(&str, &str)]) -> Url {
    let mut url = Url::parse(base).expect("url");
    url.query_pairs_mut().extend_pairs(pairs);
    url
}

fn query(url: &Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

fn location(response: &reqwest::Response) -> Url {
    assert_eq!(response.status(), StatusCode::FOUND, "a redirect");
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("Location");
    Url::parse(location).expect("absolute Location")
}

/// Claims the OIDC server puts into the ID token of one authorization.
fn person(email: &str, verified: bool) -> Value {
    json!({
        "sub": format!("sub-{}", uuid::Uuid::now_v7().simple()),
        "email": email,
        "email_verified": verified,
        "name": "Ada Lovelace",
    })
}

impl Rig {
    fn auth(&self) -> &tollgate::auth::Auth {
        self.state.auth().expect("accounts")
    }

    /// `GET /auth/oauth/{provider}?redirect_to=…` as a browser would.
    async fn start(&self, provider: &str, redirect_to: &str) -> reqwest::Response {
        self.http
            .get(with_query(
                &format!("{}/auth/oauth/{provider}", self.base),
                &[("redirect_to", redirect_to)],
            ))
            .send()
            .await
            .expect("start")
    }

    /// The provider's authorization URL of a sign-in to `APP`.
    async fn authorization(&self, provider: &str) -> Url {
        let url = location(&self.start(provider, APP).await);
        let q = query(&url);
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["code_challenge_method"], "S256");
        assert!(q["code_challenge"].len() == 43 && q["state"].len() == 43);
        assert_eq!(
            q["redirect_uri"],
            format!(
                "{}/auth/oauth/{provider}/callback",
                tollgate::Config::default().auth.issuer
            )
        );
        url
    }

    /// Approves the authorization at the OIDC server, which shapes its ID token with `claims`
    /// (and tampers with it when `tamper`); returns the callback URL it sends the browser to.
    async fn approve_at_oidc(&self, authorization: &Url, claims: Value, tamper: bool) -> Url {
        assert!(authorization.as_str().starts_with(&self.issuer));
        let state = &query(authorization)["state"];
        let shaped = self
            .http
            .post(format!("{}/_control/claims", self.issuer))
            .json(&json!({"state": state, "claims": claims, "tamper": tamper}))
            .send()
            .await
            .expect("control");
        assert!(shaped.status().is_success());
        location(
            &self
                .http
                .get(authorization.clone())
                .send()
                .await
                .expect("authorize"),
        )
    }

    /// The status the OIDC server answered the code exchange of `authorization` with.
    async fn oidc_token_status(&self, authorization: &Url) -> Option<u64> {
        let state = &query(authorization)["state"];
        let body: Value = self
            .http
            .get(with_query(
                &format!("{}/_control/token", self.issuer),
                &[("state", state)],
            ))
            .send()
            .await
            .expect("control")
            .json()
            .await
            .expect("json");
        body["status"].as_u64()
    }

    /// Approves a GitHub authorization for the person `user` / `emails`: GitHub's authorize
    /// page redirecting to the callback with a code (whose PKCE challenge the double keeps).
    fn approve_at_github(&self, authorization: &Url, user: Value, emails: Value) -> Url {
        assert!(authorization.as_str().starts_with(&self.github.uri()));
        assert_eq!(authorization.path(), "/login/oauth/authorize");
        let q = query(authorization);
        assert_eq!(q["client_id"], GITHUB_CLIENT_ID);
        assert_eq!(q["scope"], "read:user user:email");
        let code = uuid::Uuid::now_v7().simple().to_string();
        CHALLENGES
            .lock()
            .expect("lock")
            .insert(code.clone(), q["code_challenge"].clone());
        *self.github_user.lock().expect("lock") = (user, emails);
        let mut callback = Url::parse(&q["redirect_uri"]).expect("redirect_uri");
        callback
            .query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", &q["state"]);
        callback
    }

    /// Follows the provider's redirect to Tollgate's callback; returns where Tollgate sends the
    /// browser next.
    async fn callback(&self, callback: &Url) -> Url {
        let url = format!(
            "{}{}?{}",
            self.base,
            callback.path(),
            callback.query().unwrap_or_default()
        );
        let response = self.http.get(url).send().await.expect("callback");
        assert_eq!(
            response
                .headers()
                .get("cache-control")
                .map(|v| v.as_bytes()),
            Some(&b"no-store"[..])
        );
        assert_eq!(
            response
                .headers()
                .get("referrer-policy")
                .map(|v| v.as_bytes()),
            Some(&b"no-referrer"[..])
        );
        location(&response)
    }

    async fn exchange(&self, code: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/auth/oauth/exchange", self.base))
            .json(&json!({ "code": code }))
            .send()
            .await
            .expect("exchange")
    }

    /// A whole OIDC sign-in with `claims`; returns the app's landing URL.
    async fn oidc_sign_in(&self, provider: &str, claims: Value) -> Url {
        let authorization = self.authorization(provider).await;
        let callback = self.approve_at_oidc(&authorization, claims, false).await;
        self.callback(&callback).await
    }

    /// A whole sign-in through to the exchange; returns the token body.
    async fn signed_in(&self, provider: &str, claims: Value) -> Value {
        let landing = self.oidc_sign_in(provider, claims).await;
        let code = code_of(&landing);
        let response = self.exchange(&code).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("tokens")
    }

    async fn audit_actions(&self, user: &str) -> Vec<(AuditAction, Option<String>)> {
        let id: UserId = user.parse().expect("user id");
        self.accounts
            .list_audit(&id, None, 50)
            .await
            .expect("audit")
            .into_iter()
            .map(|r| (r.action, r.detail))
            .collect()
    }

    async fn identities(&self, access_token: &str) -> Value {
        let response = self
            .http
            .get(format!("{}/auth/identities", self.base))
            .bearer_auth(access_token)
            .send()
            .await
            .expect("identities");
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("json")
    }

    async fn unlink(&self, access_token: &str, provider: &str) -> reqwest::Response {
        self.http
            .delete(format!("{}/auth/identities/{provider}", self.base))
            .bearer_auth(access_token)
            .send()
            .await
            .expect("unlink")
    }
}

/// The one-time code on the app's landing URL (and nothing that looks like a token).
fn code_of(landing: &Url) -> String {
    assert_eq!(
        format!(
            "{}://{}{}",
            landing.scheme(),
            landing.authority(),
            landing.path()
        ),
        APP,
        "back at redirect_to: {landing}"
    );
    let q = query(landing);
    assert!(!q.contains_key("error"), "the sign-in failed: {landing}");
    assert!(
        !landing.as_str().contains("access_token") && !landing.as_str().contains("refresh"),
        "no tokens in a URL: {landing}"
    );
    q.get("code").cloned().expect("code")
}

fn error_of(landing: &Url) -> String {
    query(landing)
        .get("error")
        .cloned()
        .unwrap_or_else(|| panic!("an error on {landing}"))
}

async fn problem_code(response: reqwest::Response) -> String {
    let body: Value = response.json().await.expect("problem json");
    body["code"].as_str().expect("code").to_owned()
}

// ---- the cases ----------------------------------------------------------------------------------

/// Google and a generic OIDC provider: the first sign-in creates a verified account, the
/// exchange answers a login's token body and refresh cookie, a second sign-in with the same
/// subject signs the same user in; audited by provider.
async fn oidc_sign_in_creates_the_account_then_signs_it_in(r: Rig) {
    for provider in ["google", "keycloak"] {
        let email = random_email();
        let claims = person(&email, true);
        let landing = r.oidc_sign_in(provider, claims.clone()).await;
        let response = r.exchange(&code_of(&landing)).await;
        assert_eq!(response.status(), StatusCode::OK);
        let cookie = response
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .expect("refresh cookie")
            .to_owned();
        assert!(cookie.starts_with("tollgate_refresh=") && cookie.contains("HttpOnly"));
        let body: Value = response.json().await.expect("tokens");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["user"]["email"], email.as_str());
        assert_eq!(body["user"]["email_verified"], true);
        assert_eq!(body["user"]["name"], "Ada Lovelace");
        let user_id = body["user"]["id"].as_str().expect("id").to_owned();
        let who = r
            .state
            .verifier()
            .expect("verifier")
            .verify(body["access_token"].as_str().expect("token"))
            .await
            .expect("a valid access token");
        assert_eq!(who.user_id.to_string(), user_id);
        let listed = r
            .identities(body["access_token"].as_str().expect("token"))
            .await;
        assert_eq!(listed["has_password"], false);
        assert_eq!(listed["identities"][0]["provider"], provider);
        assert_eq!(listed["identities"][0]["email"], email.as_str());

        let again = r.signed_in(provider, claims).await;
        assert_eq!(again["user"]["id"], user_id.as_str(), "the same user");
        let actions = r.audit_actions(&user_id).await;
        let signed_in = actions
            .iter()
            .filter(|(a, d)| *a == AuditAction::OAuthSignIn && d.as_deref() == Some(provider))
            .count();
        assert_eq!(signed_in, 2, "{actions:?}");
        assert!(actions.contains(&(AuditAction::SignedUp, Some(provider.to_owned()))));
    }
}

/// GitHub: the numeric id is the subject and only the primary verified address counts.
async fn github_sign_in_uses_the_primary_verified_email(r: Rig) {
    let email = random_email();
    // GitHub ids are positive integers below 2^53 (JSON-safe); random so runs never collide.
    let random = uuid::Uuid::now_v7();
    let id = u64::from_le_bytes(random.as_bytes()[8..].try_into().expect("8 bytes")) >> 12;
    let user = json!({"login": "octocat", "id": id, "node_id": "MDQ6VXNlcjE=", "type": "User", "name": "The Octocat", "email": null});
    let emails = json!([
        {"email": random_email(), "primary": false, "verified": true, "visibility": null},
        {"email": email, "primary": true, "verified": true, "visibility": "private"},
    ]);
    let authorization = r.authorization("github").await;
    let callback = r.approve_at_github(&authorization, user.clone(), emails);
    let landing = r.callback(&callback).await;
    let response = r.exchange(&code_of(&landing)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("tokens");
    assert_eq!(body["user"]["email"], email.as_str());
    assert_eq!(body["user"]["email_verified"], true);
    let stored = r
        .accounts
        .get_identity("github", &id.to_string())
        .await
        .expect("read")
        .expect("linked by GitHub's numeric id");
    assert_eq!(
        stored.user_id.to_string(),
        body["user"]["id"].as_str().expect("id")
    );

    // A new GitHub account whose primary address is unverified gives no email: nothing created.
    let other = json!({"login": "hubot", "id": id + 1, "name": null});
    let unverified = json!([{"email": random_email(), "primary": true, "verified": false, "visibility": "public"}]);
    let authorization = r.authorization("github").await;
    let callback = r.approve_at_github(&authorization, other, unverified);
    assert_eq!(error_of(&r.callback(&callback).await), "email_required");
    assert_eq!(
        r.accounts
            .get_identity("github", &(id + 1).to_string())
            .await
            .expect("read"),
        None
    );

    // A code GitHub refuses (its PKCE verifier does not match) ends on the app with an error.
    let authorization = r.authorization("github").await;
    let mut callback = r.approve_at_github(&authorization, user, json!([]));
    let forged: Vec<(String, String)> = callback
        .query_pairs()
        .map(|(k, v)| {
            if k == "code" {
                (k.into_owned(), "not-a-code-github-issued".to_owned())
            } else {
                (k.into_owned(), v.into_owned())
            }
        })
        .collect();
    callback.query_pairs_mut().clear().extend_pairs(forged);
    assert_eq!(error_of(&r.callback(&callback).await), "provider_error");
}

/// A callback's state works once: the replay of a completed callback is refused.
async fn state_replay_is_refused(r: Rig) {
    let authorization = r.authorization("google").await;
    let callback = r
        .approve_at_oidc(&authorization, person(&random_email(), true), false)
        .await;
    code_of(&r.callback(&callback).await);
    let replay = r.callback(&callback).await;
    assert_eq!(error_of(&replay), "invalid_state");
    assert_eq!(replay.as_str().split('?').next(), Some(APP));
}

/// A callback without a matching state — none, unknown, another provider's, expired — is
/// refused, as is a provider's `access_denied`; each ends on the app with an error, never a 500.
async fn a_callback_without_a_matching_state_is_refused(r: Rig) {
    let issuer = tollgate::Config::default().auth.issuer;
    for query in [
        "code=abc",
        "code=abc&state=q5yE2Vd0V8m3kQ8wW5nqk1b8rVhZr0m2pX7o4sLx9aA",
        "%zz=&&=",
    ] {
        let callback =
            Url::parse(&format!("{issuer}/auth/oauth/google/callback?{query}")).expect("url");
        let landing = r.callback(&callback).await;
        assert_eq!(error_of(&landing), "invalid_state", "{query}");
        assert_eq!(
            landing.as_str().split('?').next(),
            Some(APP),
            "the allowlist's first entry"
        );
    }
    // Google's state presented at keycloak's callback.
    let authorization = r.authorization("google").await;
    let callback = r
        .approve_at_oidc(&authorization, person(&random_email(), true), false)
        .await;
    let elsewhere = Url::parse(
        &callback
            .as_str()
            .replace("/oauth/google/", "/oauth/keycloak/"),
    )
    .expect("url");
    assert_eq!(error_of(&r.callback(&elsewhere).await), "invalid_state");
    // And spent by that attempt: the right callback no longer works either.
    assert_eq!(error_of(&r.callback(&callback).await), "invalid_state");

    // Expired: more than 10 minutes between start and callback.
    let authorization = r.authorization("google").await;
    let callback = r
        .approve_at_oidc(&authorization, person(&random_email(), true), false)
        .await;
    r.clock.advance(601);
    assert_eq!(error_of(&r.callback(&callback).await), "invalid_state");

    // The person declined at the provider.
    let authorization = r.authorization("keycloak").await;
    let state = query(&authorization)["state"].clone();
    let declined = Url::parse(&format!(
        "{issuer}/auth/oauth/keycloak/callback?error=access_denied&state={state}"
    ))
    .expect("url");
    assert_eq!(error_of(&r.callback(&declined).await), "access_denied");
}

/// With a verifier that does not match the challenge, the provider itself refuses the code.
async fn a_wrong_pkce_verifier_is_refused_by_the_server(r: Rig) {
    let email = random_email();
    let authorization = r.authorization("google").await;
    let hash = tollgate::auth::state_hash(&query(&authorization)["state"]);
    let mut stored = r
        .accounts
        .get_oauth_state(&hash)
        .await
        .expect("read")
        .expect("the state is stored");
    // Someone who could swap the verifier (it never leaves Tollgate) still gets nowhere.
    stored.pkce_verifier = "x".repeat(43);
    r.accounts
        .commit(&[Change::SpendOAuthState { hash: hash.clone() }])
        .await
        .expect("spend");
    r.accounts
        .commit(&[Change::PutOAuthState(stored)])
        .await
        .expect("put");
    let callback = r
        .approve_at_oidc(&authorization, person(&email, true), false)
        .await;
    assert_eq!(error_of(&r.callback(&callback).await), "provider_error");
    assert_eq!(
        r.oidc_token_status(&authorization).await,
        Some(400),
        "the OIDC server refused the exchange"
    );
    assert_eq!(
        r.users.find_user_id_by_email(&email).await.expect("read"),
        None
    );
}

/// ID tokens that do not verify — tampered after signing, for another audience, with another
/// nonce, expired, from another issuer — sign nobody in and create nothing.
async fn id_tokens_that_do_not_verify_are_refused(r: Rig) {
    let now = tollgate_tests::now();
    for (what, overrides, tamper) in [
        ("tampered", json!({}), true),
        ("wrong audience", json!({"aud": "someone-else"}), false),
        ("wrong nonce", json!({"nonce": "not-the-nonce"}), false),
        (
            "expired",
            json!({"exp": now - 3600, "iat": now - 7200}),
            false,
        ),
        (
            "wrong issuer",
            json!({"iss": "https://accounts.example.com"}),
            false,
        ),
    ] {
        let email = random_email();
        let mut claims = person(&email, true);
        claims
            .as_object_mut()
            .expect("object")
            .extend(overrides.as_object().expect("object").clone());
        let authorization = r.authorization("google").await;
        let callback = r.approve_at_oidc(&authorization, claims, tamper).await;
        assert_eq!(
            error_of(&r.callback(&callback).await),
            "provider_error",
            "{what}"
        );
        assert_eq!(
            r.oidc_token_status(&authorization).await,
            Some(200),
            "{what}: the server issued it; Tollgate refused it"
        );
        assert_eq!(
            r.users.find_user_id_by_email(&email).await.expect("read"),
            None,
            "{what}"
        );
    }
}

/// `redirect_to` off the allowlist is refused with 400 before anything leaves Tollgate.
async fn redirect_to_outside_the_allowlist_is_refused_before_leaving(r: Rig) {
    for target in [
        "https://evil.test/auth/done",
        "http://app.test.evil.test/auth/done",
        "http://app.test:8080/auth/done",
        "https://app.test/auth/done",
        "http://app.test/auth/done-not",
        "http://app.test/other",
        "http://user@app.test/auth/done",
        "//evil.test/auth/done",
        "javascript:alert(1)",
    ] {
        let response = r.start("google", target).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{target}");
        assert!(response.headers().get("location").is_none(), "{target}");
        assert_eq!(
            problem_code(response).await,
            "redirect_not_allowed",
            "{target}"
        );
    }
    // A deeper path under an entry, with its own query, is allowed and kept.
    let url = location(
        &r.start("google", "http://app.test/auth/done/inner?tab=2")
            .await,
    );
    assert!(url.as_str().starts_with(&r.issuer));
    // An unknown provider is 404 and nothing starts.
    let response = r.start("myspace", APP).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(problem_code(response).await, "unknown_provider");
}

/// A provider-verified email links to the account that has it; an unverified one does not and
/// says why. Linking verifies the account's email, and since nobody had proven it, whoever set
/// its password loses that way in (pre-account hijacking).
async fn a_verified_email_links_and_an_unverified_one_does_not(r: Rig) {
    let email = random_email();
    let (user, tokens) = tollgate_tests::sign_up_as(&r.state, &email).await;
    assert!(!user.email_verified);

    let unverified = person(&email, false);
    let landing = r.oidc_sign_in("google", unverified.clone()).await;
    assert_eq!(error_of(&landing), "unverified_email");
    assert!(r
        .accounts
        .list_identities(&user.id)
        .await
        .expect("list")
        .is_empty());

    let body = r.signed_in("google", person(&email, true)).await;
    assert_eq!(
        body["user"]["id"],
        user.id.to_string().as_str(),
        "linked, not a new account"
    );
    assert_eq!(body["user"]["email_verified"], true);
    let stored = r
        .users
        .get_user(&user.id)
        .await
        .expect("read")
        .expect("user");
    assert!(stored.email_verified);
    assert!(
        stored.password_hash.is_none(),
        "the unproven password is dropped"
    );
    let refresh = r
        .auth()
        .refresh_token(&tokens.refresh_token, &Default::default())
        .await;
    assert!(refresh.is_err(), "the sessions from before the link ended");
    let actions = r.audit_actions(&user.id.to_string()).await;
    assert!(actions.contains(&(AuditAction::IdentityLinked, Some("google".into()))));

    // A verified account keeps its password when an identity links to it.
    let email = random_email();
    let (user, _) = tollgate_tests::sign_up_as(&r.state, &email).await;
    let verified = user.updated(user.created_at, |u| u.email_verified = true);
    r.accounts
        .commit(&[Change::UpdateUser {
            user: verified,
            expected_version: user.version,
        }])
        .await
        .expect("verify");
    let body = r.signed_in("keycloak", person(&email, true)).await;
    assert_eq!(body["user"]["id"], user.id.to_string().as_str());
    let stored = r
        .users
        .get_user(&user.id)
        .await
        .expect("read")
        .expect("user");
    assert!(stored.password_hash.is_some());
    let listed = r
        .identities(body["access_token"].as_str().expect("token"))
        .await;
    assert_eq!(listed["has_password"], true);
}

/// Without a password, the last identity cannot be unlinked; with a second one linked from the
/// signed-in session (mode=link), one of them can.
async fn unlinking_the_last_sign_in_method_is_refused(r: Rig) {
    let claims = person(&random_email(), true);
    let body = r.signed_in("google", claims.clone()).await;
    let token = body["access_token"].as_str().expect("token").to_owned();
    let user_id = body["user"]["id"].as_str().expect("id").to_owned();
    let response = r.unlink(&token, "google").await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(problem_code(response).await, "last_sign_in_method");
    let response = r.unlink(&token, "github").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(problem_code(response).await, "identity_not_found");

    // Link keycloak: without the bearer token link mode is refused; with it, the app gets the
    // URL as JSON and the callback says `linked=keycloak`.
    let link = |bearer: Option<&str>| {
        let mut request = r
            .http
            .get(with_query(
                &format!("{}/auth/oauth/keycloak", r.base),
                &[
                    ("redirect_to", "http://app.test/settings"),
                    ("mode", "link"),
                ],
            ))
            .header("accept", "application/json");
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(
        link(None).await.expect("start").status(),
        StatusCode::UNAUTHORIZED
    );
    let started = link(Some(&token)).await.expect("start");
    assert_eq!(started.status(), StatusCode::OK);
    let url: Value = started.json().await.expect("json");
    let authorization = Url::parse(url["url"].as_str().expect("url")).expect("url");
    // The keycloak identity has another email: linking does not depend on it.
    let callback = r
        .approve_at_oidc(&authorization, person(&random_email(), true), false)
        .await;
    let landing = r.callback(&callback).await;
    assert_eq!(
        landing.as_str(),
        "http://app.test/settings?linked=keycloak",
        "back on the settings page"
    );
    let listed = r.identities(&token).await;
    let providers: Vec<&str> = listed["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .map(|i| i["provider"].as_str().expect("provider"))
        .collect();
    assert_eq!(providers, ["google", "keycloak"]);

    assert_eq!(
        r.unlink(&token, "google").await.status(),
        StatusCode::NO_CONTENT
    );
    let response = r.unlink(&token, "keycloak").await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(problem_code(response).await, "last_sign_in_method");
    let actions = r.audit_actions(&user_id).await;
    assert!(actions.contains(&(AuditAction::IdentityLinked, Some("keycloak".into()))));
    assert!(actions.contains(&(AuditAction::IdentityUnlinked, Some("google".into()))));
    assert!(r
        .accounts
        .get_identity("google", claims["sub"].as_str().expect("sub"))
        .await
        .expect("read")
        .is_none());
    // Unlinked, the Google identity is linked to nobody; signing in with it again links it back
    // to the account, since Google vouches for the account's email.
    let again = r.signed_in("google", claims).await;
    assert_eq!(again["user"]["id"], user_id.as_str());
}

/// The exchange code works once, and only within 60 seconds.
async fn the_exchange_code_works_once_and_only_within_60_seconds(r: Rig) {
    let landing = r
        .oidc_sign_in("google", person(&random_email(), true))
        .await;
    let code = code_of(&landing);
    assert_eq!(r.exchange(&code).await.status(), StatusCode::OK);
    let again = r.exchange(&code).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert_eq!(problem_code(again).await, "invalid_exchange_code");

    let landing = r
        .oidc_sign_in("google", person(&random_email(), true))
        .await;
    let code = code_of(&landing);
    r.clock.advance(61);
    let late = r.exchange(&code).await;
    assert_eq!(late.status(), StatusCode::BAD_REQUEST);
    assert_eq!(problem_code(late).await, "invalid_exchange_code");
    for garbage in ["", "short", "q5yE2Vd0V8m3kQ8wW5nqk1b8rVhZr0m2pX7o4sLx9aA"] {
        let response = r.exchange(garbage).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{garbage:?}");
    }
}

/// An account a provider created without vouching for the email keeps that identity only until
/// the mailbox's owner proves the email through Tollgate's own mail (here a password reset):
/// then the identity is unlinked and its sessions end.
async fn an_unproven_identity_is_unlinked_when_the_mailbox_owner_resets_the_password(r: Rig) {
    let email = random_email();
    let body = r.signed_in("keycloak", person(&email, false)).await;
    assert_eq!(
        body["user"]["email_verified"], false,
        "created, email_verified from the provider"
    );
    let user_id: UserId = body["user"]["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    let refresh = body["refresh_token"].as_str().expect("refresh").to_owned();
    let user = r
        .users
        .get_user(&user_id)
        .await
        .expect("read")
        .expect("user");

    let link = LinkToken::generate().expect("random");
    let now = r.clock_now();
    r.accounts
        .commit(&[Change::PutToken(OneTimeToken {
            hash: link.hash.clone(),
            purpose: TokenPurpose::ResetPassword,
            user_id: Some(user_id),
            email: user.email().normalized().to_owned(),
            epoch: user.session_epoch,
            note: None,
            created_at: now,
            expires_at: now + TokenPurpose::ResetPassword.lifetime(),
        })])
        .await
        .expect("a reset link");
    let reset = r
        .http
        .post(format!("{}/auth/password/reset", r.base))
        .json(&json!({"token": link.token, "password": "a brand new passphrase 42"}))
        .send()
        .await
        .expect("reset");
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert!(r
        .accounts
        .list_identities(&user_id)
        .await
        .expect("list")
        .is_empty());
    assert!(r
        .auth()
        .refresh_token(&refresh, &Default::default())
        .await
        .is_err());
    let actions = r.audit_actions(&user_id.to_string()).await;
    assert!(actions.contains(&(AuditAction::IdentityUnlinked, Some("keycloak".into()))));
}

impl Rig {
    fn clock_now(&self) -> i64 {
        tollgate::Clock::now(self.clock.as_ref())
    }
}

macro_rules! cases {
    ($backend:ident, $kind:expr, [$($case:ident),* $(,)?]) => {
        mod $backend {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(r) = rig($kind).await else { return };
                    super::$case(r).await;
                }
            )*
        }
    };
}

macro_rules! all_cases {
    ($backend:ident, $kind:expr) => {
        cases!(
            $backend,
            $kind,
            [
                oidc_sign_in_creates_the_account_then_signs_it_in,
                github_sign_in_uses_the_primary_verified_email,
                state_replay_is_refused,
                a_callback_without_a_matching_state_is_refused,
                a_wrong_pkce_verifier_is_refused_by_the_server,
                id_tokens_that_do_not_verify_are_refused,
                redirect_to_outside_the_allowlist_is_refused_before_leaving,
                a_verified_email_links_and_an_unverified_one_does_not,
                unlinking_the_last_sign_in_method_is_refused,
                the_exchange_code_works_once_and_only_within_60_seconds,
                an_unproven_identity_is_unlinked_when_the_mailbox_owner_resets_the_password,
            ]
        );
    };
}

all_cases!(embedded, Backend::Embedded);
all_cases!(dynamodb, Backend::Dynamo);
