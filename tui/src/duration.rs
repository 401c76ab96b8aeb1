//! Durations in and out: compact ones for tables and dumps (the format is
//! [`taskscope_proto::duration`], shared with the agent's messages), and the
//! parsers of the options that take one.
//!
//! The parsers bound what they accept, so that no option can overflow the
//! arithmetic done with it (a deadline, three intervals): a wait is more than
//! zero and at most a day; an age fits in the agent's nanosecond clock.

use std::time::Duration;

pub use taskscope_proto::duration::{format, format_ns};

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
