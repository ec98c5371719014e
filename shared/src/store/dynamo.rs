//! The DynamoDB store: the single table of docs/architecture.md §4 through `aws-sdk-dynamodb`.
//!
//! Items are the domain records (and [`super::items`]) serialised with `serde_dynamo`, plus
//! `PK`/`SK`. Uniqueness (the email claim) and rotation are conditional writes; signup and each
//! processed webhook event are one `TransactWriteItems`. Reads are strongly consistent.
//! [`table_definition`] is the one place the table's shape is written in code.

use super::items::{CustomerClaim, EmailClaim, UserCustomer};
use super::keys::{self, Key};
use super::{BillingStore, Conflict, EventLedger, EventMark, SessionStore, StoreError, UserStore};
use crate::domain::{
    CustomerId, EventEffects, EventId, EventStatus, Payment, Provider, RevokeReason, Session,
    SessionId, Subscription, SubscriptionWrite, TokenHash, User, UserId, WebhookEvent,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, Put,
    ScalarAttributeType, TimeToLiveSpecification, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

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
    serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value(status).map_err(StoreError::internal)
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

    async fn put_subscription(&self, write: &SubscriptionWrite) -> Result<(), StoreError> {
        let put = self.put_version_checked(write)?;
        let mut req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(put.item().clone()));
        if let Some(c) = put.condition_expression() {
            req = req
                .condition_expression(c)
                .set_expression_attribute_values(put.expression_attribute_values().cloned());
        }
        req.send()
            .await
            .map(|_| ())
            .map_err(classify_as(Conflict::StaleVersion))
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
        let mut items = Vec::with_capacity(3);
        let mark = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(keys::event(provider, event_id))))
            .update_expression("SET #s = :processed, processed_at = :at REMOVE last_error")
            .condition_expression("attribute_exists(PK) AND #s <> :processed")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":processed", status_value(EventStatus::Processed)?)
            .expression_attribute_values(":at", AttributeValue::N(at.to_string()));
        items.push(
            TransactWriteItem::builder()
                .update(built(mark.build())?)
                .build(),
        );
        if let Some(write) = &effects.subscription {
            items.push(
                TransactWriteItem::builder()
                    .put(self.put_version_checked(write)?)
                    .build(),
            );
        }
        if let Some(p) = &effects.payment {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(to_item(
                    &keys::payment(&p.user_id, p.paid_at, p.provider, &p.payment_id),
                    p,
                )?));
            items.push(
                TransactWriteItem::builder()
                    .put(built(put.build())?)
                    .build(),
            );
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(classify)
        {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict(_)) => match self.get_event(provider, event_id).await? {
                None => Err(StoreError::NotFound),
                Some(e) if e.status == EventStatus::Processed => {
                    Err(StoreError::Conflict(Conflict::AlreadyProcessed))
                }
                Some(_) => Err(StoreError::Conflict(Conflict::StaleVersion)),
            },
            Err(e) => Err(e),
        }
    }
}
