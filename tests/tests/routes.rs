//! Each function's `ROUTES` constant (what the SAM template, the OpenAPI document and the local
//! Lambda router are checked against) agrees with what its router serves — on a state built
//! from the function's own `NEEDS` — and no two functions claim the same route.

use axum::body::Body;
use http_body_util::BodyExt;
use std::collections::HashSet;
use tollgate::AppState;
use tower::ServiceExt;

#[tokio::test]
async fn declared_routes_are_served_and_unique() {
    let mut seen = HashSet::new();
    for f in tollgate_tests::functions() {
        let (components, _, _) = tollgate_tests::components_at(0);
        let app = tollgate::http_app((f.router)(), AppState::assemble(&components, f.needs));
        for (method, path) in f.routes {
            assert!(
                seen.insert((*method, *path)),
                "{method} {path} is declared twice"
            );
            let req = http::Request::builder()
                .method(*method)
                .uri(*path)
                .body(Body::empty())
                .expect("request");
            let res = app.clone().oneshot(req).await.expect("infallible");
            let status = res.status().as_u16();
            let body = res.into_body().collect().await.expect("body").to_bytes();
            // 500 here would be a part the function's NEEDS does not build. A handler may answer
            // 404 itself (`unknown_provider` for `{provider}`); the router's own 404 is
            // `not_found`.
            let code = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["code"].as_str().map(str::to_owned));
            let unrouted = status == 404 && code.as_deref() == Some("not_found");
            assert!(
                !unrouted && status != 405 && status != 500,
                "{}: {method} {path} is declared but answered {status}: {}",
                f.name,
                String::from_utf8_lossy(&body)
            );
        }
        // And an undeclared route is not served.
        let req = http::Request::builder()
            .uri("/definitely/not/declared")
            .body(Body::empty())
            .expect("request");
        assert_eq!(app.oneshot(req).await.expect("infallible").status(), 404);
    }
}
