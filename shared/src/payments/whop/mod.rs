//! Whop, in one place: its webhook signature scheme ([`signature`], Standard Webhooks with the
//! secret's raw bytes as key), its events and membership object ([`events`]), and its REST API
//! client ([`client`], feature `whop`).

pub mod events;
pub mod signature;

#[cfg(feature = "whop")]
pub mod client;

#[cfg(feature = "whop")]
pub use client::{WhopProvider, DEFAULT_API_BASE};
