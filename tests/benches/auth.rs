//! Criterion benchmarks of the hot paths: argon2id hash and verify, access-token sign and
//! verify, RSA key parsing (what `jsonwebtoken::encode` does per signature), and a full refresh
//! rotation and the authorizer with an API key on the in-memory embedded store. Run: `cargo bench -p tollgate-tests --bench auth`.

use criterion::{criterion_group, criterion_main, Criterion};
use std::collections::BTreeMap;
use tollgate::auth::{AccessClaims, KeySet, PasswordHasher, SigningKeyFile};
use tollgate::{Clock, SystemClock};

fn claims(now: i64) -> AccessClaims {
    AccessClaims {
        iss: "http://127.0.0.1:3000".into(),
        aud: "tollgate".into(),
        sub: "0190f1b2-0000-7000-8000-000000000000".into(),
        sid: "0190f1b2-0000-7000-8000-000000000001".into(),
        iat: now,
        nbf: now,
        exp: now + 900,
        jti: "0190f1b2-0000-7000-8000-000000000002".into(),
        email_verified: false,
        plan: "free".into(),
        tier: 0,
        entitlements: BTreeMap::new(),
        roles: Vec::new(),
    }
}

fn password(c: &mut Criterion) {
    let hasher = PasswordHasher::new();
    let phc = hasher.hash(b"correct horse battery staple").expect("hash");
    let mut g = c.benchmark_group("argon2id");
    g.sample_size(30);
    g.bench_function("hash", |b| {
        b.iter(|| hasher.hash(b"correct horse battery staple").expect("hash"))
    });
    g.bench_function("verify", |b| {
        b.iter(|| hasher.verify(b"correct horse battery staple", &phc))
    });
    g.finish();
}

fn tokens(c: &mut Criterion) {
    let file = SigningKeyFile::generate(0).expect("key");
    let keys = KeySet::from_file(&file, "http://127.0.0.1:3000", "tollgate").expect("keys");
    let now = SystemClock.now();
    let token = keys.sign(&claims(now)).expect("sign");
    let mut g = c.benchmark_group("access_token");
    g.bench_function("sign_rs256", |b| {
        b.iter(|| keys.sign(&claims(now)).expect("sign"))
    });
    g.bench_function("verify_rs256", |b| {
        b.iter(|| keys.public().verify(&token, now).expect("verify"))
    });
    let pem = file.keys[0].private_key_pem.clone();
    g.bench_function("parse_rsa_private_key", |b| {
        b.iter(|| jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).expect("pem"))
    });
    // What `jsonwebtoken::encode` does per call with the aws-lc backend, split in two: parsing
    // the PKCS#1 DER into a key pair, and the RSA signature itself with a parsed key.
    let der = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes())
        .expect("pem")
        .as_bytes()
        .to_vec();
    g.bench_function("rsa_keypair_from_der", |b| {
        b.iter(|| aws_lc_rs::signature::RsaKeyPair::from_der(&der).expect("der"))
    });
    let pair = aws_lc_rs::signature::RsaKeyPair::from_der(&der).expect("der");
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let mut sig = vec![0u8; pair.public_modulus_len()];
    g.bench_function("rsa_sign_parsed_key", |b| {
        b.iter(|| {
            pair.sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &rng,
                b"header.claims",
                &mut sig,
            )
            .expect("sign")
        })
    });
    g.finish();
}

fn refresh(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (state, _) = tollgate_tests::state_at(SystemClock.now());
    let auth = state.auth().expect("accounts");
    let (_, tokens) = rt.block_on(tollgate_tests::sign_up(&state));
    let mut current = tokens.refresh_token;
    let mut g = c.benchmark_group("session");
    g.bench_function("refresh_rotation_embedded", |b| {
        b.iter(|| {
            let issued = rt
                .block_on(auth.refresh_token(&current, &Default::default()))
                .expect("refresh");
            current = issued.refresh_token;
        })
    });
    g.finish();
}

/// The authorizer on a warm instance, embedded store: a user's API key through
/// `tollgate::lambda::authorize_event` — key lookup and hash check, owner and plan reads, the
/// plan's per-minute counter (the clock moves a minute every 50 calls, so the free plan's 60
/// never runs out and `last_used_at` is written once per simulated minute).
fn authorizer(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (components, clock, _) = tollgate_tests::components_at(SystemClock.now());
    let seeding = tollgate::AppState::assemble(&components, tollgate::Needs::ALL);
    let (user, _) = rt.block_on(tollgate_tests::sign_up(&seeding));
    let key = rt
        .block_on(seeding.auth().expect("accounts").create_api_key(
            &user.id,
            tollgate::domain::ApiKeyKind::User,
            "bench",
            None,
            &Default::default(),
        ))
        .expect("key");
    let state = tollgate::AppState::assemble(&components, authorizer::NEEDS);
    let raw = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../events/authorizer/api-key.allow.json"),
    )
    .expect("event")
    .replace("${API_KEY}", &key.secret);
    let event: aws_lambda_events::event::apigw::ApiGatewayV2CustomAuthorizerV2Request =
        serde_json::from_str(&raw).expect("authorizer event");
    let mut calls = 0u64;
    let mut g = c.benchmark_group("authorizer");
    g.bench_function("api_key_warm_embedded", |b| {
        b.iter(|| {
            calls += 1;
            if calls.is_multiple_of(50) {
                clock.advance(60);
            }
            let answer = rt.block_on(tollgate::lambda::authorize_event(&state, event.clone()));
            assert!(answer.is_authorized);
        })
    });
    g.finish();
}

criterion_group!(benches, password, tokens, refresh, authorizer);
criterion_main!(benches);
