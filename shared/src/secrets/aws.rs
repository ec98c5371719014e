//! Secrets Manager implementation of [`SecretSource`].

use super::{SecretError, SecretSource};
use async_trait::async_trait;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use aws_sdk_secretsmanager::Client;
use secrecy::SecretString;

/// Reads `SecretString` values from AWS Secrets Manager (`GetSecretValue`, `AWSCURRENT`).
#[derive(Clone, Debug)]
pub struct AwsSecretSource {
    client: Client,
}

impl AwsSecretSource {
    /// A source using `client` (built once per cold start).
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl SecretSource for AwsSecretSource {
    async fn get_secret(&self, name: &str) -> Result<SecretString, SecretError> {
        match self.client.get_secret_value().secret_id(name).send().await {
            Ok(out) => {
                out.secret_string
                    .map(SecretString::from)
                    .ok_or_else(|| SecretError::Unavailable {
                        name: name.to_owned(),
                        reason: "secret has no string value".to_owned(),
                    })
            }
            Err(e) if e.code() == Some("ResourceNotFoundException") => {
                Err(SecretError::NotFound(name.to_owned()))
            }
            Err(e) => Err(SecretError::Unavailable {
                name: name.to_owned(),
                reason: e.code().unwrap_or("request failed").to_owned(),
            }),
        }
    }
}
