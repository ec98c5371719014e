//! The `jwks` Lambda: serves [`jwks::routes`] through API Gateway (HTTP API, payload v2),
//! built with [`jwks::NEEDS`] only.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tollgate::lambda::run_http(jwks::routes(), jwks::NEEDS).await
}
