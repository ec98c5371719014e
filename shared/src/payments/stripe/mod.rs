//! Stripe, in one place: its webhook signature scheme ([`signature`]), its events and objects
//! ([`events`]), and its API client ([`client`], over [`transport`]; feature `stripe`, so
//! functions that only verify Stripe's webhooks never link async-stripe), with the products and
//! prices calls of `tollgate-admin plans push` ([`catalog_api`]).

pub mod events;
pub mod signature;

#[cfg(feature = "stripe")]
pub mod catalog_api;
#[cfg(feature = "stripe")]
pub mod client;
#[cfg(feature = "stripe")]
pub mod transport;

#[cfg(feature = "stripe")]
pub use client::StripeProvider;
