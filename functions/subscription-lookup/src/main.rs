//! The `subscription-lookup` Lambda: serves [`subscription_lookup::routes`] through API Gateway (HTTP API, payload v2),
//! built with [`subscription_lookup::NEEDS`] only.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tollgate::lambda::run_http(subscription_lookup::routes(), subscription_lookup::NEEDS).await
}
