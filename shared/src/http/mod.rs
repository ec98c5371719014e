//! The HTTP edge shared by every function: RFC 9457 problem responses ([`ApiError`]), the JSON
//! body and bearer-token extractors, the refresh cookie, and the token response body.

mod error;
mod extract;
mod tokens;

pub use error::{method_not_allowed, not_found, ApiError, Problem};
pub use extract::{Authenticated, JsonBody, OptionalJsonBody, UserAgent};
pub use tokens::{
    clear_refresh_cookie, refresh_cookie, refresh_token_from_cookie, TokenBody, REFRESH_COOKIE,
};
