//! The authorizer for the customer's own API routes (docs/architecture.md §5c): an access token
//! or an API key in, who it is and what their plan allows out — with the plan's request rate
//! (`requests_per_minute`) applied by the same shared counters as every other limit.

use super::limits::Counted;
use super::service::{AccessVerifier, Auth, AuthError};
use crate::domain::{api_key_id, ApiKeyKind, RateRule, Throttled, UserId};
use std::collections::BTreeMap;

/// The entitlement holding a plan's request rate on the customer's API: requests per minute per
/// user (a plan without it is not limited by the authorizer).
pub const REQUESTS_PER_MINUTE: &str = "requests_per_minute";

/// The counter name of the authorizer's per-user rate.
pub const AUTHORIZER_RULE: &str = "authorizer.rpm";

/// What an authorized request carries to the customer's route (the authorizer's context).
#[derive(Clone, Debug, PartialEq)]
pub struct Authorized {
    /// The user acted for (a service key: its owner).
    pub user_id: UserId,
    /// The plan in effect.
    pub plan: String,
    /// The plan's tier rank.
    pub tier: u32,
    /// The plan's flags and limits.
    pub entitlements: BTreeMap<String, serde_json::Value>,
    /// The API key's id, when a key was presented.
    pub key_id: Option<String>,
    /// The key's kind, when a key was presented.
    pub key_kind: Option<ApiKeyKind>,
    /// The rate counter after this request, when the plan has a rate.
    pub rate: Option<Counted>,
}

/// Why a request is refused (for the log: the authorizer's answer is just `isAuthorized: false`,
/// which API Gateway turns into 403).
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// No `Authorization: Bearer` credential.
    #[error("no bearer credential")]
    NoCredential,
    /// The credential did not authenticate (bad, expired or revoked), or its user is disabled.
    #[error("credential refused")]
    Credential(#[source] AuthError),
    /// The plan's request rate is used up for this minute.
    #[error("over the plan's request rate; retry in {} s", .0.retry_after)]
    RateLimited(Throttled),
}

impl Refusal {
    /// A short stable reason for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NoCredential => "no_credential",
            Self::Credential(AuthError::AccountDisabled) => "account_disabled",
            Self::Credential(AuthError::InvalidApiKey) => "invalid_api_key",
            Self::Credential(AuthError::Store(_)) => "store_unavailable",
            Self::Credential(_) => "invalid_token",
            Self::RateLimited(_) => "rate_limited",
        }
    }
}

impl Auth {
    /// Authorizes a request by its bearer `credential`: an access token (signature, `iss`,
    /// `aud`, expiry; its user active and its session live) or an API key (see
    /// [`Auth::authenticate_key`]: revoked keys are refused at once). Then counts the request
    /// against the plan's `requests_per_minute` for the user (failing open when the counters are
    /// unreachable).
    ///
    /// # Errors
    /// [`Refusal`].
    pub async fn authorize(
        &self,
        verifier: &AccessVerifier,
        credential: Option<&str>,
    ) -> Result<Authorized, Refusal> {
        let credential = credential
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .ok_or(Refusal::NoCredential)?;
        let mut authorized = if api_key_id(credential).is_some() {
            let p = self
                .authenticate_key(credential)
                .await
                .map_err(Refusal::Credential)?;
            Authorized {
                user_id: p.user.id,
                plan: p.plan.plan,
                tier: p.plan.tier,
                entitlements: p.plan.entitlements,
                key_id: Some(p.key.key_id),
                key_kind: Some(p.key.kind),
                rate: None,
            }
        } else {
            let who = verifier
                .verify(credential)
                .await
                .map_err(Refusal::Credential)?;
            self.current(&who).await.map_err(Refusal::Credential)?;
            Authorized {
                user_id: who.user_id,
                plan: who.claims.plan,
                tier: who.claims.tier,
                entitlements: who.claims.entitlements,
                key_id: None,
                key_kind: None,
                rate: None,
            }
        };
        let rpm = authorized
            .entitlements
            .get(REQUESTS_PER_MINUTE)
            .and_then(serde_json::Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n > 0);
        if let (Some(limit), Some(limiter)) = (rpm, self.limiter()) {
            let rule = RateRule { limit, window: 60 };
            let counted = limiter
                .count_rule(AUTHORIZER_RULE, &rule, &authorized.user_id.to_string())
                .await;
            if let Some(refusal) = counted.as_ref().and_then(Counted::refusal) {
                return Err(Refusal::RateLimited(refusal));
            }
            authorized.rate = counted;
        }
        Ok(authorized)
    }
}

/// The context the authorizer returns and API Gateway hands the customer's route as
/// `requestContext.authorizer.lambda` (HTTP API, payload 2.0, simple responses). Values are
/// strings and numbers only, as API Gateway passes them on; `entitlements` is a JSON object
/// serialised as a string.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuthorizerContext {
    /// The user acted for (UUIDv7).
    pub user_id: String,
    /// The plan in effect (`free` without access).
    pub plan: String,
    /// The plan's tier rank.
    pub tier: u32,
    /// The plan's flags and limits as a JSON object in a string, e.g.
    /// `{"api_access":true,"projects":20,"requests_per_minute":600}`.
    pub entitlements: String,
    /// The API key's id, when a key was presented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// `user` or `service`, when a key was presented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_kind: Option<String>,
}

impl From<&Authorized> for AuthorizerContext {
    fn from(a: &Authorized) -> Self {
        Self {
            user_id: a.user_id.to_string(),
            plan: a.plan.clone(),
            tier: a.tier,
            entitlements: serde_json::to_string(&a.entitlements).unwrap_or_else(|_| "{}".into()),
            key_id: a.key_id.clone(),
            key_kind: a.key_kind.map(|k| {
                match k {
                    ApiKeyKind::User => "user",
                    ApiKeyKind::Service => "service",
                }
                .to_owned()
            }),
        }
    }
}
