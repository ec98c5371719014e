//! Webhook signature verification over the raw request body: what every scheme shares
//! ([`WebhookSecrets`], [`Verified`], [`SignatureError`], the tolerance, constant-time matching)
//! and the **Standard Webhooks** scheme ([`verify_standard_webhooks`]: the `webhook-id`,
//! `webhook-timestamp` and `webhook-signature` headers, as described in the Standard Webhooks spec,
//! <https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md>),
//! which Whop uses (`super::whop::signature`). Stripe's own scheme is `super::stripe::signature`.
//! All are HMAC-SHA256 (via `aws_lc_rs::hmac`), checked against every configured secret so
//! secrets can rotate.
//!
//! Rules shared by all:
//! - Signatures are computed over the exact bytes received; never re-serialise the body first.
//! - Candidate signatures are compared in constant time, and every configured secret is tried
//!   against every candidate (no early exit), so timing does not reveal which secret matched.
//! - Errors name the header involved, never a secret or a signature.
//! - Parsing never panics and its work is bounded: a header longer than 8 KiB is refused as
//!   malformed, and at most 16 signature entries of the accepted version are considered.
//! - A timestamp is accepted when `|now - timestamp| <= TOLERANCE_SECONDS` (both in Unix seconds).

use std::borrow::Cow;
use std::fmt;

use aws_lc_rs::{constant_time, hmac};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretString};

/// Max age (and max future skew) of a signed timestamp, in seconds.
///
/// 300 s is the default tolerance of Stripe's official libraries ("Verify webhook signatures
/// manually": "our libraries have a default tolerance of five minutes"), and the Standard Webhooks
/// reference libraries use five minutes in both directions too.
pub const TOLERANCE_SECONDS: i64 = 300;

/// Signature entries of the accepted version (`v1`) considered per request; later ones are
/// ignored so a huge header cannot make us compute or compare without bound.
pub(crate) const MAX_SIGNATURES: usize = 16;

/// Longest signature-related header value we parse, in bytes. Stripe's header with a few `v1`
/// entries during a roll is well under 1 KiB; API Gateway caps all headers at 10 KiB.
pub(crate) const MAX_HEADER_BYTES: usize = 8 * 1024;

/// Standard Webhooks message id header.
const WEBHOOK_ID: &str = "webhook-id";
/// Standard Webhooks timestamp header (Unix seconds).
const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// Standard Webhooks signature header (space-separated `v1,<base64>` entries).
const WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// Prefix of Standard Webhooks secrets whose remainder is the base64-encoded HMAC key.
const WHSEC_PREFIX: &str = "whsec_";

/// Length of an HMAC-SHA256 tag, in bytes.
pub(crate) const TAG_LEN: usize = 32;

/// The webhook signing secrets of one provider; several while a secret is being rotated.
///
/// Built with [`WebhookSecrets::parse`] from a comma-separated list (each entry trimmed of
/// whitespace, empty entries dropped). Each secret is held as a [`SecretString`] and used verbatim:
/// how it becomes an HMAC key depends on the scheme (Stripe's, or
/// [`verify_standard_webhooks`]). `Debug` shows only how many secrets there are, never their text.
#[derive(Clone)]
pub struct WebhookSecrets {
    secrets: Vec<SecretString>,
}

impl WebhookSecrets {
    /// Parses a comma-separated list of secrets, e.g. `"whsec_old, whsec_new"`.
    ///
    /// Each entry is trimmed of surrounding whitespace and empty entries are dropped, so
    /// `" a ,, b "` gives the two secrets `a` and `b`. Order is kept but does not matter: every
    /// secret is tried on every request.
    ///
    /// # Errors
    /// [`SignatureError::NoSecrets`] if no non-empty secret remains (an empty or all-separator
    /// string), so a missing configuration can never mean "accept nothing silently".
    pub fn parse(comma_separated: &str) -> Result<Self, SignatureError> {
        let secrets: Vec<SecretString> = comma_separated
            .split(',')
            .map(str::trim)
            .filter(|secret| !secret.is_empty())
            .map(SecretString::from)
            .collect();
        if secrets.is_empty() {
            return Err(SignatureError::NoSecrets);
        }
        Ok(Self { secrets })
    }
}

impl fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSecrets")
            .field("count", &self.secrets.len())
            .finish_non_exhaustive()
    }
}

/// Proof that a body passed signature verification.
///
/// Only the signature schemes can construct it (the fields are private and the constructor is
/// crate-private), so code that takes a `Verified` cannot be handed an unverified body by
/// mistake.
#[derive(Debug)]
pub struct Verified<'a> {
    body: &'a [u8],
    webhook_id: Option<String>,
}

impl<'a> Verified<'a> {
    /// Proof that `body` verified (with its Standard Webhooks id); for the schemes only.
    pub(crate) fn new(body: &'a [u8], webhook_id: Option<String>) -> Self {
        Self { body, webhook_id }
    }

    /// The raw body bytes that were verified, exactly as received.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// The Standard Webhooks `webhook-id` that was signed (the same id on every retry of one
    /// message, so usable for deduplication); `None` for Stripe, whose id is in the body.
    pub fn webhook_id(&self) -> Option<&str> {
        self.webhook_id.as_deref()
    }
}

