//! Request telemetry: every answer carries its request id in `x-request-id`; in Lambda that id is
//! API Gateway's `requestContext.requestId`; a 5xx problem body carries the same id (and nothing
//! of the cause), while a 4xx body carries none.

use http_body_util::BodyExt;
use tollgate::{AppState, Needs};
use tower::ServiceExt;

async fn body(response: axum::response::Response) -> serde_json::Value {
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    serde_json::from_slice(&bytes).expect("JSON")
}

#[tokio::test]
async fn a_lambda_answer_carries_api_gateways_request_id_and_a_5xx_body_quotes_it() {
    let (components, _, _) = tollgate_tests::components_at(tollgate_tests::now());
    // login's route on a state built without accounts: the handler's part is missing, a 500.
    let app = tollgate::lambda::app(
        login::routes(),
        AppState::assemble(&components, Needs::NOTHING),
    );
    let raw = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../events/login/ok.200.json"
    ))
    .expect("sample");
    let request = lambda_http::request::from_str(&raw).expect("an API Gateway event");
    let response = app.oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), 500);
    let id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert_eq!(
        id.as_deref(),
        Some("Y2hlY2stcmVxdWVzdC1pZA="),
        "API Gateway's requestId"
    );
    let problem = body(response).await;
    assert_eq!(problem["code"], "internal");
    assert_eq!(problem["request_id"], "Y2hlY2stcmVxdWVzdC1pZA=");
    assert!(
        !problem.to_string().contains("accounts"),
        "the cause stays in the log: {problem}"
    );
}

#[tokio::test]
async fn a_local_answer_gets_a_fresh_request_id_and_a_4xx_body_none() {
    let (components, _, _) = tollgate_tests::components_at(tollgate_tests::now());
    let app = tollgate::http_app(
        login::routes(),
        AppState::assemble(&components, login::NEEDS),
    );
    let request = http::Request::builder()
        .method("POST")
        .uri("/auth/login")
        .header("content-type", "application/json")
        .body(axum::body::Body::from("{"))
        .expect("request");
    let response = app.oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), 400);
    let id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("an id");
    assert!(uuid::Uuid::try_parse(id).is_ok(), "a UUID: {id}");
    assert!(body(response).await.get("request_id").is_none());
}
