//! Accounts and sessions (use cases): password hashing ([`password`]), refresh tokens
//! ([`refresh`]), access tokens and the key set ([`tokens`]), creating and rotating the keys
//! ([`keys`]), keeping a warm function's keys current ([`key_ring`]), the secrets sent by email ([`one_time`]), and the account use cases ([`Auth`]:
//! signup, login, refresh, logout and `me`; the account lifecycle; sign-in by email code and
//! magic link; sign-in with identity providers) with access-token verification
//! ([`AccessVerifier`]).

mod account;
mod api_keys;
pub mod authorizer;
pub mod key_ring;
pub mod keys;
pub mod limits;
mod oauth;
pub mod one_time;
pub mod password;
mod passwordless;
pub mod refresh;
mod service;
pub mod tokens;

pub use account::{Reauthentication, SessionView};
pub use api_keys::{AnyCaller, Caller, CreatedKey, KeyPrincipal};
pub use key_ring::{KeyRing, KeySecret, KeySource, Keys, SecretKeySource};
pub use limits::{Counted, Limiter};
pub use oauth::{state_hash, CallbackError, CallbackParams};
pub use password::{PasswordHasher, Verification};
pub use refresh::RefreshToken;
pub use service::{
    AccessVerifier, AccountStores, Auth, AuthError, AuthSettings, AuthenticatedUser, IssuedTokens,
    Me, PlanClaims, SignupOutcome,
};
pub use tokens::{AccessClaims, KeySet, KeySetError, PublicKeys, SigningKeyFile, LEEWAY_SECONDS};
