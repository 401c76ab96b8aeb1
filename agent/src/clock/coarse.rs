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
//!
//! Idle programs: when [`IDLE_AFTER`] ticks pass with no reading, the ticker
//! stores 0 as its reading and sleeps until a reading wakes it (or a second
//! passes). A reading that finds 0 reads the counter itself and wakes the
//! ticker. So a service with nothing to do costs about one wake-up a second,
//! and readings taken while the ticker runs stay tick-based, which is what
//! keeps busy time right on average.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::Duration;

/// How often the ticker refreshes its reading: the lean mode's resolution.
pub(crate) const TICK: Duration = Duration::from_millis(10);
/// Ticks without a reading after which the ticker goes to sleep.
const IDLE_AFTER: u32 = 10;
/// The longest the ticker sleeps while nothing reads the clock.
const IDLE_SLEEP: Duration = Duration::from_secs(1);

/// A ticking clock: the process has one, [`CLOCK`].
struct Coarse {
    /// The latest tick's reading, in raw clock ticks; 0 while the ticker sleeps.
    now: AtomicU64,
    /// A reading was taken since the ticker last looked.
    read: AtomicBool,
    /// The ticker thread; `None` if it could not be started.
    ticker: OnceLock<Option<std::thread::Thread>>,
}

static CLOCK: Coarse = Coarse::new();

/// Starts the ticker (once per process).
pub(crate) fn start() {
    CLOCK.start();
}

/// The time at the latest tick, in raw clock ticks (never 0).
#[inline]
pub(crate) fn now() -> u64 {
    CLOCK.now()
}

/// [`now`] while the ticker runs; `None` while it sleeps, where [`now`]
/// would read the counter and wake it. For fast paths that hand the rare
/// case to a slower one, so that they call nothing.
#[inline]
pub(crate) fn ticking() -> Option<u64> {
    CLOCK.ticking()
}

/// [`ticking`] for a reading that follows one this thread took moments ago
/// (a poll's end after its start): that one already told the ticker that
/// the clock is read, so this one writes nothing.
#[inline]
pub(crate) fn ticking_noted() -> Option<u64> {
    match CLOCK.now.load(Relaxed) {
        0 => None,
        now => Some(now),
    }
}

impl Coarse {
    const fn new() -> Coarse {
        Coarse { now: AtomicU64::new(0), read: AtomicBool::new(false), ticker: OnceLock::new() }
    }

    fn start(&'static self) {
        self.ticker.get_or_init(|| {
            super::start();
            let spawned = std::thread::Builder::new().name("taskscope-clock".into()).spawn(|| self.tick());
            match spawned {
                Ok(handle) => Some(handle.thread().clone()),
                Err(e) => {
                    // `now` then reads the counter every time.
                    eprintln!("taskscope-agent: cannot start the clock thread ({e}); the lean mode reads the counter instead");
                    None
                }
            }
        });
    }

    #[inline]
    fn now(&self) -> u64 {
        match self.ticking() {
            Some(now) => now,
            None => self.wake(),
        }
    }

    #[inline]
    fn ticking(&self) -> Option<u64> {
        let now = self.now.load(Relaxed);
        if now == 0 {
            return None;
        }
        if !self.read.load(Relaxed) {
            self.read.store(true, Relaxed);
        }
        Some(now)
    }

    /// A reading while the ticker sleeps: the counter itself, and the ticker woken.
    #[cold]
    fn wake(&self) -> u64 {
        self.read.store(true, Relaxed);
        if let Some(Some(ticker)) = self.ticker.get() {
            ticker.unpark();
        }
        super::raw()
    }

    /// The ticker's loop; the thread ends with the process.
    fn tick(&self) {
        let mut unread = 0;
        loop {
            self.now.store(super::raw(), Relaxed);
            std::thread::sleep(TICK);
            if self.read.swap(false, Relaxed) {
                unread = 0;
                continue;
            }
            unread += 1;
            if unread >= IDLE_AFTER {
                self.now.store(0, Relaxed);
                // Readers find 0 from here on and wake us (or a second passes).
                if !self.read.load(Relaxed) {
                    std::thread::park_timeout(IDLE_SLEEP);
                }
                unread = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock() -> &'static Coarse {
        let clock: &'static Coarse = Box::leak(Box::new(Coarse::new()));
        clock.start();
        clock
    }

    #[test]
    fn readings_follow_the_counter_a_tick_behind() {
        let clock = clock();
        let first = clock.now();
        std::thread::sleep(TICK * 5);
        clock.now();
        std::thread::sleep(TICK * 3);
        let later = clock.now();
        let after = crate::clock::raw();
        assert!(later <= after, "never ahead of the counter");
        assert!(later > first, "the reading moves on");
        let lag = crate::clock::ticks_to_ns(after - later);
        // A loaded machine may run the ticker late; it must still run.
        assert!(lag < 20 * TICK.as_nanos() as u64, "a few ticks behind at most, was {lag} ns");
    }

    #[test]
    fn an_idle_ticker_sleeps_and_the_next_reading_is_exact_and_wakes_it() {
        let clock = clock();
        let deadline = std::time::Instant::now() + IDLE_SLEEP * 5;
        while clock.now.load(Relaxed) == 0 {
            assert!(std::time::Instant::now() < deadline, "the ticker never ticked");
            std::thread::sleep(TICK);
        }
        clock.now();
        // Long enough for the ticker to go to sleep (IDLE_AFTER ticks unread),
        // with room for a loaded machine.
        while clock.now.load(Relaxed) != 0 {
            assert!(std::time::Instant::now() < deadline, "the ticker never went to sleep");
            std::thread::sleep(TICK);
        }
        let before = crate::clock::raw();
        let reading = clock.now();
        assert!(reading >= before, "asleep: the reading is the counter's own");
        let deadline = std::time::Instant::now() + IDLE_SLEEP * 5;
        while clock.now.load(Relaxed) == 0 {
            assert!(std::time::Instant::now() < deadline, "the reading did not wake the ticker");
            std::thread::sleep(TICK);
        }
    }
}
