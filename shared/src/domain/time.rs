//! Time formatting. Every time in Tollgate is UTC; records hold Unix seconds and the API shows
//! RFC 3339.

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

/// Parses an RFC 3339 timestamp into Unix seconds; `None` if it does not parse.
pub fn unix_of_rfc3339(text: &str) -> Option<i64> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_and_never_panics() {
        assert_eq!(rfc3339(1_795_248_000), "2026-11-21T08:00:00Z");
        assert_eq!(unix_of_rfc3339("2026-11-21T08:00:00Z"), Some(1_795_248_000));
        assert_eq!(rfc3339(i64::MAX), "1970-01-01T00:00:00Z");
        assert_eq!(unix_of_rfc3339("yesterday"), None);
    }
}
