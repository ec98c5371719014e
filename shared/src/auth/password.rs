//! Password hashing: argon2id with m = 19456 KiB, t = 2, p = 1 (OWASP Password Storage Cheat
//! Sheet, "Argon2id" row), stored as a PHC string.
//!
//! The argon2 block buffer (19 MiB) is kept per thread and reused: allocating it per call costs
//! up to 3x in page faults (measured, BENCHMARKS.md and `infra/bench/peers/README.md`). Callers run hashing on
//! `tokio::task::spawn_blocking`; see [`crate::auth::Auth`].

use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::cell::RefCell;

/// OWASP's argon2id memory cost, KiB.
pub const M_COST_KIB: u32 = 19_456;
/// OWASP's argon2id iterations.
pub const T_COST: u32 = 2;
/// OWASP's argon2id parallelism.
pub const P_COST: u32 = 1;
/// Salt length in bytes (RFC 9106 §3.1 recommends 16).
const SALT_LEN: usize = 16;
/// Hash output length in bytes.
const OUTPUT_LEN: usize = 32;

/// A PHC hash of a random password at the current parameters, verified for unknown emails so a
/// login for an account that does not exist takes as long as a wrong password (OWASP
/// Authentication Cheat Sheet, "Authentication Responses"). `tests::dummy_hash_uses_current_params`
/// keeps it in step with the constants above.
const DUMMY_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$dG9sbGdhdGUtZHVtbXktc2FsdA$3uNwBbUbNfUp5kLznI9sqNPzjiBeu36eTrz3RRQrxRY";

thread_local! {
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// The result of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Wrong password (or the stored hash is not a usable argon2 PHC string).
    Mismatch,
    /// Correct password, hash at the current parameters.
    Valid,
    /// Correct password, but the hash uses other parameters: store a fresh hash.
    ValidNeedsRehash,
}

/// Hashes and verifies passwords. Cheap to clone; holds no secrets.
#[derive(Clone, Debug)]
pub struct PasswordHasher {
    params: Params,
}

impl Default for PasswordHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl PasswordHasher {
    /// A hasher at OWASP's argon2id parameters.
    pub fn new() -> Self {
        // The constants are valid argon2 parameters; `Params::DEFAULT` is the same triple.
        let params =
            Params::new(M_COST_KIB, T_COST, P_COST, Some(OUTPUT_LEN)).unwrap_or(Params::DEFAULT);
        Self { params }
    }

    /// Hashes `password` with a fresh random salt; returns the PHC string.
    ///
    /// CPU-bound (about 13 ms here): call from a blocking thread.
    ///
    /// # Errors
    /// Only if the system random source fails.
    pub fn hash(&self, password: &[u8]) -> Result<String, argon2::password_hash::Error> {
        let mut salt = [0u8; SALT_LEN];
        aws_lc_rs::rand::fill(&mut salt).map_err(|_| argon2::password_hash::Error::Crypto)?;
        let mut out = [0u8; OUTPUT_LEN];
        compute(
            &self.params,
            Algorithm::Argon2id,
            Version::V0x13,
            password,
            &salt,
            &mut out,
        )?;
        let salt_string = SaltString::encode_b64(&salt)?;
        let hash = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&self.params)?,
            salt: Some(Salt::from(&salt_string)),
            hash: Some(Output::new(&out)?),
        };
        Ok(hash.to_string())
    }

    /// Checks `password` against the PHC string `phc` in constant time.
    ///
    /// CPU-bound: call from a blocking thread. Never fails: an unparsable hash is a mismatch.
    pub fn verify(&self, password: &[u8], phc: &str) -> Verification {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return Verification::Mismatch;
        };
        let (Ok(algorithm), Some(expected), Some(salt)) = (
            Algorithm::try_from(parsed.algorithm),
            parsed.hash,
            parsed.salt,
        ) else {
            return Verification::Mismatch;
        };
        let version = parsed
            .version
            .and_then(|v| Version::try_from(v).ok())
            .unwrap_or(Version::V0x13);
        let Ok(params) = Params::try_from(&parsed) else {
            return Verification::Mismatch;
        };
        let mut salt_buf = [0u8; 64];
        let Ok(salt_bytes) = salt.decode_b64(&mut salt_buf) else {
            return Verification::Mismatch;
        };
        let mut out = vec![0u8; expected.len()];
        if compute(&params, algorithm, version, password, salt_bytes, &mut out).is_err() {
            return Verification::Mismatch;
        }
        // `Output`'s equality is constant-time.
        match Output::new(&out) {
            Ok(actual) if actual == expected => {
                let current = algorithm == Algorithm::Argon2id
                    && version == Version::V0x13
                    && params.m_cost() == self.params.m_cost()
                    && params.t_cost() == self.params.t_cost()
                    && params.p_cost() == self.params.p_cost()
                    && expected.len() == OUTPUT_LEN;
                if current {
                    Verification::Valid
                } else {
                    Verification::ValidNeedsRehash
                }
            }
            _ => Verification::Mismatch,
        }
    }

    /// Verifies `password` against a fixed dummy hash and discards the result: the timing
    /// defence for unknown accounts.
    pub fn verify_dummy(&self, password: &[u8]) {
        let _ = self.verify(password, DUMMY_PHC);
    }
}

