//! Usage metering (docs/architecture.md §5d): metered features of a plan, the period a count
//! belongs to, and the answer to a track. Pure; times are Unix seconds (UTC).

use super::catalog::Interval;
use serde::{Deserialize, Serialize};

/// How much of a metered feature a plan allows per period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum UsageLimit {
    /// At most this many units per period.
    Units(u64),
    /// No limit (`"unlimited"` in the catalog).
    Unlimited(Unlimited),
}

/// The word `unlimited`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unlimited {
    /// `"unlimited"`.
    Unlimited,
}

impl UsageLimit {
    /// The number of units, `None` when unlimited.
    pub fn units(self) -> Option<u64> {
        match self {
            Self::Units(n) => Some(n),
            Self::Unlimited(_) => None,
        }
    }
}

/// A metered feature of a plan (`[plans.metered]` in the catalog:
/// `exports = { limit = 50 }`, `{ limit = "unlimited" }`, `{ limit = 1000, overage = true }`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metered {
    /// Units per period.
    pub limit: UsageLimit,
    /// Whether tracks past the limit are still counted (billed as overage elsewhere) rather than
    /// refused.
    #[serde(default)]
    pub overage: bool,
    /// Credits one unit costs (0: the feature costs no credits).
    #[serde(default)]
    pub credits: u64,
    /// When units cost credits: beyond the limit (default) or always.
    #[serde(default)]
    pub spend: super::credits::CreditSpend,
}

impl Metered {
    /// The most the count may reach with a track (`None`: no ceiling — unlimited, or overage).
    pub fn ceiling(&self) -> Option<u64> {
        if self.overage {
            None
        } else {
            self.limit.units()
        }
    }
}

/// A usage period, `[start, end)` in Unix seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    /// First second of the period.
    pub start: i64,
    /// First second after it (when the count resets).
    pub end: i64,
}

fn datetime(unix: i64) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp(unix).ok()
}

/// `t` moved by `months` calendar months, the day clamped to the target month's length
/// (31 January + 1 month = 28 or 29 February), the time of day kept.
fn add_months(t: time::OffsetDateTime, months: i32) -> Option<time::OffsetDateTime> {
    let total = t.year() * 12 + (i32::from(u8::from(t.month())) - 1) + months;
    let (year, month0) = (total.div_euclid(12), total.rem_euclid(12));
    let month = time::Month::try_from(u8::try_from(month0 + 1).ok()?).ok()?;
    let day = t.day().min(time::util::days_in_month(month, year));
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    Some(t.replace_date(date))
}

/// The calendar month (UTC) holding `now`: the period of everyone without a paid plan.
pub fn calendar_month(now: i64) -> Period {
    let fallback = Period {
        start: now,
        end: now + 1,
    };
    let Some(t) = datetime(now) else {
        return fallback;
    };
    let Ok(first) = time::Date::from_calendar_date(t.year(), t.month(), 1) else {
        return fallback;
    };
    let start = first.midnight().assume_utc();
    match add_months(start, 1) {
        Some(next) => Period {
            start: start.unix_timestamp(),
            end: next.unix_timestamp(),
        },
        None => fallback,
    }
}

/// The period a count at `now` belongs to: the paid subscription's current billing period when
/// there is one (`paid` = the period's end and the price's interval; the start is one interval
/// before the end), else the calendar month. A billing period that does not contain `now` (a
/// renewal not yet seen) falls back to the calendar month.
pub fn usage_period(paid: Option<(i64, Interval)>, now: i64) -> Period {
    if let Some((end, interval)) = paid {
        let months = match interval {
            Interval::Month => -1,
            Interval::Year => -12,
        };
        if let Some(start) = datetime(end).and_then(|e| add_months(e, months)) {
            let start = start.unix_timestamp();
            if start <= now && now < end {
                return Period { start, end };
            }
        }
    }
    calendar_month(now)
}

/// What a feature's count stands at for a user in a period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsageState {
    /// Units counted this period.
    pub used: u64,
    /// The plan's limit (`None`: unlimited).
    pub limit: Option<u64>,
    /// When the count resets, Unix seconds.
    pub resets_at: i64,
}

impl UsageState {
    /// Units left (`None`: unlimited); 0 once at or past the limit.
    pub fn remaining(&self) -> Option<u64> {
        self.limit.map(|l| l.saturating_sub(self.used))
    }
}

/// How long an idempotency key is remembered, seconds (24 h, as Stripe keeps its keys).
pub const IDEMPOTENCY_TTL_SECONDS: i64 = 86_400;

/// How long a period's counter is kept after the period ends, seconds (90 days, for support and
/// reconciliation).
pub const USAGE_RETENTION_SECONDS: i64 = 90 * 86_400;

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(y: i32, m: u8, d: u8, h: u8) -> i64 {
        time::Date::from_calendar_date(y, time::Month::try_from(m).expect("month"), d)
            .expect("date")
            .with_hms(h, 0, 0)
            .expect("time")
            .assume_utc()
            .unix_timestamp()
    }

    #[test]
    fn the_free_period_is_the_calendar_month() {
        let p = calendar_month(unix(2026, 11, 30, 20));
        assert_eq!(
            (p.start, p.end),
            (unix(2026, 11, 1, 0), unix(2026, 12, 1, 0))
        );
        let dec = calendar_month(unix(2026, 12, 31, 23));
        assert_eq!(dec.end, unix(2027, 1, 1, 0), "the year rolls over");
    }

    #[test]
    fn a_paid_period_runs_one_interval_back_from_its_end() {
        let end = unix(2026, 12, 15, 9);
        let p = usage_period(Some((end, Interval::Month)), unix(2026, 11, 30, 0));
        assert_eq!((p.start, p.end), (unix(2026, 11, 15, 9), end));
        let yearly = usage_period(Some((end, Interval::Year)), unix(2026, 11, 30, 0));
        assert_eq!(yearly.start, unix(2025, 12, 15, 9));
        // 31 March back one month is 28 February.
        let march = usage_period(
            Some((unix(2027, 3, 31, 0), Interval::Month)),
            unix(2027, 3, 1, 0),
        );
        assert_eq!(march.start, unix(2027, 2, 28, 0));
        // A period that has ended (renewal not seen yet) counts in the calendar month.
        let late = usage_period(Some((end, Interval::Month)), end + 10);
        assert_eq!(late, calendar_month(end + 10));
    }

    #[test]
    fn limits_parse_as_numbers_or_unlimited_and_overage_lifts_the_ceiling() {
        let m: Metered = toml::from_str("limit = 50").expect("units");
        assert_eq!((m.limit.units(), m.ceiling()), (Some(50), Some(50)));
        let u: Metered = toml::from_str("limit = \"unlimited\"").expect("unlimited");
        assert_eq!(u.ceiling(), None);
        let o: Metered = toml::from_str("limit = 10\noverage = true").expect("overage");
        assert_eq!((o.limit.units(), o.ceiling()), (Some(10), None));
        assert!(toml::from_str::<Metered>("limit = \"lots\"").is_err());
        let s = UsageState {
            used: 7,
            limit: Some(5),
            resets_at: 0,
        };
        assert_eq!(s.remaining(), Some(0));
    }
}
