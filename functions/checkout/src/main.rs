//! The `checkout` Lambda: serves [`checkout::routes`] through API Gateway (HTTP API, payload v2).
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tollgate::lambda::run_http(checkout::routes()).await
}
