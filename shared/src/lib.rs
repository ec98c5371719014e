//! Tollgate core: the rules every Tollgate Lambda shares, in layers that import only downward
//! (`docs/architecture.md`; `tests/tests/layers.rs` checks it):
//!
//! 1. **domain** — [`domain`] (pure: sessions, credentials, ids, the subscription state and
//!    access rule, the plan catalog, ledger records, payment facts; time passed in) and
//!    [`error`] (error plumbing).
//! 2. **adapters**, one trait per I/O boundary — [`store`] (DynamoDB, embedded), [`queue`] (SQS,
//!    in-process), [`secrets`] (Secrets Manager, files, environment), [`payments`] (Stripe and
//!    Whop, each with its API client, event parsing and signature scheme), [`mailer`] (SES),
//!    [`idp`] (GitHub and OpenID Connect sign-in), [`clock`].
//! 3. **use cases** — [`auth`] (accounts, sessions, the account lifecycle), [`billing`],
//!    [`webhooks`] (ingest, process), `mail` (rendering and delivering the outbox; feature
//!    `mail`).
//! 4. **edge** — [`config`], [`state`] (what each function builds), [`http`] (problems,
//!    extractors, token responses, telemetry, OpenAPI pieces), [`lambda`] (feature `aws`); then
//!    the function crates and the dev server.

pub mod admin;
pub mod auth;
pub mod billing;
pub mod clock;
pub mod config;
pub mod domain;
pub mod error;
pub mod hooks;
pub mod http;
pub mod idp;
#[cfg(feature = "aws")]
pub mod lambda;
#[cfg(feature = "mail")]
pub mod mail;
pub mod mailer;
pub mod payments;
pub mod queue;
pub mod secrets;
pub mod state;
pub mod store;
pub mod usage;
pub mod webhooks;

pub use clock::{Clock, SystemClock};
pub use config::Config;
pub use http::app as http_app;
pub use state::{AppState, KeyAccess, Needs};
