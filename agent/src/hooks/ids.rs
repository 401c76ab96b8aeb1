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
/// Consecutive ids that hash to consecutive entries (see `Table::start`).
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

    /// Where `id`'s probe starts.
    #[inline]
    fn start(id: u64) -> usize {
        // Runs of `RUN` consecutive ids (tasks spawned one after another)
        // share neighbouring entries, so a burst of spawns or completions
        // touches a cache line per run instead of one per task; the runs
        // themselves are spread by a Fibonacci hash.
        let run = ((id / RUN).wrapping_mul(SPREAD) >> 32) as usize;
        run * RUN as usize + (id % RUN) as usize
    }

    /// The entry at `i`, wrapped around the table.
    #[inline(always)]
    fn at(&self, i: usize) -> &'static Entry {
        // SAFETY: tables have a power-of-two length and `mask` is that
        // length less one, so `i & mask` is in bounds. (Indexed without a
        // bounds check: the checks were a third of a lookup's instructions.)
        unsafe { self.entries.get_unchecked(i & self.mask) }
    }

    /// The entry of `id` in this table, looking at [`MAX_PROBE`] entries
    /// at most and stopping at one never used.
    #[inline]
    fn find(&self, id: u64) -> Option<&'static Entry> {
        let start = Self::start(id);
        for i in 0..MAX_PROBE {
            let entry = self.at(start + i);
            match entry.id.load(Acquire) {
                found if found == id => return Some(entry),
                EMPTY => return None,
                _ => {}
            }
        }
        None
    }
}

// Every table holds at least `MAX_PROBE` entries (tables only grow), so a
// probe never laps a table.
const _: () = assert!(FIRST >= MAX_PROBE && FIRST.is_power_of_two());

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
            let start = Table::start(id);
            for i in 0..MAX_PROBE {
                let entry = table.at(start + i);
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
            crate::prefetch::for_write(table.at(Table::start(id)));
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
        // Where it most likely went: the newest table whose floor is not
        // above `id` (nearly always the newest table, but for the tasks of a
        // burst that grew the map, which went to the tables before).
        let mut likely = newest;
        while likely.floor > id {
            match likely.older {
                Some(older) => likely = older,
                None => break,
            }
        }
        likely.find(id).or_else(|| Self::get_elsewhere(newest, likely, id))
    }

    /// [`Self::get`] in every table but `checked`, newest first: an insert
    /// that raced with a growth.
    #[cold]
    #[inline(never)]
    fn get_elsewhere(newest: &'static Table, checked: &'static Table, id: u64) -> Option<&'static Entry> {
        let mut table = Some(newest);
        while let Some(t) = table {
            if !std::ptr::eq(t, checked) {
                if let Some(entry) = t.find(id) {
                    return Some(entry);
                }
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
    fn an_id_found_past_the_table_its_floor_points_to() {
        // An insert that raced with a growth puts its id in a table other
        // than the newest one whose floor is not above it: here, a small id
        // inserted once the map has grown lands in the newest table, while
        // its floor points the lookup at the first one.
        let map = IdMap::new();
        for id in 1_000..20_000u64 {
            map.insert(id, Key(id)).expect("room");
        }
        assert!(map.newest().expect("a table").older.is_some(), "the map grew");
        map.insert(7, Key(70)).expect("room");
        assert_eq!(map.get(7).map(Entry::key), Some(Key(70)));
        assert_eq!(map.remove(7), Some(Key(70)));
        assert_eq!(map.get(7).map(Entry::key), None);
        assert_eq!(map.get(1_000).map(Entry::key), Some(Key(1_000)));
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
