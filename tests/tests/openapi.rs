//! The API contract: `docs/openapi.json` (what `GET /openapi.json` serves) is exactly what the
//! code generates, its operations are exactly the union of the functions' `ROUTES`, and it is a
//! well-formed OpenAPI 3.1 document whose references and security requirements all resolve.
//! After changing a route: `cargo run -p dev-server --bin openapi > docs/openapi.json`.

use std::collections::BTreeSet;

fn committed() -> serde_json::Value {
    serde_json::from_str(web::DOCUMENT).expect("docs/openapi.json is JSON")
}

#[test]
fn the_committed_document_is_what_the_code_generates() {
    let generated = dev_server::openapi::document_json();
    assert!(
        web::DOCUMENT == generated,
        "docs/openapi.json is stale: run `cargo run -p dev-server --bin openapi > docs/openapi.json`"
    );
}

#[test]
fn the_document_has_exactly_the_routes_of_the_functions() {
    let doc = committed();
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("path item")
                .keys()
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    let routed: BTreeSet<(String, String)> = tollgate_tests::functions()
        .iter()
        .flat_map(|f| f.routes.iter())
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(documented, routed);
}

#[test]
fn every_operation_answers_problems_and_every_reference_resolves() {
    let doc = committed();
    let components = &doc["components"];
    let schemes: BTreeSet<&str> = components["securitySchemes"]
        .as_object()
        .expect("security schemes")
        .keys()
        .map(String::as_str)
        .collect();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let responses = op["responses"].as_object().expect("responses");
            // A success is a 2xx, or the 302 of a redirecting route (the OAuth callback).
            assert!(
                responses
                    .keys()
                    .any(|s| s.starts_with('2') || s.as_str() == "302"),
                "{method} {path}: no success response"
            );
            for requirement in op["security"].as_array().into_iter().flatten() {
                for name in requirement.as_object().expect("requirement").keys() {
                    assert!(
                        schemes.contains(name.as_str()),
                        "{method} {path}: unknown scheme {name}"
                    );
                }
            }
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    let text = response.to_string();
                    assert!(
                        text.contains("application/problem+json")
                            || text.contains("#/components/responses/"),
                        "{method} {path} {status}: an error answer must be problem+json"
                    );
                }
            }
        }
    }
    // Every $ref points at something that exists.
    let text = doc.to_string();
    for piece in text.split("\"$ref\":\"#/").skip(1) {
        let pointer = format!("/{}", &piece[..piece.find('"').expect("end of ref")]);
        assert!(doc.pointer(&pointer).is_some(), "dangling $ref {pointer}");
    }
}
