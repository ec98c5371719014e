//! Stripe's webhook signature scheme: the `Stripe-Signature` header, as described in Stripe's
//! docs, "Verify webhook signatures manually" (<https://docs.stripe.com/webhooks#verify-manually>).
//! The shared rules (tolerance, bounded parsing, constant-time matching against every secret) are
//! `crate::payments::signature`'s.

use crate::payments::signature::{
    any_signature_matches, check_tolerance, hmac_sha256, parse_unix_seconds, SignatureError,
    Verified, WebhookSecrets, MAX_HEADER_BYTES, MAX_SIGNATURES, TAG_LEN,
};
use std::borrow::Cow;

/// Name of Stripe's signature header (as Stripe spells it; HTTP header names are case-insensitive).
const STRIPE_SIGNATURE: &str = "Stripe-Signature";

/// Verifies a Stripe webhook (Stripe docs, "Verify webhook signatures manually").
///
/// - `signature_header`: the `Stripe-Signature` header value, shaped
///   `t=<unix seconds>,v1=<64 hex>[,v1=<64 hex>…][,v0=<hex>]`. Items are comma-separated
///   `key=value` pairs (whitespace around them tolerated, empty items skipped); exactly one `t`.
///   Several `v1` appear while a secret is rolled (up to 24 h); `v0` (test-mode legacy) and
///   unknown schemes are ignored; only the first 16 `v1` entries are considered, and a `v1`
///   that is not 64 hex digits simply never matches.
/// - `body`: the raw request body bytes, exactly as received.
/// - `secrets`: each used as the HMAC key as-is: the UTF-8 bytes of the FULL `whsec_…` string
///   (Stripe does not base64-decode it, unlike Standard Webhooks).
/// - `now`: the current time in Unix seconds.
///
/// The signed payload is `t + "." + body` (with `t` exactly as sent), signed with HMAC-SHA256.
/// The body is accepted if ANY `v1` matches ANY secret and `|now - t| <= 300` s.
///
/// # Errors
/// - [`SignatureError::MissingHeader`]`("Stripe-Signature")` if the header is absent.
/// - [`SignatureError::MalformedHeader`]`("Stripe-Signature")` if it is over 8 KiB, has an item
///   without `=`, has no `t` or more than one, or `t` is not a non-negative integer.
/// - [`SignatureError::StaleTimestamp`] if `t` is more than the tolerance (300 s) from `now`.
/// - [`SignatureError::NoMatchingSignature`] if no `v1` matches any secret.
pub fn verify<'a>(
    signature_header: Option<&str>,
    body: &'a [u8],
    secrets: &WebhookSecrets,
    now: i64,
) -> Result<Verified<'a>, SignatureError> {
    let header = signature_header.ok_or(SignatureError::MissingHeader(STRIPE_SIGNATURE))?;
    let parsed = parse_stripe_header(header)?;
    check_tolerance(parsed.timestamp, now)?;
    let matched = any_signature_matches(
        secrets,
        |secret| Cow::Borrowed(secret.as_bytes()),
        &[parsed.timestamp_text.as_bytes(), b".", body],
        &parsed.signatures,
    );
    if !matched {
        return Err(SignatureError::NoMatchingSignature);
    }
    Ok(Verified::new(body, None))
}

/// Signs `body` the way Stripe does, for tests and doubles (the dev server's offline Stripe).
///
/// Returns the full `Stripe-Signature` header value `t=<timestamp>,v1=<64 lowercase hex>`, where
/// the `v1` is HMAC-SHA256 keyed with `secret`'s UTF-8 bytes as-is over `timestamp + "." + body`
/// (Stripe docs, "Verify webhook signatures manually"). `timestamp` is in Unix seconds.
pub fn sign(body: &[u8], secret: &str, timestamp: i64) -> String {
    let timestamp_text = timestamp.to_string();
    let tag = hmac_sha256(secret.as_bytes(), &[timestamp_text.as_bytes(), b".", body]);
    let mut header = format!("t={timestamp_text},v1=");
    for byte in tag.as_ref() {
        header.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
        header.push(char::from(HEX_DIGITS[usize::from(byte & 0x0f)]));
    }
    header
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// A parsed `Stripe-Signature` header.
struct StripeHeader<'h> {
    /// `t` exactly as sent (it is what was signed).
    timestamp_text: &'h str,
    timestamp: i64,
    /// Decoded `v1` signatures (at most [`MAX_SIGNATURES`]).
    signatures: Vec<[u8; TAG_LEN]>,
}

fn parse_stripe_header(header: &str) -> Result<StripeHeader<'_>, SignatureError> {
    const MALFORMED: SignatureError = SignatureError::MalformedHeader(STRIPE_SIGNATURE);
    if header.len() > MAX_HEADER_BYTES {
        return Err(MALFORMED);
    }
    let mut timestamp_text = None;
    let mut signatures = Vec::new();
    let mut v1_seen = 0usize;
    for item in header.split(',').map(str::trim) {
        if item.is_empty() {
            continue;
        }
        let (key, value) = item.split_once('=').ok_or(MALFORMED)?;
        match key.trim() {
            "t" if timestamp_text.is_some() => return Err(MALFORMED),
            "t" => timestamp_text = Some(value.trim()),
            "v1" if v1_seen < MAX_SIGNATURES => {
                v1_seen += 1;
                if let Some(signature) = decode_hex_tag(value.trim()) {
                    signatures.push(signature);
                }
            }
            // `v1` beyond the first 16, `v0` (Stripe's legacy test-mode scheme) and schemes we
            // do not know are ignored.
            _ => {}
        }
    }
    let timestamp_text = timestamp_text.ok_or(MALFORMED)?;
    let timestamp = parse_unix_seconds(timestamp_text).ok_or(MALFORMED)?;
    Ok(StripeHeader {
        timestamp_text,
        timestamp,
        signatures,
    })
}

/// 64 hex digits (either case) as 32 bytes; `None` for anything else.
fn decode_hex_tag(text: &str) -> Option<[u8; TAG_LEN]> {
    fn nibble(digit: u8) -> Option<u8> {
        match digit {
            b'0'..=b'9' => Some(digit - b'0'),
            b'a'..=b'f' => Some(digit - b'a' + 10),
            b'A'..=b'F' => Some(digit - b'A' + 10),
            _ => None,
        }
    }
    let digits = text.as_bytes();
    if digits.len() != TAG_LEN * 2 {
        return None;
    }
    let mut tag = [0u8; TAG_LEN];
    for (byte, pair) in tag.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(tag)
}
