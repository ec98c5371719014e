//! The DynamoDB store: the single table of docs/architecture.md §4 through `aws-sdk-dynamodb`.
//!
//! Items are the domain records (and [`super::items`]) serialised with `serde_dynamo`, plus
//! `PK`/`SK`. Uniqueness (the email claim) and rotation are conditional writes; signup and each
//! processed webhook event are one `TransactWriteItems`. Reads are strongly consistent.
//! [`table_definition`] is the one place the table's shape is written in code.

use super::items::{
    ApiKeyOwner, Checkpoint, CreditBalance, CustomerClaim, EmailClaim, IdempotencyRecord,
    OutboundDue, TokenRef, TrialMarker, UsageCounter, UserCustomer,
};
use super::keys::{self, Key};
use super::{
    AccountStore, BillingStore, Change, Conflict, CreditApplied, CreditStore, CreditWrite,
    EventLedger, EventMark, MailClaim, MailOutcome, OutboundClaim, OutboundOutcome, OutboundStore,
    Outbox, RateLimiter, SessionStore, StoreError, TrackRequest, Tracked, UsageStore, UserStore,
    REVOKED_API_KEY_RETENTION_SECONDS,
};
use crate::domain::limits::LOGIN_FAILURES_TTL_SECONDS;
use crate::domain::{
    ApiKey, AuditRecord, ClaimDecision, CreditEntry, CustomerId, EmailOtp, EventEffects, EventId,
    EventStatus, Identity, LoginFailures, MailStatus, Notices, OAuthState, OneTimeToken,
    OutboundDecision, OutboundEvent, OutboundStatus, OutboxMail, Payment, Provider, RateDecision,
    RateRule, RevokeReason, Session, SessionId, Subscription, SubscriptionWrite, TokenHash, User,
    UserId, WebhookEvent, OTP_MAX_ATTEMPTS,
};
use crate::domain::{IDEMPOTENCY_TTL_SECONDS, USAGE_RETENTION_SECONDS};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, Delete, DeleteRequest, KeySchemaElement,
    KeyType, Put, ReturnValue, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification, TransactWriteItem, Update, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

/// Rounds of a transaction that also writes notices (or a credit cause): a round that finds one
/// of them stored already drops it and tries again.
const NOTICE_ROUNDS: usize = 4;

/// The table's key schema, attribute definitions, billing mode and TTL attribute, for creating it
/// in tests and local runs. `template.yaml` declares the same shape for AWS.
pub struct TableDefinition {
    /// `PK` (HASH, S) and `SK` (RANGE, S).
    pub key_schema: Vec<KeySchemaElement>,
    /// The two string key attributes.
    pub attributes: Vec<AttributeDefinition>,
    /// Pay per request (no capacity to pay for when idle).
    pub billing_mode: BillingMode,
    /// [`keys::TTL_ATTRIBUTE`] (Unix seconds).
    pub ttl_attribute: &'static str,
    /// The table's stream: keys only (the mailer reads each new `MAIL#` item by its key).
    pub stream: StreamSpecification,
}

/// The single table's definition (docs/architecture.md §4).
///
/// # Panics
/// Never: the builders are given every required field.
pub fn table_definition() -> TableDefinition {
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("name and type are set")
    };
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("name and type are set")
    };
    TableDefinition {
        key_schema: vec![key(keys::PK, KeyType::Hash), key(keys::SK, KeyType::Range)],
        attributes: vec![attr(keys::PK), attr(keys::SK)],
        billing_mode: BillingMode::PayPerRequest,
        ttl_attribute: keys::TTL_ATTRIBUTE,
        stream: StreamSpecification::builder()
            .stream_enabled(true)
            .stream_view_type(StreamViewType::KeysOnly)
            .build()
            .expect("stream_enabled is set"),
    }
}

/// Creates the table (and enables TTL) if it does not exist. For tests and local runs; in AWS
/// the table comes from `template.yaml`.
///
/// # Errors
/// [`StoreError`] if DynamoDB refuses.
pub async fn ensure_table(client: &Client, table: &str) -> Result<(), StoreError> {
    if client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .is_ok()
    {
        return Ok(());
    }
    let def = table_definition();
    let created = client
        .create_table()
        .table_name(table)
        .set_key_schema(Some(def.key_schema))
        .set_attribute_definitions(Some(def.attributes))
        .billing_mode(def.billing_mode)
        .stream_specification(def.stream)
        .send()
        .await;
    if let Err(e) = created {
        if e.code() != Some("ResourceInUseException") {
            return Err(classify(e));
        }
    }
    let ttl = TimeToLiveSpecification::builder()
        .attribute_name(def.ttl_attribute)
        .enabled(true)
        .build()
        .map_err(StoreError::internal)?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(ttl)
        .send()
        .await
        .map_err(classify)?;
    Ok(())
}

/// Maps an SDK error to a [`StoreError`] keeping it as the source: failed conditions are
/// conflicts (the caller names which); throttling, timeouts, transport failures and transaction
/// conflicts are retryable; the rest is internal.
fn classify<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = err.code().unwrap_or_default().to_owned();
    match code.as_str() {
        // The caller knows which condition it wrote and maps this to its `Conflict`.
        "ConditionalCheckFailedException" => StoreError::Conflict(Conflict::StaleVersion),
        "TransactionCanceledException"
            if err
                .message()
                .unwrap_or_default()
                .contains("ConditionalCheckFailed") =>
        {
            StoreError::Conflict(Conflict::StaleVersion)
        }
        "TransactionCanceledException"
        | "ProvisionedThroughputExceededException"
        | "ThrottlingException"
        | "RequestLimitExceeded"
        | "InternalServerError"
        | "ServiceUnavailable"
        | "TransactionConflictException" => StoreError::Unavailable(Box::new(err)),
        _ => match err {
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => StoreError::Unavailable(Box::new(err)),
            other => StoreError::Internal(Box::new(other)),
        },
    }
}

/// [`classify`], naming the condition that failed.
fn classify_as<E, R>(conflict: Conflict) -> impl Fn(SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    move |e| match classify(e) {
        StoreError::Conflict(_) => StoreError::Conflict(conflict),
        other => other,
    }
}

fn built<T, E: std::error::Error + Send + Sync + 'static>(
    r: Result<T, E>,
) -> Result<T, StoreError> {
    r.map_err(StoreError::internal)
}

fn to_item<T: Serialize>(key: &Key, value: &T) -> Result<Item, StoreError> {
    let mut item: Item =
        serde_dynamo::aws_sdk_dynamodb_1::to_item(value).map_err(StoreError::internal)?;
    item.insert(keys::PK.to_owned(), AttributeValue::S(key.0.clone()));
    item.insert(keys::SK.to_owned(), AttributeValue::S(key.1.clone()));
    Ok(item)
}

fn from_item<T: DeserializeOwned>(mut item: Item) -> Result<T, StoreError> {
    item.remove(keys::PK);
    item.remove(keys::SK);
    serde_dynamo::aws_sdk_dynamodb_1::from_item(item).map_err(StoreError::internal)
}

fn status_value(status: EventStatus) -> Result<AttributeValue, StoreError> {
    attr(status)
}

/// A value as the attribute its item holds (enums as their snake_case strings).
fn attr<T: Serialize>(value: T) -> Result<AttributeValue, StoreError> {
    serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value(value).map_err(StoreError::internal)
}

fn num(n: impl ToString) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

fn text(s: impl Into<String>) -> AttributeValue {
    AttributeValue::S(s.into())
}

fn key_of(key: Key) -> Item {
    HashMap::from([
        (keys::PK.to_owned(), AttributeValue::S(key.0)),
        (keys::SK.to_owned(), AttributeValue::S(key.1)),
    ])
}

/// The DynamoDB implementation of every store trait. Cheap to clone.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    /// A store over `table` using `client` (built once per cold start).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Opens the HTTPS connection to DynamoDB ahead of the first request (a `DescribeTable`),
    /// so the first user request does not pay for TLS set-up (docs/architecture.md §9).
    ///
    /// # Errors
    /// [`StoreError`] if DynamoDB cannot be reached or the table does not exist.
    pub async fn warm(&self) -> Result<(), StoreError> {
        self.client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn get<T: DeserializeOwned>(&self, key: Key) -> Result<Option<T>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(keys::PK, AttributeValue::S(key.0))
            .key(keys::SK, AttributeValue::S(key.1))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        out.item.map(from_item).transpose()
    }
}

