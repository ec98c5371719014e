//! Every file under `events/` is a real API Gateway HTTP API (payload v2) event. Each is fed
//! through its function's router via `lambda_http`'s own event parsing, and the status must match
//! the one in the file name (`<case>.<status>.json`). `${ACCESS_TOKEN}` and `${REFRESH_TOKEN}` are
//! replaced by tokens of a freshly signed-up `ada@example.com`.

use axum::Router;
use http_body_util::BodyExt;
use std::path::{Path, PathBuf};
use tollgate::AppState;
use tower::ServiceExt;

fn function_routes(name: &str) -> Router<AppState> {
    match name {
        "signup" => signup::routes(),
        "login" => login::routes(),
        "token-refresh" => token_refresh::routes(),
        "jwks" => jwks::routes(),
        "subscription-lookup" => subscription_lookup::routes(),
        other => panic!("events/{other}: no such function"),
    }
}

fn event_files() -> Vec<(String, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    let mut files = Vec::new();
    for dir in std::fs::read_dir(&root).expect("events/ exists") {
        let dir = dir.expect("entry").path();
        if !dir.is_dir() {
            continue;
        }
        let function = dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_owned();
        for file in std::fs::read_dir(&dir).expect("function dir") {
            let path = file.expect("entry").path();
            if path.extension().and_then(|e| e.to_str()) == Some("json") {
                files.push((function.clone(), path));
            }
        }
    }
    files.sort();
    files
}

#[tokio::test]
async fn every_event_sample_gets_the_status_in_its_name() {
    let files = event_files();
    assert!(
        files.len() >= 20,
        "expected the event samples, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for (function, path) in &files {
        let name = path.file_stem().and_then(|n| n.to_str()).expect("stem");
        let expected: u16 = name
            .rsplit('.')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{name}: no status in name"));
        let (state, _) = tollgate_tests::state_at(time_now());
        let (_, tokens) = state
            .auth()
            .signup("ada@example.com", tollgate_tests::PASSWORD.to_owned(), None)
            .await
            .expect("seed ada");
        let raw = std::fs::read_to_string(path)
            .expect("read event")
            .replace("${ACCESS_TOKEN}", &tokens.access_token)
            .replace("${REFRESH_TOKEN}", &tokens.refresh_token);
        let request = lambda_http::request::from_str(&raw)
            .unwrap_or_else(|e| panic!("{}: not an API Gateway event: {e}", path.display()));
        let app = tollgate::http_app(function_routes(function), state);
        let response = app.oneshot(request).await.expect("infallible");
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        if status != expected {
            failures.push(format!(
                "{}: expected {expected}, got {status}: {}",
                path.display(),
                String::from_utf8_lossy(&body)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn time_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
