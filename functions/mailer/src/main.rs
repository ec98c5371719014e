//! The `mailer` Lambda: the DynamoDB stream consumer of the mail outbox
//! (`tollgate::lambda::run_mailer`).
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tollgate::lambda::run_mailer().await
}
