//! SQS FIFO implementation of [`EventQueue`]: `MessageGroupId` = provider subscription or
//! customer (ordering per subscription), `MessageDeduplicationId` = event id (SQS drops a repeat
//! within its 5-minute deduplication interval).

use super::{EventMessage, EventQueue, QueueError};
use async_trait::async_trait;
use aws_sdk_sqs::Client;

/// SQS FIFO queue sender.
#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
}

impl SqsQueue {
    /// A sender to `queue_url` (a `.fifo` queue) using `client` (built once per cold start).
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

/// SQS limits group and deduplication ids to 128 characters of `[A-Za-z0-9!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~]`;
/// longer or other ids are replaced by their SHA-256 (hex, 64 characters).
pub fn sqs_id(raw: &str) -> String {
    let ok = !raw.is_empty() && raw.len() <= 128 && raw.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        raw.to_owned()
    } else {
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, raw.as_bytes())
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[async_trait]
impl EventQueue for SqsQueue {
    async fn send(
        &self,
        message: &EventMessage,
        group_id: &str,
        dedup_id: &str,
    ) -> Result<(), QueueError> {
        let body = serde_json::to_string(message).map_err(|e| QueueError(Box::new(e)))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .message_group_id(sqs_id(group_id))
            .message_deduplication_id(sqs_id(&format!(
                "{}:{}",
                message.provider.as_str(),
                dedup_id
            )))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| QueueError(Box::new(e)))
    }
}

/// Moves up to `max` messages from the dead-letter queue `dlq_url` back to `queue_url`, keeping
/// each message's group and body and giving it a fresh deduplication id (the original would be
/// dropped within SQS's 5-minute deduplication interval). A message is deleted from the DLQ only
/// after it was sent again. Returns how many were moved.
///
/// # Errors
/// [`QueueError`] on the first SQS failure (messages moved until then stay moved).
pub async fn replay_dead_letters(
    client: &Client,
    dlq_url: &str,
    queue_url: &str,
    max: usize,
) -> Result<usize, QueueError> {
    use aws_sdk_sqs::types::MessageSystemAttributeName;
    let mut moved = 0;
    while moved < max {
        let out = client
            .receive_message()
            .queue_url(dlq_url)
            .max_number_of_messages(10.min((max - moved) as i32))
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .visibility_timeout(30)
            .wait_time_seconds(0)
            .send()
            .await
            .map_err(|e| QueueError(Box::new(e)))?;
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for m in messages {
            let group = m
                .attributes
                .as_ref()
                .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                .cloned()
                .unwrap_or_else(|| "replay".to_owned());
            let id = m.message_id.clone().unwrap_or_default();
            client
                .send_message()
                .queue_url(queue_url)
                .message_body(m.body.clone().unwrap_or_default())
                .message_group_id(sqs_id(&group))
                .message_deduplication_id(sqs_id(&format!("replay:{id}")))
                .send()
                .await
                .map_err(|e| QueueError(Box::new(e)))?;
            if let Some(handle) = m.receipt_handle {
                client
                    .delete_message()
                    .queue_url(dlq_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .map_err(|e| QueueError(Box::new(e)))?;
            }
            moved += 1;
        }
    }
    Ok(moved)
}
