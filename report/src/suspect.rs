//! Which groups are leak suspects, and how reports rank them.
//!
//! Age alone says little: an accept loop, a connection handler waiting for
//! its client and a housekeeping loop between two sleeps are all parked for
//! minutes, and healthy. A group is a **suspect** when
//!
//! 1. its tasks are leaked (the full mode saw no live waker: nothing can
//!    ever wake them), or
//! 2. it waits on another task ([`Class::Sync`]: a channel, a lock, a
//!    notification) with no timer or I/O branch, and it grows, or
//! 3. it waits that way and has been parked at least [`Rules::long_after`].
//!
//! Timer and I/O waits are never suspects by age. Reports put suspects
//! first in that order (leaked, growing, long), then the rest by count, the
//! way pprof orders goroutine groups; `--sort count` keeps pprof's order.
//!
//! Blind spots: a task waiting on a channel whose sender sits in a task
//! that is itself parked on I/O is a suspect though it may be fine; a
//! future no dump can trace (a non-tokio channel, I/O readiness) has no
//! class, so only the leaked verdict can make it a suspect; and the lean
//! mode gives no verdict, so there only rules 2 and 3 apply.

use std::time::Duration;

use crate::wait::{Class, Wait};

/// Why a group is a suspect, most alarming first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Suspicion {
    /// Some of its tasks can never be woken.
    Leaked,
    /// A sync wait, and the group is growing.
    Growing,
    /// A sync wait parked at least [`Rules::long_after`].
    LongSync,
}

impl Suspicion {
    /// The word used in `--json`.
    pub fn word(self) -> &'static str {
        match self {
            Suspicion::Leaked => "leaked",
            Suspicion::Growing => "growing",
            Suspicion::LongSync => "long_sync_wait",
        }
    }

    /// Why, in words: `suspect: ...`.
    pub fn why(self, rules: &Rules) -> String {
        match self {
            Suspicion::Leaked => "leaked: nothing can wake them, they will never run again".to_string(),
            Suspicion::Growing => "growing while waiting on another task, with no timer or I/O branch".to_string(),
            Suspicion::LongSync => format!(
                "waiting on another task for over {}, with no timer or I/O branch",
                humantime::format_duration(rules.long_after)
            ),
        }
    }
}

/// The thresholds of suspicion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// A sync wait at least this long is a suspect.
    pub long_after: Duration,
}

/// `attach`'s warning threshold, so both commands agree by default.
pub const DEFAULT_LONG_AFTER: Duration = Duration::from_secs(10);

impl Default for Rules {
    fn default() -> Self {
        Rules { long_after: DEFAULT_LONG_AFTER }
    }
}

impl Rules {
    /// Whether a group is a suspect, and why: `leaked` of its tasks are
    /// leaked, it waits on `wait`, its longest parked time is
    /// `longest_parked_ns`, and its live count changed by `growth` (`None`
    /// when unknown, as in a one-shot `stack`).
    pub fn judge(
        &self,
        leaked: usize,
        wait: Option<&Wait>,
        longest_parked_ns: Option<u64>,
        growth: Option<i64>,
    ) -> Option<Suspicion> {
        if leaked > 0 {
            return Some(Suspicion::Leaked);
        }
        if wait.map(|w| w.class) != Some(Class::Sync) {
            return None;
        }
        if growth.is_some_and(|g| g > 0) {
            return Some(Suspicion::Growing);
        }
        let long_ns = u64::try_from(self.long_after.as_nanos()).unwrap_or(u64::MAX);
        longest_parked_ns.filter(|&p| p >= long_ns).map(|_| Suspicion::LongSync)
    }
}

/// Where a group stands in the suspects-first order: leaked, growing, long
/// sync waits, then every other group (which then go by count). Shared by
/// `stack` and `attach`, so both list groups in one order.
pub fn rank(suspect: Option<Suspicion>) -> u8 {
    match suspect {
        Some(Suspicion::Leaked) => 0,
        Some(Suspicion::Growing) => 1,
        Some(Suspicion::LongSync) => 2,
        None => 3,
    }
}

/// How a report orders its groups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sort {
    /// Suspects first (leaked, growing, long sync waits), then by count.
    #[default]
    Suspects,
    /// By count only, as pprof does.
    Count,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn w(class: Class) -> Wait {
        Wait { phrase: "x".into(), class }
    }

    #[test]
    fn only_leaks_and_sync_waits_are_suspects() {
        let rules = Rules::default();
        assert_eq!(rules.judge(1, Some(&w(Class::Timer)), None, None), Some(Suspicion::Leaked));
        assert_eq!(rules.judge(0, Some(&w(Class::Sync)), Some(11 * SEC), None), Some(Suspicion::LongSync));
        assert_eq!(rules.judge(0, Some(&w(Class::Sync)), Some(9 * SEC), None), None);
        assert_eq!(rules.judge(0, Some(&w(Class::Sync)), Some(SEC), Some(3)), Some(Suspicion::Growing));
        assert_eq!(rules.judge(0, Some(&w(Class::Io)), Some(3600 * SEC), Some(3)), None);
        assert_eq!(rules.judge(0, Some(&w(Class::Timer)), Some(3600 * SEC), None), None);
        assert_eq!(rules.judge(0, None, Some(3600 * SEC), Some(5)), None);
    }
}
