//! The `checkout` Lambda: serves [`checkout::routes`] through API Gateway (HTTP API, payload v2),
//! built with [`checkout::NEEDS`] only.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tollgate::lambda::run_http(checkout::routes(), checkout::NEEDS).await
}