/// Why a webhook failed verification. Every case means "answer 400, store nothing" at ingest.
///
/// Messages name the header concerned but never contain secret material or signatures.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// No secret is configured (from [`WebhookSecrets::parse`]).
    #[error("no webhook signing secret is configured")]
    NoSecrets,
    /// A required header is absent; carries the header's name.
    #[error("missing webhook signature header `{0}`")]
    MissingHeader(&'static str),
    /// A header is present but cannot be parsed (not ASCII text, longer than 8 KiB, repeated,
    /// missing its timestamp, a timestamp that is not a non-negative integer, an entry without
    /// its separator); carries the header's name.
    #[error("malformed webhook signature header `{0}`")]
    MalformedHeader(&'static str),
    /// The signed timestamp is more than [`TOLERANCE_SECONDS`] away from now (past or future).
    #[error("webhook timestamp is outside the {TOLERANCE_SECONDS} s tolerance")]
    StaleTimestamp,
    /// No candidate signature of the accepted version matches any configured secret (this also
    /// covers a header with no `v1` signature at all).
    #[error("no webhook signature matches a configured secret")]
    NoMatchingSignature,
}

/// Verifies a Standard Webhooks webhook, as Whop sends them (Standard Webhooks spec).
///
/// - `headers`: must hold exactly one each of `webhook-id` (the message id, non-empty),
///   `webhook-timestamp` (Unix seconds, decimal digits) and `webhook-signature` (space-separated
///   `<version>,<base64>` entries, e.g. `v1,AAA… v1,BBB…` during a rotation; versions other than
///   `v1` are ignored; only the first 16 `v1` entries are considered, and one that is not
///   base64 of 32 bytes simply never matches).
/// - `body`: the raw request body bytes, exactly as received.
/// - `secrets`: HMAC key per secret: if it starts with `whsec_`, the standard-base64-decoded rest
///   (the spec's secret format); otherwise the secret's raw UTF-8 bytes (Whop's dashboard
///   secrets, which Whop's SDKs use as `btoa(secret)`, i.e. the raw bytes; docs/architecture.md §7). A
///   `whsec_` secret whose rest is not valid base64 (or decodes to nothing) is used as raw bytes
///   too, matching [`sign_standard_webhooks`].
/// - `now`: the current time in Unix seconds.
///
/// The signed content is `webhook-id + "." + webhook-timestamp + "." + body` (header texts as
/// sent), signed with HMAC-SHA256. The body is accepted if ANY `v1` matches ANY secret and
/// `|now - timestamp| <= TOLERANCE_SECONDS`.
///
/// # Errors
/// - [`SignatureError::MissingHeader`] with the header's name (`webhook-id`,
///   `webhook-timestamp` or `webhook-signature`, checked in that order) if one is absent.
/// - [`SignatureError::MalformedHeader`] with the header's name if one is repeated, not visible
///   ASCII, over 8 KiB or empty, if the timestamp is not a non-negative integer, or if a
///   signature entry has no `,`.
/// - [`SignatureError::StaleTimestamp`] if the timestamp is more than [`TOLERANCE_SECONDS`]
///   from `now`.
/// - [`SignatureError::NoMatchingSignature`] if no `v1` matches any secret.
pub fn verify_standard_webhooks<'a>(
    headers: &http::HeaderMap,
    body: &'a [u8],
    secrets: &WebhookSecrets,
    now: i64,
) -> Result<Verified<'a>, SignatureError> {
    let webhook_id = single_header(headers, WEBHOOK_ID)?;
    let timestamp_text = single_header(headers, WEBHOOK_TIMESTAMP)?;
    let signature = single_header(headers, WEBHOOK_SIGNATURE)?;
    let timestamp = parse_unix_seconds(timestamp_text)
        .ok_or(SignatureError::MalformedHeader(WEBHOOK_TIMESTAMP))?;
    let signatures = parse_standard_webhooks_signatures(signature)?;
    check_tolerance(timestamp, now)?;
    let matched = any_signature_matches(
        secrets,
        standard_webhooks_key,
        &[
            webhook_id.as_bytes(),
            b".",
            timestamp_text.as_bytes(),
            b".",
            body,
        ],
        &signatures,
    );
    if !matched {
        return Err(SignatureError::NoMatchingSignature);
    }
    Ok(Verified::new(body, Some(webhook_id.to_owned())))
}

/// Signs `body` the Standard Webhooks way, for tests and doubles.
///
/// Returns one `webhook-signature` entry, `v1,<standard base64 of the 32-byte tag>`: HMAC-SHA256
/// over `webhook_id + "." + timestamp + "." + body` (Standard Webhooks spec), keyed as in
/// [`verify_standard_webhooks`] (a `whsec_` secret's base64-decoded rest, otherwise the secret's
/// raw UTF-8 bytes). `timestamp` is in Unix seconds.
pub fn sign_standard_webhooks(
    webhook_id: &str,
    body: &[u8],
    secret: &str,
    timestamp: i64,
) -> String {
    let timestamp_text = timestamp.to_string();
    let key = Zeroizing::new(standard_webhooks_key(secret).into_owned());
    let tag = hmac_sha256(
        &key,
        &[
            webhook_id.as_bytes(),
            b".",
            timestamp_text.as_bytes(),
            b".",
            body,
        ],
    );
    format!("v1,{}", BASE64.encode(tag.as_ref()))
}

/// Decoded `v1` entries of a `webhook-signature` header (at most [`MAX_SIGNATURES`]).
fn parse_standard_webhooks_signatures(header: &str) -> Result<Vec<[u8; TAG_LEN]>, SignatureError> {
    let mut signatures = Vec::new();
    let mut v1_seen = 0usize;
    for entry in header.split_ascii_whitespace() {
        let (version, value) = entry
            .split_once(',')
            .ok_or(SignatureError::MalformedHeader(WEBHOOK_SIGNATURE))?;
        if version != "v1" || v1_seen >= MAX_SIGNATURES {
            continue;
        }
        v1_seen += 1;
        if let Some(signature) = decode_base64_tag(value) {
            signatures.push(signature);
        }
    }
    Ok(signatures)
}

/// The only value of header `name`, as trimmed non-empty visible-ASCII text of at most
/// [`MAX_HEADER_BYTES`].
fn single_header<'h>(
    headers: &'h http::HeaderMap,
    name: &'static str,
) -> Result<&'h str, SignatureError> {
    let mut values = headers.get_all(name).iter();
    let value = values.next().ok_or(SignatureError::MissingHeader(name))?;
    if values.next().is_some() || value.len() > MAX_HEADER_BYTES {
        return Err(SignatureError::MalformedHeader(name));
    }
    let text = value
        .to_str()
        .map_err(|_| SignatureError::MalformedHeader(name))?
        .trim();
    if text.is_empty() {
        return Err(SignatureError::MalformedHeader(name));
    }
    Ok(text)
}

