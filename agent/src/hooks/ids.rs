//! Task id → slot key, for the live tasks the hooks recorded: a lock-free
//! open-addressing table.
//!
//! Why not a map behind locks: every poll of a task on a thread that has not
//! seen it yet (in spawn-heavy programs, nearly every first poll) looks its id
//! up while other workers insert and remove; measured, a sharded mutex map
//! cost more than the rest of the lean mode put together.
//!
//! How: entries of `(id, key)` atomics, linear probing from a Fibonacci hash
//! of the id. Insert claims an empty or tombstoned entry with one CAS; remove
//! writes a tombstone; lookup stops at the first never-used entry. This is
//! sound without any reclamation scheme because tokio never reuses a task id
//! within a process (one 64-bit counter), an id is inserted once and removed
//! once, and entries never return to "never used". When an insert finds no
//! room within [`MAX_PROBE`] entries, a table twice the size is put in front;
//! older tables stay readable (a lookup starts at the table its id most likely
//! went to, by each table's floor id) and are never
//! freed, so their memory is bounded by twice the largest table.

use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering::*};

use crate::slots::Key;

/// Entries in the first table.
const FIRST: usize = 4096;
/// Entries an insert or lookup looks at in one table, at most.
const MAX_PROBE: usize = 32;
/// `Entry::id` of an entry never used.
const EMPTY: u64 = 0;
/// `Entry::id` of an entry whose task is gone.
const TOMB: u64 = u64::MAX;
const SPREAD: u64 = 0x9E37_79B9_7F4A_7C15;
/// Consecutive ids that hash to consecutive entries (see `Table::probe`).
const RUN: u64 = 8;

/// One id's place in the map. The hooks keep a live task's entry at hand
/// (entries are never freed) to remove it without a second lookup.
pub(super) struct Entry {
    id: AtomicU64,
    key: AtomicU64,
}

impl Entry {
    /// The key this entry maps its id to.
    #[inline]
    pub(super) fn key(&self) -> Key {
        Key(self.key.load(Acquire))
    }

    /// Removes the entry's id from the map. Only for the entry that
    /// [`IdMap::insert`] or [`IdMap::get`] gave for a live task's id: no one
    /// else writes an entry while its id is in it.
    #[inline]
    pub(super) fn forget(&self) {
        self.id.store(TOMB, Release);
    }
}

// SAFETY: two atomics; all zero is an EMPTY entry.
unsafe impl crate::pages::Zeroable for Entry {}

struct Table {
    /// Mapped, not allocated (see `crate::pages`); all EMPTY at first.
    entries: &'static [Entry],
    mask: usize,
    /// The table this one was put in front of (never freed, so `'static`).
    older: Option<&'static Table>,
    /// The id whose insert put this table in front. tokio hands out ids in
    /// order, so smaller ids were almost all inserted into older tables, and
    /// a lookup starts with the newest table whose floor is not above the id
    /// instead of walking every table from the newest.
    floor: u64,
}

impl Table {
    fn new(len: usize, older: Option<&'static Table>, floor: u64) -> Option<Table> {
        let entries = crate::pages::zeroed::<Entry>(len)?;
        Some(Table { entries, mask: len - 1, older, floor })
    }

    /// The entries `id` may be in, in probe order.
    #[inline]
    fn probe(&self, id: u64) -> impl Iterator<Item = &Entry> {
        // Runs of `RUN` consecutive ids (tasks spawned one after another)
        // share neighbouring entries, so a burst of spawns or completions
        // touches a cache line per run instead of one per task; the runs
        // themselves are spread by a Fibonacci hash.
        let run = ((id / RUN).wrapping_mul(SPREAD) >> 32) as usize;
        let start = run * RUN as usize + (id % RUN) as usize;
        (0..MAX_PROBE.min(self.entries.len())).map(move |i| &self.entries[(start + i) & self.mask])
    }

    fn find(&self, id: u64) -> Option<&Entry> {
        for entry in self.probe(id) {
            match entry.id.load(Acquire) {
                found if found == id => return Some(entry),
                EMPTY => return None,
                _ => {}
            }
        }
        None
    }
}

/// The map (see the module docs).
pub(super) struct IdMap {
    newest: AtomicPtr<Table>,
}

impl IdMap {
    pub(super) const fn new() -> IdMap {
        IdMap { newest: AtomicPtr::new(std::ptr::null_mut()) }
    }

