//! The hot path's clock: a reading that a ticker thread refreshes every
//! [`TICK`], so that a poll costs a load instead of two counter reads.
//!
//! Why: on the 2-core machines the budgets are set on, reading the
//! time-stamp counter costs about 10 ns (more under virtualisation), and
//! both modes read the time at every poll's start and end. Measured on
//! channel-heavy work, those reads were two thirds of the lean mode's own
//! cost (×1.20 with them, ×1.12 without, empty hooks ×1.08), and in the full
//! mode they were what stood between it and its budget (×1.36 with them,
//! over ×1.30; see bench/README.md, batch 23). What a leak hunt needs is how
//! long a task has been parked or running, where milliseconds are plenty.
//! `TASKSCOPE_EXACT_TIMES=1` ([`start`]'s `exact`) keeps the ticker from
//! starting, so every reading is the counter's own.
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

/// Starts the ticker, once per process: the first call decides. With
/// `exact`, no ticker is started and every reading is the counter's own.
pub(crate) fn start(exact: bool) {
    CLOCK.start(exact);
}

/// How late a reading can be: [`TICK`] while a ticker thread was started,
/// zero when every reading is the counter's own (exact times, or no thread).
pub(crate) fn resolution() -> Duration {
    match CLOCK.ticker.get() {
        Some(Some(_)) => TICK,
        _ => Duration::ZERO,
    }
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

/// [`now`] for a reading that follows one this thread took moments ago (a
/// poll's end after its start): see [`ticking_noted`].
#[inline]
pub(crate) fn now_noted() -> u64 {
    match ticking_noted() {
        Some(now) => now,
        None => CLOCK.wake(),
    }
}

impl Coarse {
    const fn new() -> Coarse {
        Coarse { now: AtomicU64::new(0), read: AtomicBool::new(false), ticker: OnceLock::new() }
    }

    fn start(&'static self, exact: bool) {
        self.ticker.get_or_init(|| {
            super::start();
            if exact {
                return None;
            }
            let spawned = std::thread::Builder::new().name("taskscope-clock".into()).spawn(|| self.tick());
            match spawned {
                Ok(handle) => Some(handle.thread().clone()),
                Err(e) => {
                    // `now` then reads the counter every time.
                    eprintln!(
                        "taskscope-agent: cannot start the clock thread ({e}); times are read from the counter instead"
                    );
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

    /// A reading while the ticker sleeps: the counter itself, and the ticker
    /// woken. With no ticker (exact times, or a thread that could not be
    /// started), the counter alone: no shared line written per reading.
    #[cold]
    fn wake(&self) -> u64 {
        if let Some(Some(ticker)) = self.ticker.get() {
            self.read.store(true, Relaxed);
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
        clock.start(false);
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

    #[test]
    fn exact_times_start_no_ticker_and_every_reading_is_the_counters() {
        let clock: &'static Coarse = Box::leak(Box::new(Coarse::new()));
        clock.start(true);
        assert!(matches!(clock.ticker.get(), Some(None)), "no ticker thread");
        // A started ticker would have stored a reading by now.
        std::thread::sleep(TICK * 3);
        assert_eq!(clock.ticking(), None, "no tick-based reading");
        let before = crate::clock::raw();
        let reading = clock.now();
        let after = crate::clock::raw();
        assert!(before <= reading && reading <= after, "the counter's own: {before} <= {reading} <= {after}");
        assert!(!clock.read.load(Relaxed), "nothing to wake, so nothing written");
    }
}
