//! Asking the CPU for a cache line, to be written, before it is needed.
//!
//! Why: in spawn-heavy work a task is spawned on one core and polled and
//! finished on another, so the lines of its slot and of its id-map entry go
//! back and forth between the cores. Every such line costs a cross-core
//! transfer; written or read on demand, the transfer is a stall that the
//! program's own code (tokio's, right after the hook) waits out. Asked for
//! early, with the intent to write (x86 `prefetchw`, aarch64 `prfm pstl1keep`),
//! it travels while the program runs on.
//!
//! A prefetch is only a hint: it never faults and never changes what a
//! program computes, so asking for a line that turns out not to be needed
//! costs a transfer and nothing else.

/// Whether this CPU has `prefetchw`; asked once, by [`init`].
#[cfg(target_arch = "x86_64")]
static PREFETCHW: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Finds out what this CPU offers. Cheap; call before the hooks run.
pub(crate) fn init() {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::__cpuid;
        // Leaf 0x80000001 ECX bit 8: PREFETCHW (AMD's "3DNowPrefetch", on
        // Intel since Broadwell).
        let has = __cpuid(0x8000_0000).eax >= 0x8000_0001 && __cpuid(0x8000_0001).ecx & (1 << 8) != 0;
        PREFETCHW.store(has, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Asks for the cache line holding `at`, to be written soon.
#[inline(always)]
pub(crate) fn for_write<T>(at: *const T) {
    #[cfg(target_arch = "x86_64")]
    if PREFETCHW.load(std::sync::atomic::Ordering::Relaxed) {
        // SAFETY: prefetchw is supported (checked in `init`), never faults and
        // neither reads nor writes memory as far as the program can tell.
        unsafe { std::arch::asm!("prefetchw [{}]", in(reg) at, options(nostack, preserves_flags, readonly)) };
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: prfm is a hint on every aarch64 CPU; it never faults.
    unsafe {
        std::arch::asm!("prfm pstl1keep, [{}]", in(reg) at, options(nostack, preserves_flags, readonly))
    };
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = at;
}
