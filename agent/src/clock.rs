//! The agent's clock: cheap raw ticks on the hot path, nanoseconds on output.
//!
//! `Instant::now()` costs a system call's worth of time (~25 ns through the
//! vDSO); the hot path reads it twice per poll, which alone would blow the
//! overhead budget on channel-heavy programs. quanta reads the CPU's invariant
//! time-stamp counter instead (a few ns) and falls back to the OS clock where
//! there is none. Raw ticks are stored in task slots and converted to
//! nanoseconds since the agent started only when a snapshot is taken.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

pub(crate) mod coarse;
use std::sync::OnceLock;

struct AgentClock {
    clock: quanta::Clock,
    start: u64,
}

static CLOCK: OnceLock<AgentClock> = OnceLock::new();

/// Whether quanta reads the time-stamp counter itself, so that [`raw`] may
/// read it inline (the hot path reads the clock twice per poll; a call and
/// quanta's dispatch on its clock kind are a fair part of that).
static INLINE_TSC: AtomicBool = AtomicBool::new(false);

fn get() -> &'static AgentClock {
    CLOCK.get_or_init(|| {
        let clock = quanta::Clock::new();
        let start = clock.raw();
        INLINE_TSC.store(reads_tsc(&clock), Relaxed);
        AgentClock { clock, start }
    })
}

/// Whether `clock`'s raw readings are the time-stamp counter's: a reading
/// taken between two reads of the counter lies between them.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
fn reads_tsc(clock: &quanta::Clock) -> bool {
    (0..3).all(|_| {
        // SAFETY: rdtsc has no preconditions on x86_64.
        let before = unsafe { core::arch::x86_64::_rdtsc() };
        let reading = clock.raw();
        // SAFETY: as above.
        let after = unsafe { core::arch::x86_64::_rdtsc() };
        before <= reading && reading <= after
    })
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
fn reads_tsc(_: &quanta::Clock) -> bool {
    false
}

/// Starts the clock (calibration takes a few milliseconds; do it at init, not on
/// the first poll).
pub(crate) fn start() {
    get();
}

/// Raw ticks now. Never 0, so 0 can mean "never".
#[inline]
pub(crate) fn raw() -> u64 {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    if INLINE_TSC.load(Relaxed) {
        // SAFETY: rdtsc has no preconditions on x86_64; INLINE_TSC says quanta
        // reads the same counter, so its conversions apply.
        return unsafe { core::arch::x86_64::_rdtsc() }.max(1);
    }
    get().clock.raw().max(1)
}

/// Nanoseconds since the agent started for a raw reading; 0 stays 0 ("never").
pub(crate) fn to_ns(raw: u64) -> u64 {
    if raw == 0 {
        return 0;
    }
    let c = get();
    if raw <= c.start {
        return 1;
    }
    c.clock.delta_as_nanos(c.start, raw).max(1)
}

/// Length of a span of raw ticks, in nanoseconds.
pub(crate) fn ticks_to_ns(ticks: u64) -> u64 {
    let c = get();
    c.clock.delta_as_nanos(0, ticks)
}

/// Nanoseconds since the agent started.
pub(crate) fn now_ns() -> u64 {
    to_ns(raw())
}
