//! The single-table key layout (docs/architecture.md, "Data"), shared by both backends:
//! `(PK, SK)` string pairs.

use crate::domain::{
    CreditEntry, CustomerId, EventId, Payment, PaymentId, Provider, SessionId, TokenHash, UserId,
};

/// A `(PK, SK)` pair.
pub type Key = (String, String);

/// Partition key attribute name.
pub const PK: &str = "PK";
/// Sort key attribute name.
pub const SK: &str = "SK";
/// The TTL attribute (Unix seconds); DynamoDB deletes items some time after it passes.
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// `USER#<id>`: the partition of everything a user owns.
pub fn user_pk(id: &UserId) -> String {
    format!("USER#{id}")
}

/// Sort key of a user's profile item.
pub const PROFILE: &str = "PROFILE";

/// `USER#<id>` / `PROFILE`.
pub fn user(id: &UserId) -> Key {
    (user_pk(id), PROFILE.to_owned())
}

/// `EMAIL#<normalized email>` / `EMAIL`.
pub fn email_claim(normalized_email: &str) -> Key {
    (format!("EMAIL#{normalized_email}"), "EMAIL".to_owned())
}

/// Sort-key prefix of sessions.
pub const SESSION_PREFIX: &str = "SESSION#";

/// `USER#<id>` / `SESSION#<sid>`.
pub fn session(user_id: &UserId, id: &SessionId) -> Key {
    (user_pk(user_id), format!("{SESSION_PREFIX}{id}"))
}

/// `USER#<id>` / `SUBSCRIPTION`.
pub fn subscription(user_id: &UserId) -> Key {
    (user_pk(user_id), "SUBSCRIPTION".to_owned())
}

/// `CUSTOMER#<provider>#<customer id>` / `CUSTOMER`: the reverse lookup webhooks use.
pub fn customer_claim(provider: Provider, customer: &CustomerId) -> Key {
    (
        format!("CUSTOMER#{provider}#{customer}"),
        "CUSTOMER".to_owned(),
    )
}

/// `USER#<id>` / `CUSTOMER#<provider>`: the user's customer at a provider.
pub fn user_customer(user_id: &UserId, provider: Provider) -> Key {
    (user_pk(user_id), format!("CUSTOMER#{provider}"))
}

/// `EVENT#<provider>#<event id>` / `EVENT`.
pub fn event(provider: Provider, event_id: &EventId) -> Key {
    (format!("EVENT#{provider}#{event_id}"), "EVENT".to_owned())
}

/// Sort-key prefix of payments.
pub const PAYMENT_PREFIX: &str = "PAYMENT#";

/// `USER#<id>` / `PAYMENT#<paid at, 10 digits>#<provider>#<payment id>`: sorted by time.
pub fn payment(user_id: &UserId, paid_at: i64, provider: Provider, payment_id: &PaymentId) -> Key {
    (
        user_pk(user_id),
        format!("{PAYMENT_PREFIX}{paid_at:010}#{provider}#{payment_id}"),
    )
}

/// `TOKEN#<sha256 of the token>` / `TOKEN`: a one-time link token.
pub fn one_time_token(hash: &TokenHash) -> Key {
    (format!("TOKEN#{}", hash.0), "TOKEN".to_owned())
}

/// Sort-key prefix of a user's references to their one-time tokens.
pub const TOKEN_REF_PREFIX: &str = "TOKENREF#";

/// `USER#<id>` / `TOKENREF#<token hash>`: lets the user's erasure find and delete the one-time
/// tokens minted for them (the tokens themselves are keyed by hash alone).
pub fn token_ref(user_id: &UserId, hash: &TokenHash) -> Key {
    (user_pk(user_id), format!("{TOKEN_REF_PREFIX}{}", hash.0))
}

/// `OTP#<normalized email>` / `OTP`: the email's live sign-in code.
pub fn email_otp(normalized_email: &str) -> Key {
    (format!("OTP#{normalized_email}"), "OTP".to_owned())
}

/// Partition-key prefix of outbox items.
pub const MAIL_PREFIX: &str = "MAIL#";

/// `MAIL#<cause id>` / `MAIL`: an outbox item.
pub fn mail(id: &str) -> Key {
    (format!("{MAIL_PREFIX}{id}"), "MAIL".to_owned())
}

/// The partition prefix of outbound events.
pub const HOOK_PREFIX: &str = "HOOK#";

/// `HOOK#<id>` / `HOOK`: an outbound event (its `webhook-id`).
pub fn outbound(id: &str) -> Key {
    (format!("{HOOK_PREFIX}{id}"), "HOOK".to_owned())
}