#[async_trait]
impl UserStore for DynamoStore {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let put = |item: Item| -> Result<TransactWriteItem, StoreError> {
            let put = built(
                Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(PK)")
                    .build(),
            )?;
            Ok(TransactWriteItem::builder().put(put).build())
        };
        let user_item = to_item(&keys::user(&user.id), user)?;
        let claim_item = to_item(
            &keys::email_claim(user.email().normalized()),
            &EmailClaim { user_id: user.id },
        )?;
        self.client
            .transact_write_items()
            .transact_items(put(user_item)?)
            .transact_items(put(claim_item)?)
            .send()
            .await
            .map(|_| ())
            .map_err(classify_as(Conflict::EmailTaken))
    }

    async fn get_user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        self.get(keys::user(id)).await
    }

    async fn find_user_id_by_email(
        &self,
        normalized_email: &str,
    ) -> Result<Option<UserId>, StoreError> {
        Ok(self
            .get::<EmailClaim>(keys::email_claim(normalized_email))
            .await?
            .map(|c| c.user_id))
    }

    async fn update_user(&self, user: &User, expected_version: u64) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&keys::user(&user.id), user)?))
            .condition_expression("attribute_exists(PK) AND version = :v")
            .expression_attribute_values(":v", AttributeValue::N(expected_version.to_string()))
            .send()
            .await
            .map(|_| ())
            .map_err(classify_as(Conflict::StaleVersion))
    }

    async fn list_users(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<User>, Option<String>), StoreError> {
        let mut start = match cursor {
            Some(c) => Some(key_of(
                keys::decode_cursor(c).ok_or(StoreError::Conflict(Conflict::BadCursor))?,
            )),
            None => None,
        };
        let mut users = Vec::new();
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("SK = :profile AND begins_with(PK, :user)")
                .expression_attribute_values(":profile", text(keys::PROFILE))
                .expression_attribute_values(":user", text("USER#"))
                .set_exclusive_start_key(start.take())
                .limit(1000)
                .send()
                .await
                .map_err(classify)?;
            for item in out.items.unwrap_or_default() {
                if users.len() >= limit {
                    break;
                }
                let key = (
                    item.get(keys::PK)
                        .and_then(|v| v.as_s().ok())
                        .cloned()
                        .unwrap_or_default(),
                    item.get(keys::SK)
                        .and_then(|v| v.as_s().ok())
                        .cloned()
                        .unwrap_or_default(),
                );
                users.push((key, from_item::<User>(item)?));
            }
            if users.len() >= limit {
                let next = users.last().map(|(k, _)| keys::encode_cursor(k));
                return Ok((users.into_iter().map(|(_, u)| u).collect(), next));
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok((users.into_iter().map(|(_, u)| u).collect(), None)),
            }
        }
    }
}

#[async_trait]
impl SessionStore for DynamoStore {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(
                &keys::session(&session.user_id, &session.id),
                session,
            )?))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await
            .map(|_| ())
            .map_err(classify_as(Conflict::SessionExists))
    }

    async fn get_session(
        &self,
        user_id: &UserId,
        id: &SessionId,
    ) -> Result<Option<Session>, StoreError> {
        self.get(keys::session(user_id, id)).await
    }

    async fn rotate_session(
        &self,
        next: &Session,
        expected_current: &TokenHash,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(
                &keys::session(&next.user_id, &next.id),
                next,
            )?))
            .condition_expression(
                "attribute_exists(PK) AND current_hash = :h AND attribute_not_exists(revoked_at)",
            )
            .expression_attribute_values(":h", AttributeValue::S(expected_current.0.clone()))
            .send()
            .await
            .map(|_| ())
            .map_err(classify_as(Conflict::SessionChanged))
    }

    async fn revoke_session(
        &self,
        user_id: &UserId,
        id: &SessionId,
        at: i64,
        reason: RevokeReason,
    ) -> Result<(), StoreError> {
        let (pk, sk) = keys::session(user_id, id);
        let reason = serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value(reason)
            .map_err(StoreError::internal)?;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(keys::PK, AttributeValue::S(pk))
            .key(keys::SK, AttributeValue::S(sk))
            .update_expression("SET revoked_at = :at, revoked_reason = :r")
            .condition_expression("attribute_exists(PK) AND attribute_not_exists(revoked_at)")
            .expression_attribute_values(":at", AttributeValue::N(at.to_string()))
            .expression_attribute_values(":r", reason)
            .send()
            .await
            .map_err(classify);
        match result {
            Ok(_) => Ok(()),
            // Either absent or already revoked: tell them apart with a read.
            Err(StoreError::Conflict(_)) => match self.get_session(user_id, id).await? {
                Some(_) => Ok(()),
                None => Err(StoreError::NotFound),
            },
            Err(e) => Err(e),
        }
    }

    async fn list_sessions(&self, user_id: &UserId) -> Result<Vec<Session>, StoreError> {
        self.query_prefix(keys::user_pk(user_id), keys::SESSION_PREFIX)
            .await
    }
}

impl DynamoStore {
    /// Every item of partition `pk` whose sort key starts with `prefix`, in sort-key order
    /// (strongly consistent `Query`, every page).
    async fn query_prefix<T: DeserializeOwned>(
        &self,
        pk: String,
        prefix: &str,
    ) -> Result<Vec<T>, StoreError> {
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk AND begins_with(SK, :prefix)")
                .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
                .expression_attribute_values(":prefix", AttributeValue::S(prefix.to_owned()))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(classify)?;
            for item in out.items.unwrap_or_default() {
                found.push(from_item(item)?);
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(found)
    }

    async fn put_if(
        &self,
        item: Item,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<(), StoreError> {
        let mut req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition);
        for (k, v) in values {
            req = req.expression_attribute_values(k, v);
        }
        req.send().await.map(|_| ()).map_err(classify)
    }

    fn put_version_checked(&self, write: &SubscriptionWrite) -> Result<Put, StoreError> {
        let sub = &write.subscription;
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(&keys::subscription(&sub.user_id), sub)?));
        put = match write.expected_version {
            None => put.condition_expression("attribute_not_exists(PK)"),
            Some(v) => put
                .condition_expression("version = :v")
                .expression_attribute_values(":v", AttributeValue::N(v.to_string())),
        };
        built(put.build())
    }
}

#[async_trait]
impl BillingStore for DynamoStore {
    async fn get_subscription(&self, user_id: &UserId) -> Result<Option<Subscription>, StoreError> {
        self.get(keys::subscription(user_id)).await
    }

    async fn put_subscription_with(
        &self,
        write: &SubscriptionWrite,
        notices: &Notices,
    ) -> Result<(), StoreError> {
        // Optimistic: most notices are new; one found stored fails the transaction, which is then
        // tried again without it.
        let mut notices = notices.clone();
        for round in 0..NOTICE_ROUNDS {
            let mut items = vec![TxItem {
                item: TransactWriteItem::builder()
                    .put(self.put_version_checked(write)?)
                    .build(),
                conflict: Conflict::StaleVersion,
            }];
            items.extend(self.trial_marker(write)?);
            items.extend(self.notice_items(&notices)?);
            match self.transact(items).await {
                // A notice's cause was noticed meanwhile by another writer: without it.
                Err(StoreError::Conflict(Conflict::ItemExists)) if round + 1 < NOTICE_ROUNDS => {
                    notices = self.fresh_notices(&notices).await?;
                }
                other => return other,
            }
        }
        Err(StoreError::Conflict(Conflict::ItemExists))
    }

