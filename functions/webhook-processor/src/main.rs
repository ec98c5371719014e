//! The `webhook-processor` Lambda: SQS batches into the webhook processor, partial batch failures out.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tollgate::lambda::run_sqs().await
}
