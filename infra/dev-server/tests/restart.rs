//! The real `dev-server` binary keeps accounts across a restart (SIGTERM flushes the store).

mod common;

use common::{free_port, start, terminate};
use serde_json::{json, Value};

#[tokio::test]
async fn accounts_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("tollgate-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let creds = json!({"email": "restart@example.com", "password": "correct horse battery staple"});

    let server = start(&dir, port).await;
    let r = http
        .post(format!("{base}/auth/signup"))
        .json(&creds)
        .send()
        .await
        .expect("signup");
    assert_eq!(r.status(), 201);
    let jwks1: Value = http
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    terminate(server);

    let server = start(&dir, port).await;
    let r = http
        .post(format!("{base}/auth/login"))
        .json(&creds)
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 200, "the account is still there");
    let jwks2: Value = http
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    assert_eq!(jwks1, jwks2, "the dev signing key is kept");
    let r = http
        .post(format!("{base}/auth/signup"))
        .json(&creds)
        .send()
        .await
        .expect("signup");
    assert_eq!(r.status(), 409, "the email claim is still there");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
