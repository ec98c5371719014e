//! The queue boundary between webhook ingest and the processor: [`EventQueue`], with SQS FIFO
//! ([`sqs::SqsQueue`], feature `aws`) and an in-process queue for the dev server
//! ([`InProcessQueue`]). Messages carry ids, not payloads: the ledger holds the body.

#[cfg(feature = "aws")]
pub mod sqs;

use crate::domain::{EventId, Provider};
use crate::error::BoxError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// The pointer message `{provider, event_id}`: the queue carries ids, the ledger the body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMessage {
    /// Provider.
    pub provider: Provider,
    /// The ledger event id.
    pub event_id: EventId,
}

/// Why a message could not be sent (or, replaying, received or deleted). Always retryable from
/// the caller's point of view: ingest answers 5xx and the provider sends the event again.
#[derive(Debug, thiserror::Error)]
#[error("queue unavailable")]
pub struct QueueError(#[source] pub BoxError);

/// A FIFO queue of event pointers: ordered per `group_id`, deduplicated by `dedup_id`.
#[async_trait]
pub trait EventQueue: Send + Sync {
    /// Enqueues `message` in `group_id` (the provider subscription or customer), deduplicated by
    /// `dedup_id` (the event id).
    ///
    /// # Errors
    /// [`QueueError`] if the queue did not accept it; the caller answers 5xx so the provider retries.
    async fn send(
        &self,
        message: &EventMessage,
        group_id: &str,
        dedup_id: &str,
    ) -> Result<(), QueueError>;
}

/// The dev server's queue: an unbounded channel drained by a worker task in the same process.
#[derive(Clone, Debug)]
pub struct InProcessQueue {
    tx: tokio::sync::mpsc::UnboundedSender<EventMessage>,
}

impl InProcessQueue {
    /// A queue and the receiver its worker drains.
    pub fn new() -> (Self, tokio::sync::mpsc::UnboundedReceiver<EventMessage>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (Self { tx }, rx)
    }
}

#[async_trait]
impl EventQueue for InProcessQueue {
    async fn send(
        &self,
        message: &EventMessage,
        _group_id: &str,
        _dedup_id: &str,
    ) -> Result<(), QueueError> {
        self.tx
            .send(message.clone())
            .map_err(|_| QueueError(crate::error::message("the in-process worker has stopped")))
    }
}
