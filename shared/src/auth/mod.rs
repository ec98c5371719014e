//! Accounts and sessions: password hashing, access tokens, refresh tokens and the use cases.

pub mod password;
pub mod refresh;
pub mod service;
pub mod tokens;

pub use password::{PasswordHasher, Verification};
pub use refresh::RefreshToken;
pub use service::{Auth, AuthError, IssuedTokens, Me};
pub use tokens::{AccessClaims, KeySet, KeySetError, SigningKeyFile, LEEWAY_SECONDS};