/// The partition of the due index of outbound events.
pub const OUTBOUND_DUE_PK: &str = "HOOKDUE";

/// `HOOKDUE` / `<due at, zero-padded to 12 digits>#<id>`: an outbound event due at `due_at`
/// (Unix seconds; the padding makes the sort keys order by time until the year 33658).
pub fn outbound_due(due_at: i64, id: &str) -> Key {
    (
        OUTBOUND_DUE_PK.to_owned(),
        format!("{:012}#{id}", due_at.max(0)),
    )
}

/// The greatest due-index sort key of an attempt due at or before `now`.
pub fn outbound_due_until(now: i64) -> String {
    format!("{:012}#~", now.max(0))
}

/// Sort-key prefix of audit records.
pub const AUDIT_PREFIX: &str = "AUDIT#";

/// `USER#<id>` / `AUDIT#<record id>`: sorted by time (the id is a UUIDv7).
pub fn audit(user_id: &UserId, id: &str) -> Key {
    (user_pk(user_id), format!("{AUDIT_PREFIX}{id}"))
}

/// Sort-key prefix of a user's linked identities.
pub const IDENTITY_PREFIX: &str = "IDENTITY#";

/// `IDENTITY#<provider>#<subject>` / `IDENTITY`: who an identity at a provider signs in (the
/// callback's lookup; `attribute_not_exists` links an identity to one user only).
pub fn identity(provider: &str, subject: &str) -> Key {
    (
        format!("{IDENTITY_PREFIX}{provider}#{subject}"),
        "IDENTITY".to_owned(),
    )
}

/// `USER#<id>` / `IDENTITY#<provider>`: the user's identity at a provider (one per provider).
pub fn user_identity(user_id: &UserId, provider: &str) -> Key {
    (user_pk(user_id), format!("{IDENTITY_PREFIX}{provider}"))
}

/// `OAUTH#<sha256 of state>` / `OAUTH`: an authorization in progress.
pub fn oauth_state(hash: &TokenHash) -> Key {
    (format!("OAUTH#{}", hash.0), "OAUTH".to_owned())
}

/// `RATE#<rule>#<key>` / `W#<window start>`: one fixed window's request count for a rule and a
/// key (already hashed by the caller: no email or IP in clear in the table). TTL just past the
/// window.
pub fn rate_window(rule: &str, key: &str, window_start: i64) -> Key {
    (format!("RATE#{rule}#{key}"), format!("W#{window_start}"))
}

/// `RATE#login_failures#<key>` / `FAILURES`: an account's consecutive failed logins.
pub fn login_failures(key: &str) -> Key {
    (format!("RATE#login_failures#{key}"), "FAILURES".to_owned())
}

/// Sort-key prefix of a user's API keys.
pub const API_KEY_PREFIX: &str = "APIKEY#";

/// `USER#<id>` / `APIKEY#<key id>`: an API key, under its owner (listing, erasure).
pub fn api_key(user_id: &UserId, key_id: &str) -> Key {
    (user_pk(user_id), format!("{API_KEY_PREFIX}{key_id}"))
}

/// `APIKEY#<key id>` / `APIKEY`: who owns a key id (the lookup a presented key starts with).
pub fn api_key_owner(key_id: &str) -> Key {
    (format!("{API_KEY_PREFIX}{key_id}"), "APIKEY".to_owned())
}

/// Sort-key prefix of usage counters.
pub const USAGE_PREFIX: &str = "USAGE#";

/// `USER#<id>` / `USAGE#<feature>#<period start, 10 digits>`: a feature's count in one period.
pub fn usage(user_id: &UserId, feature: &str, period_start: i64) -> Key {
    (
        user_pk(user_id),
        format!("{USAGE_PREFIX}{feature}#{period_start:010}"),
    )
}

/// `IDEM#usage#<user id>#<key>` / `IDEM`: a track's idempotency key, per user.
pub fn usage_idempotency(user_id: &UserId, key: &str) -> Key {
    (format!("IDEM#usage#{user_id}#{key}"), "IDEM".to_owned())
}

/// `USER#<id>` / `CREDITS`: the user's credit balance.
pub fn credit_balance(user_id: &UserId) -> Key {
    (user_pk(user_id), "CREDITS".to_owned())
}

/// Sort-key prefix of credit ledger entries.
pub const CREDIT_PREFIX: &str = "CREDIT#";

