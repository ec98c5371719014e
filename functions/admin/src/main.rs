//! The `admin` Lambda: serves [`admin::routes`] through API Gateway (HTTP API, payload v2),
//! built with [`admin::NEEDS`] only.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tollgate::lambda::run_http(admin::routes(), admin::NEEDS).await
}