    async fn claim_customer(
        &self,
        provider: Provider,
        customer: &CustomerId,
        user_id: &UserId,
    ) -> Result<UserId, StoreError> {
        let claim = to_item(
            &keys::customer_claim(provider, customer),
            &CustomerClaim { user_id: *user_id },
        )?;
        match self.put_if(claim, "attribute_not_exists(PK)", vec![]).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                let owner = self
                    .find_customer(provider, customer)
                    .await?
                    .ok_or_else(|| {
                        StoreError::internal(crate::error::message("customer claim vanished"))
                    })?;
                if owner != *user_id {
                    return Ok(owner);
                }
            }
            Err(e) => return Err(e),
        }
        let mine = to_item(
            &keys::user_customer(user_id, provider),
            &UserCustomer {
                customer_id: customer.clone(),
            },
        )?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(mine))
            .send()
            .await
            .map_err(classify)?;
        Ok(*user_id)
    }

    async fn find_customer(
        &self,
        provider: Provider,
        customer: &CustomerId,
    ) -> Result<Option<UserId>, StoreError> {
        Ok(self
            .get::<CustomerClaim>(keys::customer_claim(provider, customer))
            .await?
            .map(|c| c.user_id))
    }

    async fn list_payments(&self, user_id: &UserId) -> Result<Vec<Payment>, StoreError> {
        self.query_prefix(keys::user_pk(user_id), keys::PAYMENT_PREFIX)
            .await
    }

    async fn customer_of(
        &self,
        provider: Provider,
        user_id: &UserId,
    ) -> Result<Option<CustomerId>, StoreError> {
        Ok(self
            .get::<UserCustomer>(keys::user_customer(user_id, provider))
            .await?
            .map(|c| c.customer_id))
    }

    async fn trial_used(&self, user_id: &UserId) -> Result<bool, StoreError> {
        Ok(self
            .get::<TrialMarker>(keys::trial_marker(user_id))
            .await?
            .is_some())
    }
}

#[async_trait]
impl EventLedger for DynamoStore {
    async fn record_event(&self, event: &WebhookEvent) -> Result<(WebhookEvent, bool), StoreError> {
        let item = to_item(&keys::event(event.provider, &event.event_id), event)?;
        match self.put_if(item, "attribute_not_exists(PK)", vec![]).await {
            Ok(()) => Ok((event.clone(), true)),
            Err(StoreError::Conflict(_)) => {
                let existing = self
                    .get_event(event.provider, &event.event_id)
                    .await?
                    .ok_or_else(|| StoreError::internal(crate::error::message("event vanished")))?;
                Ok((existing, false))
            }
            Err(e) => Err(e),
        }
    }

    async fn get_event(
        &self,
        provider: Provider,
        event_id: &EventId,
    ) -> Result<Option<WebhookEvent>, StoreError> {
        self.get(keys::event(provider, event_id)).await
    }