/// `USER#<id>` / `CREDIT#<at, 10 digits>#<cause>`: one entry of the credit ledger, sorted by
/// time.
pub fn credit_entry(user_id: &UserId, at: i64, cause: &str) -> Key {
    (user_pk(user_id), format!("{CREDIT_PREFIX}{at:010}#{cause}"))
}

/// `CREDITCAUSE#<cause>` / `CREDITCAUSE`: the entry a cause wrote (causes are unique across
/// the table, so a cause takes effect once).
pub fn credit_cause(cause: &str) -> Key {
    (format!("CREDITCAUSE#{cause}"), "CREDITCAUSE".to_owned())
}

/// `USER#<id>` / `TRIAL`: the user has had a trial.
pub fn trial_marker(user_id: &UserId) -> Key {
    (user_pk(user_id), "TRIAL".to_owned())
}

/// `RECONCILE#<provider>` / `CHECKPOINT`: the reconciler's checkpoint.
pub fn reconcile_checkpoint(provider: Provider) -> Key {
    (format!("RECONCILE#{provider}"), "CHECKPOINT".to_owned())
}

/// A paging cursor naming an item's key (`<pk>\t<sk>`, hex-encoded so it is URL-safe).
pub fn encode_cursor(key: &Key) -> String {
    format!("{}\t{}", key.0, key.1)
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The key a cursor of [`encode_cursor`] names, or `None` if it is not one.
pub fn decode_cursor(cursor: &str) -> Option<Key> {
    if !cursor.len().is_multiple_of(2) || cursor.is_empty() {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..cursor.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(cursor.get(i..i + 2)?, 16).ok())
        .collect();
    let text = String::from_utf8(bytes?).ok()?;
    let (pk, sk) = text.split_once('\t')?;
    Some((pk.to_owned(), sk.to_owned()))
}

/// The paging cursor of a credit entry: its sort key after `CREDIT#`
/// (`<at, 10 digits>#<cause>`).
pub fn credit_cursor(e: &CreditEntry) -> String {
    credit_entry(&e.user_id, e.at, &e.cause).1[CREDIT_PREFIX.len()..].to_owned()
}

/// Whether `s` has a credit cursor's shape: 10 digits, `#`, 1–400 printable ASCII characters
/// (the API document's pattern; checked before a cursor reaches a key).
pub fn is_credit_cursor(s: &str) -> bool {
    let b = s.as_bytes();
    (12..=411).contains(&b.len())
        && b[..10].iter().all(u8::is_ascii_digit)
        && b[10] == b'#'
        && b[11..].iter().all(|c| (b' '..=b'~').contains(c))
}

/// The paging cursor of a payment: its sort key after `PAYMENT#`
/// (`<paid at, 10 digits>#<provider>#<payment id>`).
pub fn payment_cursor(p: &Payment) -> String {
    payment(&p.user_id, p.paid_at, p.provider, &p.payment_id).1[PAYMENT_PREFIX.len()..].to_owned()
}

/// Whether `s` has a payment cursor's shape: 10 digits, `#`, a lowercase provider name, `#`, an
/// id of 1–255 characters without `#` (the API document's pattern).
pub fn is_payment_cursor(s: &str) -> bool {
    let mut parts = s.splitn(3, '#');
    let (at, provider, id) = (parts.next(), parts.next(), parts.next());
    at.is_some_and(|a| a.len() == 10 && a.bytes().all(|b| b.is_ascii_digit()))
        && provider.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && id.is_some_and(|i| (1..=255).contains(&i.chars().count()) && !i.contains('#'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_odd_shapes_are_refused_without_panicking() {
        let key = ("USER#1".to_owned(), "PROFILE".to_owned());
        assert_eq!(decode_cursor(&encode_cursor(&key)), Some(key));
        for bad in ["", "0", "zz", "4142"] {
            assert_eq!(decode_cursor(bad), None, "{bad:?}");
        }
        assert!(is_credit_cursor("1796040000#purchase:stripe:pi_1"));
        assert!(is_payment_cursor("1796040000#stripe#pi_1"));
        // A multi-byte character at byte 10 must not panic a slice.
        for bad in [
            "",
            "1796040000",
            "179604000é#x",
            "1796040000#",
            "1796040000#é",
        ] {
            assert!(!is_credit_cursor(bad), "{bad:?}");
        }
        for bad in [
            "1796040000#Stripe#pi",
            "1796040000#stripe#",
            "1796040000#stripe#a#b",
            "x",
        ] {
            assert!(!is_payment_cursor(bad), "{bad:?}");
        }
    }
}
