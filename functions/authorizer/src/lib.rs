//! `authorizer`: an API Gateway HTTP API Lambda authorizer (REQUEST, payload format 2.0, simple
//! responses) that a deployment attaches to its own routes (docs/architecture.md §5c; README,
//! "Protect your own API").
//!
//! In: the request's `Authorization: Bearer <credential>` (the identity source) — a Tollgate
//! access token (verified with the published JWKS; its user active and session live) or an API
//! key `tg_…` (looked up, hash compared in constant time, not revoked or expired, its owner
//! active, with the owner's plan now). Then the plan's `requests_per_minute` entitlement is
//! counted per user in the shared DynamoDB counters (`tollgate::auth::Limiter`).
//!
//! Out: `{"isAuthorized": true, "context": {user_id, plan, tier, entitlements, key_id?,
//! key_kind?}}` (`entitlements` a JSON object in a string: API Gateway passes scalar context
//! values) — the route reads it as `requestContext.authorizer.lambda`; or `{"isAuthorized":
//! false}` (API Gateway answers 403) with the reason in the log: `no_credential`,
//! `invalid_token`, `invalid_api_key`, `account_disabled`, `rate_limited`.
//!
//! The template turns API Gateway's authorizer cache off (`ReauthorizeEvery: 0`) so a revoked
//! key or a used-up rate holds on the next request. No route of its own.

use tollgate::{KeyAccess, Needs};

/// What this function builds at start-up: the published JWKS (it verifies access tokens) and
/// accounts (API keys, users, sessions, plans, the rate counters). No private key, no provider
/// or webhook secret.
pub const NEEDS: Needs = Needs {
    keys: KeyAccess::Public,
    accounts: true,
    billing: false,
    ingest: false,
    mail: false,
    oauth: false,
    outbound: false,
};
