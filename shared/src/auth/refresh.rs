//! Refresh tokens: `<user id>.<session id>.<secret>`, the secret 256 random bits in base64url
//! (43 characters). Only `SHA-256(secret)` is stored ([`TokenHash`]).
//!
//! The user id travels in the token so the session (`USER#<id>` / `SESSION#<sid>`) is read with
//! one `GetItem` and a user's sessions stay listable with one `Query`; the token is opaque to
//! clients all the same.
//!
//! **Sealed successor.** When a token is rotated, the new secret is stored XOR-ed with
//! `HMAC-SHA256(key = old secret, "tollgate/refresh-successor/v1" ‖ session id)`. Only a caller
//! holding the old secret can recover the successor, which is what the grace window hands out;
//! the store alone holds nothing that refreshes. Each old secret seals exactly one successor, so
//! the HMAC output is a one-time pad; integrity is checked by hashing the result against the
//! session's current hash.

use crate::domain::{SessionId, TokenHash, UserId};
use aws_lc_rs::{digest, hmac};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use std::fmt;

/// Secret length in bytes (256 bits).
pub const SECRET_LEN: usize = 32;
const SEAL_CONTEXT: &[u8] = b"tollgate/refresh-successor/v1";

/// A parsed refresh token. `Debug` redacts the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// The session's owner.
    pub user_id: UserId,
    /// The session (token family).
    pub session_id: SessionId,
    secret: [u8; SECRET_LEN],
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshToken")
            .field("user_id", &self.user_id)
            .field("session_id", &self.session_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl RefreshToken {
    /// A token with a fresh random secret.
    ///
    /// # Errors
    /// Only if the system random source fails.
    pub fn generate(
        user_id: UserId,
        session_id: SessionId,
    ) -> Result<Self, aws_lc_rs::error::Unspecified> {
        let mut secret = [0u8; SECRET_LEN];
        aws_lc_rs::rand::fill(&mut secret)?;
        Ok(Self {
            user_id,
            session_id,
            secret,
        })
    }

    /// Parses the wire form. Returns `None` for anything malformed (never panics).
    pub fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        if raw.len() > 200 {
            return None;
        }
        let mut parts = raw.split('.');
        let user_id = parts.next()?.parse().ok()?;
        let session_id = parts.next()?.parse().ok()?;
        let secret_b64 = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        let bytes = B64.decode(secret_b64).ok()?;
        let secret: [u8; SECRET_LEN] = bytes.try_into().ok()?;
        Some(Self {
            user_id,
            session_id,
            secret,
        })
    }

    /// The wire form `<user id>.<session id>.<secret>`.
    pub fn encode(&self) -> String {
        format!(
            "{}.{}.{}",
            self.user_id,
            self.session_id,
            B64.encode(self.secret)
        )
    }

    /// `SHA-256(secret)`, the stored form.
    pub fn hash(&self) -> TokenHash {
        TokenHash(B64.encode(digest::digest(&digest::SHA256, &self.secret)))
    }

    /// Seals `successor`'s secret under a key derived from this token's secret (base64url).
    pub fn seal_successor(&self, successor: &RefreshToken) -> String {
        let pad = self.pad();
        let mut sealed = [0u8; SECRET_LEN];
        for (i, byte) in sealed.iter_mut().enumerate() {
            *byte = successor.secret[i] ^ pad[i];
        }
        B64.encode(sealed)
    }

    /// Recovers the successor sealed by [`RefreshToken::seal_successor`]; `None` if `sealed` is
    /// malformed or the result does not hash to `expected` (the session's current hash).
    pub fn open_successor(&self, sealed: &str, expected: &TokenHash) -> Option<RefreshToken> {
        let bytes: [u8; SECRET_LEN] = B64.decode(sealed).ok()?.try_into().ok()?;
        let pad = self.pad();
        let mut secret = [0u8; SECRET_LEN];
        for (i, byte) in secret.iter_mut().enumerate() {
            *byte = bytes[i] ^ pad[i];
        }
        let successor = RefreshToken {
            user_id: self.user_id,
            session_id: self.session_id,
            secret,
        };
        successor.hash().ct_eq(expected).then_some(successor)
    }

    fn pad(&self) -> [u8; SECRET_LEN] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.secret);
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(SEAL_CONTEXT);
        ctx.update(self.session_id.to_string().as_bytes());
        let tag = ctx.sign();
        let mut pad = [0u8; SECRET_LEN];
        pad.copy_from_slice(&tag.as_ref()[..SECRET_LEN]);
        pad
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_hash_is_stable() {
        let t = RefreshToken::generate(UserId::new(), SessionId::new()).expect("rng");
        let parsed = RefreshToken::parse(&t.encode()).expect("parses");
        assert_eq!(parsed, t);
        assert_eq!(parsed.hash(), t.hash());
        assert_eq!(t.hash().0.len(), 43);
    }

    #[test]
    fn malformed_tokens_do_not_parse() {
        let t = RefreshToken::generate(UserId::new(), SessionId::new())
            .expect("rng")
            .encode();
        for bad in [
            "",
            "a.b.c",
            &format!("{t}.x"),
            &t[..t.len() - 2],
            "x".repeat(5000).as_str(),
        ] {
            assert!(RefreshToken::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn only_the_previous_secret_opens_the_sealed_successor() {
        let (u, s) = (UserId::new(), SessionId::new());
        let old = RefreshToken::generate(u, s).expect("rng");
        let new = RefreshToken::generate(u, s).expect("rng");
        let sealed = old.seal_successor(&new);
        assert_eq!(old.open_successor(&sealed, &new.hash()), Some(new.clone()));
        let stranger = RefreshToken::generate(u, s).expect("rng");
        assert_eq!(stranger.open_successor(&sealed, &new.hash()), None);
        assert!(!format!("{old:?}").contains(&B64.encode(old.secret)));
    }
}