    fn newest(&self) -> Option<&'static Table> {
        let ptr = self.newest.load(Acquire);
        // SAFETY: non-null pointers stored in `newest` come from `grow`,
        // which maps the table's header and never unmaps a shared one.
        (!ptr.is_null()).then(|| unsafe { &*ptr })
    }

    /// Records the key of a new task and returns its entry; `None` when the
    /// map is full and the OS refuses the memory to grow it. `id` must not
    /// be in the map.
    pub(super) fn insert(&self, id: u64, key: Key) -> Option<&'static Entry> {
        loop {
            let Some(table) = self.newest() else {
                self.grow(None, id)?;
                continue;
            };
            for entry in table.probe(id) {
                // Straight to the compare-and-swap, a tombstone first (what
                // churn leaves): loading the entry first would fetch its line
                // shared and then once more to write it.
                let claimed = match entry.id.compare_exchange(TOMB, id, AcqRel, Relaxed) {
                    Ok(_) => true,
                    Err(EMPTY) => entry.id.compare_exchange(EMPTY, id, AcqRel, Relaxed).is_ok(),
                    Err(_) => false,
                };
                if claimed {
                    entry.key.store(key.0, Release);
                    return Some(entry);
                }
            }
            self.grow(Some(table), id)?;
        }
    }

    /// Asks for the entry that inserting `id` will most likely claim, to be
    /// written soon (see [`crate::prefetch`]): the next id a thread spawns
    /// is usually the next number.
    #[inline]
    pub(super) fn prefetch_insert(&self, id: u64) {
        if let Some(table) = self.newest() {
            if let Some(entry) = table.probe(id).next() {
                crate::prefetch::for_write(entry);
            }
        }
    }

    /// Puts a table twice the size of `full` (or the first table) in front,
    /// unless another thread already did. `None` when the OS refuses the memory.
    #[cold]
    fn grow(&self, full: Option<&'static Table>, id: u64) -> Option<()> {
        let len = full.map_or(FIRST, |t| t.entries.len() * 2);
        let table = Table::new(len, full, id)?;
        // The header is mapped too, not boxed: a growth comes in the middle
        // of a burst of spawns, and a block of the program's heap taken then
        // and kept for good would pin that heap (see `crate::pages`).
        let Some(header) = crate::pages::zeroed_raw::<std::mem::MaybeUninit<Table>>(1) else {
            // SAFETY: `table.entries` came from `pages::zeroed` in
            // `Table::new` and nobody else saw them.
            unsafe { crate::pages::unmap(table.entries) };
            return None;
        };
        let bigger = header.as_ptr().cast::<Table>();
        // SAFETY: fresh mapped memory for one `Table`, ours alone until the
        // exchange below shares it.
        unsafe { bigger.write(table) };
        let expected = full.map_or(std::ptr::null_mut(), |t| t as *const Table as *mut Table);
        if self.newest.compare_exchange(expected, bigger, AcqRel, Acquire).is_err() {
            // Someone else grew it first: ours was never shared, so unmap it.
            // SAFETY: `bigger`'s header and entries were mapped just above
            // and in `Table::new`, and nobody else saw either.
            unsafe {
                let entries = (*bigger).entries;
                crate::pages::unmap(entries);
                crate::pages::unmap(std::slice::from_raw_parts(header.as_ptr().cast_const(), 1));
            }
        }
        Some(())
    }

    /// The entry of live task `id`.
    #[inline]
    pub(super) fn get(&self, id: u64) -> Option<&'static Entry> {
        let newest = self.newest()?;
        // Nearly always: a live id went to the newest table.
        let checked = newest.floor <= id;
        if checked {
            if let Some(entry) = newest.find(id) {
                return Some(entry);
            }
        }
        Self::get_elsewhere(newest, checked, id)
    }

    /// [`Self::get`] past the newest table: the newest table whose floor is
    /// not above `id` (where it most likely went), then the older ones, then
    /// (an insert that raced with a growth) the newer ones; skipping the
    /// newest if `checked` already.
    #[inline(never)]
    fn get_elsewhere(newest: &'static Table, checked: bool, id: u64) -> Option<&'static Entry> {
        let find = |t: &'static Table| if checked && std::ptr::eq(t, newest) { None } else { t.find(id) };
        let mut start = Some(newest);
        while let Some(t) = start {
            if t.floor <= id {
                break;
            }
            start = t.older;
        }
        let mut table = start;
        while let Some(t) = table {
            if let Some(entry) = find(t) {
                return Some(entry);
            }
            table = t.older;
        }
        let mut table = Some(newest);
        while let Some(t) = table {
            if start.is_some_and(|s| std::ptr::eq(s, t)) {
                break;
            }
            if let Some(entry) = find(t) {
                return Some(entry);
            }
            table = t.older;
        }
        None
    }

    /// Forgets task `id`, returning its key.
    pub(super) fn remove(&self, id: u64) -> Option<Key> {
        let entry = self.get(id)?;
        let key = entry.key();
        entry.forget();
        Some(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_map_to_keys_until_removed_across_growth() {
        let map = IdMap::new();
        // More than the first table holds: the map grows and keeps older entries.
        for id in 1..20_000u64 {
            map.insert(id, Key(id * 7)).expect("room");
        }
        assert_eq!(map.get(1).map(Entry::key), Some(Key(7)));
        assert_eq!(map.get(500).map(Entry::key), Some(Key(3500)));
        assert_eq!(map.remove(500), Some(Key(3500)));
        assert_eq!(map.get(500).map(Entry::key), None);
        assert_eq!(map.remove(500), None);
        assert_eq!(map.get(19_999).map(Entry::key), Some(Key(139_993)));
        assert_eq!(map.get(20_000).map(Entry::key), None);
    }

    #[test]
    fn churn_reuses_tombstones_without_growing() {
        let map = IdMap::new();
        for id in 1..200_000u64 {
            map.insert(id, Key(id)).expect("room");
            assert_eq!(map.remove(id), Some(Key(id)));
        }
        let newest = map.newest().expect("a table");
        assert!(newest.older.is_none(), "a map that never holds more than one id never grows");
    }

    #[test]
    fn concurrent_inserts_lookups_and_removes_agree() {
        static MAP: IdMap = IdMap::new();
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..50_000u64 {
                        let id = 1 + i * 4 + t;
                        MAP.insert(id, Key(id + 1)).expect("room");
                        assert_eq!(MAP.get(id).map(Entry::key), Some(Key(id + 1)));
                        if i % 3 == 0 {
                            assert_eq!(MAP.remove(id), Some(Key(id + 1)));
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("no thread panicked");
        }
        for id in 1..=200_000u64 {
            let removed = ((id - 1) / 4) % 3 == 0;
            assert_eq!(MAP.get(id).map(Entry::key), (!removed).then_some(Key(id + 1)), "id {id}");
        }
    }
}
