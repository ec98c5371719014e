//! The `whoami` Lambda: serves [`whoami::routes`] behind the Tollgate authorizer, built with
//! [`whoami::NEEDS`] (nothing).
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tollgate::lambda::run_http(whoami::routes(), whoami::NEEDS).await
}
