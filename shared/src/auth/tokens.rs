//! Access tokens: RS256 JWTs (RFC 7519, RFC 7518 §3.3) with a `kid` header, verifiable by anyone
//! holding the published JWKS (RFC 7517). RS256 is the default because API Gateway's built-in JWT
//! authorizer accepts only RSA keys.
//!
//! A key set may hold several keys (rotation): the newest signs, all are published and accepted
//! until removed. The `kid` is the key's RFC 7638 SHA-256 thumbprint.
//!
//! Two halves, so a function that only verifies never holds a private key: [`KeySet`] (the
//! private keys, read by the functions that issue tokens) and [`PublicKeys`] (the JWKS, built
//! from a [`KeySet`] or parsed from the published JWKS document that the keys bootstrap writes for
//! everyone else, `crate::auth::keys`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Clock skew tolerated when checking `exp` and `nbf`, in seconds.
pub const LEEWAY_SECONDS: u64 = 5;

/// The claims of a Tollgate access token. Times are Unix seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer (`TOLLGATE_ISSUER`).
    pub iss: String,
    /// Audience (`TOLLGATE_AUDIENCE`).
    pub aud: String,
    /// The user id.
    pub sub: String,
    /// The session id the token was issued for.
    pub sid: String,
    /// Issued at.
    pub iat: i64,
    /// Not before (= `iat`).
    pub nbf: i64,
    /// Expiry (`iat` + access-token TTL).
    pub exp: i64,
    /// Unique token id (UUIDv7).
    pub jti: String,
    /// Whether the user's email was verified at issue time (OpenID Connect Core §5.1 name).
    #[serde(default)]
    pub email_verified: bool,
    /// The plan id the user had at issue time (`free` without a subscription).
    pub plan: String,
    /// The plan's tier rank (0 for `free`).
    pub tier: u32,
    /// The plan's entitlements: flags (`true`) and numeric limits.
    pub entitlements: BTreeMap<String, serde_json::Value>,
    /// The user's roles at issue time (`["admin"]`; absent when none): for the customer's own
    /// services. Tollgate's admin API reads the stored roles on every request instead, so a
    /// role taken away counts at once, not when the token expires.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

/// The stored form of the signing keys (the Secrets Manager secret's JSON, or the dev server's
/// `jwt-keys.json`): `{"keys": [{"private_key_pem": "-----BEGIN PRIVATE KEY-----…", "created_at": 1763712000}]}`.
#[derive(Clone, Serialize, Deserialize)]
pub struct SigningKeyFile {
    /// The keys, in any order; the one with the greatest `created_at` signs.
    pub keys: Vec<StoredSigningKey>,
}

/// One RSA private key in PKCS#8 PEM, and when it was created (Unix seconds).
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredSigningKey {
    /// PKCS#8 (`PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`) PEM of an RSA key of 2048+ bits.
    pub private_key_pem: String,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

impl SigningKeyFile {
    /// A file holding one freshly generated RSA-2048 key created at `now`.
    ///
    /// # Errors
    /// [`KeySetError::Generate`] if key generation fails.
    pub fn generate(now: i64) -> Result<Self, KeySetError> {
        Ok(Self {
            keys: vec![generate_key(now)?],
        })
    }

    /// This file with one more freshly generated key (created at `now`, Unix seconds), which
    /// becomes the signing key. A key stops signing when its successor is created, and the tokens
    /// it signed stay valid for one access-token lifetime (plus verification leeway) after that:
    /// so every key whose successor was created at or after `retired_after` (Unix seconds;
    /// callers pass `now - access TTL - leeway`) stays, to verify those tokens and to be
    /// published in the JWKS; older ones are dropped. The previous signing key always stays.
    ///
    /// # Errors
    /// [`KeySetError::Generate`] if key generation fails.
    pub fn rotated(mut self, now: i64, retired_after: i64) -> Result<Self, KeySetError> {
        self.keys.sort_by_key(|k| k.created_at);
        let successors: Vec<i64> = self
            .keys
            .iter()
            .skip(1)
            .map(|k| k.created_at)
            .chain(std::iter::once(now))
            .collect();
        self.keys = std::mem::take(&mut self.keys)
            .into_iter()
            .zip(successors)
            .filter(|(_, successor_created)| *successor_created >= retired_after)
            .map(|(k, _)| k)
            .collect();
        self.keys.push(generate_key(now)?);
        Ok(self)
    }
}

fn generate_key(now: i64) -> Result<StoredSigningKey, KeySetError> {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
    use base64::Engine as _;
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .map_err(|_| KeySetError::Generate)?;
    let der: Pkcs8V1Der<'static> = pair.as_der().map_err(|_| KeySetError::Generate)?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok(StoredSigningKey {
        private_key_pem: pem,
        created_at: now,
    })
}

