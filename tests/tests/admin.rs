//! Issue #13's admin API over HTTP, on both stores: every admin route refuses a non-admin with
//! 403; the operator's `grant-admin` makes the first admin; find by email, page through users,
//! view one; disable → the user's refresh token, access token at `/auth/me` and API key are
//! refused at once; credits granted appear in the user's ledger and audit with the admin's id;
//! roles; resync without a subscription.

use reqwest::StatusCode;
use serde_json::{json, Value};
use tollgate::domain::ApiKeyKind;
use tollgate::AppState;
use tollgate_tests::Backend;

struct Rig {
    base: String,
    http: reqwest::Client,
    state: AppState,
    outbound: std::sync::Arc<dyn tollgate::store::OutboundStore>,
}

async fn rig(backend: Backend) -> Option<Rig> {
    let (mut components, _, _) = tollgate_tests::components_at(tollgate_tests::now());
    if let Backend::Dynamo = backend {
        // Paging through users reads the whole table: a table of this case's own.
        let store = std::sync::Arc::new(tollgate_tests::dynamo_store_of_its_own("admin").await?);
        tollgate_tests::use_store(&mut components, store);
    }
    let state = AppState::assemble(&components, tollgate::Needs::ALL);
    Some(Rig {
        base: tollgate_tests::spawn_app(state.clone()).await,
        http: reqwest::Client::new(),
        state,
        outbound: components.outbound_store.clone(),
    })
}

impl Rig {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(bearer);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.expect("request");
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }
}

async fn non_admins_are_refused_on_every_admin_route(backend: Backend) {
    let Some(rig) = rig(backend).await else {
        return;
    };
    let (user, tokens) = tollgate_tests::sign_up(&rig.state).await;
    for (method, route) in admin::ROUTES {
        let path = route.replace("{id}", &user.id.to_string());
        let body = match *route {
            admin::CREDITS_PATH => Some(json!({"amount": 10, "reason": "self-service"})),
            admin::ROLES_PATH => Some(json!({"roles": ["admin"]})),
            _ => None,
        };
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let (status, problem) = rig
            .call(method.clone(), &path, &tokens.access_token, body)
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("admin_required")),
            "{method} {path}: {problem}"
        );
    }
    let (ops, ops_tokens) = tollgate_tests::sign_up(&rig.state).await;
    rig.state
        .admin()
        .expect("admin")
        .grant_admin_role(&ops.email)
        .await
        .expect("grant-admin");
    let (_, view) = rig
        .call(
            reqwest::Method::GET,
            &format!("/admin/users/{}", user.id),
            &ops_tokens.access_token,
            None,
        )
        .await;
    assert_eq!(
        view["user"]["roles"],
        json!([]),
        "the refused calls changed nothing"
    );
    assert_eq!(view["credit_balance"], 0);
    // The role is also a claim of the access tokens issued after the grant (none before).
    let roles_claim = |token: &str| -> Value {
        use base64::Engine as _;
        let payload = token.split('.').nth(1).expect("a JWT");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64url");
        serde_json::from_slice::<Value>(&bytes).expect("claims")["roles"].clone()
    };
    assert_eq!(roles_claim(&ops_tokens.access_token), Value::Null);
    let refreshed = rig
        .state
        .auth()
        .expect("accounts")
        .refresh_token(&ops_tokens.refresh_token, &Default::default())
        .await
        .expect("refresh");
    assert_eq!(roles_claim(&refreshed.access_token), json!(["admin"]));
    assert_eq!(roles_claim(&tokens.access_token), Value::Null);
}

