//! The `usage` Lambda: serves [`usage::routes`] through API Gateway (HTTP API, payload v2),
//! built with [`usage::NEEDS`] only.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tollgate::lambda::run_http(usage::routes(), usage::NEEDS).await
}
