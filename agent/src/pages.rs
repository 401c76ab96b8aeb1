//! Memory the agent keeps for the rest of the process, mapped from the OS
//! instead of taken from the program's allocator.
//!
//! Why: slot segments and id-map tables are allocated while the program runs
//! (a burst of spawns grows them) and are never given back. Taken from the
//! allocator on a worker thread, each is a long-lived block in the middle of
//! that thread's heap, among the program's own short-lived ones; mapped, they
//! stay out of the program's heaps altogether. Mapped pages also arrive
//! zeroed, page by page on first touch, so a new segment or table needs no
//! clearing pass on the thread that happened to grow it (callgrind showed
//! that pass at about 20 instructions per task over a 100k-task burst).
//!
//! The same goes for every block the agent takes while tasks run: the free
//! slots threads hand each other (`slots::batches`), the id map's tables and
//! their headers. A small block taken from a worker's heap in the middle of
//! a burst of spawns sits among the task cells and can keep that heap from
//! shrinking once the burst is over (see `agent/tests/burst_memory.rs`).

/// Types whose all-zero bytes are a valid value.
///
/// # Safety
/// Implement only for types made of atomics, integers and raw pointers,
/// for which zero (null) is a valid value.
pub(crate) unsafe trait Zeroable: Sized {}

// SAFETY: every byte pattern is a valid `MaybeUninit`.
unsafe impl<T> Zeroable for std::mem::MaybeUninit<T> {}

/// `len` zeroed values of `T`, kept until [`unmap`] (or for good).
/// `None` if the OS refuses the memory.
pub(crate) fn zeroed<T: Zeroable>(len: usize) -> Option<&'static [T]> {
    let at = zeroed_raw::<T>(len)?;
    // SAFETY: `len` zeroed, aligned `T`s (all-zero is valid: `Zeroable`)
    // that no one else refers to, kept until `unmap`.
    Some(unsafe { std::slice::from_raw_parts(at.as_ptr(), len) })
}

/// [`zeroed`] as a pointer to the first of the `len` values, for memory
/// its owner writes through plain (not atomic) fields: it may write through
/// this pointer for as long as it keeps the memory to itself.
pub(crate) fn zeroed_raw<T: Zeroable>(len: usize) -> Option<std::ptr::NonNull<T>> {
    #[cfg(unix)]
    {
        let bytes = len.checked_mul(std::mem::size_of::<T>())?.max(1);
        // SAFETY: an anonymous private mapping with no address hint only
        // creates new memory; the result is checked before use.
        let at = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if at == libc::MAP_FAILED || (at as usize) % std::mem::align_of::<T>() != 0 {
            return None;
        }
        // Fresh, zeroed, page-aligned (so aligned for T) memory that no one
        // else refers to, mapped until `unmap`.
        std::ptr::NonNull::new(at as *mut T)
    }
    #[cfg(not(unix))]
    {
        let layout = std::alloc::Layout::array::<T>(len).ok()?;
        if layout.size() == 0 {
            return Some(std::ptr::NonNull::dangling());
        }
        // SAFETY: a layout of non-zero size.
        let at = unsafe { std::alloc::alloc_zeroed(layout) };
        std::ptr::NonNull::new(at as *mut T)
    }
}

/// Gives back memory from [`zeroed`] that was never shared.
///
/// # Safety
/// `pages` came from [`zeroed`] and nothing refers to it any more.
pub(crate) unsafe fn unmap<T: Zeroable>(pages: &'static [T]) {
    #[cfg(unix)]
    // SAFETY: the caller hands back a mapping of exactly these bytes (at
    // least one, as `zeroed` mapped).
    unsafe {
        libc::munmap(pages.as_ptr() as *mut libc::c_void, std::mem::size_of_val(pages).max(1));
    }
    #[cfg(not(unix))]
    if let Ok(layout) = std::alloc::Layout::array::<T>(pages.len()) {
        if layout.size() != 0 {
            // SAFETY: allocated with this layout in `zeroed`.
            unsafe { std::alloc::dealloc(pages.as_ptr() as *mut u8, layout) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

    struct Pair(AtomicU64, AtomicU64);
    // SAFETY: two atomics, valid at zero.
    unsafe impl Zeroable for Pair {}

    #[test]
    fn mapped_values_start_at_zero_and_take_writes() {
        let pairs = zeroed::<Pair>(100_000).expect("memory");
        assert!(pairs.iter().all(|p| p.0.load(Relaxed) == 0 && p.1.load(Relaxed) == 0));
        pairs[99_999].1.store(7, Relaxed);
        assert_eq!(pairs[99_999].1.load(Relaxed), 7);
        // SAFETY: from `zeroed`, not shared.
        unsafe { unmap(pairs) };
    }
}
