//! The `token-refresh` Lambda: serves [`token_refresh::routes`] through API Gateway (HTTP API, payload v2),
//! built with [`token_refresh::NEEDS`] only.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tollgate::lambda::run_http(token_refresh::routes(), token_refresh::NEEDS).await
}
