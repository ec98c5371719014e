//! The OpenAPI 3.1 document of every route: the shared frame (`tollgate::http::openapi::Frame`:
//! info, security schemes, problem schema and responses) with every function's own part merged
//! in. `cargo run -p dev-server --bin openapi > docs/openapi.json` writes it; the `web` function
//! serves the committed file, and `tests/tests/openapi.rs` checks that the file is what this
//! generates and that its operations are exactly the functions' `ROUTES`.

use utoipa::OpenApi as _;

/// The whole document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = tollgate::http::openapi::Frame::openapi();
    for part in [
        signup::openapi(),
        login::openapi(),
        account::openapi(),
        oauth::openapi(),
        token_refresh::openapi(),
        jwks::openapi(),
        subscription_lookup::openapi(),
        checkout::openapi(),
        webhook_ingest::openapi(),
        web::openapi(),
        whoami::openapi(),
        usage::openapi(),
        admin::openapi(),
    ] {
        doc.merge(part);
    }
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// The document as `docs/openapi.json` holds it: pretty JSON with a final newline.
///
/// # Panics
/// Never: the document is plain data.
pub fn document_json() -> String {
    let mut text = document()
        .to_pretty_json()
        .expect("an OpenAPI document serialises");
    text.push('\n');
    text
}