/// Unix seconds written as plain decimal digits (no sign, no spaces); `None` otherwise or on
/// overflow.
pub(crate) fn parse_unix_seconds(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

pub(crate) fn check_tolerance(timestamp: i64, now: i64) -> Result<(), SignatureError> {
    // `abs_diff` cannot overflow, whatever the two values are.
    if now.abs_diff(timestamp) > TOLERANCE_SECONDS.unsigned_abs() {
        return Err(SignatureError::StaleTimestamp);
    }
    Ok(())
}

/// HMAC key for a Standard Webhooks secret: a `whsec_` secret's base64-decoded rest, otherwise
/// (or if that rest is not valid, non-empty base64) the secret's raw UTF-8 bytes.
fn standard_webhooks_key(secret: &str) -> Cow<'_, [u8]> {
    if let Some(encoded) = secret.strip_prefix(WHSEC_PREFIX) {
        if let Ok(decoded) = BASE64.decode(encoded) {
            if !decoded.is_empty() {
                return Cow::Owned(decoded);
            }
        }
    }
    Cow::Borrowed(secret.as_bytes())
}

/// HMAC-SHA256 of the concatenation of `parts`, without copying them together.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> hmac::Tag {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut context = hmac::Context::with_key(&key);
    for part in parts {
        context.update(part);
    }
    context.sign()
}

/// Whether any candidate equals the HMAC of `message_parts` under any secret's key.
///
/// Every secret is tried against every candidate with a constant-time comparison and no early
/// exit, so the time taken depends only on how many secrets and candidates there are.
pub(crate) fn any_signature_matches(
    secrets: &WebhookSecrets,
    key_of: impl Fn(&str) -> Cow<'_, [u8]>,
    message_parts: &[&[u8]],
    candidates: &[[u8; TAG_LEN]],
) -> bool {
    let mut matched = false;
    for secret in &secrets.secrets {
        let key = Zeroizing::new(key_of(secret.expose_secret()).into_owned());
        let expected = hmac_sha256(&key, message_parts);
        for candidate in candidates {
            matched |= constant_time::verify_slices_are_equal(expected.as_ref(), candidate).is_ok();
        }
    }
    matched
}