    async fn mark_event(
        &self,
        provider: Provider,
        event_id: &EventId,
        mark: &EventMark,
    ) -> Result<(), StoreError> {
        let mut update = "SET #s = :s, attempts = :a".to_owned();
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(keys::event(provider, event_id))))
            .condition_expression("attribute_exists(PK) AND #s <> :processed")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":s", status_value(mark.status)?)
            .expression_attribute_values(":processed", status_value(EventStatus::Processed)?)
            .expression_attribute_values(":a", AttributeValue::N(mark.attempts.to_string()));
        if let Some(e) = &mark.error {
            update.push_str(", last_error = :e");
            req = req.expression_attribute_values(":e", AttributeValue::S(e.clone()));
        }
        if mark.status == EventStatus::Ignored {
            update.push_str(", processed_at = :at");
            req = req.expression_attribute_values(":at", AttributeValue::N(mark.at.to_string()));
        }
        match req.update_expression(update).send().await.map_err(classify) {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict(_)) => match self.get_event(provider, event_id).await? {
                Some(_) => Ok(()),
                None => Err(StoreError::NotFound),
            },
            Err(e) => Err(e),
        }
    }

    async fn apply_event(
        &self,
        provider: Provider,
        event_id: &EventId,
        effects: &EventEffects,
        at: i64,
    ) -> Result<(), StoreError> {
        let mut credits = effects.credits.as_ref();
        let mut notices = effects.notices.clone();
        for round in 0..NOTICE_ROUNDS {
            let mut items = Vec::with_capacity(6);
            let mark = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key_of(keys::event(provider, event_id))))
                .update_expression("SET #s = :processed, processed_at = :at REMOVE last_error")
                .condition_expression("attribute_exists(PK) AND #s <> :processed")
                .expression_attribute_names("#s", "status")
                .expression_attribute_values(":processed", status_value(EventStatus::Processed)?)
                .expression_attribute_values(":at", AttributeValue::N(at.to_string()));
            items.push(TxItem {
                item: TransactWriteItem::builder()
                    .update(built(mark.build())?)
                    .build(),
                conflict: Conflict::AlreadyProcessed,
            });
            if let Some(write) = &effects.subscription {
                items.push(TxItem {
                    item: TransactWriteItem::builder()
                        .put(self.put_version_checked(write)?)
                        .build(),
                    conflict: Conflict::StaleVersion,
                });
                items.extend(self.trial_marker(write)?);
            }
            if let Some(p) = &effects.payment {
                items.push(self.tx_put(
                    &keys::payment(&p.user_id, p.paid_at, p.provider, &p.payment_id),
                    p,
                    None,
                )?);
            }
            if let Some((entry, audit)) = credits {
                let write = CreditWrite {
                    entry: entry.clone(),
                    require_funds: false,
                    audit: audit.clone(),
                    // The event's own notices carry its `credits.changed`.
                    notices: Notices::default(),
                };
                items.extend(self.credit_items(&write, true)?);
            }
            items.extend(self.notice_items(&notices)?);
            match self.transact(items).await {
                Ok(()) => return Ok(()),
                // A cause took effect through another event (a second event of one payment), or
                // a notice's cause was noticed meanwhile: apply the rest without it.
                Err(StoreError::Conflict(Conflict::ItemExists)) if round + 1 < NOTICE_ROUNDS => {
                    if let Some((entry, _)) = credits {
                        if self.credit_cause(&entry.cause).await?.is_some() {
                            credits = None;
                        }
                    }
                    notices = self.fresh_notices(&notices).await?;
                }
                Err(StoreError::Conflict(_)) => {
                    return match self.get_event(provider, event_id).await? {
                        None => Err(StoreError::NotFound),
                        Some(e) if e.status == EventStatus::Processed => {
                            Err(StoreError::Conflict(Conflict::AlreadyProcessed))
                        }
                        Some(_) => Err(StoreError::Conflict(Conflict::StaleVersion)),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict(Conflict::ItemExists))
    }

    async fn reconcile_checkpoint(&self, provider: Provider) -> Result<Option<i64>, StoreError> {
        Ok(self
            .get::<Checkpoint>(keys::reconcile_checkpoint(provider))
            .await?
            .map(|c| c.reconciled_to))
    }

    async fn set_reconcile_checkpoint(
        &self,
        provider: Provider,
        at: i64,
    ) -> Result<(), StoreError> {
        let item = to_item(
            &keys::reconcile_checkpoint(provider),
            &Checkpoint { reconciled_to: at },
        )?;
        match self
            .put_if(
                item,
                "attribute_not_exists(reconciled_to) OR reconciled_to < :at",
                vec![(":at", num(at))],
            )
            .await
        {
            // A later checkpoint is stored: it stays.
            Ok(()) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// One item of a `TransactWriteItems`, and the conflict its condition reports.
struct TxItem {
    item: TransactWriteItem,
    conflict: Conflict,
}

/// A condition expression with its values and attribute-name placeholders.
struct Condition<'a> {
    expression: &'a str,
    values: Vec<(&'a str, AttributeValue)>,
    names: Vec<(&'a str, &'a str)>,
}

impl<'a> Condition<'a> {
    fn new(expression: &'a str, values: Vec<(&'a str, AttributeValue)>) -> Self {
        Self {
            expression,
            values,
            names: Vec::new(),
        }
    }

    fn named(mut self, names: Vec<(&'a str, &'a str)>) -> Self {
        self.names = names;
        self
    }
}

impl DynamoStore {
    /// Items of partition `pk` whose sort key starts with `prefix` (which ends in `#`), highest
    /// sort key first, strictly below `before` (a whole sort key) when given: at most `limit`.
    /// One strongly consistent `Query` (`SK BETWEEN prefix AND before`, the inclusive bound's own
    /// item skipped).
    async fn newest_below<T: DeserializeOwned>(
        &self,
        pk: String,
        prefix: &str,
        before: Option<String>,
        limit: usize,
    ) -> Result<Vec<T>, StoreError> {
        // Just past every `PREFIX#…` sort key ('$' follows '#').
        let upper = before
            .clone()
            .unwrap_or_else(|| format!("{}$", prefix.trim_end_matches('#')));
        // One more when the bound's own item may come back first.
        let extra = usize::from(before.is_some());
        let want = i32::try_from(limit.saturating_add(extra)).unwrap_or(i32::MAX);
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND SK BETWEEN :lo AND :hi")
            .expression_attribute_values(":pk", text(pk))
            .expression_attribute_values(":lo", text(prefix))
            .expression_attribute_values(":hi", text(upper.clone()))
            .scan_index_forward(false)
            .consistent_read(true)
            .limit(want)
            .send()
            .await
            .map_err(classify)?;
        let mut page = Vec::new();
        for item in out.items.unwrap_or_default() {
            if item.get(keys::SK) == Some(&text(upper.clone())) {
                continue;
            }
            page.push(from_item(item)?);
        }
        page.truncate(limit);
        Ok(page)
    }

    fn tx_put(
        &self,
        key: &Key,
        value: &impl Serialize,
        condition: Option<(&str, Conflict)>,
    ) -> Result<TxItem, StoreError> {
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(key, value)?));
        let conflict = match condition {
            Some((c, conflict)) => {
                put = put.condition_expression(c);
                conflict
            }
            None => Conflict::ItemExists,
        };
        Ok(TxItem {
            item: TransactWriteItem::builder()
                .put(built(put.build())?)
                .build(),
            conflict,
        })
    }

    fn tx_delete(
        &self,
        key: Key,
        condition: Option<Condition<'_>>,
        conflict: Conflict,
    ) -> Result<TxItem, StoreError> {
        let mut delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(key)));
        if let Some(c) = condition {
            delete = delete.condition_expression(c.expression);
            for (k, v) in c.values {
                delete = delete.expression_attribute_values(k, v);
            }
            for (k, v) in c.names {
                delete = delete.expression_attribute_names(k, v);
            }
        }
        Ok(TxItem {
            item: TransactWriteItem::builder()
                .delete(built(delete.build())?)
                .build(),
            conflict,
        })
    }

    fn tx_update(
        &self,
        key: Key,
        update: &str,
        condition: Condition<'_>,
        conflict: Conflict,
    ) -> Result<TxItem, StoreError> {
        let mut u = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(key)))
            .update_expression(update)
            .condition_expression(condition.expression);
        for (k, v) in condition.values {
            u = u.expression_attribute_values(k, v);
        }
        for (k, v) in condition.names {
            u = u.expression_attribute_names(k, v);
        }
        Ok(TxItem {
            item: TransactWriteItem::builder()
                .update(built(u.build())?)
                .build(),
            conflict,
        })
    }

    /// Runs `items` as one `TransactWriteItems`, reporting the first failed condition's
    /// conflict.
    async fn transact(&self, items: Vec<TxItem>) -> Result<(), StoreError> {
        let conflicts: Vec<Conflict> = items.iter().map(|i| i.conflict).collect();
        self.client
            .transact_write_items()
            .set_transact_items(Some(items.into_iter().map(|i| i.item).collect()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| transaction_error(e, &conflicts))
    }

    /// Every item whose partition key starts with `prefix` and whose `status` is one of
    /// `statuses`: a filtered Scan of the whole table, every page — for operators' listings
    /// (`mail drain`, `outbound dead`), never a request's path.
    async fn scan_partitions<T: DeserializeOwned>(
        &self,
        prefix: &str,
        statuses: &[AttributeValue],
    ) -> Result<Vec<T>, StoreError> {
        let names: Vec<String> = (0..statuses.len()).map(|i| format!(":s{i}")).collect();
        let filter = format!("begins_with(PK, :prefix) AND #s IN ({})", names.join(", "));
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut req = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression(&filter)
                .expression_attribute_names("#s", "status")
                .expression_attribute_values(":prefix", text(prefix))
                .consistent_read(true)
                .set_exclusive_start_key(start.take());
            for (name, status) in names.iter().zip(statuses) {
                req = req.expression_attribute_values(name, status.clone());
            }
            let out = req.send().await.map_err(classify)?;
            for item in out.items.unwrap_or_default() {
                found.push(from_item(item)?);
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(found)
    }

    /// The notices whose ids are not stored yet (each is one `GetItem`; a change owes a few).
    async fn fresh_notices(&self, notices: &Notices) -> Result<Notices, StoreError> {
        let mut fresh = Notices::default();
        for mail in &notices.mails {
            if self
                .get::<OutboxMail>(keys::mail(&mail.id))
                .await?
                .is_none()
            {
                fresh.mails.push(mail.clone());
            }
        }
        for event in &notices.outbound {
            if self
                .get::<OutboundEvent>(keys::outbound(&event.id))
                .await?
                .is_none()
            {
                fresh.outbound.push(event.clone());
            }
        }
        Ok(fresh)
    }

    /// The transaction's puts of `notices`, each conditioned on its id being new.
    fn notice_items(&self, notices: &Notices) -> Result<Vec<TxItem>, StoreError> {
        let new = Some(("attribute_not_exists(PK)", Conflict::ItemExists));
        let mut items = Vec::with_capacity(notices.mails.len() + 2 * notices.outbound.len());
        for mail in &notices.mails {
            items.push(self.tx_put(&keys::mail(&mail.id), mail, new)?);
        }
        for event in &notices.outbound {
            items.push(self.tx_put(&keys::outbound(&event.id), event, new)?);
            items.push(self.due_item(event.next_attempt_at, event)?);
        }
        Ok(items)
    }

    /// The put of `event`'s due-index entry at `due_at`.
    fn due_item(&self, due_at: i64, event: &OutboundEvent) -> Result<TxItem, StoreError> {
        self.tx_put(
            &keys::outbound_due(due_at, &event.id),
            &OutboundDue {
                id: event.id.clone(),
                due_at,
                expires_at: event.expires_at,
            },
            None,
        )
    }

    /// The trial marker written with a subscription that has a trial end (unconditional: the
    /// first trial's end is overwritten by a later one's, which changes nothing that is read).
    fn trial_marker(&self, write: &SubscriptionWrite) -> Result<Option<TxItem>, StoreError> {
        write
            .subscription
            .trial_end
            .map(|trial_end| {
                self.tx_put(
                    &keys::trial_marker(&write.subscription.user_id),
                    &TrialMarker { trial_end },
                    None,
                )
            })
            .transpose()
    }

    /// The transaction items of a credit write: the cause record (`guard`; conflict
    /// [`Conflict::ItemExists`] if it exists), the balance `ADD` (with `require_funds` on a
    /// negative amount, conditioned on `balance >= -amount`: [`Conflict::InsufficientCredits`]),
    /// the ledger entry and the audit record.
    fn credit_items(&self, w: &CreditWrite, guard: bool) -> Result<Vec<TxItem>, StoreError> {
        let e = &w.entry;
        let mut items = Vec::with_capacity(4);
        if guard {
            items.push(self.tx_put(
                &keys::credit_cause(&e.cause),
                e,
                Some(("attribute_not_exists(PK)", Conflict::ItemExists)),
            )?);
        }
        let condition = if w.require_funds && e.amount < 0 {
            Condition::new(
                "#b >= :need",
                vec![(":a", num(e.amount)), (":need", num(-e.amount))],
            )
        } else {
            Condition::new(
                "attribute_not_exists(#b) OR attribute_exists(#b)",
                vec![(":a", num(e.amount))],
            )
        };
        items.push(self.tx_update(
            keys::credit_balance(&e.user_id),
            "ADD #b :a",
            condition.named(vec![("#b", "balance")]),
            Conflict::InsufficientCredits,
        )?);
        items.push(self.tx_put(&keys::credit_entry(&e.user_id, e.at, &e.cause), e, None)?);
        items.push(self.tx_put(&keys::audit(&w.audit.user_id, &w.audit.id), &w.audit, None)?);
        items.extend(self.notice_items(&w.notices)?);
        Ok(items)
    }

    /// The transaction items of one change (two for user creation and deletion).
    fn tx_items(&self, change: &Change, out: &mut Vec<TxItem>) -> Result<(), StoreError> {
        const NEW: &str = "attribute_not_exists(PK)";
        match change {
            Change::CreateUser(user) => {
                out.push(self.tx_put(
                    &keys::user(&user.id),
                    user,
                    Some((NEW, Conflict::EmailTaken)),
                )?);
                out.push(self.tx_put(
                    &keys::email_claim(user.email().normalized()),
                    &EmailClaim { user_id: user.id },
                    Some((NEW, Conflict::EmailTaken)),
                )?);
            }
            Change::UpdateUser {
                user,
                expected_version,
            } => {
                let mut item = self.tx_put(
                    &keys::user(&user.id),
                    user,
                    Some((
                        "attribute_exists(PK) AND version = :v",
                        Conflict::StaleVersion,
                    )),
                )?;
                item.item = with_values(item.item, vec![(":v", num(expected_version))]);
                out.push(item);
            }
            Change::DeleteUser {
                user,
                expected_version,
            } => {
                out.push(self.tx_delete(
                    keys::user(&user.id),
                    Some(Condition::new(
                        "version = :v",
                        vec![(":v", num(expected_version))],
                    )),
                    Conflict::StaleVersion,
                )?);
                out.push(self.tx_delete(
                    keys::email_claim(user.email().normalized()),
                    Some(Condition::new(
                        "user_id = :u",
                        vec![(":u", text(user.id.to_string()))],
                    )),
                    Conflict::StaleVersion,
                )?);
            }
            Change::CreateSession(session) => out.push(self.tx_put(
                &keys::session(&session.user_id, &session.id),
                session,
                Some((NEW, Conflict::SessionExists)),
            )?),
            Change::KeepSession {
                user_id,
                session_id,
                epoch,
                authenticated_at,
            } => {
                let mut values = vec![(":e", num(epoch))];
                let update = match authenticated_at {
                    Some(at) => {
                        values.push((":t", num(at)));
                        "SET epoch = :e, authenticated_at = :t"
                    }
                    None => "SET epoch = :e",
                };
                out.push(self.tx_update(
                    keys::session(user_id, session_id),
                    update,
                    Condition::new(
                        "attribute_exists(PK) AND attribute_not_exists(revoked_at)",
                        values,
                    ),
                    Conflict::SessionChanged,
                )?);
            }
            Change::RevokeSession {
                user_id,
                session_id,
                at,
                reason,
            } => out.push(self.tx_update(
                keys::session(user_id, session_id),
                "SET revoked_at = if_not_exists(revoked_at, :at), revoked_reason = if_not_exists(revoked_reason, :r)",
                Condition::new(
                    "attribute_exists(PK)",
                    vec![(":at", num(at)), (":r", attr(reason)?)],
                ),
                Conflict::SessionChanged,
            )?),
            Change::PutToken(token) => {
                out.push(self.tx_put(
                    &keys::one_time_token(&token.hash),
                    token,
                    Some((NEW, Conflict::ItemExists)),
                )?);
                if let Some(user_id) = &token.user_id {
                    let reference = TokenRef {
                        hash: token.hash.clone(),
                        expires_at: token.expires_at,
                    };
                    out.push(self.tx_put(
                        &keys::token_ref(user_id, &token.hash),
                        &reference,
                        None,
                    )?);
                }
            }
            Change::SpendToken { hash, purpose } => out.push(self.tx_delete(
                keys::one_time_token(hash),
                Some(Condition::new(
                    "attribute_exists(PK) AND purpose = :p",
                    vec![(":p", attr(purpose)?)],
                )),
                Conflict::TokenSpent,
            )?),
            Change::PutOtp(otp) => out.push(self.tx_put(&keys::email_otp(&otp.email), otp, None)?),
            Change::SpendOtp { email, id } => out.push(self.tx_delete(
                keys::email_otp(email),
                Some(
                    Condition::new(
                        "#id = :id AND attempts < :max",
                        vec![(":id", text(id.clone())), (":max", num(OTP_MAX_ATTEMPTS))],
                    )
                    .named(vec![("#id", "id")]),
                ),
                Conflict::OtpChanged,
            )?),
            Change::CountOtpFailure {
                email,
                id,
                attempts_seen,
            } => out.push(self.tx_update(
                keys::email_otp(email),
                "SET attempts = :next",
                Condition::new(
                    "#id = :id AND attempts = :seen",
                    vec![
                        (":id", text(id.clone())),
                        (":seen", num(attempts_seen)),
                        (":next", num(attempts_seen + 1)),
                    ],
                )
                .named(vec![("#id", "id")]),
                Conflict::OtpChanged,
            )?),
            Change::DeleteOtp { email } => {
                out.push(self.tx_delete(keys::email_otp(email), None, Conflict::OtpChanged)?)
            }
            Change::QueueMail(mail) => out.push(self.tx_put(
                &keys::mail(&mail.id),
                mail,
                Some((NEW, Conflict::ItemExists)),
            )?),
            Change::Audit(record) => out.push(self.tx_put(
                &keys::audit(&record.user_id, &record.id),
                record,
                None,
            )?),
            Change::LinkIdentity(identity) => {
                out.push(self.tx_put(
                    &keys::identity(&identity.provider, &identity.subject),
                    identity,
                    Some((NEW, Conflict::IdentityTaken)),
                )?);
                out.push(self.tx_put(
                    &keys::user_identity(&identity.user_id, &identity.provider),
                    identity,
                    Some((NEW, Conflict::ProviderLinked)),
                )?);
            }
            Change::UnlinkIdentity {
                user_id,
                provider,
                subject,
            } => {
                out.push(self.tx_delete(
                    keys::user_identity(user_id, provider),
                    Some(Condition::new(
                        "subject = :s",
                        vec![(":s", text(subject.clone()))],
                    )),
                    Conflict::IdentityNotLinked,
                )?);
                out.push(self.tx_delete(
                    keys::identity(provider, subject),
                    Some(Condition::new(
                        "user_id = :u",
                        vec![(":u", text(user_id.to_string()))],
                    )),
                    Conflict::IdentityNotLinked,
                )?);
            }
            Change::PutOAuthState(state) => out.push(self.tx_put(
                &keys::oauth_state(&state.hash),
                state,
                Some((NEW, Conflict::ItemExists)),
            )?),
            Change::SpendOAuthState { hash } => out.push(self.tx_delete(
                keys::oauth_state(hash),
                Some(Condition::new("attribute_exists(PK)", vec![])),
                Conflict::StateSpent,
            )?),
            Change::CreateApiKey(key) => {
                out.push(self.tx_put(
                    &keys::api_key_owner(&key.key_id),
                    &ApiKeyOwner {
                        key_id: key.key_id.clone(),
                        user_id: key.user_id,
                        expires_at: key.expires_at,
                    },
                    Some((NEW, Conflict::ItemExists)),
                )?);
                out.push(self.tx_put(
                    &keys::api_key(&key.user_id, &key.key_id),
                    key,
                    Some((NEW, Conflict::ItemExists)),
                )?);
            }
            Change::RevokeApiKey {
                user_id,
                key_id,
                at,
            } => {
                let forget = at + REVOKED_API_KEY_RETENTION_SECONDS;
                out.push(self.tx_update(
                    keys::api_key(user_id, key_id),
                    "SET revoked_at = :at, expires_at = :forget",
                    Condition::new(
                        "attribute_exists(PK) AND attribute_not_exists(revoked_at)",
                        vec![(":at", num(*at)), (":forget", num(forget))],
                    ),
                    Conflict::ApiKeyGone,
                )?);
                out.push(self.tx_put(
                    &keys::api_key_owner(key_id),
                    &ApiKeyOwner {
                        key_id: key_id.clone(),
                        user_id: *user_id,
                        expires_at: Some(forget),
                    },
                    None,
                )?);
            }
        }
        Ok(())
    }
}

/// Adds expression values to a transaction item's put.
fn with_values(item: TransactWriteItem, values: Vec<(&str, AttributeValue)>) -> TransactWriteItem {
    match item.put {
        Some(put) => {
            let mut map = put
                .expression_attribute_values()
                .cloned()
                .unwrap_or_default();
            for (k, v) in values {
                map.insert(k.to_owned(), v);
            }
            let rebuilt = Put::builder()
                .table_name(put.table_name())
                .set_item(Some(put.item().clone()))
                .set_condition_expression(put.condition_expression().map(str::to_owned))
                .set_expression_attribute_values(Some(map))
                .build();
            match rebuilt {
                Ok(p) => TransactWriteItem::builder().put(p).build(),
                Err(_) => TransactWriteItem::builder().put(put).build(),
            }
        }
        None => item,
    }
}

/// Maps a failed transaction to the conflict of the first item whose condition failed (DynamoDB
/// lists a cancellation reason per item, in order), else as [`classify`] does.
fn transaction_error(
    err: SdkError<TransactWriteItemsError, aws_sdk_dynamodb::config::http::HttpResponse>,
    conflicts: &[Conflict],
) -> StoreError {
    if let SdkError::ServiceError(service) = &err {
        if let TransactWriteItemsError::TransactionCanceledException(e) = service.err() {
            let failed = e
                .cancellation_reasons()
                .iter()
                .position(|r| r.code() == Some("ConditionalCheckFailed"));
            if let Some(conflict) = failed.and_then(|i| conflicts.get(i)) {
                return StoreError::Conflict(*conflict);
            }
        }
    }
    classify(err)
}

#[async_trait]
impl AccountStore for DynamoStore {
    async fn commit(&self, changes: &[Change]) -> Result<(), StoreError> {
        let mut items = Vec::with_capacity(changes.len() + 2);
        for change in changes {
            self.tx_items(change, &mut items)?;
        }
        // One unconditional or conditional put alone (an audit record, a queued mail) is a plain
        // PutItem: half the write units of a transaction.
        if let [only] = items.as_slice() {
            if let Some(put) = &only.item.put {
                let mut req = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(put.item().clone()))
                    .set_condition_expression(put.condition_expression().map(str::to_owned))
                    .set_expression_attribute_values(put.expression_attribute_values().cloned());
                if let Some(names) = put.expression_attribute_names() {
                    req = req.set_expression_attribute_names(Some(names.clone()));
                }
                return req
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(classify_as(only.conflict));
            }
        }
        let conflicts: Vec<Conflict> = items.iter().map(|i| i.conflict).collect();
        self.client
            .transact_write_items()
            .set_transact_items(Some(items.into_iter().map(|i| i.item).collect()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| transaction_error(e, &conflicts))
    }

    async fn get_token(&self, hash: &TokenHash) -> Result<Option<OneTimeToken>, StoreError> {
        self.get(keys::one_time_token(hash)).await
    }

    async fn get_otp(&self, normalized_email: &str) -> Result<Option<EmailOtp>, StoreError> {
        self.get(keys::email_otp(normalized_email)).await
    }

    async fn list_audit(
        &self,
        user_id: &UserId,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let before = before.map(|id| keys::audit(user_id, id).1);
        self.newest_below(keys::user_pk(user_id), keys::AUDIT_PREFIX, before, limit)
            .await
    }

    async fn get_identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<Identity>, StoreError> {
        self.get(keys::identity(provider, subject)).await
    }

    async fn list_identities(&self, user_id: &UserId) -> Result<Vec<Identity>, StoreError> {
        self.query_prefix(keys::user_pk(user_id), keys::IDENTITY_PREFIX)
            .await
    }

    async fn get_oauth_state(&self, hash: &TokenHash) -> Result<Option<OAuthState>, StoreError> {
        self.get(keys::oauth_state(hash)).await
    }

    async fn get_api_key(&self, key_id: &str) -> Result<Option<ApiKey>, StoreError> {
        match self.get::<ApiKeyOwner>(keys::api_key_owner(key_id)).await? {
            Some(owner) => self.get(keys::api_key(&owner.user_id, key_id)).await,
            None => Ok(None),
        }
    }

    async fn list_api_keys(&self, user_id: &UserId) -> Result<Vec<ApiKey>, StoreError> {
        self.query_prefix(keys::user_pk(user_id), keys::API_KEY_PREFIX)
            .await
    }

    async fn touch_api_key(
        &self,
        user_id: &UserId,
        key_id: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        let touched = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(keys::api_key(user_id, key_id))))
            .update_expression("SET last_used_at = :at")
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_values(":at", num(at))
            .send()
            .await
            .map_err(classify);
        match touched {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn erase_user_items(&self, user_id: &UserId) -> Result<usize, StoreError> {
        let pk = keys::user_pk(user_id);
        let mut doomed = Vec::new();
        // Identity items name their lookup item by provider and subject.
        let mut identities: Vec<Key> = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk")
                .expression_attribute_values(":pk", text(pk.clone()))
                .projection_expression("PK, SK, provider, subject")
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(classify)?;
            for item in out.items.unwrap_or_default() {
                if let Some(AttributeValue::S(sk)) = item.get(keys::SK) {
                    if super::kept_after_erase(sk) {
                        continue;
                    }
                    if sk.starts_with(keys::IDENTITY_PREFIX) {
                        if let (Some(AttributeValue::S(p)), Some(AttributeValue::S(s))) =
                            (item.get("provider"), item.get("subject"))
                        {
                            identities.push(keys::identity(p, s));
                        }
                    }
                    doomed.push(sk.clone());
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        let count = doomed.len();
        // Each token reference also names its token item (keyed by hash alone).
        let mut deletes: Vec<Key> = identities;
        for sk in &doomed {
            if let Some(hash) = sk.strip_prefix(keys::TOKEN_REF_PREFIX) {
                deletes.push(keys::one_time_token(&TokenHash(hash.to_owned())));
            }
            if let Some(key_id) = sk.strip_prefix(keys::API_KEY_PREFIX) {
                deletes.push(keys::api_key_owner(key_id));
            }
            deletes.push((pk.clone(), sk.clone()));
        }
        for chunk in deletes.chunks(25) {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|key| {
                    built(
                        DeleteRequest::builder()
                            .set_key(Some(key_of(key.clone())))
                            .build(),
                    )
                    .map(|d| WriteRequest::builder().delete_request(d).build())
                })
                .collect::<Result<_, _>>()?;
            // BatchWriteItem may leave items unprocessed under throttling: resend them.
            for attempt in 0..8u32 {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .send()
                    .await
                    .map_err(classify)?;
                requests = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(&self.table))
                    .unwrap_or_default();
                if requests.is_empty() {
                    break;
                }
                if attempt == 7 {
                    return Err(StoreError::Unavailable(crate::error::message(
                        "DynamoDB left deletes unprocessed",
                    )));
                }
                tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
            }
        }
        Ok(count)
    }
}

#[async_trait]
impl RateLimiter for DynamoStore {
    async fn hit(
        &self,
        name: &str,
        rule: &RateRule,
        key: &str,
        now: i64,
    ) -> Result<RateDecision, StoreError> {
        let counted = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(keys::rate_window(
                name,
                key,
                rule.window_start(now),
            ))))
            .update_expression("ADD #c :one SET expires_at = :ttl")
            .condition_expression("attribute_not_exists(#c) OR #c < :limit")
            .expression_attribute_names("#c", "count")
            .expression_attribute_values(":one", num(1))
            .expression_attribute_values(":limit", num(rule.limit))
            .expression_attribute_values(":ttl", num(rule.window_end(now) + 60))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(classify);
        let count = match counted {
            Ok(out) => match out.attributes.as_ref().and_then(|a| a.get("count")) {
                Some(AttributeValue::N(n)) => Some(n.parse::<u64>().map_err(StoreError::internal)?),
                _ => {
                    return Err(StoreError::internal(crate::error::message(
                        "rate counter update returned no count",
                    )))
                }
            },
            Err(StoreError::Conflict(_)) => None,
            Err(e) => return Err(e),
        };
        Ok(RateDecision::from_count(rule, now, count))
    }

    async fn login_failures(&self, key: &str) -> Result<Option<LoginFailures>, StoreError> {
        Ok(self
            .get::<super::items::FailuresItem>(keys::login_failures(key))
            .await?
            .map(LoginFailures::from))
    }

    async fn record_login_failure(&self, key: &str, now: i64) -> Result<LoginFailures, StoreError> {
        let item = key_of(keys::login_failures(key));
        let ttl = now + LOGIN_FAILURES_TTL_SECONDS;
        // A live record counts on; one past its TTL (not yet deleted) starts again from one.
        let counted = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item.clone()))
            .update_expression("ADD #c :one SET last_failed_at = :now, expires_at = :ttl")
            .condition_expression("attribute_not_exists(PK) OR expires_at > :now")
            .expression_attribute_names("#c", "count")
            .expression_attribute_values(":one", num(1))
            .expression_attribute_values(":now", num(now))
            .expression_attribute_values(":ttl", num(ttl))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(classify);
        let stored: super::items::FailuresItem = match counted {
            Ok(out) => from_item(out.attributes.unwrap_or_default())?,
            Err(StoreError::Conflict(_)) => {
                let fresh = super::items::FailuresItem {
                    count: 1,
                    last_failed_at: now,
                    expires_at: ttl,
                };
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(to_item(&keys::login_failures(key), &fresh)?))
                    .send()
                    .await
                    .map_err(classify)?;
                fresh
            }
            Err(e) => return Err(e),
        };
        Ok(LoginFailures::from(stored))
    }

    async fn clear_login_failures(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_of(keys::login_failures(key))))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }
}

