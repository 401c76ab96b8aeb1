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
//!   to the table's shared list, where threads that spawn more than they
//!   finish find them;
//! - it counts completions, in total and per spawn location, in a [`Counts`]
//!   that the state owner sums when it reports totals.
//!
//! When the thread exits, its kept tasks are freed (they were older than a
//! blocking thread's keep-alive anyway), its free slots go to the shared
//! list, and its counts are folded into the table's retired totals. A thread
//! that no longer has its thread-locals (while they are being torn down) takes
//! the shared path for everything.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::sync::Arc;

use super::{Key, Slot, Table, NAMED};
use crate::clock;

/// Free slots a thread keeps; past this it hands half to the shared list.
pub(super) const FREE_MAX: usize = 256;
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

    /// Counts one completion at `loc` (owner thread only: load + store, no locked op).
    fn add(&self, loc: LocKey) {
        self.total.store(self.total.load(Relaxed) + 1, Release);
        let start = (loc.0 as u64 ^ loc.1).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54;
        for i in 0..16 {
            let entry = &self.locations[(start as usize + i) % LOCATIONS];
            let count = entry.count.load(Relaxed);
            if count == 0 {
                entry.file.store(loc.0, Relaxed);
                entry.line_col.store(loc.1, Relaxed);
                entry.count.store(1, Release);
                return;
            }
            if entry.file.load(Relaxed) == loc.0 && entry.line_col.load(Relaxed) == loc.1 {
                entry.count.store(count + 1, Release);
                return;
            }
        }
        // No room near this location's entry: counted in the total only.
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
    /// Completed tasks kept, oldest first: key, completion time, named.
    kept: VecDeque<(Key, u64, bool)>,
    counts: Arc<Counts>,
}

impl PerTable {
    fn new(table: &'static Table) -> PerTable {
        let counts = Arc::new(Counts::new());
        table.threads().join(counts.clone());
        PerTable { table, free: Vec::with_capacity(FREE_MAX), kept: VecDeque::new(), counts }
    }

    fn free(&mut self, key: Key, named: bool) {
        if let Some(next) = self.table.release(key, named) {
            if self.free.len() >= FREE_MAX {
                // Hand the older half over in one piece; keep the newer,
                // still-warm half.
                let mut newer = Vec::with_capacity(FREE_MAX);
                newer.extend_from_slice(&self.free[FREE_MAX / 2..]);
                self.free.truncate(FREE_MAX / 2);
                self.table.shared_free.push(std::mem::replace(&mut self.free, newer));
            }
            self.free.push(next);
        }
    }

    fn take(&mut self) -> Option<Key> {
        if let Some(key) = self.free.pop() {
            return Some(key);
        }
        if let Some(batch) = self.table.shared_free.pop() {
            self.free = batch;
        } else {
            // Lowest index first, as a single-threaded program would.
            self.free.extend(self.table.fresh(FRESH)?.rev());
        }
        self.free.pop()
    }
}

impl Drop for PerTable {
    fn drop(&mut self) {
        let mut left = std::mem::take(&mut self.free);
        for (key, _, named) in std::mem::take(&mut self.kept) {
            left.extend(self.table.release(key, named));
        }
        if !left.is_empty() {
            self.table.shared_free.push(left);
        }
        self.table.threads().leave(&self.counts);
    }
}

thread_local! {
    /// This thread's state, per table (nearly always one).
    static LOCAL: RefCell<Vec<PerTable>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's state for `table`; `None` when the thread-locals
/// are gone (thread exit) or in use further up the stack.
fn with_local<R>(table: &'static Table, f: impl FnOnce(&mut PerTable) -> R) -> Option<R> {
    LOCAL
        .try_with(|local| {
            let mut local = local.try_borrow_mut().ok()?;
            let position = match local.iter().position(|p| std::ptr::eq(p.table, table)) {
                Some(p) => p,
                None => {
                    local.push(PerTable::new(table));
                    local.len() - 1
                }
            };
            Some(f(&mut local[position]))
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

/// [`take_free`] without thread-local state.
fn shared_take(table: &'static Table) -> Option<Key> {
    if let Some(mut batch) = table.shared_free.pop() {
        let key = batch.pop();
        if !batch.is_empty() {
            table.shared_free.push(batch);
        }
        if key.is_some() {
            return key;
        }
    }
    table.fresh(1)?.next()
}

/// The task in `slot` (key `key`) completed at `now`: counts it, keeps it,
/// and frees whatever retention no longer covers.
pub(super) fn finished(table: &'static Table, key: Key, slot: &Slot, now: u64) {
    let loc = (slot.file.load(Relaxed), slot.line_col.load(Relaxed));
    let named = slot.kind.load(Relaxed) & NAMED != 0;
    let retention = table.retention;
    let kept = with_local(table, |local| {
        local.counts.add(loc);
        local.kept.push_back((key, now, named));
        while let Some(&(oldest, at, oldest_named)) = local.kept.front() {
            let too_many = local.kept.len() > retention.done;
            if !too_many && clock::ticks_to_ns(now.saturating_sub(at)) < retention.for_ns {
                break;
            }
            local.kept.pop_front();
            local.free(oldest, oldest_named);
        }
    });
    if kept.is_none() {
        // No thread-local state: count it under the lock and free it now.
        table.threads().add_retired(loc);
        if let Some(next) = table.release(key, named) {
            table.shared_free.push(vec![next]);
        }
    }
}
