//! The secrets sent by email: one-time link tokens (256 random bits, base64url, 43 characters)
//! and 6-digit sign-in codes. Only hashes are stored (docs/architecture.md §11; OWASP Forgot
//! Password Cheat Sheet: "store the token hashed").

use crate::domain::TokenHash;
use aws_lc_rs::digest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;

/// Length in bytes of a link token's secret (256 bits).
pub const LINK_SECRET_LEN: usize = 32;
/// Digits of a sign-in code.
pub const CODE_DIGITS: usize = 6;

/// A freshly minted link token: the text that goes in the link, and its stored hash.
pub struct LinkToken {
    /// The token as it travels in the link (`?token=…`): base64url, no padding.
    pub token: String,
    /// What is stored: SHA-256 of the token text, base64url.
    pub hash: TokenHash,
}

impl std::fmt::Debug for LinkToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkToken")
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

impl LinkToken {
    /// Mints a token from the system's random source.
    ///
    /// # Errors
    /// Only if the random source fails.
    pub fn generate() -> Result<Self, aws_lc_rs::error::Unspecified> {
        let mut secret = [0u8; LINK_SECRET_LEN];
        aws_lc_rs::rand::fill(&mut secret)?;
        let token = B64.encode(secret);
        let hash = hash_text(&token);
        Ok(Self { token, hash })
    }
}

/// The stored hash of a presented link token, or `None` when it cannot be one of ours (wrong
/// length or alphabet): such input never reaches the store.
pub fn link_token_hash(presented: &str) -> Option<TokenHash> {
    let presented = presented.trim();
    let shaped = presented.len() == 43
        && presented
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    shaped.then(|| hash_text(presented))
}

/// A fresh 6-digit code, uniform over 000000..=999999 (rejection sampling over 32-bit draws,
/// so no digit is favoured).
///
/// # Errors
/// Only if the random source fails.
pub fn generate_code() -> Result<String, aws_lc_rs::error::Unspecified> {
    const SPACE: u32 = 1_000_000;
    // The largest multiple of SPACE that fits in u32: draws at or above it are rejected.
    const LIMIT: u32 = u32::MAX - (u32::MAX % SPACE);
    loop {
        let mut bytes = [0u8; 4];
        aws_lc_rs::rand::fill(&mut bytes)?;
        let n = u32::from_le_bytes(bytes);
        if n < LIMIT {
            return Ok(format!("{:06}", n % SPACE));
        }
    }
}

/// The stored hash of a sign-in code for a normalized email: SHA-256 over the email, a NUL and
/// the digits (binding the code to its mailbox), or `None` if `code` is not 6 digits.
pub fn code_hash(normalized_email: &str, code: &str) -> Option<TokenHash> {
    let code = code.trim();
    let shaped = code.len() == CODE_DIGITS && code.bytes().all(|b| b.is_ascii_digit());
    shaped.then(|| {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"tollgate/email-code/v1\0");
        ctx.update(normalized_email.as_bytes());
        ctx.update(b"\0");
        ctx.update(code.as_bytes());
        TokenHash(B64.encode(ctx.finish().as_ref()))
    })
}

/// `bytes` random bytes (the OS generator), base64url without padding.
///
/// # Errors
/// `Internal` if the generator fails.
pub(super) fn random_b64(bytes: usize) -> Result<String, super::AuthError> {
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| super::service::random_failed())?;
    Ok(B64.encode(buf))
}

/// SHA-256 of `text`, base64url without padding: how every presented secret (link tokens, OAuth
/// states) is stored.
pub fn hash_text(text: &str) -> TokenHash {
    TokenHash(B64.encode(digest::digest(&digest::SHA256, text.as_bytes()).as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_token_hashes_to_what_is_stored() {
        let t = LinkToken::generate().expect("random");
        assert_eq!(t.token.len(), 43);
        assert_eq!(link_token_hash(&t.token), Some(t.hash.clone()));
        assert!(!format!("{t:?}").contains(&t.token));
    }

    #[test]
    fn malformed_tokens_and_codes_have_no_hash() {
        assert_eq!(link_token_hash("short"), None);
        assert_eq!(link_token_hash(&"a".repeat(42)), None);
        assert_eq!(link_token_hash(&format!("{}=", "a".repeat(42))), None);
        assert_eq!(code_hash("a@example.com", "12345"), None);
        assert_eq!(code_hash("a@example.com", "12345a"), None);
        assert!(code_hash("a@example.com", "012345").is_some());
    }

    #[test]
    fn codes_are_six_digits_and_bound_to_the_email() {
        for _ in 0..100 {
            let code = generate_code().expect("random");
            assert_eq!(code.len(), 6);
            assert!(code.bytes().all(|b| b.is_ascii_digit()));
        }
        assert_ne!(
            code_hash("a@example.com", "123456"),
            code_hash("b@example.com", "123456")
        );
    }
}
