//! Free slots handed from thread to thread, in batches kept in memory of the
//! agent's own.
//!
//! Why: a thread that finishes more tasks than it spawns hands half of its
//! free slots over to the threads that spawn more (see [`super::local`]),
//! [`BATCH`] keys at a time. Those batches used to be `Vec`s in a lock-free
//! queue, both taken from the program's allocator on the workers in the
//! middle of a burst of spawns: thousands of small blocks (2,340 of them in
//! a 300k-task burst), and the queue's own, among the task cells of the
//! workers' heaps, where they could keep those heaps from shrinking once the
//! burst was over (in a debug build they held tens of MiB after a 200k-task
//! burst; `agent/tests/burst_memory.rs` counts such blocks). Here a batch is a
//! fixed block in mapped memory ([`crate::pages`]), reused and never freed,
//! and the two lists (full and empty batches) are linked through the
//! batches themselves, so handing slots over allocates nothing.
//!
//! A mutex guards the lists: it is taken once per [`BATCH`] slots handed
//! over or taken, by two threads at most at a time in practice. The number
//! of batches is bounded by the table's slots over [`BATCH`] (each free slot
//! is in one batch at most), plus the keys handed over one at a time by
//! threads that are exiting.

use std::ptr::NonNull;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::Key;

/// Keys in one batch: half of what a thread keeps (`local::FREE_MAX`).
pub(super) const BATCH: usize = 128;

/// Batches mapped at once when none is empty: about 64 KiB.
const CHUNK: usize = 63;

/// One batch of free keys, linked into one of the two lists.
#[repr(C)]
struct Batch {
    next: Option<NonNull<Batch>>,
    len: usize,
    keys: [Key; BATCH],
}

// SAFETY: a null pointer, an integer and integers; all zero is an empty batch.
unsafe impl crate::pages::Zeroable for Batch {}

/// The full and the empty batches, each a list linked through
/// [`Batch::next`].
struct Lists {
    full: Option<NonNull<Batch>>,
    empty: Option<NonNull<Batch>>,
}

// SAFETY: the batches are mapped for the rest of the process and reached
// only through these lists, under the mutex that holds them.
unsafe impl Send for Lists {}

/// Free keys no thread keeps for itself (see the module docs).
pub(super) struct Batches {
    lists: Mutex<Lists>,
}

impl Batches {
    pub(super) const fn new() -> Batches {
        Batches { lists: Mutex::new(Lists { full: None, empty: None }) }
    }

    fn lists(&self) -> MutexGuard<'_, Lists> {
        // Nothing panics while the lists are held.
        self.lists.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands `keys` over, [`BATCH`] to a batch. False, and nothing handed
    /// over, only when the OS refuses the memory for more batches.
    pub(super) fn push(&self, keys: &[Key]) -> bool {
        let mut lists = self.lists();
        let needed = keys.len().div_ceil(BATCH);
        if !lists.reserve(needed) {
            return false;
        }
        for chunk in keys.chunks(BATCH) {
            let Some(mut batch) = lists.empty else { break };
            // SAFETY: a mapped batch on the empty list, reached only under
            // the lock we hold (see `Lists`).
            let b = unsafe { batch.as_mut() };
            lists.empty = b.next;
            b.keys[..chunk.len()].copy_from_slice(chunk);
            b.len = chunk.len();
            b.next = lists.full;
            lists.full = Some(batch);
        }
        true
    }

    /// Moves the keys of one handed-over batch to the end of `out`. False
    /// when there is none.
    pub(super) fn pop_into(&self, out: &mut Vec<Key>) -> bool {
        let mut lists = self.lists();
        let Some(mut batch) = lists.full else { return false };
        // SAFETY: as in `push`.
        let b = unsafe { batch.as_mut() };
        lists.full = b.next;
        out.extend_from_slice(&b.keys[..b.len]);
        b.len = 0;
        b.next = lists.empty;
        lists.empty = Some(batch);
        true
    }

