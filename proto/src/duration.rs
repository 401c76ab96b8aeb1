//! How durations read, the same at both ends: in the agent's messages (a
//! dump that waits on a worker "inside one poll for at least 4.8s") and in
//! the CLI's tables and dumps (`850ms`, `3.2s`, `5s`, `42s`, `5m12s`,
//! `2h3m`, `3d4h`).
//!
//! Two significant units at most, so columns stay narrow and a glance gives
//! the order of magnitude. Values are truncated, never rounded up, so a task
//! parked 59.99s reads `59s`, not `60s` or `1m0s`.

use std::time::Duration;

const MS: u64 = 1_000_000;
const SEC: u64 = 1_000 * MS;
const MIN: u64 = 60 * SEC;
const HOUR: u64 = 60 * MIN;
const DAY: u64 = 24 * HOUR;

/// Formats a number of nanoseconds.
pub fn format_ns(ns: u64) -> String {
    if ns < SEC {
        format!("{}ms", ns / MS)
    } else if ns < 10 * SEC && (ns % SEC) / (100 * MS) != 0 {
        format!("{}.{}s", ns / SEC, (ns % SEC) / (100 * MS))
    } else if ns < MIN {
        format!("{}s", ns / SEC)
    } else if ns < HOUR {
        format!("{}m{}s", ns / MIN, (ns % MIN) / SEC)
    } else if ns < DAY {
        format!("{}h{}m", ns / HOUR, (ns % HOUR) / MIN)
    } else {
        format!("{}d{}h", ns / DAY, (ns % DAY) / HOUR)
    }
}

/// Formats a [`Duration`] (saturating at `u64::MAX` nanoseconds).
pub fn format(d: Duration) -> String {
    format_ns(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples() {
        assert_eq!(format_ns(0), "0ms");
        assert_eq!(format_ns(850 * MS + 999), "850ms");
        assert_eq!(format_ns(SEC), "1s");
        assert_eq!(format_ns(SEC + 99 * MS), "1s");
        assert_eq!(format_ns(3 * SEC + 250 * MS), "3.2s");
        assert_eq!(format_ns(2 * SEC + 100 * MS), "2.1s");
        assert_eq!(format_ns(10 * SEC), "10s");
        assert_eq!(format_ns(59 * SEC + 999 * MS), "59s");
        assert_eq!(format_ns(62 * SEC), "1m2s");
        assert_eq!(format_ns(5 * MIN + 12 * SEC), "5m12s");
        assert_eq!(format_ns(2 * HOUR + 3 * MIN + 59 * SEC), "2h3m");
        assert_eq!(format_ns(3 * DAY + 4 * HOUR), "3d4h");
        assert_eq!(format(Duration::from_secs(5)), "5s");
        assert_eq!(format(Duration::MAX), format_ns(u64::MAX));
    }
}
