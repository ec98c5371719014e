//! Signing-key rotation while functions stay warm (`auth::key_ring`), through the real bootstrap
//! (`ensure_signing_keys`) writing the two secrets in a directory and `SecretKeySource` reading
//! them back: a warm verifier accepts a token of the new key at once (it loads the JWKS again on
//! the unknown `kid`), tokens with made-up `kid`s make it read the secret at most once per 30 s,
//! a warm signer signs with the new key once its keys are 5 minutes old, and a key removed from
//! the secret is refused within those 5 minutes.

use async_trait::async_trait;
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tollgate::auth::keys::{ensure_signing_keys, KeySecrets};
use tollgate::auth::{
    AccessClaims, AccessVerifier, AuthError, KeyRing, KeySecret, KeySet, KeySource, Keys,
    SecretKeySource, SigningKeyFile,
};
use tollgate::secrets::{FileSecretSource, SecretError, SecretSource};
use tollgate::Clock;
use tollgate_tests::ManualClock;

const SECRETS: KeySecrets<'static> = KeySecrets {
    private: "tollgate/jwt-keys",
    public: "tollgate/jwks",
};
const ISSUER: &str = "https://auth.example.com";
const AUDIENCE: &str = "tollgate";
const TTL: i64 = 900;
/// 2027-01-15 08:00 UTC.
const T0: i64 = 1_800_000_000;

/// The directory's secrets, counting the reads (what a warm function would ask Secrets Manager).
struct Counted {
    files: FileSecretSource,
    reads: AtomicUsize,
}

#[async_trait]
impl SecretSource for Counted {
    async fn get_secret(&self, name: &str) -> Result<SecretString, SecretError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.files.get_secret(name).await
    }
}

fn claims(now: i64, exp: i64) -> AccessClaims {
    AccessClaims {
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        sub: uuid::Uuid::now_v7().to_string(),
        sid: uuid::Uuid::now_v7().to_string(),
        iat: now,
        nbf: now,
        exp,
        jti: uuid::Uuid::now_v7().to_string(),
        email_verified: true,
        plan: "free".into(),
        tier: 0,
        entitlements: BTreeMap::new(),
        roles: Vec::new(),
    }
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .expect("header")
        .kid
        .expect("kid")
}

fn source(secrets: &Arc<Counted>, kind: KeySecret) -> Arc<dyn KeySource> {
    let name = match kind {
        KeySecret::Signing => SECRETS.private,
        KeySecret::Jwks => SECRETS.public,
    };
    Arc::new(SecretKeySource::new(
        secrets.clone(),
        name,
        kind,
        ISSUER,
        AUDIENCE,
    ))
}

/// A function's keys as at its cold start: loaded now, loaded again while warm.
async fn cold_start(secrets: &Arc<Counted>, kind: KeySecret, clock: &Arc<ManualClock>) -> KeyRing {
    let source = source(secrets, kind);
    let keys = source.load().await.expect("keys load");
    KeyRing::reloading(keys, source, clock.clone())
}

fn sign(keys: &Keys, now: i64, exp: i64) -> String {
    keys.signing
        .as_ref()
        .expect("a signing set")
        .sign(&claims(now, exp))
        .expect("sign")
}

#[tokio::test]
async fn warm_functions_follow_a_rotation_without_a_restart() {
    let dir = std::env::temp_dir().join(format!("tollgate-key-rotation-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let secrets = Arc::new(Counted {
        files: FileSecretSource::new(&dir),
        reads: AtomicUsize::new(0),
    });
    ensure_signing_keys(&secrets.files, SECRETS, false, T0, TTL)
        .await
        .expect("create the keys");
    let clock = Arc::new(ManualClock::new(T0));

    // Two warm functions: a signer (login) and a verifier that reads only the JWKS.
    let signer = cold_start(&secrets, KeySecret::Signing, &clock).await;
    let verifier = AccessVerifier::new(
        Arc::new(cold_start(&secrets, KeySecret::Jwks, &clock).await),
        clock.clone(),
    );
    let first = signer.held();
    let long_lived = sign(&first, T0, T0 + 100_000);

    clock.advance(60);
    let rotated = ensure_signing_keys(&secrets.files, SECRETS, true, clock.now(), TTL)
        .await
        .expect("rotate");
    // A function started after the rotation signs with the new key at once.
    let fresh = source(&secrets, KeySecret::Signing)
        .load()
        .await
        .expect("keys");
    let new_token = sign(&fresh, clock.now(), clock.now() + TTL);
    assert_eq!(kid(&new_token), rotated.signing_kid);
    // The warm signer still signs with the old key (its keys are a minute old), still accepted.
    let old_token = sign(&signer.current().await, clock.now(), clock.now() + TTL);
    assert_ne!(kid(&old_token), rotated.signing_kid);

    let reads = secrets.reads.load(Ordering::SeqCst);
    let who = verifier.verify(&new_token).await;
    assert!(
        who.is_ok(),
        "the warm verifier loads the JWKS again on the new kid: {who:?}"
    );
    assert_eq!(secrets.reads.load(Ordering::SeqCst), reads + 1, "one read");
    assert!(
        verifier.verify(&old_token).await.is_ok(),
        "the old key stays published"
    );
    assert_eq!(
        secrets.reads.load(Ordering::SeqCst),
        reads + 1,
        "a known kid reads nothing"
    );

    // Tokens with a kid nobody published: refused, and at most one read per 30 s.
    let stranger = KeySet::from_file(
        &SigningKeyFile::generate(T0).expect("generate"),
        ISSUER,
        AUDIENCE,
    )
    .expect("keys");
    let forged = stranger
        .sign(&claims(clock.now(), clock.now() + TTL))
        .expect("sign");
    for _ in 0..5 {
        assert!(matches!(
            verifier.verify(&forged).await,
            Err(AuthError::InvalidAccessToken)
        ));
    }
    assert_eq!(
        secrets.reads.load(Ordering::SeqCst),
        reads + 1,
        "within 30 s of the last read, unknown kids read nothing"
    );
    clock.advance(31);
    for _ in 0..5 {
        assert!(verifier.verify(&forged).await.is_err());
    }
    assert_eq!(
        secrets.reads.load(Ordering::SeqCst),
        reads + 2,
        "31 s later: one read for five forged tokens"
    );

    // Five minutes after its cold start the warm signer loads its keys again and signs with
    // the new key.
    clock.advance(300 - 91);
    let now = clock.now();
    assert_eq!(
        kid(&sign(&signer.current().await, now, now + TTL)),
        rotated.signing_kid
    );

    // Emergency: the first key is taken out of the secrets (a rotation long after it stopped
    // signing drops it). Until the verifier's keys are 5 minutes old the removed key's
    // unexpired token still passes; after that it is refused.
    let dropped = ensure_signing_keys(&secrets.files, SECRETS, true, now + 2_000, TTL)
        .await
        .expect("rotate again");
    assert!(!dropped.published.contains(&kid(&long_lived)));
    assert!(
        verifier.verify(&long_lived).await.is_ok(),
        "keys loaded {} s ago are still used",
        now - (T0 + 91)
    );
    clock.advance(T0 + 91 + 300 - now);
    assert!(matches!(
        verifier.verify(&long_lived).await,
        Err(AuthError::InvalidAccessToken)
    ));
    let _ = std::fs::remove_dir_all(&dir);
}
