//! The keys a running function signs and verifies access tokens with, kept current while the
//! function stays warm.
//!
//! A Lambda execution environment loads its keys at cold start and may then live for hours.
//! Without reloading, a rotation (`tollgate-admin bootstrap --rotate-keys`, [`super::keys`])
//! would leave warm verifiers refusing every token signed by the new key until they are
//! recycled, and warm signers signing with a key a later rotation removed. So a [`KeyRing`]
//! with a [`KeySource`]:
//!
//! - loads the keys again when a token names a `kid` it does not hold — at most once every
//!   [`KEY_RETRY_SECONDS`], so tokens with made-up `kid`s cannot make it read the secret more
//!   often (RFC 7517 practice: a verifier refetches the JWK set on an unknown `kid`; OpenID
//!   Connect Core 1.0 §10.1.1);
//! - loads them again when they are older than [`KEY_RELOAD_SECONDS`], so a key removed from
//!   the secret (an emergency rotation) stops being accepted, and a warm signer picks up the
//!   newest signing key, within that time.
//!
//! A failed load keeps the keys it has (and is logged); only one load runs at a time, and other
//! callers go on with the current keys meanwhile. Without a source (the dev server and tests
//! hold their keys in memory) the keys never change.

use super::tokens::{KeySet, PublicKeys};
use crate::clock::Clock;
use crate::error::BoxError;
use crate::secrets::SecretSource;
use async_trait::async_trait;
use secrecy::ExposeSecret;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

/// Keys older than this (seconds) are loaded again before use: the most a key removed from the
/// secret is still accepted, and a warm signer keeps signing with a superseded key.
pub const KEY_RELOAD_SECONDS: i64 = 300;

/// The least time between two loads (seconds), whatever asks for them: bounds the Secrets
/// Manager reads that tokens with unknown `kid`s can cause to one per 30 s per warm instance.
pub const KEY_RETRY_SECONDS: i64 = 30;

/// The keys at one moment: the signing set (functions that issue tokens) and the public keys
/// that verify tokens (the signing set's public half, or the published JWKS).
#[derive(Clone, Debug)]
pub struct Keys {
    /// The private key set; `None` in a function that only verifies.
    pub signing: Option<Arc<KeySet>>,
    /// The verification keys.
    pub public: Arc<PublicKeys>,
}

impl Keys {
    /// A signing set and its own public half.
    pub fn signing(set: Arc<KeySet>) -> Self {
        Self {
            public: set.public().clone(),
            signing: Some(set),
        }
    }

    /// Verification keys only.
    pub fn public(public: Arc<PublicKeys>) -> Self {
        Self {
            signing: None,
            public,
        }
    }
}

/// Where the keys are loaded from again (the secret they came from at start).
#[async_trait]
pub trait KeySource: Send + Sync {
    /// The keys as stored now.
    ///
    /// # Errors
    /// The secret cannot be read, or does not hold a usable key set (never its value).
    async fn load(&self) -> Result<Keys, BoxError>;
}

/// Which secret a [`SecretKeySource`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySecret {
    /// The private signing-key set (`{"keys":[{"private_key_pem", "created_at"}]}`): signing and
    /// public keys.
    Signing,
    /// The published JWKS (RFC 7517): public keys only.
    Jwks,
}

/// A [`KeySource`] over a secret in a [`SecretSource`] (Secrets Manager in Lambda).
pub struct SecretKeySource {
    secrets: Arc<dyn SecretSource>,
    name: String,
    kind: KeySecret,
    issuer: String,
    audience: String,
}

