//! `webhook-processor`: the SQS FIFO consumer of webhook pointers (docs/architecture.md §7.2). The event
//! source mapping reports partial batch failures (`ReportBatchItemFailures`): the handler returns
//! the ids of failed records, and of every later record of the same message group. The work is
//! [`tollgate::webhooks::process::Processor`]; this crate only adapts the Lambda event.