/// Runs argon2 into `out`, reusing this thread's block buffer.
fn compute(
    params: &Params,
    algorithm: Algorithm,
    version: Version,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::password_hash::Error> {
    let params = Params::new(
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        Some(out.len()),
    )
    .map_err(argon2::password_hash::Error::from)?;
    let blocks_needed = params.block_count();
    // Refuse absurd stored parameters (over 1 GiB) instead of allocating them.
    if blocks_needed > 1024 * 1024 {
        return Err(argon2::password_hash::Error::ParamValueInvalid(
            argon2::password_hash::errors::InvalidValue::TooLong,
        ));
    }
    let argon = Argon2::new(algorithm, version, params);
    BLOCKS.with(|cell| {
        let mut blocks = cell.borrow_mut();
        if blocks.len() < blocks_needed {
            blocks.resize(blocks_needed, Block::default());
        }
        argon
            .hash_password_into_with_memory(password, salt, out, &mut blocks[..blocks_needed])
            .map_err(argon2::password_hash::Error::from)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify_round_trips_and_is_salted() {
        let h = PasswordHasher::new();
        let a = h.hash(b"correct horse battery").expect("hash");
        let b = h.hash(b"correct horse battery").expect("hash");
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "salts differ");
        assert_eq!(h.verify(b"correct horse battery", &a), Verification::Valid);
        assert_eq!(
            h.verify(b"correct horse batterY", &a),
            Verification::Mismatch
        );
    }

    #[test]
    fn hashes_at_other_parameters_verify_and_ask_for_a_rehash() {
        let old = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8_192, 1, 1, None).expect("params"),
        );
        let salt = SaltString::encode_b64(b"0123456789abcdef").expect("salt");
        let phc = argon2::PasswordHasher::hash_password(&old, b"pw-old-params", &salt)
            .expect("hash")
            .to_string();
        let h = PasswordHasher::new();
        assert_eq!(
            h.verify(b"pw-old-params", &phc),
            Verification::ValidNeedsRehash
        );
        assert_eq!(h.verify(b"wrong", &phc), Verification::Mismatch);
    }

    #[test]
    fn garbage_hashes_are_mismatches_not_panics() {
        let h = PasswordHasher::new();
        for phc in [
            "",
            "plain",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$argon2id$v=19$m=99999999,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$bcrypt$xx",
        ] {
            assert_eq!(h.verify(b"x", phc), Verification::Mismatch, "{phc}");
        }
    }

    #[test]
    fn dummy_hash_uses_current_params() {
        let parsed = PasswordHash::new(DUMMY_PHC).expect("dummy parses");
        let params = Params::try_from(&parsed).expect("params");
        assert_eq!(parsed.algorithm, Algorithm::Argon2id.ident());
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (M_COST_KIB, T_COST, P_COST)
        );
        assert_eq!(parsed.hash.map(|o| o.len()), Some(OUTPUT_LEN));
    }
}
