//! The `reconciler` Lambda: a scheduled event in, the reconciler's reports out.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tollgate::lambda::run_reconciler().await
}
