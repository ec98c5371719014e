//! The `login` Lambda: serves [`login::routes`] through API Gateway (HTTP API, payload v2),
//! built with [`login::NEEDS`] only.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tollgate::lambda::run_http(login::routes(), login::NEEDS).await
}
