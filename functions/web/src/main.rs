//! The `web` Lambda: serves [`web::routes`] through API Gateway (HTTP API, payload v2), built
//! with [`web::NEEDS`] (nothing).
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tollgate::lambda::run_http(web::routes(), web::NEEDS).await
}
