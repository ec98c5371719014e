//! Typed identifiers, never bare `String`s in public signatures.
//!
//! - Tollgate's own ids ([`UserId`], [`SessionId`]) are UUIDv7 (time-ordered, RFC 9562).
//! - Payment providers' ids ([`CustomerId`], [`SubscriptionId`], [`PriceId`], [`EventId`],
//!   [`PaymentId`], [`CheckoutSessionId`]) are the provider's opaque strings (Stripe `cus_…`,
//!   `sub_…`, `price_…`, `evt_…`, `in_…`/`pi_…`, `cs_…`; Whop `mber_…`/`mem_…`, `plan_…`,
//!   `msg_…`, `pay_…`, `ch_…`), kept apart by type so one cannot be passed for another.
//! - [`Provider`] names the payment provider an id belongs to.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered id (UUIDv7).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // Hyphenated lowercase, the form stored in keys and tokens.
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            /// Parses the hyphenated UUID form; any other text is an error.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::try_parse(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// A user's id (`USER#<id>` in the table).
    UserId
);
uuid_id!(
    /// A session's id: one session is one refresh-token family (`SESSION#<sid>` under the user).
    SessionId
);

macro_rules! provider_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a provider's id as received (no validation: providers define the format;
            /// clients check ids before using them in URLs).
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }
    };
}

provider_id!(
    /// A provider customer: Stripe `cus_…`, Whop member `mber_…`.
    CustomerId
);
provider_id!(
    /// A provider subscription: Stripe `sub_…`, Whop membership `mem_…`.
    SubscriptionId
);
provider_id!(
    /// A provider price: Stripe `price_…`, Whop plan `plan_…`.
    PriceId
);
provider_id!(
    /// A provider webhook event: Stripe `evt_…`, Whop's envelope id or `webhook-id`.
    EventId
);
provider_id!(
    /// A provider payment: Stripe invoice `in_…` or payment intent `pi_…`, Whop `pay_…`.
    PaymentId
);
provider_id!(
    /// A provider checkout: Stripe checkout session `cs_…`, Whop checkout configuration `ch_…`.
    CheckoutSessionId
);

/// A payment provider. Provider-specific behaviour (API client, event parsing, signature scheme)
/// lives in `crate::payments::{stripe, whop}`; the domain only names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// Stripe.
    Stripe,
    /// Whop.
    Whop,
}

impl Provider {
    /// Every provider, in the order a default is chosen (Stripe first).
    pub const ALL: [Provider; 2] = [Provider::Stripe, Provider::Whop];

    /// `stripe` / `whop`: the form in keys, URLs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stripe => "stripe",
            Self::Whop => "whop",
        }
    }

    /// Parses `stripe` or `whop`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The provider a checkout session id belongs to, by its prefix: Whop checkout
    /// configurations are `ch_…` (docs.whop.com, "Checkout configurations"); everything else is
    /// taken to be Stripe's (`cs_…`, docs.stripe.com/api/checkout/sessions/object).
    pub fn of_checkout_session(id: &CheckoutSessionId) -> Self {
        if id.as_str().starts_with("ch_") {
            Self::Whop
        } else {
            Self::Stripe
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_round_trip_and_checkout_sessions_are_routed_to_theirs() {
        for p in Provider::ALL {
            assert_eq!(Provider::parse(p.as_str()), Some(p));
        }
        assert_eq!(Provider::parse("local"), None);
        assert_eq!(
            Provider::of_checkout_session(&"cs_test_a1b2".into()),
            Provider::Stripe
        );
        assert_eq!(
            Provider::of_checkout_session(&"ch_Wire0001".into()),
            Provider::Whop
        );
    }

    #[test]
    fn provider_ids_serialize_as_plain_strings() {
        let id = CustomerId::new("cus_1");
        assert_eq!(serde_json::to_string(&id).expect("json"), "\"cus_1\"");
        assert_eq!(format!("{id:?}"), "CustomerId(\"cus_1\")");
    }
}
