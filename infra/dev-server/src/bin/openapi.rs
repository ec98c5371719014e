//! Prints the OpenAPI document of every route (`cargo run -p dev-server --bin openapi >
//! docs/openapi.json`).
fn main() {
    print!("{}", dev_server::openapi::document_json());
}
