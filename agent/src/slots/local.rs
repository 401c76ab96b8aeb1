//! What each thread keeps for itself: free slots, its newest completed tasks,
//! and its completion counts.
//!
//! Why per thread: a completion used to be a notice in a shared queue that
//! the state owner drained, read the slot for, kept, and later freed, so every
//! task's slot crossed from the worker to the agent's thread and back, and
//! the next spawn took a slot that had gone cold. Measured on spawn-heavy
//! work, that round trip and the agent thread's share of the two cores were
//! most of the lean mode's cost. Now the thread a task finishes on does all of
//! it, on memory only it writes:
//! - it keeps its newest completed tasks in place (their slots stay DONE, so
//!   scans show them) up to the retention count and age, and frees the oldest
//!   when a newer one needs the room;
//! - it keeps freed slots in a LIFO list, so the next spawn on this thread
//!   reuses a slot that is still in its cache; past [`FREE_MAX`] it hands half
//!   to the table's shared list (one batch in mapped memory, under a lock
//!   taken once per [`BATCH`] slots: see [`super::batches`]), where threads
//!   that spawn more than they finish find them;
//! - it counts completions, in total and per spawn location, in a [`Counts`]
//!   that the state owner sums when it reports totals.
//!
//! When the thread exits, its kept tasks are freed (they were older than a
//! blocking thread's keep-alive anyway), its free slots go to the shared
//! list, and its counts are folded into the table's retired totals. A thread
//! that no longer has its thread-locals (while they are being torn down) takes
//! the shared path for everything.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::sync::Arc;

use super::batches::BATCH;
use super::{Key, Slot, Table, NAMED};
use crate::clock;

/// Free slots a thread keeps; past this it hands half to the shared list.
pub(super) const FREE_MAX: usize = 2 * BATCH;
/// Fresh slots a thread takes from the table at once.
const FRESH: u32 = 32;
/// Spawn locations one thread counts completions for separately.
const LOCATIONS: usize = 1024;

/// How many completed tasks are kept for display, and for how long.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retention {
    /// Kept per thread at most; scans show the newest this many overall.
    pub done: usize,
    /// Age after which a completed task is no longer shown, and is freed by
    /// its thread at its next completion.
    pub for_ns: u64,
}

/// A spawn location as a slot stores it: interned file, line and column.
pub(crate) type LocKey = (u32, u64);

/// Completions one thread counted for one table. Only that thread writes;
/// the state owner reads.
pub(crate) struct Counts {
    total: AtomicU64,
    /// Open addressing by location; an entry is in use once its count is non-zero.
    locations: Box<[LocCount]>,
}

#[derive(Default)]
struct LocCount {
    file: AtomicU32,
    line_col: AtomicU64,
    count: AtomicU64,
}

impl Counts {
    fn new() -> Counts {
        Counts { total: AtomicU64::new(0), locations: (0..LOCATIONS).map(|_| LocCount::default()).collect() }
    }

    /// Counts one completion at `loc` (owner thread only: load + store, no
    /// locked op). `last` is the entry the previous call used, returned for
    /// the next: tasks from one location tend to finish in runs.
    fn add(&self, loc: LocKey, last: usize) -> usize {
        self.total.store(self.total.load(Relaxed) + 1, Release);
        if let Some(entry) = self.locations.get(last) {
            let count = entry.count.load(Relaxed);
            if count != 0 && entry.file.load(Relaxed) == loc.0 && entry.line_col.load(Relaxed) == loc.1 {
                entry.count.store(count + 1, Release);
                return last;
            }
        }
        let start = (loc.0 as u64 ^ loc.1).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54;
        for i in 0..16 {
            let index = (start as usize + i) % LOCATIONS;
            let entry = &self.locations[index];
            let count = entry.count.load(Relaxed);
            if count == 0 {
                entry.file.store(loc.0, Relaxed);
                entry.line_col.store(loc.1, Relaxed);
                entry.count.store(1, Release);
                return index;
            }
            if entry.file.load(Relaxed) == loc.0 && entry.line_col.load(Relaxed) == loc.1 {
                entry.count.store(count + 1, Release);
                return index;
            }
        }
        // No room near this location's entry: counted in the total only.
        last
    }

    /// Adds these counts into `total` and `by_location`.
    fn sum_into(&self, total: &mut u64, by_location: &mut HashMap<LocKey, u64>) {
        *total += self.total.load(Acquire);
        for entry in self.locations.iter() {
            let count = entry.count.load(Acquire);
            if count != 0 {
                let loc = (entry.file.load(Relaxed), entry.line_col.load(Relaxed));
                *by_location.entry(loc).or_default() += count;
            }
        }
    }
}

/// The table's side: the threads' counts, and what exited threads left.
#[derive(Default)]
pub(crate) struct Threads {
    live: Vec<Arc<Counts>>,
    retired_total: u64,
    retired: HashMap<LocKey, u64>,
}

impl Threads {
    /// Registers a thread's counts.
    fn join(&mut self, counts: Arc<Counts>) {
        self.live.push(counts);
    }

