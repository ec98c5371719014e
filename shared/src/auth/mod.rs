//! Accounts and sessions (use cases): password hashing ([`password`]), refresh tokens
//! ([`refresh`]), access tokens and the key set ([`tokens`]), creating and rotating the keys
//! ([`keys`]), and the account use cases ([`Auth`]) with access-token verification
//! ([`AccessVerifier`]).

pub mod keys;
pub mod password;
pub mod refresh;
mod service;
pub mod tokens;

pub use password::{PasswordHasher, Verification};
pub use refresh::RefreshToken;
pub use service::{
    AccessVerifier, Auth, AuthError, AuthSettings, AuthenticatedUser, IssuedTokens, Me,
};
pub use tokens::{AccessClaims, KeySet, KeySetError, PublicKeys, SigningKeyFile, LEEWAY_SECONDS};
