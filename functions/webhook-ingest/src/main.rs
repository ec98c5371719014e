//! The `webhook-ingest` Lambda: serves [`webhook_ingest::routes`] through API Gateway (HTTP API, payload v2),
//! built with [`webhook_ingest::NEEDS`] only.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tollgate::lambda::run_http(webhook_ingest::routes(), webhook_ingest::NEEDS).await
}
