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
