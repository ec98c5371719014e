//! The item shapes both stores write besides the domain records themselves (which are stored as
//! they serialise): the reverse-lookup claims. One definition, so the DynamoDB and embedded
//! stores cannot drift apart.

use crate::domain::{CustomerId, TokenHash, UserId};
use serde::{Deserialize, Serialize};

/// `EMAIL#<normalized email>` / `EMAIL`: who owns an email (makes emails unique).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailClaim {
    /// The owner.
    pub user_id: UserId,
}

/// `CUSTOMER#<provider>#<customer id>` / `CUSTOMER`: who owns a provider customer (the lookup
/// webhooks use).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerClaim {
    /// The owner.
    pub user_id: UserId,
}

/// `USER#<id>` / `CUSTOMER#<provider>`: a user's customer at a provider (the lookup checkout
/// uses).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCustomer {
    /// The provider customer.
    pub customer_id: CustomerId,
}

/// `USER#<id>` / `TOKENREF#<hash>`: a one-time token minted for the user, so erasing the user
/// deletes it too. Expires with the token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRef {
    /// The token's hash (its key).
    pub hash: TokenHash,
    /// The token's expiry, Unix seconds (TTL attribute).
    pub expires_at: i64,
}

/// `APIKEY#<key id>` / `APIKEY`: the owner of a key id, written with the key and never changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyOwner {
    /// The key id.
    pub key_id: String,
    /// Its owner.
    pub user_id: UserId,
    /// The key's expiry, Unix seconds (TTL attribute), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// `RATE#login_failures#<key>` / `FAILURES`: an account's failed logins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailuresItem {
    /// Consecutive failures.
    pub count: u32,
    /// The last one, Unix seconds.
    pub last_failed_at: i64,
    /// When the record is forgotten, Unix seconds (TTL attribute).
    pub expires_at: i64,
}

impl From<FailuresItem> for crate::domain::LoginFailures {
    fn from(f: FailuresItem) -> Self {
        Self {
            count: f.count,
            last_failed_at: f.last_failed_at,
        }
    }
}

/// `USER#<id>` / `USAGE#<feature>#<period start>`: a feature's count in one period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageCounter {
    /// The metered feature.
    pub feature: String,
    /// The period's start, Unix seconds.
    pub period_start: i64,
    /// Units counted.
    pub used: u64,
    /// The period's end plus the retention, Unix seconds (TTL attribute).
    pub expires_at: i64,
}

/// `IDEM#usage#<user id>#<key>` / `IDEM`: what a track with this key counted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// The feature tracked.
    pub feature: String,
    /// The units tracked.
    pub quantity: u64,
    /// When, Unix seconds.
    pub created_at: i64,
    /// When the key is forgotten, Unix seconds (TTL attribute).
    pub expires_at: i64,
}

/// `USER#<id>` / `CREDITS`: a credit balance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditBalance {
    /// Credits (below zero only after a refund of credits already spent).
    pub balance: i64,
}

/// `USER#<id>` / `TRIAL`: when the user's first trial was stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialMarker {
    /// The trial's end, Unix seconds.
    pub trial_end: i64,
}

/// `RECONCILE#<provider>` / `CHECKPOINT`: up to when the provider's changes are in the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Unix seconds.
    pub reconciled_to: i64,
}

/// `HOOKDUE` / `<due at, 12 digits>#<event id>`: an outbound event still to attempt, by when its
/// attempt is due — the index a sweep queries instead of scanning the table. Written and moved
/// in the same transaction as the event's own changes; gone once it is delivered or dead.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundDue {
    /// The event's id.
    pub id: String,
    /// When its attempt is due, Unix seconds.
    pub due_at: i64,
    /// TTL attribute: the event's own.
    pub expires_at: i64,
}