    /// Folds an exiting thread's counts into the retired totals.
    fn leave(&mut self, counts: &Arc<Counts>) {
        counts.sum_into(&mut self.retired_total, &mut self.retired);
        self.live.retain(|c| !Arc::ptr_eq(c, counts));
    }

    /// Completions so far, in total and per location.
    pub(crate) fn totals(&self) -> (u64, HashMap<LocKey, u64>) {
        let mut total = self.retired_total;
        let mut by_location = self.retired.clone();
        for counts in &self.live {
            counts.sum_into(&mut total, &mut by_location);
        }
        (total, by_location)
    }

    /// A completion counted where no thread-local state is at hand.
    fn add_retired(&mut self, loc: LocKey) {
        self.retired_total += 1;
        *self.retired.entry(loc).or_default() += 1;
    }
}

/// One thread's state for one table.
struct PerTable {
    table: &'static Table,
    /// Keys of free slots (next generation), newest last.
    free: Vec<Key>,
    /// Completed tasks kept, oldest first: key, and completion time with
    /// [`NAMED_AT`] set for a named task.
    kept: Ring,
    counts: Arc<Counts>,
    /// The entry of `counts` used last (see [`Counts::add`]).
    last_location: usize,
    /// The retention age in clock ticks, and completions until it is
    /// converted again (the clock's rate settles once, early on).
    retain_for_ticks: u64,
    until_convert: u32,
}

/// A queue of kept tasks: a ring of a power-of-two size that doubles when
/// full (`VecDeque` does the same with more checks per operation).
struct Ring {
    items: Vec<(Key, u64)>,
    head: usize,
    len: usize,
}

/// Kept tasks a thread makes room for when it sets up; a larger retention
/// count grows the ring as it fills.
const KEPT_ROOM_MAX: usize = 4096;

impl Ring {
    /// A ring with room for `n` items (rounded up to a power of two).
    fn with_room(n: usize) -> Ring {
        Ring { items: vec![(Key(0), 0); n.next_power_of_two()], head: 0, len: 0 }
    }

    #[inline]
    fn push_back(&mut self, item: (Key, u64)) {
        if self.len == self.items.len() {
            self.grow();
        }
        let mask = self.items.len() - 1;
        self.items[(self.head + self.len) & mask] = item;
        self.len += 1;
    }

    #[inline]
    fn front(&self) -> Option<(Key, u64)> {
        if self.len == 0 {
            return None;
        }
        self.items.get(self.head).copied()
    }

