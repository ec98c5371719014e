//! The webhook pipeline (DESIGN §7): signature verification, the event ledger, ingest and the
//! processor.

pub mod events;
pub mod ingest;
pub mod process;
pub mod signature;
