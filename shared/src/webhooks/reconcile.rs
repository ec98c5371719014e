//! The reconciler (docs/architecture.md §7.3): repairs what webhooks missed. For each configured
//! provider it lists what changed since its checkpoint (minus an overlap) — Stripe's events of the
//! handled types, every page; Whop's memberships updated since — and hands each to the *same*
//! path a verified webhook takes ([`Ingest::accept`]: the ledger, then the queue, then the
//! processor). The ledger makes that idempotent: an event already processed is skipped, one
//! recorded but never processed is enqueued again, one never delivered is recorded and enqueued.
//!
//! The checkpoint moves to the run's start only after every page was handed over: Stripe lists
//! newest first, so a run stopped part-way proves nothing about older events, and the next run
//! starts from the old checkpoint again (listing twice costs reads, never a double effect).

use super::ingest::{Ingest, IngestError, IngestOutcome};
use crate::clock::Clock;
use crate::domain::{EventError, Provider};
use crate::error::Chain;
use crate::payments::{read_envelope, ProviderError, Providers};
use crate::store::{EventLedger, StoreError};
use std::sync::Arc;

/// How far before the checkpoint a run starts listing, seconds (1 h): events are listed by
/// creation time, and one created just before the last run's start may not have been listable yet.
pub const OVERLAP_SECONDS: i64 = 3_600;

/// Where the first run starts, seconds before now (3 days: Stripe retries a failed delivery for
/// up to three days, docs.stripe.com/webhooks#retries — older events were either delivered or
/// are past repair by webhook anyway).
pub const FIRST_LOOKBACK_SECONDS: i64 = 3 * 86_400;

/// Most pages one run reads per provider (100 events a page): a guard against a provider that
/// never ends its list.
pub const MAX_PAGES: usize = 1_000;

/// What one run did for one provider.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// The provider.
    pub provider: Option<Provider>,
    /// Listed from this time, Unix seconds.
    pub since: i64,
    /// Pages read.
    pub pages: usize,
    /// Events listed.
    pub listed: usize,
    /// Events not in the ledger before: recorded and enqueued (missed webhooks).
    pub recorded: usize,
    /// Events in the ledger but never processed: enqueued again.
    pub requeued: usize,
    /// Events processed (or ignored) already: nothing to do.
    pub already_done: usize,
    /// Listed bodies that are not events of the provider (skipped, logged).
    pub unreadable: usize,
    /// The checkpoint after the run, Unix seconds.
    pub checkpoint: i64,
}

impl ReconcileReport {
    /// Events this run repaired (recorded or enqueued again).
    pub fn repaired(&self) -> usize {
        self.recorded + self.requeued
    }
}

/// A run failed part-way; the checkpoint did not move, so the next run covers the same span.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Listing failed at the provider.
    #[error("listing {provider}'s events failed")]
    Provider {
        /// The provider.
        provider: Provider,
        /// Why.
        #[source]
        source: ProviderError,
    },
    /// The ledger or the checkpoint could not be read or written.
    #[error("the ledger failed")]
    Store(#[from] StoreError),
    /// An event could not be stored or enqueued.
    #[error("handing an event over failed")]
    Ingest(#[from] IngestError),
}

/// The reconciler use case.
pub struct Reconciler {
    ingest: Ingest,
    ledger: Arc<dyn EventLedger>,
    providers: Providers,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler")
            .field("providers", &self.providers)
            .finish_non_exhaustive()
    }
}

impl Reconciler {
    /// Wires the reconciler: `ingest` hands events over (its webhook secrets are not used),
    /// `ledger` keeps the checkpoints, `providers` are listed.
    pub fn new(
        ingest: Ingest,
        ledger: Arc<dyn EventLedger>,
        providers: Providers,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            ingest,
            ledger,
            providers,
            clock,
        }
    }

    /// Reconciles every configured provider, each on its own (one failing does not stop the
    /// others). `since` (Unix seconds) overrides the checkpoints: list from then, and move no
    /// checkpoint back.
    pub async fn run(&self, since: Option<i64>) -> Vec<Result<ReconcileReport, ReconcileError>> {
        let mut reports = Vec::new();
        for provider in Provider::ALL {
            if self.providers.get(provider).is_some() {
                reports.push(self.run_provider(provider, since).await);
            }
        }
        reports
    }

    /// Reconciles one provider.
    ///
    /// # Errors
    /// [`ReconcileError`]; the checkpoint then stays where it was.
    pub async fn run_provider(
        &self,
        provider: Provider,
        since: Option<i64>,
    ) -> Result<ReconcileReport, ReconcileError> {
        let client = self
            .providers
            .get(provider)
            .ok_or(ReconcileError::Provider {
                provider,
                source: ProviderError::NotFound,
            })?;
        let started = self.clock.now();
        let since = match since {
            Some(s) => s,
            None => self
                .ledger
                .reconcile_checkpoint(provider)
                .await?
                .map_or(started - FIRST_LOOKBACK_SECONDS, |c| c - OVERLAP_SECONDS),
        };
        let mut report = ReconcileReport {
            provider: Some(provider),
            since,
            ..ReconcileReport::default()
        };
        let mut cursor: Option<String> = None;
        loop {
            let page = client
                .list_events(since, cursor.as_deref())
                .await
                .map_err(|source| ReconcileError::Provider { provider, source })?;
            report.pages += 1;
            for body in &page.events {
                report.listed += 1;
                let envelope = match read_envelope(provider, body.as_bytes()) {
                    Ok(e) => e,
                    Err(e) => {
                        report.unreadable += 1;
                        tracing::warn!(%provider, error = %Chain(&e as &EventError), "a listed event is unreadable; skipped");
                        continue;
                    }
                };
                let known = self
                    .ledger
                    .get_event(provider, &envelope.event_id)
                    .await?
                    .is_some();
                match self.ingest.accept(provider, envelope, body).await? {
                    IngestOutcome::Duplicate => report.already_done += 1,
                    IngestOutcome::Accepted if known => report.requeued += 1,
                    IngestOutcome::Accepted => report.recorded += 1,
                }
            }
            cursor = page.next;
            if cursor.is_none() || report.pages >= MAX_PAGES {
                break;
            }
        }
        self.ledger
            .set_reconcile_checkpoint(provider, started)
            .await?;
        report.checkpoint = started;
        tracing::info!(
            %provider,
            since,
            pages = report.pages,
            listed = report.listed,
            recorded = report.recorded,
            requeued = report.requeued,
            already_done = report.already_done,
            unreadable = report.unreadable,
            repaired = report.repaired(),
            "reconciled"
        );
        Ok(report)
    }
}
