//! The agent's clock: cheap raw ticks on the hot path, nanoseconds on output.
//!
//! `Instant::now()` costs a system call's worth of time (~25 ns through the
//! vDSO); the hot path reads the time at every poll. Where the CPU has a
//! counter that ticks at a constant rate whatever the core's frequency or
//! sleep state (x86_64's invariant TSC, aarch64's virtual counter), [`raw`]
//! reads it directly (a few ns); elsewhere it falls back to `Instant`. Raw
//! ticks are stored in task slots and converted to nanoseconds since the agent
//! started only when a snapshot is taken.
//!
//! The rate is measured, not looked up: [`start`] times the counter against
//! `Instant` for [`FIRST_MEASURE`] (a provisional rate, good to about 0.1%),
//! and once the agent has run for [`SETTLE`] the first conversion after that
//! measures it again over the whole run and keeps it. (quanta, used before,
//! calibrates inside its constructor until its estimate settles, which was
//! seen taking 180 ms of the host's `init()` on a busy machine.)

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub(crate) mod coarse;

/// How long [`start`] measures the provisional rate.
const FIRST_MEASURE: Duration = Duration::from_millis(1);
/// How long the agent runs before the rate is measured again and kept.
const SETTLE: Duration = Duration::from_secs(2);

struct Start {
    instant: Instant,
    /// The counter at `instant`, when [`raw`] reads it.
    counter: Option<u64>,
    /// Nanoseconds per tick measured over [`FIRST_MEASURE`].
    provisional: f64,
}

static START: OnceLock<Start> = OnceLock::new();
/// Nanoseconds per tick (f64 bits) measured over [`SETTLE`] or more; 0 until then.
static SETTLED: AtomicU64 = AtomicU64::new(0);

fn start_point() -> &'static Start {
    START.get_or_init(|| {
        // Asked before any timing: on a virtual machine `cpuid` traps to the
        // hypervisor, and time spent between the two readings of a pair
        // skews the rate (seen: 15% over the 1 ms measure on a busy host).
        if !has_counter() {
            return Start { instant: Instant::now(), counter: None, provisional: 1.0 };
        }
        let (instant, counter) = paired_reading();
        let mut elapsed = instant.elapsed();
        while elapsed < FIRST_MEASURE {
            std::hint::spin_loop();
            elapsed = instant.elapsed();
        }
        let (end, end_counter) = paired_reading();
        let nanos = end.duration_since(instant).as_nanos() as f64;
        let ticks = end_counter.saturating_sub(counter).max(1);
        Start { instant, counter: Some(counter), provisional: nanos / ticks as f64 }
    })
}

/// An `Instant` and the counter read at (nearly) the same moment: of three
/// tries, the one whose counter readings around the `Instant` are closest,
/// with the counter taken at their middle. A thread preempted inside one
/// try leaves that try's readings far apart.
fn paired_reading() -> (Instant, u64) {
    let pair = || {
        let before = read_counter();
        let instant = Instant::now();
        let width = read_counter().saturating_sub(before);
        (width, instant, before + width / 2)
    };
    let first = pair();
    let (_, instant, counter) =
        (0..2).map(|_| pair()).fold(first, |best, next| if next.0 < best.0 { next } else { best });
    (instant, counter)
}

/// Notes the start and measures the provisional rate ([`FIRST_MEASURE`] of
/// spinning, once per process): call at init, before the first poll.
pub(crate) fn start() {
    start_point();
}

/// Whether the CPU has a constant-rate counter that [`read_counter`] reads.
#[cfg(target_arch = "x86_64")]
fn has_counter() -> bool {
    use std::arch::x86_64::__cpuid;
    // Leaf 0x80000007 EDX bit 8 is "invariant TSC"; leaf 0x80000000 says how
    // far the extended leaves go.
    __cpuid(0x8000_0000).eax >= 0x8000_0007 && __cpuid(0x8000_0007).edx & (1 << 8) != 0
}

#[cfg(target_arch = "aarch64")]
fn has_counter() -> bool {
    true
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn has_counter() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn read_counter() -> u64 {
    // SAFETY: rdtsc has no preconditions on x86_64.
    unsafe { std::arch::x86_64::_rdtsc() }
}

#[cfg(target_arch = "aarch64")]
#[inline]
fn read_counter() -> u64 {
    let ticks: u64;
    // SAFETY: cntvct_el0 is readable from user space on the platforms tokio
    // supports (Linux enables it).
    unsafe { std::arch::asm!("mrs {}, cntvct_el0", out(reg) ticks, options(nomem, nostack)) };
    ticks
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
#[inline]
fn read_counter() -> u64 {
    0
}

/// Raw ticks now. Never 0, so 0 can mean "never".
#[inline]
pub(crate) fn raw() -> u64 {
    let start = start_point();
    match start.counter {
        Some(_) => read_counter().max(1),
        // No counter: nanoseconds since the start are the ticks.
        None => (start.instant.elapsed().as_nanos() as u64).max(1),
    }
}

/// Nanoseconds per tick: the settled rate, else the provisional one. Loads
/// only, so the hot path may convert too.
fn ns_per_tick() -> f64 {
    let settled = f64::from_bits(SETTLED.load(Relaxed));
    if settled > 0.0 {
        settled
    } else {
        start_point().provisional
    }
}

/// Measures the rate over the whole run once it is [`SETTLE`] long, and
/// keeps it. Called by conversions for output (the agent's thread).
fn settle() {
    if SETTLED.load(Relaxed) != 0 {
        return;
    }
    let start = start_point();
    let Some(counter) = start.counter else { return };
    let ticks = read_counter().saturating_sub(counter);
    // By the provisional rate, not yet: no need to ask the OS (scans convert
    // many times each).
    if (ticks as f64 * start.provisional) < SETTLE.as_nanos() as f64 * 0.99 {
        return;
    }
    let elapsed = start.instant.elapsed();
    if elapsed >= SETTLE && ticks > 0 {
        SETTLED.store((elapsed.as_nanos() as f64 / ticks as f64).to_bits(), Relaxed);
    }
}

/// The start as raw ticks.
fn start_ticks() -> u64 {
    start_point().counter.unwrap_or(0)
}

/// Nanoseconds since the agent started for a raw reading; 0 stays 0 ("never").
pub(crate) fn to_ns(raw: u64) -> u64 {
    if raw == 0 {
        return 0;
    }
    settle();
    let start = start_ticks();
    if raw <= start {
        return 1;
    }
    ((raw - start) as f64 * ns_per_tick()).max(1.0) as u64
}

/// Length of a span of raw ticks, in nanoseconds.
pub(crate) fn ticks_to_ns(ticks: u64) -> u64 {
    (ticks as f64 * ns_per_tick()) as u64
}

/// Clock ticks in `ns` nanoseconds (saturating).
pub(crate) fn ns_to_ticks(ns: u64) -> u64 {
    (ns as f64 / ns_per_tick()) as u64
}

/// Nanoseconds since the agent started.
pub(crate) fn now_ns() -> u64 {
    to_ns(raw())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_convert_to_the_time_that_passed() {
        start();
        let before = raw();
        let then = Instant::now();
        std::thread::sleep(Duration::from_millis(50));
        let after = raw();
        let passed = then.elapsed().as_nanos() as f64;
        assert!(after > before);
        let measured = ticks_to_ns(after - before) as f64;
        assert!((measured / passed - 1.0).abs() < 0.05, "{measured} ns measured, {passed} ns passed");
        assert!(to_ns(after) > to_ns(before));
        assert_eq!(to_ns(0), 0, "0 stays never");
    }
}
