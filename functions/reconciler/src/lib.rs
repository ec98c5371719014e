//! `reconciler`: repairs missed webhooks on an EventBridge schedule (docs/architecture.md §7.3).
//! Each run lists what each configured provider changed since its checkpoint (minus an
//! overlap) and hands anything the ledger lacks, or never processed, to the same queue and
//! processor a webhook goes through; the checkpoint moves only after every page was handed
//! over. The work is [`tollgate::webhooks::Reconciler`]; this crate only adapts the Lambda
//! event (`{since?}` overrides the checkpoint) and answers the reports.
