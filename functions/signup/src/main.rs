//! The `signup` Lambda: serves [`signup::routes`] through API Gateway (HTTP API, payload v2),
//! built with [`signup::NEEDS`] only.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tollgate::lambda::run_http(signup::routes(), signup::NEEDS).await
}
