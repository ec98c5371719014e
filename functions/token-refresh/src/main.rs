//! The `token-refresh` Lambda: serves [`token_refresh::routes`] through API Gateway (HTTP API, payload v2).
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tollgate::lambda::run_http(token_refresh::routes()).await
}