/// Standard base64 of exactly 32 bytes; `None` for anything else.
fn decode_base64_tag(text: &str) -> Option<[u8; TAG_LEN]> {
    // 32 bytes are 44 base64 characters with padding; refuse longer input before decoding.
    if text.len() > 44 {
        return None;
    }
    BASE64.decode(text).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    //! Both schemes' cases live together: the six cases per provider (valid, rotation with one
    //! valid signature, tampered body, wrong secret, stale timestamp, missing header), the
    //! fixture vectors, and the edges of the shared rules.
    use super::*;
    use crate::payments::stripe::signature::{sign as sign_stripe, verify as verify_stripe};
    use http::{HeaderMap, HeaderValue};
    use serde_json::Value;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures");
    const STRIPE_SECRET: &str = "whsec_test_secret";
    const WHOP_SECRET: &str =
        "ws_test_0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab";
    const NOW: i64 = 1_793_000_000;
    const BODY: &[u8] =
        br#"{"id":"evt_1","object":"event","type":"customer.subscription.updated"}"#;

    fn fixture_bytes(relative: &str) -> Vec<u8> {
        let path = format!("{FIXTURES}/{relative}");
        std::fs::read(&path).unwrap_or_else(|error| panic!("read {path}: {error}"))
    }

    fn fixture_json(relative: &str) -> Value {
        serde_json::from_slice(&fixture_bytes(relative)).expect("fixture is JSON")
    }

    fn text<'v>(value: &'v Value, key: &str) -> &'v str {
        value[key]
            .as_str()
            .unwrap_or_else(|| panic!("`{key}` is a string"))
    }

    fn number(value: &Value, key: &str) -> i64 {
        value[key]
            .as_i64()
            .unwrap_or_else(|| panic!("`{key}` is an integer"))
    }

    fn secrets(list: &str) -> WebhookSecrets {
        WebhookSecrets::parse(list).expect("secrets")
    }

    /// The standard three headers; `signature` is the whole `webhook-signature` value.
    fn standard_headers(webhook_id: &str, timestamp: &str, signature: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            WEBHOOK_ID,
            HeaderValue::from_str(webhook_id).expect("id header"),
        );
        headers.insert(
            WEBHOOK_TIMESTAMP,
            HeaderValue::from_str(timestamp).expect("ts header"),
        );
        headers.insert(
            WEBHOOK_SIGNATURE,
            HeaderValue::from_str(signature).expect("sig header"),
        );
        headers
    }

    fn whop_signed_headers(
        webhook_id: &str,
        body: &[u8],
        secret: &str,
        timestamp: i64,
    ) -> HeaderMap {
        let signature = sign_standard_webhooks(webhook_id, body, secret, timestamp);
        standard_headers(webhook_id, &timestamp.to_string(), &signature)
    }

    // ---- Stripe: the six cases -------------------------------------------------------------

    #[test]
    fn stripe_accepts_a_valid_signature() {
        let header = sign_stripe(BODY, STRIPE_SECRET, NOW);
        let verified =
            verify_stripe(Some(&header), BODY, &secrets(STRIPE_SECRET), NOW).expect("valid");
        assert_eq!(verified.body(), BODY);
        assert_eq!(verified.webhook_id(), None);
    }

    #[test]
    fn stripe_accepts_a_rotation_header_with_one_valid_signature_among_several() {
        let valid = sign_stripe(BODY, STRIPE_SECRET, NOW);
        let valid_v1 = valid.split_once(",v1=").expect("v1").1;
        let other_v1 = sign_stripe(BODY, "whsec_other", NOW);
        let other_v1 = other_v1.split_once(",v1=").expect("v1").1;
        let header = format!("t={NOW},v1={other_v1},v1={valid_v1},v0={other_v1}");
        assert!(verify_stripe(Some(&header), BODY, &secrets(STRIPE_SECRET), NOW).is_ok());
    }

    #[test]
    fn stripe_accepts_when_only_the_second_configured_secret_matches() {
        let header = sign_stripe(BODY, "whsec_new", NOW);
        let configured = secrets("whsec_old,whsec_new");
        assert!(verify_stripe(Some(&header), BODY, &configured, NOW).is_ok());
    }

    #[test]
    fn stripe_rejects_a_tampered_body() {
        let header = sign_stripe(BODY, STRIPE_SECRET, NOW);
        let tampered = br#"{"id":"evt_1","object":"event","type":"customer.subscription.deleted"}"#;
        assert_eq!(
            verify_stripe(Some(&header), tampered, &secrets(STRIPE_SECRET), NOW).map(|_| ()),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn stripe_rejects_a_signature_made_with_another_secret() {
        let header = sign_stripe(BODY, "whsec_attacker", NOW);
        assert_eq!(
            verify_stripe(Some(&header), BODY, &secrets(STRIPE_SECRET), NOW).map(|_| ()),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn stripe_rejects_a_stale_timestamp() {
        let signed_at = NOW - TOLERANCE_SECONDS - 1;
        let header = sign_stripe(BODY, STRIPE_SECRET, signed_at);
        assert_eq!(
            verify_stripe(Some(&header), BODY, &secrets(STRIPE_SECRET), NOW).map(|_| ()),
            Err(SignatureError::StaleTimestamp)
        );
    }

    #[test]
    fn stripe_rejects_a_missing_header() {
        assert_eq!(
            verify_stripe(None, BODY, &secrets(STRIPE_SECRET), NOW).map(|_| ()),
            Err(SignatureError::MissingHeader("Stripe-Signature"))
        );
    }

    // ---- Stripe: vectors and edges ---------------------------------------------------------

    #[test]
    fn stripe_vector_over_the_exact_event_file_bytes_verifies_and_is_reproduced() {
        let vectors = fixture_json("stripe/signature-vectors.json");
        let vector = &vectors["vectors"][0];
        assert!(text(vector, "body_file")
            .starts_with("events/checkout.session.completed.subscription.json"));
        let body = fixture_bytes("stripe/events/checkout.session.completed.subscription.json");
        assert_eq!(
            body.last(),
            Some(&b'\n'),
            "the exact file bytes end with a newline"
        );
        let secret = text(vector, "secret");
        let timestamp = number(vector, "timestamp");

        let header = sign_stripe(&body, secret, timestamp);
        assert_eq!(header, text(vector, "header"));
        assert!(header.ends_with(text(vector, "expected_v1")));
        let verified = verify_stripe(
            Some(text(vector, "header")),
            &body,
            &secrets(secret),
            timestamp,
        )
        .expect("vector verifies");
        assert_eq!(verified.body(), body.as_slice());
    }

    #[test]
    fn stripe_vector_with_an_inline_body_verifies_and_is_reproduced() {
        let vectors = fixture_json("stripe/signature-vectors.json");
        let vector = &vectors["vectors"][1];
        let body = text(vector, "body").as_bytes();
        let secret = text(vector, "secret");
        let timestamp = number(vector, "timestamp");

        assert_eq!(sign_stripe(body, secret, timestamp), text(vector, "header"));
        assert!(text(vector, "header").ends_with(text(vector, "expected_v1")));
        assert!(verify_stripe(
            Some(text(vector, "header")),
            body,
            &secrets(secret),
            timestamp
        )
        .is_ok());
    }

    #[test]
    fn stripe_vector_rotation_header_verifies() {
        let vectors = fixture_json("stripe/signature-vectors.json");
        let vector = &vectors["vectors"][0];
        let body = fixture_bytes("stripe/events/checkout.session.completed.subscription.json");
        let header = text(vector, "rotation_header");
        let timestamp = number(vector, "timestamp");
        assert!(verify_stripe(
            Some(header),
            &body,
            &secrets(text(vector, "secret")),
            timestamp
        )
        .is_ok());
        // The same header without the trailing body newline must not verify.
        assert_eq!(
            verify_stripe(
                Some(header),
                &body[..body.len() - 1],
                &secrets(STRIPE_SECRET),
                timestamp
            )
            .map(|_| ()),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn stripe_key_is_the_whole_whsec_string_not_its_base64_decoding() {
        // A `whsec_` secret that is valid base64 after the prefix: Stripe still keys with the
        // whole string, so the Standard Webhooks key derivation must not leak in.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let header = sign_stripe(BODY, secret, NOW);
        let expected = hmac_sha256(secret.as_bytes(), &[NOW.to_string().as_bytes(), b".", BODY]);
        let expected_hex: String = expected
            .as_ref()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        assert_eq!(header, format!("t={NOW},v1={expected_hex}"));
        assert!(verify_stripe(Some(&header), BODY, &secrets(secret), NOW).is_ok());
    }

    #[test]
    fn stripe_rejects_a_timestamp_beyond_tolerance_in_the_future() {
        let header = sign_stripe(BODY, STRIPE_SECRET, NOW + TOLERANCE_SECONDS + 1);
        assert_eq!(
            verify_stripe(Some(&header), BODY, &secrets(STRIPE_SECRET), NOW).map(|_| ()),
            Err(SignatureError::StaleTimestamp)
        );
    }

    #[test]
    fn stripe_accepts_timestamps_exactly_at_the_tolerance_edges() {
        let configured = secrets(STRIPE_SECRET);
        for signed_at in [NOW - TOLERANCE_SECONDS, NOW + TOLERANCE_SECONDS] {
            let header = sign_stripe(BODY, STRIPE_SECRET, signed_at);
            assert!(
                verify_stripe(Some(&header), BODY, &configured, NOW).is_ok(),
                "t={signed_at}"
            );
        }
    }

    #[test]
    fn stripe_ignores_v0_and_unknown_schemes() {
        let valid = sign_stripe(BODY, STRIPE_SECRET, NOW);
        let valid_v1 = valid.split_once(",v1=").expect("v1").1;
        let configured = secrets(STRIPE_SECRET);
        // A correct signature under v0 or an unknown scheme is not accepted...
        for scheme in ["v0", "v2", "V1"] {
            let header = format!("t={NOW},{scheme}={valid_v1}");
            assert_eq!(
                verify_stripe(Some(&header), BODY, &configured, NOW).map(|_| ()),
                Err(SignatureError::NoMatchingSignature),
                "{scheme}"
            );
        }
        // ...and their presence does not get in the way of a valid v1.
        let header = format!("t={NOW},v0=zz,x=,v1={valid_v1},scheme=whatever");
        assert!(verify_stripe(Some(&header), BODY, &configured, NOW).is_ok());
        // The docs' header-format example parses (its signatures are not ours).
        let vectors = fixture_json("stripe/signature-vectors.json");
        let example = text(&vectors, "stripe_docs_header_format_example");
        assert_eq!(
            verify_stripe(Some(example), BODY, &configured, 1_492_774_577).map(|_| ()),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn stripe_considers_at_most_sixteen_signatures() {
        let valid = sign_stripe(BODY, STRIPE_SECRET, NOW);
        let valid_v1 = valid.split_once(",v1=").expect("v1").1;
        let decoy = format!(",v1={}", "0".repeat(64));
        let configured = secrets(STRIPE_SECRET);

        let sixteenth = format!("t={NOW}{},v1={valid_v1}", decoy.repeat(15));
        assert!(verify_stripe(Some(&sixteenth), BODY, &configured, NOW).is_ok());
        let seventeenth = format!("t={NOW}{},v1={valid_v1}", decoy.repeat(16));
        assert_eq!(
            verify_stripe(Some(&seventeenth), BODY, &configured, NOW).map(|_| ()),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn stripe_malformed_headers_give_errors_not_panics() {
        let configured = secrets(STRIPE_SECRET);
        let valid = sign_stripe(BODY, STRIPE_SECRET, NOW);
        let valid_v1 = valid.split_once(",v1=").expect("v1").1.to_owned();
        const MALFORMED: SignatureError = SignatureError::MalformedHeader("Stripe-Signature");
        let cases: Vec<(String, SignatureError)> = vec![
            (String::new(), MALFORMED),
            (" ,, ".into(), MALFORMED),
            ("garbage".into(), MALFORMED),
            ("=,=,=".into(), MALFORMED),
            (format!("v1={valid_v1}"), MALFORMED),
            (format!("t=,v1={valid_v1}"), MALFORMED),
            (format!("t=abc,v1={valid_v1}"), MALFORMED),
            (format!("t=-{NOW},v1={valid_v1}"), MALFORMED),
            (format!("t=+{NOW},v1={valid_v1}"), MALFORMED),
            (
                format!("t=99999999999999999999999,v1={valid_v1}"),
                MALFORMED,
            ),
            (format!("t={NOW},t={NOW},v1={valid_v1}"), MALFORMED),
            (format!("t={NOW},v1"), MALFORMED),
            (
                format!("t={NOW},v1={valid_v1},{}", "x=".repeat(5000)),
                MALFORMED,
            ),
            (format!("t={NOW},{}", "v1=ab,".repeat(10_000)), MALFORMED),
            (format!("t={NOW}"), SignatureError::NoMatchingSignature),
            (format!("t={NOW},v1="), SignatureError::NoMatchingSignature),
            (
                format!("t={NOW},v1=zz{}", &valid_v1[2..]),
                SignatureError::NoMatchingSignature,
            ),
            (
                format!("t={NOW},v1={valid_v1}00"),
                SignatureError::NoMatchingSignature,
            ),
            (
                format!("t={NOW},v1=é{}", &valid_v1[2..]),
                SignatureError::NoMatchingSignature,
            ),
            (
                format!("t={NOW},v1={}", &valid_v1[..63]),
                SignatureError::NoMatchingSignature,
            ),
            ("t=0,v1=00".into(), SignatureError::StaleTimestamp),
        ];
        for (header, expected) in cases {
            let shown: String = header.chars().take(80).collect();
            assert_eq!(
                verify_stripe(Some(&header), BODY, &configured, NOW).map(|_| ()),
                Err(expected),
                "header {shown:?}"
            );
        }
        // Extreme clocks do not overflow the tolerance check.
        let header = format!("t={},v1={valid_v1}", i64::MAX);
        assert_eq!(
            verify_stripe(Some(&header), BODY, &configured, i64::MIN).map(|_| ()),
            Err(SignatureError::StaleTimestamp)
        );
    }

    #[test]
    fn stripe_tolerates_whitespace_around_items() {
        let valid = sign_stripe(BODY, STRIPE_SECRET, NOW);
        let valid_v1 = valid.split_once(",v1=").expect("v1").1;
        let header = format!(" t={NOW} , v1={valid_v1} ,");
        assert!(verify_stripe(Some(&header), BODY, &secrets(STRIPE_SECRET), NOW).is_ok());
    }

    // ---- Standard Webhooks (Whop): the six cases -------------------------------------------

    #[test]
    fn standard_webhooks_accepts_a_valid_signature() {
        let headers = whop_signed_headers("msg_1", BODY, WHOP_SECRET, NOW);
        let verified =
            verify_standard_webhooks(&headers, BODY, &secrets(WHOP_SECRET), NOW).expect("valid");
        assert_eq!(verified.body(), BODY);
        assert_eq!(verified.webhook_id(), Some("msg_1"));
    }

    #[test]
    fn standard_webhooks_accepts_a_rotation_header_with_one_valid_signature_among_several() {
        let other = sign_standard_webhooks("msg_1", BODY, "ws_other", NOW);
        let valid = sign_standard_webhooks("msg_1", BODY, WHOP_SECRET, NOW);
        let headers = standard_headers(
            "msg_1",
            &NOW.to_string(),
            &format!("{other} v2,xyz {valid}"),
        );
        assert!(verify_standard_webhooks(&headers, BODY, &secrets(WHOP_SECRET), NOW).is_ok());
    }

    #[test]
    fn standard_webhooks_accepts_when_only_the_second_configured_secret_matches() {
        let headers = whop_signed_headers("msg_1", BODY, "ws_new", NOW);
        let configured = secrets("ws_old, ws_new");
        assert!(verify_standard_webhooks(&headers, BODY, &configured, NOW).is_ok());
    }

    #[test]
    fn standard_webhooks_rejects_a_tampered_body() {
        let headers = whop_signed_headers("msg_1", BODY, WHOP_SECRET, NOW);
        let tampered = br#"{"id":"evt_1","object":"event","type":"customer.subscription.deleted"}"#;
        assert_eq!(
            verify_standard_webhooks(&headers, tampered, &secrets(WHOP_SECRET), NOW).map(|_| ()),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn standard_webhooks_rejects_a_signature_made_with_another_secret() {
        let headers = whop_signed_headers("msg_1", BODY, "ws_attacker", NOW);
        assert_eq!(
            verify_standard_webhooks(&headers, BODY, &secrets(WHOP_SECRET), NOW).map(|_| ()),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn standard_webhooks_rejects_a_stale_timestamp() {
        let headers = whop_signed_headers("msg_1", BODY, WHOP_SECRET, NOW - TOLERANCE_SECONDS - 1);
        assert_eq!(
            verify_standard_webhooks(&headers, BODY, &secrets(WHOP_SECRET), NOW).map(|_| ()),
            Err(SignatureError::StaleTimestamp)
        );
    }

    #[test]
    fn standard_webhooks_rejects_each_missing_header() {
        let configured = secrets(WHOP_SECRET);
        for name in [WEBHOOK_ID, WEBHOOK_TIMESTAMP, WEBHOOK_SIGNATURE] {
            let mut headers = whop_signed_headers("msg_1", BODY, WHOP_SECRET, NOW);
            headers.remove(name);
            assert_eq!(
                verify_standard_webhooks(&headers, BODY, &configured, NOW).map(|_| ()),
                Err(SignatureError::MissingHeader(name))
            );
        }
        assert_eq!(
            verify_standard_webhooks(&HeaderMap::new(), BODY, &configured, NOW).map(|_| ()),
            Err(SignatureError::MissingHeader("webhook-id"))
        );
    }

    // ---- Standard Webhooks: vectors and edges ----------------------------------------------

    #[test]
    fn standard_webhooks_spec_vectors_are_reproduced_and_verify() {
        let vectors = fixture_json("whop/signature-vectors.json");
        let spec_vectors = vectors["standard_webhooks_spec_vectors"]
            .as_array()
            .expect("array");
        assert_eq!(spec_vectors.len(), 2);
        for vector in spec_vectors {
            let secret = text(vector, "secret");
            let webhook_id = text(vector, "webhook_id");
            let timestamp = number(vector, "webhook_timestamp");
            let body = text(vector, "body").as_bytes();
            let expected = text(vector, "expected_signature");

            assert_eq!(
                sign_standard_webhooks(webhook_id, body, secret, timestamp),
                expected
            );
            let headers = standard_headers(webhook_id, &timestamp.to_string(), expected);
            let verified = verify_standard_webhooks(&headers, body, &secrets(secret), timestamp)
                .expect("spec vector verifies");
            assert_eq!(verified.webhook_id(), Some(webhook_id));
            // The spec key is the decoded rest: the raw `whsec_…` bytes would not match.
            let raw_key = hmac_sha256(
                secret.as_bytes(),
                &[
                    webhook_id.as_bytes(),
                    b".",
                    timestamp.to_string().as_bytes(),
                    b".",
                    body,
                ],
            );
            assert_ne!(format!("v1,{}", BASE64.encode(raw_key.as_ref())), expected);
        }
    }

    fn whop_vector() -> (Value, Vec<u8>) {
        let vectors = fixture_json("whop/signature-vectors.json");
        let vector = vectors["whop_style_vectors"][0].clone();
        assert!(text(&vector, "body_file").starts_with("events/membership.activated.json"));
        let body = fixture_bytes("whop/events/membership.activated.json");
        assert_eq!(
            body.last(),
            Some(&b'\n'),
            "the exact file bytes end with a newline"
        );
        (vector, body)
    }

    #[test]
    fn whop_style_vector_with_a_raw_bytes_key_is_reproduced_and_verifies() {
        let (vector, body) = whop_vector();
        let secret = text(&vector, "secret");
        assert_eq!(secret, WHOP_SECRET);
        let webhook_id = text(&vector, "webhook_id");
        let timestamp = number(&vector, "webhook_timestamp");
        let expected = text(&vector, "expected_signature");

        assert_eq!(
            sign_standard_webhooks(webhook_id, &body, secret, timestamp),
            expected
        );
        let headers = standard_headers(webhook_id, &timestamp.to_string(), expected);
        let verified = verify_standard_webhooks(&headers, &body, &secrets(secret), timestamp)
            .expect("whop vector verifies");
        assert_eq!(verified.body(), body.as_slice());
        assert_eq!(verified.webhook_id(), Some(webhook_id));
    }

    #[test]
    fn whop_style_vector_verifies_with_the_equivalent_whsec_secret() {
        let (vector, body) = whop_vector();
        let equivalent = text(&vector, "equivalent_standard_webhooks_secret");
        assert_eq!(
            equivalent,
            format!("whsec_{}", BASE64.encode(text(&vector, "secret")))
        );
        let webhook_id = text(&vector, "webhook_id");
        let timestamp = number(&vector, "webhook_timestamp");
        let expected = text(&vector, "expected_signature");

        assert_eq!(
            sign_standard_webhooks(webhook_id, &body, equivalent, timestamp),
            expected
        );
        let headers = standard_headers(webhook_id, &timestamp.to_string(), expected);
        assert!(verify_standard_webhooks(&headers, &body, &secrets(equivalent), timestamp).is_ok());
    }

    #[test]
    fn whop_style_rotation_header_example_verifies() {
        let (vector, body) = whop_vector();
        let timestamp = number(&vector, "webhook_timestamp");
        let headers = standard_headers(
            text(&vector, "webhook_id"),
            &timestamp.to_string(),
            text(&vector, "rotation_header_example"),
        );
        let configured = secrets(text(&vector, "secret"));
        assert!(verify_standard_webhooks(&headers, &body, &configured, timestamp).is_ok());
        // A different message id changes the signed content.
        let mut other_id = headers.clone();
        other_id.insert(WEBHOOK_ID, HeaderValue::from_static("msg_other"));
        assert_eq!(
            verify_standard_webhooks(&other_id, &body, &configured, timestamp).map(|_| ()),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn standard_webhooks_rejects_a_timestamp_beyond_tolerance_in_the_future() {
        let headers = whop_signed_headers("msg_1", BODY, WHOP_SECRET, NOW + TOLERANCE_SECONDS + 1);
        assert_eq!(
            verify_standard_webhooks(&headers, BODY, &secrets(WHOP_SECRET), NOW).map(|_| ()),
            Err(SignatureError::StaleTimestamp)
        );
    }

    #[test]
    fn standard_webhooks_accepts_timestamps_exactly_at_the_tolerance_edges() {
        let configured = secrets(WHOP_SECRET);
        for signed_at in [NOW - TOLERANCE_SECONDS, NOW + TOLERANCE_SECONDS] {
            let headers = whop_signed_headers("msg_1", BODY, WHOP_SECRET, signed_at);
            assert!(
                verify_standard_webhooks(&headers, BODY, &configured, NOW).is_ok(),
                "t={signed_at}"
            );
        }
    }

    #[test]
    fn standard_webhooks_ignores_other_signature_versions() {
        let valid = sign_standard_webhooks("msg_1", BODY, WHOP_SECRET, NOW);
        let tag = valid.strip_prefix("v1,").expect("v1 prefix");
        let configured = secrets(WHOP_SECRET);
        for version in ["v1a", "v2", "V1", "v0"] {
            let headers = standard_headers("msg_1", &NOW.to_string(), &format!("{version},{tag}"));
            assert_eq!(
                verify_standard_webhooks(&headers, BODY, &configured, NOW).map(|_| ()),
                Err(SignatureError::NoMatchingSignature),
                "{version}"
            );
        }
        let headers = standard_headers("msg_1", &NOW.to_string(), &format!("v1a,{tag} {valid}"));
        assert!(verify_standard_webhooks(&headers, BODY, &configured, NOW).is_ok());
    }

    #[test]
    fn standard_webhooks_considers_at_most_sixteen_signatures() {
        let valid = sign_standard_webhooks("msg_1", BODY, WHOP_SECRET, NOW);
        let decoy = format!("v1,{} ", BASE64.encode([0u8; 32]));
        let configured = secrets(WHOP_SECRET);

        let sixteenth = standard_headers(
            "msg_1",
            &NOW.to_string(),
            &format!("{}{valid}", decoy.repeat(15)),
        );
        assert!(verify_standard_webhooks(&sixteenth, BODY, &configured, NOW).is_ok());
        let seventeenth = standard_headers(
            "msg_1",
            &NOW.to_string(),
            &format!("{}{valid}", decoy.repeat(16)),
        );
        assert_eq!(
            verify_standard_webhooks(&seventeenth, BODY, &configured, NOW).map(|_| ()),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn standard_webhooks_malformed_headers_give_errors_not_panics() {
        let configured = secrets(WHOP_SECRET);
        let valid = sign_standard_webhooks("msg_1", BODY, WHOP_SECRET, NOW);
        let now_text = NOW.to_string();
        const BAD_ID: SignatureError = SignatureError::MalformedHeader("webhook-id");
        const BAD_TS: SignatureError = SignatureError::MalformedHeader("webhook-timestamp");
        const BAD_SIG: SignatureError = SignatureError::MalformedHeader("webhook-signature");
        let huge = format!("{valid} ").repeat(1000);
        let cases: Vec<(&str, String, String, SignatureError)> = vec![
            ("", now_text.clone(), valid.clone(), BAD_ID),
            ("   ", now_text.clone(), valid.clone(), BAD_ID),
            ("msg_1", String::new(), valid.clone(), BAD_TS),
            ("msg_1", "garbage".into(), valid.clone(), BAD_TS),
            ("msg_1", format!("-{NOW}"), valid.clone(), BAD_TS),
            ("msg_1", format!("{NOW}.5"), valid.clone(), BAD_TS),
            (
                "msg_1",
                "99999999999999999999999".into(),
                valid.clone(),
                BAD_TS,
            ),
            ("msg_1", now_text.clone(), String::new(), BAD_SIG),
            ("msg_1", now_text.clone(), "garbage".into(), BAD_SIG),
            ("msg_1", now_text.clone(), format!("{valid} v1"), BAD_SIG),
            ("msg_1", now_text.clone(), huge, BAD_SIG),
            (
                "msg_1",
                now_text.clone(),
                "v1,".into(),
                SignatureError::NoMatchingSignature,
            ),
            (
                "msg_1",
                now_text.clone(),
                "v1,!!!notbase64".into(),
                SignatureError::NoMatchingSignature,
            ),
            (
                "msg_1",
                now_text.clone(),
                "v1,AAAA".into(),
                SignatureError::NoMatchingSignature,
            ),
            (
                "msg_1",
                now_text.clone(),
                format!("{valid}AAAA"),
                SignatureError::NoMatchingSignature,
            ),
            (
                "msg_1",
                now_text.clone(),
                "v1,,,, ,,".into(),
                SignatureError::NoMatchingSignature,
            ),
            (
                "msg_1",
                "0".into(),
                valid.clone(),
                SignatureError::StaleTimestamp,
            ),
        ];
        for (webhook_id, timestamp, signature, expected) in cases {
            let shown: String = signature.chars().take(60).collect();
            let headers = standard_headers(webhook_id, &timestamp, &signature);
            assert_eq!(
                verify_standard_webhooks(&headers, BODY, &configured, NOW).map(|_| ()),
                Err(expected),
                "id {webhook_id:?} ts {timestamp:?} sig {shown:?}"
            );
        }
    }

    #[test]
    fn standard_webhooks_refuses_repeated_or_non_ascii_headers() {
        let configured = secrets(WHOP_SECRET);
        let mut repeated = whop_signed_headers("msg_1", BODY, WHOP_SECRET, NOW);
        let valid = repeated.get(WEBHOOK_SIGNATURE).expect("signature").clone();
        repeated.append(WEBHOOK_SIGNATURE, valid);
        assert_eq!(
            verify_standard_webhooks(&repeated, BODY, &configured, NOW).map(|_| ()),
            Err(SignatureError::MalformedHeader("webhook-signature"))
        );

        let mut non_ascii = whop_signed_headers("msg_1", BODY, WHOP_SECRET, NOW);
        non_ascii.insert(
            WEBHOOK_ID,
            HeaderValue::from_bytes(b"msg_\xff").expect("obs-text"),
        );
        assert_eq!(
            verify_standard_webhooks(&non_ascii, BODY, &configured, NOW).map(|_| ()),
            Err(SignatureError::MalformedHeader("webhook-id"))
        );
    }

    #[test]
    fn standard_webhooks_header_names_are_case_insensitive() {
        let signature = sign_standard_webhooks("msg_1", BODY, WHOP_SECRET, NOW);
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("Webhook-Id", "msg_1".to_owned()),
            ("WEBHOOK-TIMESTAMP", NOW.to_string()),
            ("Webhook-Signature", signature),
        ] {
            let name = http::HeaderName::from_bytes(name.as_bytes()).expect("name");
            headers.insert(name, HeaderValue::from_str(&value).expect("value"));
        }
        assert!(verify_standard_webhooks(&headers, BODY, &secrets(WHOP_SECRET), NOW).is_ok());
    }

    // ---- Secrets and errors ----------------------------------------------------------------

    fn exposed(secrets: &WebhookSecrets) -> Vec<&str> {
        secrets
            .secrets
            .iter()
            .map(|secret| secret.expose_secret())
            .collect()
    }

    #[test]
    fn webhook_secrets_parse_trims_and_splits_and_drops_empties() {
        let parsed = secrets("  whsec_old ,, \twhsec_new\n, ");
        assert_eq!(exposed(&parsed), ["whsec_old", "whsec_new"]);
        assert_eq!(exposed(&secrets("only")), ["only"]);
    }

    #[test]
    fn webhook_secrets_parse_rejects_a_list_without_secrets() {
        for list in ["", "   ", ",", " , ,\t, "] {
            assert_eq!(
                WebhookSecrets::parse(list).map(|_| ()),
                Err(SignatureError::NoSecrets),
                "{list:?}"
            );
        }
    }

    #[test]
    fn webhook_secrets_debug_does_not_reveal_the_secrets() {
        let parsed = secrets("whsec_supersecret1,ws_supersecret2");
        let debug = format!("{parsed:?} {parsed:#?}");
        assert!(!debug.contains("supersecret"), "{debug}");
        assert!(debug.contains("WebhookSecrets"), "{debug}");
        assert!(debug.contains('2'), "{debug}");
    }

    #[test]
    fn signature_errors_name_the_header_but_no_secret_or_signature() {
        let header = sign_stripe(BODY, "whsec_supersecret", NOW);
        let error = verify_stripe(Some(&header), b"other", &secrets("whsec_supersecret"), NOW)
            .expect_err("tampered");
        let v1 = header.split_once(",v1=").expect("v1").1;
        for shown in [error.to_string(), format!("{error:?}")] {
            assert!(
                !shown.contains("supersecret") && !shown.contains(v1),
                "{shown}"
            );
        }
        assert_eq!(
            SignatureError::MissingHeader("webhook-id").to_string(),
            "missing webhook signature header `webhook-id`"
        );
        assert_eq!(
            SignatureError::MalformedHeader("Stripe-Signature").to_string(),
            "malformed webhook signature header `Stripe-Signature`"
        );
    }

    #[test]
    fn standard_webhooks_key_falls_back_to_raw_bytes_for_a_whsec_secret_that_is_not_base64() {
        // `whsec_local_dev` is not base64 (`_`): sign and verify agree on the raw bytes.
        let secret = "whsec_local_dev";
        assert_eq!(standard_webhooks_key(secret).as_ref(), secret.as_bytes());
        assert_eq!(standard_webhooks_key("whsec_").as_ref(), b"whsec_");
        assert_eq!(
            standard_webhooks_key("whsec_c2VjcmV0Cg==").as_ref(),
            b"secret\n"
        );
        let headers = whop_signed_headers("msg_1", BODY, secret, NOW);
        assert!(verify_standard_webhooks(&headers, BODY, &secrets(secret), NOW).is_ok());
    }
}
