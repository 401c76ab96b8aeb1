//! Durations in and out: compact ones for tables and dumps (`850ms`, `3.2s`,
//! `5s`, `42s`, `5m12s`, `2h3m`, `3d4h`), and the parsers of the options
//! that take one.
//!
//! Two significant units at most, so columns stay narrow and a glance gives
//! the order of magnitude. Values are truncated, never rounded up, so a task
//! parked 59.99s reads `59s`, not `60s` or `1m0s`.
//!
//! The parsers bound what they accept, so that no option can overflow the
//! arithmetic done with it (a deadline, three intervals): a wait is more than
//! zero and at most a day; an age fits in the agent's nanosecond clock.

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

/// The longest wait an option accepts (a timeout, an interval).
const MAX_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

/// Parses a timeout or interval (`5s`, `500ms`, `2m`): more than zero, at most a day.
pub fn parse_wait(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("must be more than 0".into());
    }
    if d > MAX_WAIT {
        return Err("must be at most 24h".into());
    }
    Ok(d)
}

/// Parses an age threshold (`--min-idle 5m`): zero or more, up to what the
/// agent's nanosecond times can hold (about 584 years).
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if u64::try_from(d.as_nanos()).is_err() {
        return Err("is longer than any task can have waited".into());
    }
    Ok(d)
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

    #[test]
    fn waits_are_bounded() {
        assert_eq!(parse_wait("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_wait("24h"), Ok(MAX_WAIT));
        assert_eq!(parse_wait("0s").unwrap_err(), "must be more than 0");
        assert_eq!(parse_wait("25h").unwrap_err(), "must be at most 24h");
        assert!(parse_wait("7000000000000000000s").is_err());
        assert!(parse_wait("abc").is_err());
        assert!(parse_wait("").is_err());
    }

    #[test]
    fn ages_fit_in_nanoseconds() {
        assert_eq!(parse_age("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_age("100years").map(|d| d.as_secs() / 86_400 / 365), Ok(100));
        assert!(parse_age("99999999999h").is_err());
        assert!(parse_age("-5s").is_err());
    }
}
