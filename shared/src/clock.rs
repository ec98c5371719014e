//! The clock boundary: every rule takes "now" from a [`Clock`] so tests can move time.

use std::sync::atomic::{AtomicI64, Ordering};

/// A source of the current time, in Unix seconds (UTC).
pub trait Clock: Send + Sync {
    /// Seconds since the Unix epoch, UTC.
    fn now(&self) -> i64;

    /// Microseconds since the Unix epoch, UTC (orders provider fetches within a second).
    fn now_micros(&self) -> i64 {
        self.now().saturating_mul(1_000_000)
    }
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    fn now_micros(&self) -> i64 {
        (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000) as i64
    }
}

/// A clock that only moves when told to: for tests of expiry and grace windows. Its microsecond
/// reading also ticks by one on every call, so successive fetches stay ordered.
#[derive(Debug)]
pub struct ManualClock(AtomicI64, AtomicI64);

impl ManualClock {
    /// A clock standing at `now` (Unix seconds).
    pub fn new(now: i64) -> Self {
        Self(AtomicI64::new(now), AtomicI64::new(0))
    }

    /// Moves the clock forward by `seconds`.
    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }

    fn now_micros(&self) -> i64 {
        // Within one second, 1,000,000 distinct readings before it would spill into the next.
        let tick = self.1.fetch_add(1, Ordering::SeqCst).rem_euclid(1_000_000);
        self.now().saturating_mul(1_000_000) + tick
    }
}

/// Formats Unix seconds as an RFC 3339 UTC timestamp (`2026-11-21T08:00:00Z`).
///
/// Out-of-range inputs (beyond year 9999) fall back to the epoch rather than panicking.
pub fn rfc3339(unix_seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix_seconds)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}