    #[inline]
    fn pop_front(&mut self) {
        if self.len > 0 {
            self.head = (self.head + 1) & (self.items.len() - 1);
            self.len -= 1;
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    #[cold]
    fn grow(&mut self) {
        let size = (self.items.len() * 2).max(16);
        let mut items = Vec::with_capacity(size);
        items.extend((0..self.len).map(|i| self.items[(self.head + i) & (self.items.len().max(1) - 1)]));
        items.resize(size, (Key(0), 0));
        self.items = items;
        self.head = 0;
    }
}

/// `PerTable::kept`: the completion-time bit that marks a named task. Clock
/// ticks stay far below it (2^63 ticks are a century at 3 GHz).
const NAMED_AT: u64 = 1 << 63;

/// Completions between conversions of the retention age into ticks.
const CONVERT_EVERY: u32 = 4096;

impl PerTable {
    fn new(table: &'static Table) -> PerTable {
        let counts = Arc::new(Counts::new());
        table.threads().join(counts.clone());
        PerTable {
            table,
            free: Vec::with_capacity(FREE_MAX),
            // Room for every task retention keeps (up to a point), taken
            // now rather than grown mid-burst (see `crate::pages`).
            kept: Ring::with_room((table.retention.done + 1).min(KEPT_ROOM_MAX)),
            counts,
            last_location: 0,
            retain_for_ticks: 0,
            until_convert: 0,
        }
    }

    /// Counts, keeps and frees for the completion of `key`'s task (see [`finished`]).
    fn finished(&mut self, key: Key, loc: LocKey, named: bool, now: u64) {
        self.last_location = self.counts.add(loc, self.last_location);
        if self.until_convert == 0 {
            self.retain_for_ticks = clock::ns_to_ticks(self.table.retention.for_ns);
            self.until_convert = CONVERT_EVERY;
        }
        self.until_convert -= 1;
        self.kept.push_back((key, now | if named { NAMED_AT } else { 0 }));
        let done = self.table.retention.done;
        while let Some((oldest, at)) = self.kept.front() {
            let too_many = self.kept.len() > done;
            if !too_many && now.saturating_sub(at & !NAMED_AT) < self.retain_for_ticks {
                break;
            }
            self.kept.pop_front();
            self.free(oldest, at & NAMED_AT != 0);
        }
    }

    fn free(&mut self, key: Key, named: bool) {
        if let Some(next) = self.table.release(key, named) {
            // Hand the older half over in one batch; keep the newer,
            // still-warm half. (Kept here, past the limit, if no batch can
            // be mapped.)
            if self.free.len() >= FREE_MAX && self.table.shared_free.push(&self.free[..BATCH]) {
                self.free.drain(..BATCH);
            }
            self.free.push(next);
        }
    }

    fn take(&mut self) -> Option<Key> {
        if let Some(key) = self.free.pop() {
            // The next spawn's slot, most likely freed on another core,
            // travels while this task is set up (see `crate::prefetch`).
            if let Some(next) = self.free.last() {
                self.table.prefetch(*next);
            }
            return Some(key);
        }
        if !self.table.shared_free.pop_into(&mut self.free) {
            // Lowest index first, as a single-threaded program would.
            self.free.extend(self.table.fresh(FRESH)?.rev());
        }
        self.free.pop()
    }
}

impl Drop for PerTable {
    fn drop(&mut self) {
        if LAST.get().is_some_and(|last| std::ptr::eq(last.as_ptr(), self)) {
            LAST.set(None);
        }
        let mut left = std::mem::take(&mut self.free);
        while let Some((key, at)) = self.kept.front() {
            self.kept.pop_front();
            left.extend(self.table.release(key, at & NAMED_AT != 0));
        }
        // Lost to the table if no batch can be mapped: the OS refused a
        // few pages while this thread exits.
        self.table.shared_free.push(&left);
        self.table.threads().leave(&self.counts);
    }
}

thread_local! {
    /// This thread's state, per table (nearly always one). Boxed, so that
    /// `LAST` may point into it.
    #[allow(clippy::vec_box)] // boxed for stable addresses, not for the heap
    static LOCAL: RefCell<Vec<Box<PerTable>>> = const { RefCell::new(Vec::new()) };
    /// The entry of `LOCAL` used last: the hooks' way in, without a borrow
    /// or a search. Cleared by that entry's drop.
    static LAST: Cell<Option<NonNull<PerTable>>> = const { Cell::new(None) };
    /// Set while some `PerTable` of this thread is in use: a call further
    /// down the stack then takes the shared path.
    static IN_USE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` on this thread's state for `table`; `None` when the thread-locals
/// are gone (thread exit) or in use further up the stack.
#[inline]
fn with_local<R>(table: &'static Table, f: impl FnOnce(&mut PerTable) -> R) -> Option<R> {
    if IN_USE.get() {
        return None;
    }
    if let Some(last) = LAST.get() {
        // SAFETY: `LAST` points to a live boxed `PerTable` of this thread's
        // `LOCAL` (its drop clears `LAST`), and `IN_USE` was clear, so no
        // other reference to it exists.
        let local = unsafe { &mut *last.as_ptr() };
        if std::ptr::eq(local.table, table) {
            IN_USE.set(true);
            let result = f(local);
            IN_USE.set(false);
            return Some(result);
        }
    }
    with_local_found(table, f)
}

/// [`with_local`] through `LOCAL`: another table, or the first use.
#[inline(never)]
fn with_local_found<R>(table: &'static Table, f: impl FnOnce(&mut PerTable) -> R) -> Option<R> {
    LOCAL
        .try_with(|local| {
            let mut local = local.try_borrow_mut().ok()?;
            let position = match local.iter().position(|p| std::ptr::eq(p.table, table)) {
                Some(p) => p,
                None => {
                    local.push(Box::new(PerTable::new(table)));
                    local.len() - 1
                }
            };
            let found: &mut PerTable = &mut local[position];
            LAST.set(Some(NonNull::from(&mut *found)));
            IN_USE.set(true);
            let result = f(found);
            IN_USE.set(false);
            Some(result)
        })
        .ok()
        .flatten()
}

/// The key of a free slot for a new task: this thread's newest free slot,
/// else a batch from the shared list, else fresh ones; `None` when the table
/// is full.
pub(super) fn take_free(table: &'static Table) -> Option<Key> {
    match with_local(table, PerTable::take) {
        Some(taken) => taken,
        None => shared_take(table),
    }
}

/// Sets up this thread's state for `table`, if it has none yet.
pub(super) fn settle(table: &'static Table) {
    let _ = with_local(table, |_| ());
}

/// Puts back a key from [`take_free`] that went unused.
pub(super) fn give_back(table: &'static Table, key: Key) {
    if with_local(table, |local| local.free.push(key)).is_none() {
        table.shared_free.push(&[key]);
    }
}

/// [`take_free`] without thread-local state.
fn shared_take(table: &'static Table) -> Option<Key> {
    if let Some(key) = table.shared_free.pop_one() {
        return Some(key);
    }
    table.fresh(1)?.next()
}

/// The task in `slot` (key `key`) completed at `now`: counts it, keeps it,
/// and frees whatever retention no longer covers.
pub(super) fn finished(table: &'static Table, key: Key, slot: &Slot, now: u64) {
    let loc = (slot.file.load(Relaxed), slot.line_col.load(Relaxed));
    let named = slot.kind.load(Relaxed) & NAMED != 0;
    if with_local(table, |local| local.finished(key, loc, named, now)).is_none() {
        // No thread-local state: count it under the lock and free it now.
        table.threads().add_retired(loc);
        if let Some(next) = table.release(key, named) {
            table.shared_free.push(&[next]);
        }
    }
}
