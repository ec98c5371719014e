//! The `account` Lambda: serves [`account::routes`] through API Gateway (HTTP API, payload v2),
//! built with [`account::NEEDS`] only.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tollgate::lambda::run_http(account::routes(), account::NEEDS).await
}
