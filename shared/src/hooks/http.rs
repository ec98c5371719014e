//! [`HookSender`] over the project's one reqwest (rustls on aws-lc): no redirects followed (a
//! redirect is an answer, not a delivery), 10 s per call.

use super::{HookError, HookRequest, HookSender};
use async_trait::async_trait;

/// A reqwest client for outbound events. Cheap to clone.
#[derive(Clone, Debug)]
pub struct HttpHookSender(reqwest::Client);

impl HttpHookSender {
    /// The client: no redirects, 10 s per call.
    ///
    /// # Errors
    /// If the TLS backend cannot initialise.
    pub fn new() -> Result<Self, HookError> {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(10))
            .user_agent("tollgate-webhooks")
            .build()
            .map(Self)
            .map_err(|e| HookError(Box::new(e)))
    }
}

#[async_trait]
impl HookSender for HttpHookSender {
    async fn post(&self, request: &HookRequest) -> Result<u16, HookError> {
        let response = self
            .0
            .post(&request.url)
            .header("content-type", "application/json")
            .header("webhook-id", &request.id)
            .header("webhook-timestamp", request.timestamp.to_string())
            .header("webhook-signature", &request.signature)
            .body(request.body.clone())
            .send()
            .await
            .map_err(|e| HookError(Box::new(e.without_url())))?;
        Ok(response.status().as_u16())
    }
}