    /// One handed-over key, if there is any.
    pub(super) fn pop_one(&self) -> Option<Key> {
        let mut lists = self.lists();
        let mut batch = lists.full?;
        // SAFETY: as in `push`.
        let b = unsafe { batch.as_mut() };
        let key = b.len.checked_sub(1).map(|last| b.keys[last]);
        b.len = b.len.saturating_sub(1);
        if b.len == 0 {
            lists.full = b.next;
            b.next = lists.empty;
            lists.empty = Some(batch);
        }
        key
    }

    /// Keys handed over and not taken yet.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        let lists = self.lists();
        let mut total = 0;
        let mut at = lists.full;
        while let Some(batch) = at {
            // SAFETY: as in `push`.
            let b = unsafe { batch.as_ref() };
            total += b.len;
            at = b.next;
        }
        total
    }
}

impl Lists {
    /// Makes sure `needed` batches are on the empty list, mapping more when
    /// they are not. False when the OS refuses the memory.
    fn reserve(&mut self, needed: usize) -> bool {
        let mut have = 0;
        let mut at = self.empty;
        while let Some(batch) = at {
            have += 1;
            if have >= needed {
                return true;
            }
            // SAFETY: as in `Batches::push`.
            at = unsafe { batch.as_ref() }.next;
        }
        if have >= needed {
            return true;
        }
        let count = (needed - have).max(CHUNK);
        let Some(first) = crate::pages::zeroed_raw::<Batch>(count) else { return false };
        for i in 0..count {
            // SAFETY: `count` freshly mapped, zeroed batches that no one else
            // has seen; from here on reached only through the lists, under
            // the lock our caller holds. Their memory is never unmapped.
            let mut batch = unsafe { first.add(i) };
            unsafe { batch.as_mut() }.next = self.empty;
            self.empty = Some(batch);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(range: std::ops::Range<u64>) -> Vec<Key> {
        range.map(Key).collect()
    }

    #[test]
    fn batches_come_back_whole_newest_first_and_one_key_at_a_time() {
        let batches = Batches::new();
        assert!(batches.push(&keys(1..129)));
        assert!(batches.push(&keys(200..210)));
        assert_eq!(batches.len(), 138);
        let mut out = Vec::new();
        assert!(batches.pop_into(&mut out));
        assert_eq!(out, keys(200..210));
        assert_eq!(batches.pop_one(), Some(Key(128)));
        assert_eq!(batches.pop_one(), Some(Key(127)));
        out.clear();
        assert!(batches.pop_into(&mut out));
        assert_eq!(out, keys(1..127));
        assert!(!batches.pop_into(&mut out));
        assert_eq!(batches.pop_one(), None);
    }

    #[test]
    fn more_keys_than_a_batch_and_than_a_chunk_of_batches_all_come_back() {
        let batches = Batches::new();
        let handed = keys(1..(BATCH * CHUNK * 2 + 5) as u64);
        assert!(batches.push(&handed));
        let mut back = Vec::new();
        while batches.pop_into(&mut back) {}
        back.sort_by_key(|k| k.0);
        assert_eq!(back, handed);
        // Emptied batches are reused, not mapped again.
        assert!(batches.push(&handed));
        assert_eq!(batches.len(), handed.len());
    }

    #[test]
    fn threads_handing_over_and_taking_lose_no_key() {
        static BATCHES: Batches = Batches::new();
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                std::thread::spawn(move || {
                    let mut taken = Vec::new();
                    for round in 0..500u64 {
                        let first = (t * 500 + round) * 1000;
                        assert!(BATCHES.push(&keys(first..first + 100)));
                        if round % 2 == 0 {
                            BATCHES.pop_into(&mut taken);
                        } else {
                            taken.extend(BATCHES.pop_one());
                        }
                    }
                    taken
                })
            })
            .collect();
        let mut all: Vec<Key> = threads.into_iter().flat_map(|t| t.join().expect("no thread panicked")).collect();
        while BATCHES.pop_into(&mut all) {}
        all.sort_by_key(|k| k.0);
        let mut expected: Vec<Key> = (0..2000u64).flat_map(|n| keys(n * 1000..n * 1000 + 100)).collect();
        expected.sort_by_key(|k| k.0);
        assert_eq!(all, expected);
    }
}