/// Why a key set could not be built or a token not issued.
#[derive(Debug, thiserror::Error)]
pub enum KeySetError {
    /// The key set JSON does not parse.
    #[error("signing key set is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A key is not a usable RSA private key (message never includes key material).
    #[error("signing key {index} is not a usable RSA private key")]
    BadKey {
        /// Position in the file.
        index: usize,
    },
    /// The set holds no key.
    #[error("signing key set is empty")]
    Empty,
    /// Generating a key failed.
    #[error("could not generate an RSA key")]
    Generate,
    /// Signing failed.
    #[error("could not sign an access token")]
    Sign,
}

/// Why an access token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Malformed, wrong algorithm, bad signature, wrong `iss`/`aud`, or not yet valid.
    #[error("access token is invalid")]
    Invalid,
    /// Signed by a key this set does not hold (its `kid` is unknown): invalid, or signed by a
    /// key published after this set was loaded ([`super::KeyRing`] then loads the keys again).
    #[error("access token is signed by an unknown key")]
    UnknownKey,
    /// Past `exp`.
    #[error("access token has expired")]
    Expired,
}

struct VerifyingKey {
    kid: String,
    key: DecodingKey,
}

/// The public half: verification keys by `kid`, and the JWKS document that publishes them.
pub struct PublicKeys {
    verifying: Vec<VerifyingKey>,
    jwks: JwkSet,
    validation: Validation,
}

impl std::fmt::Debug for PublicKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKeys")
            .field(
                "kids",
                &self.verifying.iter().map(|k| &k.kid).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl PublicKeys {
    /// Parses a published JWKS document (`{"keys": [{"kty":"RSA","kid":…,"n":…,"e":…}]}`) for
    /// tokens with `iss = issuer` and `aud = audience`.
    ///
    /// # Errors
    /// [`KeySetError::Json`] if it does not parse; [`KeySetError::BadKey`] for a key without a
    /// `kid` or that is not an RSA public key; [`KeySetError::Empty`] for no key.
    pub fn from_json(json: &str, issuer: &str, audience: &str) -> Result<Self, KeySetError> {
        let jwks: JwkSet = serde_json::from_str(json)?;
        let mut verifying = Vec::with_capacity(jwks.keys.len());
        for (index, jwk) in jwks.keys.iter().enumerate() {
            let bad = || KeySetError::BadKey { index };
            let kid = jwk.common.key_id.clone().ok_or_else(bad)?;
            if !matches!(
                jwk.algorithm,
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_)
            ) {
                return Err(bad());
            }
            let key = DecodingKey::from_jwk(jwk).map_err(|_| bad())?;
            verifying.push(VerifyingKey { kid, key });
        }
        if verifying.is_empty() {
            return Err(KeySetError::Empty);
        }
        Ok(Self {
            verifying,
            jwks,
            validation: validation(issuer, audience),
        })
    }

    /// Verifies signature, `kid`, `iss` and `aud`, then `exp` and `nbf` against `now` (Unix
    /// seconds) with [`LEEWAY_SECONDS`], and returns the claims.
    ///
    /// # Errors
    /// [`TokenError::Expired`] past `exp`; [`TokenError::UnknownKey`] for a `kid` not in the
    /// set; [`TokenError::Invalid`] for anything else.
    pub fn verify(&self, token: &str, now: i64) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != Algorithm::RS256 {
            return Err(TokenError::Invalid);
        }
        let kid = header.kid.ok_or(TokenError::Invalid)?;
        let key = self
            .verifying
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(TokenError::UnknownKey)?;
        let claims = jsonwebtoken::decode::<AccessClaims>(token, &key.key, &self.validation)
            .map(|data| data.claims)
            .map_err(|_| TokenError::Invalid)?;
        let leeway = LEEWAY_SECONDS as i64;
        if claims.nbf > now + leeway {
            return Err(TokenError::Invalid);
        }
        if now > claims.exp + leeway {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    /// The public keys as a JWKS document (`{"keys": [{"kty":"RSA","kid":…,"use":"sig","alg":"RS256","n":…,"e":…}]}`).
    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }
}

