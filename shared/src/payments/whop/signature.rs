//! Whop's webhook signature scheme: Standard Webhooks (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature: v1,<base64>`), with one difference that bites: the HMAC key is the
//! dashboard secret's **raw bytes**, not the base64 decoding the spec prescribes for `whsec_`
//! secrets (Whop's SDKs call `Webhook::from_bytes(secret)` / `btoa(secret)`). The scheme itself is
//! `crate::payments::signature::verify_standard_webhooks`, which keys a non-`whsec_` secret with its
//! raw bytes.

use crate::payments::signature::{
    verify_standard_webhooks, SignatureError, Verified, WebhookSecrets,
};

/// Verifies a Whop webhook over the raw `body` with any of `secrets` at `now` (Unix seconds).
///
/// # Errors
/// [`SignatureError`] as [`verify_standard_webhooks`] describes.
pub fn verify<'a>(
    headers: &http::HeaderMap,
    body: &'a [u8],
    secrets: &WebhookSecrets,
    now: i64,
) -> Result<Verified<'a>, SignatureError> {
    verify_standard_webhooks(headers, body, secrets, now)
}
