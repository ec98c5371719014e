//! `mailer`: drains the mail outbox. Triggered by the table's DynamoDB stream (keys only,
//! filtered to `INSERT`s of `MAIL#…` items): each new outbox item is claimed, its link or code
//! minted, rendered and sent through Amazon SES v2, then marked sent
//! (`tollgate::mail::Dispatcher`). A record that cannot be delivered yet is reported as the
//! partial batch failure, so the stream retries from it; after the event source mapping's
//! retries it goes to the mail dead-letter queue, and `tollgate-admin mail drain` sends what is
//! left.
//!
//! No route: this function is not behind API Gateway. It reads no signing keys and no provider
//! or webhook secrets; its role may read and update the table, read the stream and send from
//! the configured SES identity only (`template.yaml`).

use tollgate::{KeyAccess, Needs};

/// What this function builds at start-up (`tollgate::state::mailer_from_env`): the table and
/// SES — no signing keys, no provider or webhook secrets.
pub const NEEDS: Needs = Needs {
    keys: KeyAccess::None,
    accounts: false,
    billing: false,
    ingest: false,
    mail: true,
    oauth: false,
    outbound: true,
};
