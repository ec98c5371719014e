//! The `authorizer` Lambda: API Gateway authorizer requests in, simple responses out
//! ([`tollgate::lambda::run_authorizer`]), built with [`authorizer::NEEDS`] only.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tollgate::lambda::run_authorizer(authorizer::NEEDS).await
}
