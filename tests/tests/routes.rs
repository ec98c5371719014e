//! Each function's `ROUTES` constant (what the SAM template is checked against) agrees with what
//! its router actually serves, and no two functions claim the same route.

use axum::body::Body;
use http_body_util::BodyExt;
use std::collections::HashSet;
use tower::ServiceExt;

/// One function: its name, declared routes and router.
type Function = (
    &'static str,
    &'static [(&'static str, &'static str)],
    axum::Router<tollgate::AppState>,
);

/// Every function.
fn functions() -> Vec<Function> {
    vec![
        ("signup", signup::ROUTES, signup::routes()),
        ("login", login::ROUTES, login::routes()),
        (
            "token-refresh",
            token_refresh::ROUTES,
            token_refresh::routes(),
        ),
        ("jwks", jwks::ROUTES, jwks::routes()),
        (
            "subscription-lookup",
            subscription_lookup::ROUTES,
            subscription_lookup::routes(),
        ),
        ("checkout", checkout::ROUTES, checkout::routes()),
        (
            "webhook-ingest",
            webhook_ingest::ROUTES,
            webhook_ingest::routes(),
        ),
    ]
}

#[tokio::test]
async fn declared_routes_are_served_and_unique() {
    let mut seen = HashSet::new();
    for (name, routes, router) in functions() {
        let (state, _) = tollgate_tests::state_at(0);
        let app = tollgate::http_app(router, state);
        for (method, path) in routes {
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
            assert!(
                status != 404 && status != 405,
                "{name}: {method} {path} is declared but answered {status}: {}",
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