fn validation(issuer: &str, audience: &str) -> Validation {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    // `exp` and `nbf` are checked in `verify` against the injected clock, not the system time.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation
}

/// The private signing keys (and, derived from them, the [`PublicKeys`]).
///
/// Signing uses an aws-lc RSA key pair parsed once, with the JWS header pre-encoded:
/// `jsonwebtoken::encode` re-parses the private key on every call, which measured 555 µs per
/// token against 231 µs for the signature alone (`BENCHMARKS.md`). Verification and the JWKS
/// use `jsonwebtoken`.
pub struct KeySet {
    signing_kid: String,
    signing_pair: aws_lc_rs::signature::RsaKeyPair,
    encoded_header: String,
    rng: aws_lc_rs::rand::SystemRandom,
    public: std::sync::Arc<PublicKeys>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("signing_kid", &self.signing_kid)
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl KeySet {
    /// Parses the key set JSON (see [`SigningKeyFile`]) for tokens with `iss = issuer` and
    /// `aud = audience`.
    ///
    /// # Errors
    /// [`KeySetError`] if the JSON or any key is unusable, or there is no key.
    pub fn from_json(json: &str, issuer: &str, audience: &str) -> Result<Self, KeySetError> {
        let file: SigningKeyFile = serde_json::from_str(json)?;
        Self::from_file(&file, issuer, audience)
    }

    /// Builds the key set from parsed keys.
    ///
    /// # Errors
    /// [`KeySetError`] if any key is unusable or there is none.
    pub fn from_file(
        file: &SigningKeyFile,
        issuer: &str,
        audience: &str,
    ) -> Result<Self, KeySetError> {
        let mut loaded = Vec::with_capacity(file.keys.len());
        for (index, stored) in file.keys.iter().enumerate() {
            let bad = || KeySetError::BadKey { index };
            let encoding =
                EncodingKey::from_rsa_pem(stored.private_key_pem.as_bytes()).map_err(|_| bad())?;
            let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256).map_err(|_| bad())?;
            let kid = jwk.thumbprint(ThumbprintHash::SHA256).map_err(|_| bad())?;
            jwk.common.key_id = Some(kid.clone());
            jwk.common.public_key_use = Some(PublicKeyUse::Signature);
            jwk.common.key_algorithm = Some(KeyAlgorithm::RS256);
            let decoding = DecodingKey::from_jwk(&jwk).map_err(|_| bad())?;
            loaded.push((stored.created_at, kid, encoding, decoding, jwk));
        }
        // Newest first; the first signs.
        loaded.sort_by_key(|k| std::cmp::Reverse(k.0));
        let mut iter = loaded.into_iter();
        let (_, signing_kid, signing_key, first_decoding, first_jwk) =
            iter.next().ok_or(KeySetError::Empty)?;
        // `EncodingKey::from_rsa_pem` leaves the PKCS#1 RSAPrivateKey DER in `as_bytes()`.
        let signing_pair = aws_lc_rs::signature::RsaKeyPair::from_der(signing_key.as_bytes())
            .map_err(|_| KeySetError::BadKey { index: 0 })?;
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(signing_kid.clone());
        let encoded_header = B64.encode(serde_json::to_vec(&header)?);
        let mut verifying = vec![VerifyingKey {
            kid: signing_kid.clone(),
            key: first_decoding,
        }];
        let mut jwks = vec![first_jwk];
        for (_, kid, _, decoding, jwk) in iter {
            verifying.push(VerifyingKey { kid, key: decoding });
            jwks.push(jwk);
        }
        Ok(Self {
            signing_kid,
            signing_pair,
            encoded_header,
            rng: aws_lc_rs::rand::SystemRandom::new(),
            public: std::sync::Arc::new(PublicKeys {
                verifying,
                jwks: JwkSet { keys: jwks },
                validation: validation(issuer, audience),
            }),
        })
    }

