//! The one token response of signup, login and refresh, and the refresh cookie.

use crate::auth::IssuedTokens;
use crate::config::Config;
use crate::domain::{rfc3339, User};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// The refresh cookie's name.
pub const REFRESH_COOKIE: &str = "tollgate_refresh";

/// A user as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserBody {
    /// User id (UUIDv7).
    pub id: String,
    /// The email as entered.
    pub email: String,
    /// Whether the email has been verified.
    pub email_verified: bool,
    /// The display name, `null` when not set.
    pub name: Option<String>,
    /// Creation time, RFC 3339 UTC.
    pub created_at: String,
}

impl From<&User> for UserBody {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.to_string(),
            email: u.email.clone(),
            email_verified: u.email_verified,
            name: u.name.clone(),
            created_at: rfc3339(u.created_at),
        }
    }
}

/// The body of signup, login and refresh responses (RFC 6749 §5.1 names):
/// `{access_token, token_type: "Bearer", expires_in, refresh_token}`, plus `user` after signup.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenBody {
    /// The RS256 JWT.
    pub access_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The opaque refresh token (also set as the `tollgate_refresh` cookie).
    pub refresh_token: String,
    /// The new user (signup only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<UserBody>,
}

/// The token response: `status`, the [`TokenBody`] (with `user` when given), the refresh cookie,
/// and `Cache-Control: no-store` (RFC 6749 §5.1).
pub fn token_response(
    status: StatusCode,
    tokens: &IssuedTokens,
    user: Option<&User>,
    config: &Config,
) -> Response {
    let body = TokenBody {
        access_token: tokens.access_token.clone(),
        token_type: "Bearer",
        expires_in: tokens.expires_in,
        refresh_token: tokens.refresh_token.clone(),
        user: user.map(UserBody::from),
    };
    (
        status,
        [
            (header::SET_COOKIE, refresh_cookie(tokens, config)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        Json(body),
    )
        .into_response()
}

/// `Set-Cookie` for the refresh token: `HttpOnly; Secure; SameSite=Strict; Path=/auth`
/// (`Secure` per `TOLLGATE_COOKIE_SECURE`), `Max-Age` = the session's remaining idle time.
fn refresh_cookie(tokens: &IssuedTokens, config: &Config) -> HeaderValue {
    let secure = if config.cookie_secure { "; Secure" } else { "" };
    let value = format!(
        "{REFRESH_COOKIE}={}; Path=/auth; Max-Age={}; HttpOnly{secure}; SameSite=Strict",
        tokens.refresh_token, tokens.refresh_expires_in
    );
    // Token characters are [A-Za-z0-9._-]: always a valid header value.
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `Set-Cookie` that deletes the refresh cookie (logout).
pub fn clear_refresh_cookie(config: &Config) -> HeaderValue {
    let secure = if config.cookie_secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{REFRESH_COOKIE}=; Path=/auth; Max-Age=0; HttpOnly{secure}; SameSite=Strict"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The refresh token from the request's `Cookie` headers, if present.
pub fn refresh_token_from_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == REFRESH_COOKIE)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; tollgate_refresh=abc.def; b=2"),
        );
        assert_eq!(refresh_token_from_cookie(&h).as_deref(), Some("abc.def"));
        assert_eq!(refresh_token_from_cookie(&HeaderMap::new()), None);
    }

    #[test]
    fn cookie_attributes_follow_the_design() {
        let t = IssuedTokens {
            access_token: "a".into(),
            expires_in: 900,
            refresh_token: "r".into(),
            refresh_expires_in: 60,
        };
        let v = refresh_cookie(&t, &Config::default());
        let v = v.to_str().expect("ascii");
        for part in [
            "tollgate_refresh=r",
            "Path=/auth",
            "Max-Age=60",
            "HttpOnly",
            "Secure",
            "SameSite=Strict",
        ] {
            assert!(v.contains(part), "{v} lacks {part}");
        }
    }
}
