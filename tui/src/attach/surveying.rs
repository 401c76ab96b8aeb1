//! When `attach` asks for a survey (a dump of every task, see
//! [`super::state`]'s `survey` module): at once on connecting, then every
//! few seconds, never two at a time, and less often when a dump takes long,
//! so that a program with a hundred thousand tasks is not kept busy
//! answering.

use std::time::{Duration, Instant};

/// The default time between two surveys.
pub const SURVEY_EVERY: Duration = Duration::from_secs(5);

/// A survey is asked for at most once per this many times its last one took.
const SLOWDOWN: u32 = 10;

/// The survey schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Time between two surveys; zero turns surveys off.
    every: Duration,
    /// The request in flight, and when it was asked.
    asked: Option<(u64, Instant)>,
    /// When the next one is due; `None`: now.
    next_at: Option<Instant>,
}

impl Schedule {
    /// Surveys every `every` (zero: never).
    pub fn new(every: Duration) -> Self {
        Schedule { every, asked: None, next_at: None }
    }

    /// Whether a survey should be asked for now.
    pub fn due(&self, now: Instant, live: bool) -> bool {
        live && !self.every.is_zero() && self.asked.is_none() && self.next_at.is_none_or(|at| now >= at)
    }

    /// Survey `seq` was asked for at `now`.
    pub fn asked(&mut self, seq: u64, now: Instant) {
        self.asked = Some((seq, now));
    }

    /// Whether `seq` is the survey in flight; if so it is answered at `now`
    /// and the next one is scheduled.
    pub fn answered(&mut self, seq: u64, now: Instant) -> bool {
        match self.asked {
            Some((asked, at)) if asked == seq => {
                let took = now.saturating_duration_since(at);
                self.next_at = Some(now + self.every.max(took * SLOWDOWN));
                self.asked = None;
                true
            }
            _ => false,
        }
    }

    /// The connection dropped: whatever was in flight is gone, and a new
    /// connection is surveyed at once.
    pub fn reset(&mut self) {
        self.asked = None;
        self.next_at = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_at_a_time_then_every_period_and_slower_when_slow() {
        let t0 = Instant::now();
        let mut s = Schedule::new(Duration::from_secs(5));
        assert!(!s.due(t0, false), "not while disconnected");
        assert!(s.due(t0, true), "at once on connecting");
        s.asked(7, t0);
        assert!(!s.due(t0 + Duration::from_secs(60), true), "never two at a time");
        assert!(!s.answered(8, t0), "another request's answer");
        assert!(s.answered(7, t0 + Duration::from_millis(100)));
        assert!(!s.due(t0 + Duration::from_secs(5), true));
        assert!(s.due(t0 + Duration::from_millis(5100), true));
        // A dump that took 2 s: the next one 20 s later.
        s.asked(9, t0);
        assert!(s.answered(9, t0 + Duration::from_secs(2)));
        assert!(!s.due(t0 + Duration::from_secs(21), true));
        assert!(s.due(t0 + Duration::from_secs(22), true));
        s.reset();
        assert!(s.due(t0, true));
        assert!(!Schedule::new(Duration::ZERO).due(t0, true), "zero turns surveys off");
    }
}