    /// The `kid` of the signing key.
    pub fn signing_kid(&self) -> &str {
        &self.signing_kid
    }

    /// The public half (verification and the JWKS).
    pub fn public(&self) -> &std::sync::Arc<PublicKeys> {
        &self.public
    }

    /// Signs `claims` with the newest key (RS256, `kid` header, `typ: JWT`).
    ///
    /// # Errors
    /// [`KeySetError::Sign`] if the crypto backend fails.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, KeySetError> {
        // JWS compact serialization (RFC 7515 §7.1): b64url(header) "." b64url(claims) "." b64url(sig),
        // RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3).
        let claims = B64.encode(serde_json::to_vec(claims).map_err(|_| KeySetError::Sign)?);
        let mut token = String::with_capacity(self.encoded_header.len() + claims.len() + 350);
        token.push_str(&self.encoded_header);
        token.push('.');
        token.push_str(&claims);
        let mut signature = vec![0u8; self.signing_pair.public_modulus_len()];
        self.signing_pair
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &self.rng,
                token.as_bytes(),
                &mut signature,
            )
            .map_err(|_| KeySetError::Sign)?;
        token.push('.');
        token.push_str(&B64.encode(&signature));
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::LazyLock;

    // RSA key generation is slow-ish; share one file across the tests of this module.
    static FILE: LazyLock<SigningKeyFile> =
        LazyLock::new(|| SigningKeyFile::generate(1_000).expect("generate"));

    fn claims(now: i64, ttl: i64) -> AccessClaims {
        AccessClaims {
            iss: "https://auth.example.com".into(),
            aud: "tollgate".into(),
            sub: "u1".into(),
            sid: "s1".into(),
            iat: now,
            nbf: now,
            exp: now + ttl,
            jti: "j1".into(),
            email_verified: false,
            plan: "free".into(),
            tier: 0,
            entitlements: BTreeMap::new(),
            roles: Vec::new(),
        }
    }

    fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    #[test]
    fn signed_tokens_verify_and_carry_the_kid() {
        let keys = KeySet::from_file(&FILE, "https://auth.example.com", "tollgate").expect("keys");
        let token = keys.sign(&claims(now(), 900)).expect("sign");
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.kid.as_deref(), Some(keys.signing_kid()));
        assert_eq!(
            keys.public().verify(&token, now()).expect("valid").sub,
            "u1"
        );
        // The published JWKS alone verifies it too.
        let jwks = serde_json::to_string(keys.public().jwks()).expect("jwks json");
        let public =
            PublicKeys::from_json(&jwks, "https://auth.example.com", "tollgate").expect("public");
        assert_eq!(public.verify(&token, now()).expect("valid").sub, "u1");
    }

    #[test]
    fn the_cached_signer_matches_jsonwebtoken_byte_for_byte() {
        // RSASSA-PKCS1-v1_5 is deterministic: the same header, claims and key give the same token.
        let keys = KeySet::from_file(&FILE, "https://auth.example.com", "tollgate").expect("keys");
        let c = claims(now(), 900);
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(keys.signing_kid().to_owned());
        let key = EncodingKey::from_rsa_pem(FILE.keys[0].private_key_pem.as_bytes()).expect("pem");
        let reference = jsonwebtoken::encode(&header, &c, &key).expect("encode");
        assert_eq!(keys.sign(&c).expect("sign"), reference);
    }

    #[test]
    fn expired_tampered_and_foreign_tokens_are_refused() {
        let keys = KeySet::from_file(&FILE, "https://auth.example.com", "tollgate").expect("keys");
        let expired = keys.sign(&claims(now() - 1_000, 900)).expect("sign");
        assert_eq!(
            keys.public().verify(&expired, now()),
            Err(TokenError::Expired)
        );
        let future = keys.sign(&claims(now() + 60, 900)).expect("sign");
        assert_eq!(
            keys.public().verify(&future, now()),
            Err(TokenError::Invalid),
            "not yet valid"
        );
        let token = keys.sign(&claims(now(), 900)).expect("sign");
        let mut tampered = token.clone();
        tampered.replace_range(tampered.len() - 4.., "AAAA");
        assert_eq!(
            keys.public().verify(&tampered, now()),
            Err(TokenError::Invalid)
        );
        let other_aud =
            KeySet::from_file(&FILE, "https://auth.example.com", "other").expect("keys");
        assert_eq!(
            other_aud.public().verify(&token, now()),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            keys.public().verify("not.a.jwt", now()),
            Err(TokenError::Invalid)
        );
        // alg=none is refused.
        assert_eq!(
            keys.public()
                .verify("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1MSJ9.", now()),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn rotation_publishes_both_keys_and_signs_with_the_newest() {
        let old = KeySet::from_file(&FILE, "i:x", "a").expect("keys");
        let old_token = old
            .sign(&AccessClaims {
                iss: "i:x".into(),
                aud: "a".into(),
                ..claims(now(), 900)
            })
            .expect("sign");
        let rotated = FILE.clone().rotated(2_000, 0).expect("rotate");
        let keys = KeySet::from_file(&rotated, "i:x", "a").expect("keys");
        assert_eq!(keys.public().jwks().keys.len(), 2);
        assert_ne!(keys.signing_kid(), old.signing_kid());
        assert!(
            keys.public().verify(&old_token, now()).is_ok(),
            "tokens of the old key still verify"
        );
    }

    #[test]
    fn rotation_drops_a_key_only_after_the_tokens_it_signed_have_expired() {
        // Key A (created 1_000) signs until B is created at 2_000; B until C at 6_000.
        let ab = FILE.clone().rotated(2_000, 0).expect("rotate");
        // Rotating again at 6_000 with tokens living 900 s (+5 s leeway): A retired at 2_000
        // (< 6_000 - 905), so its tokens are gone and it is dropped; B retires now and stays.
        let abc = ab.clone().rotated(6_000, 6_000 - 905).expect("rotate");
        let created: Vec<i64> = abc.keys.iter().map(|k| k.created_at).collect();
        assert_eq!(created, vec![2_000, 6_000]);
        // Rotating twice within one token lifetime keeps every key whose tokens may be alive,
        // however long ago it was created.
        let quick = ab.rotated(2_500, 2_500 - 905).expect("rotate");
        let created: Vec<i64> = quick.keys.iter().map(|k| k.created_at).collect();
        assert_eq!(created, vec![1_000, 2_000, 2_500]);
        assert_eq!(quick.keys.iter().map(|k| k.created_at).max(), Some(2_500));
    }

    #[test]
    fn a_jwks_with_private_or_unnamed_keys_is_refused() {
        assert!(matches!(
            PublicKeys::from_json(r#"{"keys":[]}"#, "i", "a"),
            Err(KeySetError::Empty)
        ));
        let keys = KeySet::from_file(&FILE, "i", "a").expect("keys");
        let mut jwks = serde_json::to_value(keys.public().jwks()).expect("json");
        jwks["keys"][0]
            .as_object_mut()
            .expect("object")
            .remove("kid");
        assert!(matches!(
            PublicKeys::from_json(&jwks.to_string(), "i", "a"),
            Err(KeySetError::BadKey { index: 0 })
        ));
    }

    #[test]
    fn bad_key_files_are_errors() {
        assert!(matches!(
            KeySet::from_json("{", "i", "a"),
            Err(KeySetError::Json(_))
        ));
        assert!(matches!(
            KeySet::from_json(r#"{"keys":[]}"#, "i", "a"),
            Err(KeySetError::Empty)
        ));
        let bad = r#"{"keys":[{"private_key_pem":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n","created_at":1}]}"#;
        assert!(matches!(
            KeySet::from_json(bad, "i", "a"),
            Err(KeySetError::BadKey { index: 0 })
        ));
    }
}