#[async_trait]
impl UsageStore for DynamoStore {
    async fn track(&self, r: &TrackRequest<'_>) -> Result<Tracked, StoreError> {
        let counter = keys::usage(&r.user_id, r.feature, r.period.start);
        let idem = keys::usage_idempotency(&r.user_id, r.idempotency_key);
        let remember = self.tx_put(
            &idem,
            &IdempotencyRecord {
                feature: r.feature.to_owned(),
                quantity: r.quantity,
                created_at: r.now,
                expires_at: r.now + IDEMPOTENCY_TTL_SECONDS,
            },
            Some(("attribute_not_exists(PK)", Conflict::ItemExists)),
        )?;
        let mut values = vec![
            (":q", num(r.quantity)),
            (":f", text(r.feature)),
            (":ps", num(r.period.start)),
            (":ttl", num(r.period.end + USAGE_RETENTION_SECONDS)),
        ];
        let condition = match r.ceiling {
            Some(ceiling) if ceiling >= r.quantity => {
                values.push((":max", num(ceiling - r.quantity)));
                "attribute_not_exists(#u) OR #u <= :max"
            }
            // More than the ceiling in one track: refused without writing.
            Some(_) => {
                return Ok(Tracked::LimitReached {
                    used: self.used(&r.user_id, r.feature, r.period.start).await?,
                })
            }
            None => "attribute_not_exists(#u) OR attribute_exists(#u)",
        };
        let count = self.tx_update(
            counter,
            "ADD #u :q SET feature = :f, period_start = :ps, expires_at = :ttl",
            Condition::new(condition, values).named(vec![("#u", "used")]),
            Conflict::UsageLimit,
        )?;
        let mut items = vec![remember, count];
        if let Some(spend) = r.spend {
            items.extend(self.credit_items(spend, false)?);
        }
        let written = self.transact(items).await;
        let used = || self.used(&r.user_id, r.feature, r.period.start);
        match written {
            // TransactWriteItems returns no values: the count is read just after (under
            // concurrency it may already include other tracks).
            Ok(_) => Ok(Tracked::Counted {
                used: used().await?,
            }),
            Err(StoreError::Conflict(Conflict::UsageLimit)) => Ok(Tracked::LimitReached {
                used: used().await?,
            }),
            Err(StoreError::Conflict(Conflict::InsufficientCredits)) => {
                Ok(Tracked::InsufficientCredits {
                    used: used().await?,
                    balance: self.credit_balance(&r.user_id).await?,
                })
            }
            Err(StoreError::Conflict(Conflict::ItemExists)) => {
                match self.get::<IdempotencyRecord>(idem).await? {
                    Some(seen) if seen.feature == r.feature && seen.quantity == r.quantity => {
                        Ok(Tracked::Replayed {
                            used: used().await?,
                        })
                    }
                    _ => Err(StoreError::Conflict(Conflict::IdempotencyMismatch)),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn used(
        &self,
        user_id: &UserId,
        feature: &str,
        period_start: i64,
    ) -> Result<u64, StoreError> {
        Ok(self
            .get::<UsageCounter>(keys::usage(user_id, feature, period_start))
            .await?
            .map_or(0, |c| c.used))
    }
}

#[async_trait]
impl CreditStore for DynamoStore {
    async fn apply_credits(&self, write: &CreditWrite) -> Result<CreditApplied, StoreError> {
        let items = self.credit_items(write, true)?;
        let balance = || self.credit_balance(&write.entry.user_id);
        match self.transact(items).await {
            // TransactWriteItems returns no values: the balance is read just after.
            Ok(()) => Ok(CreditApplied::Applied {
                balance: balance().await?,
            }),
            Err(StoreError::Conflict(Conflict::ItemExists)) => Ok(CreditApplied::Duplicate {
                balance: balance().await?,
            }),
            Err(StoreError::Conflict(Conflict::InsufficientCredits)) => {
                Ok(CreditApplied::Insufficient {
                    balance: balance().await?,
                })
            }
            Err(e) => Err(e),
        }
    }

    async fn credit_balance(&self, user_id: &UserId) -> Result<i64, StoreError> {
        Ok(self
            .get::<CreditBalance>(keys::credit_balance(user_id))
            .await?
            .map_or(0, |b| b.balance))
    }

    async fn credit_history(
        &self,
        user_id: &UserId,
        before: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<CreditEntry>, Option<String>), StoreError> {
        let before = before.map(|cursor| format!("{}{cursor}", keys::CREDIT_PREFIX));
        let mut page: Vec<CreditEntry> = self
            .newest_below(
                keys::user_pk(user_id),
                keys::CREDIT_PREFIX,
                before,
                limit.saturating_add(1),
            )
            .await?;
        let next = if page.len() > limit {
            page.truncate(limit);
            page.last().map(keys::credit_cursor)
        } else {
            None
        };
        Ok((page, next))
    }

    async fn credit_cause(&self, cause: &str) -> Result<Option<CreditEntry>, StoreError> {
        self.get(keys::credit_cause(cause)).await
    }
}

#[async_trait]
impl Outbox for DynamoStore {
    async fn get_mail(&self, id: &str) -> Result<Option<OutboxMail>, StoreError> {
        self.get(keys::mail(id)).await
    }

    async fn claim_mail(&self, id: &str, now: i64, lease: i64) -> Result<MailClaim, StoreError> {
        let claimed = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(keys::mail(id))))
            .update_expression(
                "SET #s = :sending, lease_until = :until ADD attempts :one",
            )
            .condition_expression(
                "attribute_exists(PK) AND (#s = :pending OR (#s = :sending AND lease_until <= :now))",
            )
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":sending", attr(MailStatus::Sending)?)
            .expression_attribute_values(":pending", attr(MailStatus::Pending)?)
            .expression_attribute_values(":until", num(now + lease))
            .expression_attribute_values(":now", num(now))
            .expression_attribute_values(":one", num(1))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(classify);
        match claimed {
            Ok(out) => match out.attributes {
                Some(item) => Ok(MailClaim::Claimed(from_item(item)?)),
                None => Err(StoreError::internal(crate::error::message(
                    "claim returned no item",
                ))),
            },
            Err(StoreError::Conflict(_)) => Ok(match self.get_mail(id).await? {
                None => MailClaim::Done,
                Some(mail) => match mail.claim_decision(now) {
                    ClaimDecision::Done => MailClaim::Done,
                    ClaimDecision::Busy { until } => MailClaim::Busy { until },
                    // Released between our write and this read: someone else may be taking it.
                    ClaimDecision::Claim => MailClaim::Busy { until: now },
                },
            }),
            Err(e) => Err(e),
        }
    }

    async fn finish_mail(
        &self,
        id: &str,
        attempt: u32,
        outcome: &MailOutcome,
    ) -> Result<(), StoreError> {
        let mut update = "SET #s = :status, finished_at = :at".to_owned();
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(keys::mail(id))))
            .condition_expression("#s = :sending AND attempts = :attempt")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":status", attr(outcome.status)?)
            .expression_attribute_values(":sending", attr(MailStatus::Sending)?)
            .expression_attribute_values(":attempt", num(attempt))
            .expression_attribute_values(":at", num(outcome.at));
        if let Some(m) = &outcome.message_id {
            update.push_str(", message_id = :m");
            req = req.expression_attribute_values(":m", text(m.clone()));
        }
        if let Some(n) = &outcome.note {
            update.push_str(", last_error = :e");
            req = req.expression_attribute_values(":e", text(n.clone()));
        }
        update.push_str(" REMOVE lease_until");
        req.update_expression(update)
            .send()
            .await
            .map(|_| ())
            .map_err(classify_as(Conflict::MailChanged))
    }

    async fn release_mail(&self, id: &str, attempt: u32, error: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(keys::mail(id))))
            .update_expression("SET #s = :pending, last_error = :e REMOVE lease_until")
            .condition_expression("#s = :sending AND attempts = :attempt")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":pending", attr(MailStatus::Pending)?)
            .expression_attribute_values(":sending", attr(MailStatus::Sending)?)
            .expression_attribute_values(":attempt", num(attempt))
            .expression_attribute_values(":e", text(error))
            .send()
            .await
            .map(|_| ())
            .map_err(classify_as(Conflict::MailChanged))
    }

    async fn pending_mail(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        let mut found: Vec<OutboxMail> = self
            .scan_partitions(
                keys::MAIL_PREFIX,
                &[attr(MailStatus::Pending)?, attr(MailStatus::Sending)?],
            )
            .await?;
        found.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(found.into_iter().take(limit).map(|m| m.id).collect())
    }
}

