//! Delivering outbound events to the customer's endpoints (one I/O boundary: [`HookSender`],
//! with reqwest in [`http`], feature `hooks`), signed with Standard Webhooks
//! (<https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md>):
//! headers `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature`
//! (`v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">` keyed with the base64-decoded part of
//! the endpoint's `whsec_…` secret). What to send and when is `crate::webhooks::outbound`'s.

#[cfg(feature = "hooks")]
pub mod http;

use crate::domain::OutboundType;
use crate::error::BoxError;
use async_trait::async_trait;
use base64::Engine as _;
use secrecy::{ExposeSecret as _, SecretString};

/// The prefix of a Standard Webhooks signing secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// One registered endpoint of the customer's app.
#[derive(Clone)]
pub struct Endpoint {
    /// Its name (`[a-z0-9_-]`, unique): how deliveries record that it accepted an event.
    pub name: String,
    /// Where events are POSTed (`https://…`; `http://` for local development).
    pub url: String,
    /// The signing secret, `whsec_<base64 of 24 to 64 random bytes>`.
    pub secret: SecretString,
    /// The event types it receives (empty: all).
    pub types: Vec<OutboundType>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("types", &self.types)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Whether it receives `event_type`.
    pub fn wants(&self, event_type: OutboundType) -> bool {
        self.types.is_empty() || self.types.contains(&event_type)
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointJson {
    name: String,
    url: String,
    secret: String,
    #[serde(default)]
    types: Vec<OutboundType>,
}

/// Parses the endpoint list: a JSON array of `{"name", "url", "secret", "types"?}` (the
/// `TOLLGATE_OUTBOUND_ENDPOINTS` variable locally, the outbound-endpoints secret in Lambda).
/// Every problem is listed; no secret appears in them.
///
/// # Errors
/// The problems, one per line.
pub fn parse_endpoints(json: &str) -> Result<Vec<Endpoint>, String> {
    let list: Vec<EndpointJson> = serde_json::from_str(json)
        .map_err(|e| format!("outbound endpoints: not a JSON list of {{name, url, secret, types}}: line {} column {}", e.line(), e.column()))?;
    let mut problems = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    let mut endpoints = Vec::with_capacity(list.len());
    for e in list {
        let name_ok = !e.name.is_empty()
            && e.name.len() <= 64
            && e.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !name_ok {
            problems.push(format!(
                "outbound endpoint {:?}: the name must be 1-64 of [a-z0-9_-]",
                e.name
            ));
        }
        if !names.insert(e.name.clone()) {
            problems.push(format!("outbound endpoint {}: named twice", e.name));
        }
        match url::Url::parse(&e.url) {
            Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => {}
            _ => problems.push(format!(
                "outbound endpoint {}: the url must be http(s)://host/…",
                e.name
            )),
        }
        if secret_key(&e.secret).is_none() {
            problems.push(format!(
                "outbound endpoint {}: the secret must be whsec_ and the base64 of 24 to 64 bytes",
                e.name
            ));
        }
        endpoints.push(Endpoint {
            name: e.name,
            url: e.url,
            secret: SecretString::from(e.secret),
            types: e.types,
        });
    }
    if problems.is_empty() {
        Ok(endpoints)
    } else {
        Err(problems.join("\n"))
    }
}

/// The HMAC key of a `whsec_` secret (its base64-decoded part), if well-formed.
fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let b64 = secret.strip_prefix(SECRET_PREFIX)?;
    let key = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    (24..=64).contains(&key.len()).then_some(key)
}

/// The `webhook-signature` value of `body` sent as message `id` at `timestamp` (Unix seconds):
/// `v1,<base64 signature>`; `None` if the secret is malformed (refused at start-up).
pub fn sign(secret: &SecretString, id: &str, timestamp: i64, body: &str) -> Option<String> {
    let key = secret_key(secret.expose_secret())?;
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key);
    let tag = aws_lc_rs::hmac::sign(&key, format!("{id}.{timestamp}.{body}").as_bytes());
    Some(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
    ))
}

/// A new random signing secret, `whsec_<base64 of 32 bytes>` (what `tollgate-admin` and the
/// docs suggest for a new endpoint).
///
/// # Errors
/// If the system random source fails.
pub fn new_secret() -> Result<String, BoxError> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| crate::error::message("random source failed"))?;
    Ok(format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

/// One signed POST.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookRequest {
    /// The endpoint's URL.
    pub url: String,
    /// `webhook-id`.
    pub id: String,
    /// `webhook-timestamp`, Unix seconds.
    pub timestamp: i64,
    /// `webhook-signature`.
    pub signature: String,
    /// The JSON body.
    pub body: String,
}

/// Why a POST did not reach an answer.
#[derive(Debug, thiserror::Error)]
#[error("the endpoint could not be reached")]
pub struct HookError(#[source] pub BoxError);

/// POSTs signed events.
#[async_trait]
pub trait HookSender: Send + Sync {
    /// Sends `request`; returns the HTTP status the endpoint answered.
    ///
    /// # Errors
    /// [`HookError`] when no answer came (connection, TLS, timeout).
    async fn post(&self, request: &HookRequest) -> Result<u16, HookError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks reference vector (the spec's libraries' tests): this secret, id,
    /// timestamp and body sign to this signature.
    #[test]
    fn signs_like_the_reference_libraries() {
        let secret = SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned());
        let sig = sign(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        )
        .expect("well-formed secret");
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn endpoints_are_checked_as_a_whole() {
        let ok = r#"[{"name":"app","url":"https://app.example.com/hooks","secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw","types":["payment.failed"]}]"#;
        let e = parse_endpoints(ok).expect("valid");
        assert!(e[0].wants(OutboundType::PaymentFailed));
        assert!(!e[0].wants(OutboundType::CreditsChanged));
        assert!(!format!("{e:?}").contains("whsec_"), "no secret in Debug");
        let bad = r#"[{"name":"App","url":"ftp://x","secret":"nope"},{"name":"a","url":"https://a","secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},{"name":"a","url":"https://a","secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}]"#;
        let problems = parse_endpoints(bad).expect_err("invalid");
        assert_eq!(problems.lines().count(), 4, "{problems}");
        assert!(!problems.contains("nope"));
        assert!(new_secret()
            .map(|s| secret_key(&s).is_some())
            .unwrap_or(false));
    }
}
