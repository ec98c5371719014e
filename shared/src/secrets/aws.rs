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
                        source: crate::error::message("the secret has no string value"),
                    })
            }
            Err(e) => Err(secret_error(name, e)),
        }
    }
}

/// A Secrets Manager error as a [`SecretError`] naming the secret (never its value), the SDK
/// error kept as the source.
fn secret_error<E, R>(name: &str, e: aws_sdk_secretsmanager::error::SdkError<E, R>) -> SecretError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    if e.code() == Some("ResourceNotFoundException") {
        SecretError::NotFound(name.to_owned())
    } else {
        SecretError::Unavailable {
            name: name.to_owned(),
            source: Box::new(e),
        }
    }
}

/// `PutSecretValue` (a new `AWSCURRENT` version).
#[async_trait]
impl super::SecretWriter for AwsSecretSource {
    async fn put_secret(&self, name: &str, value: &SecretString) -> Result<(), SecretError> {
        use secrecy::ExposeSecret as _;
        match self
            .client
            .put_secret_value()
            .secret_id(name)
            .secret_string(value.expose_secret())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(secret_error(name, e)),
        }
    }
}

/// Tag naming the stack a Tollgate secret belongs to (set in `template.yaml`).
pub const STACK_TAG: &str = "tollgate:stack";
/// Tag saying which Tollgate secret it is: one of the `*_ROLE` values below.
pub const ROLE_TAG: &str = "tollgate:secret";
/// [`ROLE_TAG`] value of the private JWT signing key set.
pub const JWT_KEYS_ROLE: &str = "jwt-keys";
/// [`ROLE_TAG`] value of the published JWKS (public keys).
pub const JWKS_ROLE: &str = "jwks";
/// [`ROLE_TAG`] value of the payment-provider API keys.
pub const PROVIDER_SECRETS_ROLE: &str = "provider-secrets";
/// [`ROLE_TAG`] value of the webhook signing secrets.
pub const WEBHOOK_SECRETS_ROLE: &str = "webhook-secrets";
/// [`ROLE_TAG`] value of the identity providers' client secrets.
pub const OAUTH_SECRETS_ROLE: &str = "oauth-secrets";

/// The ARNs of a stack's five secrets, found by their tags (`ListSecrets`; the template's
/// secrets have no fixed names, see `template.yaml`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackSecrets {
    /// ARN of the private JWT signing key set.
    pub jwt_keys: String,
    /// ARN of the published JWKS.
    pub jwks: String,
    /// ARN of the payment-provider API keys.
    pub provider_secrets: String,
    /// ARN of the webhook signing secrets.
    pub webhook_secrets: String,
    /// ARN of the identity providers' client secrets.
    pub oauth_secrets: String,
}

impl AwsSecretSource {
    /// Finds the secrets of stack `stack` by their [`STACK_TAG`] and [`ROLE_TAG`] tags.
    ///
    /// # Errors
    /// [`SecretError::NotFound`] naming the missing role (wrong stack name or region);
    /// [`SecretError::Unavailable`] if listing fails or a role is found twice.
    pub async fn find_stack_secrets(&self, stack: &str) -> Result<StackSecrets, SecretError> {
        use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
        let unavailable = |source: crate::error::BoxError| SecretError::Unavailable {
            name: format!("stack {stack}"),
            source,
        };
        let mut found: Vec<(String, String)> = Vec::new();
        let mut pages = self
            .client
            .list_secrets()
            .filters(
                Filter::builder()
                    .key(FilterNameStringType::TagKey)
                    .values(STACK_TAG)
                    .build(),
            )
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| unavailable(Box::new(e)))?;
            for secret in page.secret_list() {
                let tag = |key: &str| {
                    secret
                        .tags()
                        .iter()
                        .find(|t| t.key() == Some(key))
                        .and_then(|t| t.value())
                };
                if let (Some(s), Some(role), Some(arn)) =
                    (tag(STACK_TAG), tag(ROLE_TAG), secret.arn())
                {
                    if s == stack {
                        found.push((role.to_owned(), arn.to_owned()));
                    }
                }
            }
        }
        let one = |role: &str| {
            let arns: Vec<&String> = found
                .iter()
                .filter(|(r, _)| r == role)
                .map(|(_, a)| a)
                .collect();
            match arns.as_slice() {
                [arn] => Ok((*arn).clone()),
                [] => Err(SecretError::NotFound(format!(
                    "{role} secret of stack {stack}"
                ))),
                _ => Err(unavailable(crate::error::message(format!(
                    "several {role} secrets are tagged"
                )))),
            }
        };
        Ok(StackSecrets {
            jwt_keys: one(JWT_KEYS_ROLE)?,
            jwks: one(JWKS_ROLE)?,
            provider_secrets: one(PROVIDER_SECRETS_ROLE)?,
            webhook_secrets: one(WEBHOOK_SECRETS_ROLE)?,
            oauth_secrets: one(OAUTH_SECRETS_ROLE)?,
        })
    }
}