async fn an_admin_finds_views_disables_and_grants_credits(backend: Backend) {
    let Some(rig) = rig(backend).await else {
        return;
    };
    let admin_api = rig.state.admin().expect("admin");
    let (ops, ops_tokens) = tollgate_tests::sign_up(&rig.state).await;
    admin_api
        .grant_admin_role(&ops.email.to_uppercase())
        .await
        .expect("grant-admin");
    // The role is read from the stored user on every request: a token minted before works.
    let ops_token = ops_tokens.access_token;
    let (ada, ada_tokens) = tollgate_tests::sign_up(&rig.state).await;
    let key = rig
        .state
        .auth()
        .expect("accounts")
        .create_api_key(&ada.id, ApiKeyKind::User, "cli", None, &Default::default())
        .await
        .expect("key");
    let ada_path = format!("/admin/users/{}", ada.id);

    let (status, found) = rig
        .call(
            reqwest::Method::GET,
            &format!("/admin/users?email={}", ada.email.to_uppercase()),
            &ops_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["users"][0]["id"], ada.id.to_string());
    let (_, none) = rig
        .call(
            reqwest::Method::GET,
            "/admin/users?email=nobody%40example.com",
            &ops_token,
            None,
        )
        .await;
    assert_eq!(none["users"], json!([]));
    for _ in 0..2 {
        tollgate_tests::sign_up(&rig.state).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("?limit=2&before={c}"),
            None => "?limit=2".to_owned(),
        };
        let (status, page) = rig
            .call(
                reqwest::Method::GET,
                &format!("/admin/users{query}"),
                &ops_token,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let users = page["users"].as_array().expect("users");
        assert!(users.len() <= 2);
        seen.extend(
            users
                .iter()
                .map(|u| u["id"].as_str().expect("id").to_owned()),
        );
        match page["next_before"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no user twice: {seen:?}");
    assert!(
        seen.len() >= 4 && seen.contains(&ada.id.to_string()),
        "every user paged: {seen:?}"
    );

    let (status, granted) = rig
        .call(
            reqwest::Method::POST,
            &format!("{ada_path}/credits"),
            &ops_token,
            Some(json!({"amount": 250, "reason": "goodwill for the outage"})),
        )
        .await;
    assert_eq!(
        (status, granted["balance"].as_i64()),
        (StatusCode::OK, Some(250))
    );
    // The customer's app hears of it: one `credits.changed` of +250 for ada.
    let changed: Vec<_> = rig
        .outbound
        .list_outbound(tollgate::domain::OutboundStatus::Pending, 100_000)
        .await
        .expect("list")
        .into_iter()
        .filter(|e| {
            e.user_id == ada.id && e.event_type == tollgate::domain::OutboundType::CreditsChanged
        })
        .collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert!(
        changed[0].payload.contains(r#""amount":250"#),
        "{}",
        changed[0].payload
    );
    let (status, refused) = rig
        .call(
            reqwest::Method::POST,
            &format!("{ada_path}/credits"),
            &ops_token,
            Some(json!({"amount": -251, "reason": "too much"})),
        )
        .await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (StatusCode::CONFLICT, Some("insufficient_credits"))
    );
    let (_, history) = rig
        .call(
            reqwest::Method::GET,
            "/billing/credits",
            &ada_tokens.access_token,
            None,
        )
        .await;
    assert_eq!(history["balance"], 250);
    assert_eq!(history["entries"][0]["kind"], "adjustment");
    assert_eq!(history["entries"][0]["note"], "goodwill for the outage");

    let (status, view) = rig
        .call(reqwest::Method::GET, &ada_path, &ops_token, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["user"]["email"], ada.email.as_str());
    assert_eq!(view["credit_balance"], 250);
    assert_eq!(view["credit_entries"][0]["actor"], ops.id.to_string());
    assert_eq!(view["api_keys"][0]["id"], key.key.key_id.as_str());
    assert_eq!(view["subscription"]["plan"], "free");
    assert!(!view["sessions"].as_array().expect("sessions").is_empty());
    let granted_audit = view["audit"]
        .as_array()
        .expect("audit")
        .iter()
        .find(|a| a["action"] == "credits_granted")
        .cloned()
        .expect("the grant is audited");
    assert_eq!(granted_audit["actor"], ops.id.to_string());

    // Before: the user's credentials work.
    let me = |bearer: String| {
        let (http, base) = (rig.http.clone(), rig.base.clone());
        async move {
            http.get(format!("{base}/auth/me"))
                .bearer_auth(bearer)
                .send()
                .await
                .expect("me")
                .status()
        }
    };
    assert_eq!(me(ada_tokens.access_token.clone()).await, StatusCode::OK);
    assert_eq!(me(key.secret.clone()).await, StatusCode::OK);
    let (status, disabled) = rig
        .call(
            reqwest::Method::POST,
            &format!("{ada_path}/disable"),
            &ops_token,
            None,
        )
        .await;
    assert_eq!(
        (status, disabled["status"].as_str()),
        (StatusCode::OK, Some("disabled"))
    );
    assert_eq!(
        me(ada_tokens.access_token.clone()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(me(key.secret.clone()).await, StatusCode::FORBIDDEN);
    let refreshed = rig
        .http
        .post(format!("{}/auth/refresh", rig.base))
        .json(&json!({"refresh_token": ada_tokens.refresh_token}))
        .send()
        .await
        .expect("refresh");
    assert!(
        refreshed.status().is_client_error(),
        "refresh refused: {}",
        refreshed.status()
    );
    let (_, view) = rig
        .call(reqwest::Method::GET, &ada_path, &ops_token, None)
        .await;
    assert!(
        view["sessions"]
            .as_array()
            .expect("sessions")
            .iter()
            .all(|s| s["revoked"] == true),
        "{view}"
    );
    let audit = view["audit"].as_array().expect("audit");
    assert!(
        audit
            .iter()
            .any(|a| a["action"] == "account_disabled" && a["actor"] == ops.id.to_string()),
        "{audit:?}"
    );
    let (status, _) = rig
        .call(
            reqwest::Method::POST,
            &format!("{ada_path}/enable"),
            &ops_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        me(key.secret.clone()).await,
        StatusCode::OK,
        "keys work again"
    );

    let (status, self_disable) = rig
        .call(
            reqwest::Method::POST,
            &format!("/admin/users/{}/disable", ops.id),
            &ops_token,
            None,
        )
        .await;
    assert_eq!(
        (status, self_disable["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"))
    );
    let (status, roles) = rig
        .call(
            reqwest::Method::PUT,
            &format!("{ada_path}/roles"),
            &ops_token,
            Some(json!({"roles": ["support", "admin", "support"]})),
        )
        .await;
    assert_eq!(
        (status, roles["roles"].clone()),
        (StatusCode::OK, json!(["admin", "support"]))
    );
    let (status, resync) = rig
        .call(
            reqwest::Method::POST,
            &format!("{ada_path}/billing/resync"),
            &ops_token,
            None,
        )
        .await;
    assert_eq!(
        (status, resync["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("no_subscription"))
    );
    let (status, missing) = rig
        .call(
            reqwest::Method::GET,
            "/admin/users/not-a-user-id",
            &ops_token,
            None,
        )
        .await;
    assert_eq!(
        (status, missing["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("user_not_found"))
    );
}

tollgate_tests::on_both_stores!(
    non_admins_are_refused_on_every_admin_route,
    an_admin_finds_views_disables_and_grants_credits,
);
