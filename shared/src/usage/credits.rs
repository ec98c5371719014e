//! Credits (docs/architecture.md §5e): the balance, its ledger, and the plan's monthly allowance.
//! Purchases and refunds arrive through the webhook processor (`crate::webhooks`), which writes
//! them with the event; spends are written by a track (`super::Usage::track`) in the same atomic
//! write as the count. Every change is an entry named by a unique cause, so each takes effect
//! once; an allowance and an operator's adjustment also write their `credits.changed` outbound
//! event with it (`crate::billing::notices::credits_changed`).

use super::Standing;
use crate::billing::notices::credits_changed;
use crate::domain::Notices;
use crate::domain::{
    cause_allowance, AuditAction, AuditRecord, CreditEntry, CreditKind, RequestOrigin, UserId,
};
use crate::store::{CreditApplied, CreditStore, CreditWrite, StoreError};
use std::sync::Arc;

/// Most ledger entries on one page.
pub const HISTORY_PAGE_MAX: usize = 100;

/// A page of the ledger with the balance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreditsPage {
    /// The balance now, credits.
    pub balance: i64,
    /// Newest first.
    pub entries: Vec<CreditEntry>,
    /// The cursor of the next page (`None` on the last).
    pub next_before: Option<String>,
}

/// The credit use cases. Cheap to clone.
#[derive(Clone)]
pub struct Credits {
    store: Arc<dyn CreditStore>,
    audit_retention: i64,
}

impl std::fmt::Debug for Credits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credits").finish_non_exhaustive()
    }
}

/// The audit record of a credit entry: `credits_granted` (a purchase, an allowance, an
/// operator's grant), `credits_spent` (a spend, an operator's removal) or `credits_refunded`,
/// with the amount and cause as detail (secret-free) and the acting operator.
pub fn audit_of(entry: &CreditEntry, retention: i64) -> AuditRecord {
    let action = match entry.kind {
        CreditKind::Spend => AuditAction::CreditsSpent,
        CreditKind::Refund => AuditAction::CreditsRefunded,
        // An operator's removal takes credits as a spend does.
        CreditKind::Adjustment if entry.amount < 0 => AuditAction::CreditsSpent,
        CreditKind::Purchase | CreditKind::Allowance | CreditKind::Adjustment => {
            AuditAction::CreditsGranted
        }
    };
    let mut record = AuditRecord::new(
        entry.user_id,
        action,
        &RequestOrigin::default(),
        entry.at,
        retention,
    )
    .with_detail(format!("{:+} credits ({})", entry.amount, entry.cause));
    record.actor = entry.actor;
    record
}

impl Credits {
    /// The use cases over `store`; audit records are kept `audit_retention` seconds.
    pub fn new(store: Arc<dyn CreditStore>, audit_retention: i64) -> Self {
        Self {
            store,
            audit_retention,
        }
    }

    /// The write of `entry` with its audit record (and no outbound event: a track's spend).
    pub fn write(&self, entry: CreditEntry, require_funds: bool) -> CreditWrite {
        let audit = audit_of(&entry, self.audit_retention);
        CreditWrite {
            entry,
            require_funds,
            audit,
            notices: Notices::default(),
        }
    }

    /// [`Credits::write`] with the entry's `credits.changed` event for the customer's app.
    fn noticed(&self, entry: CreditEntry, require_funds: bool) -> CreditWrite {
        let event = credits_changed(&entry, entry.at);
        let mut write = self.write(entry, require_funds);
        write.notices.outbound.push(event);
        write
    }

    /// Grants the plan's allowance for the current period once (cause
    /// `allowance:<user>:<period start>`): a read when it was granted already, else one write.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn ensure_allowance(
        &self,
        user_id: &UserId,
        standing: &Standing,
        monthly: u64,
    ) -> Result<(), StoreError> {
        let Ok(amount) = i64::try_from(monthly) else {
            return Ok(());
        };
        if amount == 0 {
            return Ok(());
        }
        let cause = cause_allowance(user_id, standing.period.start);
        if self.store.credit_cause(&cause).await?.is_some() {
            return Ok(());
        }
        let mut entry =
            CreditEntry::new(*user_id, cause, CreditKind::Allowance, amount, standing.now);
        entry.note = Some(format!("{} plan allowance", standing.access.plan));
        self.store
            .apply_credits(&self.noticed(entry, false))
            .await?;
        Ok(())
    }

    /// The balance and a page of the ledger (newest first; `limit` 1–100, `before` a
    /// `next_before` of an earlier page).
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn page(
        &self,
        user_id: &UserId,
        before: Option<&str>,
        limit: usize,
    ) -> Result<CreditsPage, StoreError> {
        let limit = limit.clamp(1, HISTORY_PAGE_MAX);
        let (entries, next_before) = self.store.credit_history(user_id, before, limit).await?;
        let balance = self.store.credit_balance(user_id).await?;
        Ok(CreditsPage {
            balance,
            entries,
            next_before,
        })
    }

    /// The balance, credits.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn balance(&self, user_id: &UserId) -> Result<i64, StoreError> {
        self.store.credit_balance(user_id).await
    }

    /// Applies an entry once per cause (an operator's grant or removal; `require_funds` refuses
    /// a removal the balance does not cover).
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn apply(
        &self,
        entry: CreditEntry,
        require_funds: bool,
    ) -> Result<CreditApplied, StoreError> {
        self.store
            .apply_credits(&self.noticed(entry, require_funds))
            .await
    }
}
