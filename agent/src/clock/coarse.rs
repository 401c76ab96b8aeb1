//! The lean mode's clock: a reading that a ticker thread refreshes every
//! [`TICK`], so that a poll costs a load instead of two counter reads.
//!
//! Why: on the 2-core machines the budget is set on, reading the time-stamp
//! counter costs about 10 ns (more under virtualisation), and the hooks read
//! the time at every poll's start and end. Measured on channel-heavy work,
//! those reads were two thirds of the lean mode's own cost (×1.20 with them,
//! ×1.12 without, empty hooks ×1.08), and the lean mode is what a service
//! leaves on. It records what a leak hunt needs, how long a task has been
//! parked or running, where milliseconds are plenty.
//!
//! What it costs in precision: times are the latest tick's, so at most one
//! tick late. Busy time is the sum over polls of (end tick − start tick); a
//! poll shorter than a tick adds a whole tick with a probability of its
//! length over the tick's, so the sum is right on average, and for a task
//! that was polled a lot, close. A task polled once for 50 µs shows 0 or 10 ms.
//!
//! Why a thread of its own rather than the agent's runtime: the ticks must go
//! on while the agent's thread builds a large snapshot.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Once;
use std::time::Duration;

/// How often the ticker refreshes [`NOW`]: the lean mode's resolution.
pub(crate) const TICK: Duration = Duration::from_millis(10);

/// The latest tick's reading, in raw clock ticks; 0 until the ticker runs.
static NOW: AtomicU64 = AtomicU64::new(0);
static STARTED: Once = Once::new();

/// Starts the ticker (once per process).
pub(crate) fn start() {
    STARTED.call_once(|| {
        super::start();
        NOW.store(super::raw(), Relaxed);
        let spawned = std::thread::Builder::new().name("taskscope-clock".into()).spawn(|| loop {
            std::thread::sleep(TICK);
            NOW.store(super::raw(), Relaxed);
        });
        if let Err(e) = spawned {
            // `now` falls back to reading the counter.
            NOW.store(0, Relaxed);
            eprintln!("taskscope-agent: cannot start the clock thread ({e}); the lean mode reads the counter instead");
        }
    });
}

/// The time at the latest tick, in raw clock ticks (never 0).
#[inline]
pub(crate) fn now() -> u64 {
    match NOW.load(Relaxed) {
        0 => super::raw(),
        now => now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_follow_the_counter_a_tick_behind() {
        start();
        let first = now();
        std::thread::sleep(TICK * 5);
        let later = now();
        let after = crate::clock::raw();
        assert!(later <= after, "never ahead of the counter");
        assert!(later > first, "the reading moves on");
        let lag = crate::clock::ticks_to_ns(after - later);
        // A loaded machine may run the ticker late; it must still run.
        assert!(lag < 20 * TICK.as_nanos() as u64, "a few ticks behind at most, was {lag} ns");
    }
}