impl SecretKeySource {
    /// Reads secret `name` of `kind` from `secrets`; tokens are checked for `issuer` and
    /// `audience`.
    pub fn new(
        secrets: Arc<dyn SecretSource>,
        name: impl Into<String>,
        kind: KeySecret,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Self {
        Self {
            secrets,
            name: name.into(),
            kind,
            issuer: issuer.into(),
            audience: audience.into(),
        }
    }
}

#[async_trait]
impl KeySource for SecretKeySource {
    async fn load(&self) -> Result<Keys, BoxError> {
        let json = self.secrets.get_secret(&self.name).await?;
        Ok(match self.kind {
            KeySecret::Signing => Keys::signing(Arc::new(KeySet::from_json(
                json.expose_secret(),
                &self.issuer,
                &self.audience,
            )?)),
            KeySecret::Jwks => Keys::public(Arc::new(PublicKeys::from_json(
                json.expose_secret(),
                &self.issuer,
                &self.audience,
            )?)),
        })
    }
}

/// The current [`Keys`], loaded again from a [`KeySource`] as the module describes.
pub struct KeyRing {
    current: RwLock<Keys>,
    source: Option<Arc<dyn KeySource>>,
    clock: Arc<dyn Clock>,
    /// When the keys held were loaded (Unix seconds).
    loaded_at: AtomicI64,
    /// When a load was last started, successful or not (Unix seconds).
    tried_at: AtomicI64,
    loading: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("keys", &self.held())
            .field("reloads", &self.source.is_some())
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// Keys that never change.
    pub fn fixed(keys: Keys, clock: Arc<dyn Clock>) -> Self {
        Self::build(keys, None, clock)
    }

    /// `keys` just loaded from `source`, loaded again from it as the module describes.
    pub fn reloading(keys: Keys, source: Arc<dyn KeySource>, clock: Arc<dyn Clock>) -> Self {
        Self::build(keys, Some(source), clock)
    }

    fn build(keys: Keys, source: Option<Arc<dyn KeySource>>, clock: Arc<dyn Clock>) -> Self {
        let now = clock.now();
        Self {
            current: RwLock::new(keys),
            source,
            clock,
            loaded_at: AtomicI64::new(now),
            tried_at: AtomicI64::new(now),
            loading: tokio::sync::Mutex::new(()),
        }
    }

    /// The keys held now, without loading.
    pub fn held(&self) -> Keys {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The keys to use now: loaded again first when older than [`KEY_RELOAD_SECONDS`] (and no
    /// load was tried in the last [`KEY_RETRY_SECONDS`]).
    pub async fn current(&self) -> Keys {
        let now = self.clock.now();
        if now - self.loaded_at.load(Ordering::Relaxed) >= KEY_RELOAD_SECONDS {
            self.reload(now).await;
        }
        self.held()
    }

    /// After a token named a `kid` the held keys lack: loads the keys again unless a load was
    /// tried in the last [`KEY_RETRY_SECONDS`]. Returns the new keys when they were loaded,
    /// `None` when they were not (no source, too soon, another load running, or it failed).
    pub async fn after_unknown_key(&self) -> Option<Keys> {
        self.reload(self.clock.now()).await.then(|| self.held())
    }

    /// Loads the keys if allowed now; whether new keys were loaded.
    async fn reload(&self, now: i64) -> bool {
        let Some(source) = &self.source else {
            return false;
        };
        if now - self.tried_at.load(Ordering::Relaxed) < KEY_RETRY_SECONDS {
            return false;
        }
        let Ok(_one) = self.loading.try_lock() else {
            return false;
        };
        // Checked again under the lock: another load may just have finished.
        if now - self.tried_at.load(Ordering::Relaxed) < KEY_RETRY_SECONDS {
            return false;
        }
        self.tried_at.store(now, Ordering::Relaxed);
        match source.load().await {
            Ok(keys) => {
                *self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = keys;
                self.loaded_at.store(now, Ordering::Relaxed);
                tracing::info!("access-token keys loaded again");
                true
            }
            Err(e) => {
                tracing::warn!(error = %crate::error::Chain(e.as_ref()), "could not load the access-token keys again; keeping the ones held");
                false
            }
        }
    }
}