#[async_trait]
impl OutboundStore for DynamoStore {
    async fn get_outbound(&self, id: &str) -> Result<Option<OutboundEvent>, StoreError> {
        self.get(keys::outbound(id)).await
    }

    async fn claim_outbound(
        &self,
        id: &str,
        now: i64,
        lease: i64,
    ) -> Result<OutboundClaim, StoreError> {
        let claimed = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(keys::outbound(id))))
            .update_expression("SET #s = :sending, lease_until = :until ADD attempts :one")
            .condition_expression(
                "attribute_exists(PK) AND ((#s = :pending AND next_attempt_at <= :now) OR (#s = :sending AND lease_until <= :now))",
            )
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":sending", attr(OutboundStatus::Sending)?)
            .expression_attribute_values(":pending", attr(OutboundStatus::Pending)?)
            .expression_attribute_values(":until", num(now + lease))
            .expression_attribute_values(":now", num(now))
            .expression_attribute_values(":one", num(1))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(classify);
        match claimed {
            Ok(out) => match out.attributes {
                Some(item) => Ok(OutboundClaim::Claimed(from_item(item)?)),
                None => Err(StoreError::internal(crate::error::message(
                    "claim returned no item",
                ))),
            },
            Err(StoreError::Conflict(_)) => Ok(match self.get_outbound(id).await? {
                None => OutboundClaim::Done,
                Some(event) => match event.decision(now) {
                    OutboundDecision::Done => OutboundClaim::Done,
                    OutboundDecision::Wait { until } => OutboundClaim::Wait { until },
                    // Changed between our write and this read: someone else may be taking it.
                    OutboundDecision::Claim => OutboundClaim::Wait { until: now },
                },
            }),
            Err(e) => Err(e),
        }
    }

    async fn finish_outbound(
        &self,
        id: &str,
        attempt: u32,
        outcome: &OutboundOutcome,
    ) -> Result<(), StoreError> {
        let mut update = "SET #s = :status, delivered_to = :to, next_attempt_at = :next".to_owned();
        let mut values = vec![
            (":status", attr(outcome.status)?),
            (":sending", attr(OutboundStatus::Sending)?),
            (":attempt", num(attempt)),
            (":to", attr(&outcome.delivered_to)?),
            (":next", num(outcome.next_attempt_at)),
        ];
        if outcome.status != OutboundStatus::Pending {
            update.push_str(", finished_at = :at");
            values.push((":at", num(outcome.at)));
        }
        if let Some(e) = &outcome.error {
            update.push_str(", last_error = :e");
            values.push((":e", text(e.clone())));
        }
        update.push_str(" REMOVE lease_until");
        let mut event = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(keys::outbound(id))))
            .update_expression(update)
            .condition_expression("#s = :sending AND attempts = :attempt")
            .expression_attribute_names("#s", "status");
        for (k, v) in values {
            event = event.expression_attribute_values(k, v);
        }
        let mut items = vec![TxItem {
            item: TransactWriteItem::builder()
                .update(built(event.build())?)
                .build(),
            conflict: Conflict::MailChanged,
        }];
        let old = keys::outbound_due(outcome.claimed_due, id);
        let moved_to = (outcome.status == OutboundStatus::Pending)
            .then(|| keys::outbound_due(outcome.next_attempt_at, id));
        if moved_to.as_ref() != Some(&old) {
            items.push(self.tx_delete(old, None, Conflict::MailChanged)?);
            if outcome.status == OutboundStatus::Pending {
                let stored = self.get_outbound(id).await?.map_or(
                    outcome.at + crate::domain::OUTBOUND_RETENTION_SECONDS,
                    |e| e.expires_at,
                );
                items.push(self.tx_put(
                    &keys::outbound_due(outcome.next_attempt_at, id),
                    &OutboundDue {
                        id: id.to_owned(),
                        due_at: outcome.next_attempt_at,
                        expires_at: stored,
                    },
                    None,
                )?);
            }
        }
        self.transact(items).await
    }

    async fn due_outbound(&self, now: i64, limit: usize) -> Result<Vec<String>, StoreError> {
        let mut ids = Vec::new();
        let mut start: Option<Item> = None;
        while ids.len() < limit {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk AND SK <= :until")
                .expression_attribute_values(":pk", text(keys::OUTBOUND_DUE_PK))
                .expression_attribute_values(":until", text(keys::outbound_due_until(now)))
                .consistent_read(true)
                .limit(i32::try_from(limit - ids.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(classify)?;
            for item in out.items.unwrap_or_default() {
                let due: OutboundDue = from_item(item)?;
                ids.push(due.id);
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        ids.truncate(limit);
        Ok(ids)
    }

    async fn list_outbound(
        &self,
        status: OutboundStatus,
        limit: usize,
    ) -> Result<Vec<OutboundEvent>, StoreError> {
        let mut found: Vec<OutboundEvent> = self
            .scan_partitions(keys::HOOK_PREFIX, &[attr(status)?])
            .await?;
        found.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        found.truncate(limit);
        Ok(found)
    }

    async fn replay_outbound(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let Some(event) = self.get_outbound(id).await? else {
            return Ok(false);
        };
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(keys::outbound(id))))
            .update_expression(
                "SET #s = :pending, attempts = :zero, next_attempt_at = :now REMOVE finished_at",
            )
            .condition_expression("#s = :dead")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":pending", attr(OutboundStatus::Pending)?)
            .expression_attribute_values(":dead", attr(OutboundStatus::Dead)?)
            .expression_attribute_values(":zero", num(0))
            .expression_attribute_values(":now", num(now));
        let items = vec![
            TxItem {
                item: TransactWriteItem::builder()
                    .update(built(update.build())?)
                    .build(),
                conflict: Conflict::MailChanged,
            },
            self.due_item(now, &event)?,
        ];
        match self.transact(items).await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
