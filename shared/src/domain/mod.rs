//! Pure domain types and rules: no I/O, time passed in as Unix seconds.

pub mod credentials;
pub mod ids;
pub mod session;
pub mod user;

pub use credentials::{Email, Password, ValidationError};
pub use ids::{SessionId, UserId};
pub use session::{RefreshDecision, RevokeReason, Session, SessionPolicy, TokenHash};
pub use user::{User, UserStatus};
