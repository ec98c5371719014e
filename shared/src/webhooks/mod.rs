//! The webhook pipeline's use cases (docs/architecture.md, "Webhook pipeline"): [`ingest`]
//! (verify, store in the ledger, enqueue a pointer, only then acknowledge), [`process`] (load,
//! normalise, refetch, apply once), [`reconcile`] (list what the provider changed and hand
//! anything missed to the same path) and [`outbound`] (deliver the events Tollgate sends to the
//! customer's app, signed, with retries and a dead-letter record). Provider specifics — signature schemes and event formats —
//! are `crate::payments`'.

pub mod ingest;
pub mod outbound;
pub mod process;
pub mod reconcile;

pub use ingest::{Ingest, IngestError, IngestOutcome, MAX_WEBHOOK_BYTES};
pub use process::{BatchItem, ProcessError, ProcessOutcome, Processor, ProcessorStores};
pub use reconcile::{ReconcileError, ReconcileReport, Reconciler};
