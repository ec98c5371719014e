//! The `oauth` Lambda: serves [`oauth::routes`] through API Gateway (HTTP API, payload v2),
//! built with [`oauth::NEEDS`] only.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tollgate::lambda::run_http(oauth::routes(), oauth::NEEDS).await
}
