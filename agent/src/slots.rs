//! The task table: one slot of atomics per task, addressed by a key that tokio
//! hands back to us on every poll and wake.
//!
//! Why slots: the hot path (poll start/end, waker clone/drop/wake) must not
//! take a lock or allocate. Each task owns a slot in a table that only grows;
//! its key (`index` + `generation`) is the tracing span id, so tokio gives the
//! key back on `enter`/`exit` and in waker events and we reach the slot with
//! two loads. Slots are never returned to the allocator, only recycled, so a
//! late event carrying a stale key touches valid memory; the generation check
//! makes it a no-op.
//!
//! Ownership: the hot path writes the counters; the thread a task finishes on
//! keeps its slot for display and later frees it ([`local`]); the state owner
//! ([`crate::state`]) only reads, checking each slot's generation again after
//! reading it, since a slot can be freed and reused while it is read.

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering::*};
use std::sync::Mutex;

use crossbeam_queue::SegQueue;

mod batches;
mod local;

use batches::Batches;
use local::Threads;
pub(crate) use local::{LocKey, Retention};

/// Slots per segment. Segments are allocated whole when first needed.
const SEGMENT: usize = 4096;
/// Segments at most: 4096 × 4096 = 16.7 M concurrent (live + retained) tasks.
const MAX_SEGMENTS: usize = 4096;

/// Slot lifecycle, in `Slot::phase`.
pub(crate) const FREE: u8 = 0;
pub(crate) const LIVE: u8 = 1;
pub(crate) const DONE: u8 = 2;

/// Kinds of task, as codes stored in a slot.
const KINDS: [&str; 5] = ["task", "task", "local", "blocking", "block_on"];

/// The kind name for a code.
pub(crate) fn kind_name(code: u32) -> &'static str {
    KINDS.get((code & 0xff) as usize).copied().unwrap_or("task")
}

pub(crate) fn kind_code(kind: &str) -> u32 {
    KINDS.iter().skip(1).position(|k| *k == kind).map_or(0, |p| p as u32 + 1)
}

/// Flag in `Slot::kind`: recorded by runtime hooks (lean mode), which see
/// no wakers, so the slot has no wake counts and no leak verdict.
pub(crate) const HOOKED: u32 = 0x100;
/// Flag in `Slot::kind`: the task has a name (see [`Slot::set_name`]), which
/// its slot's release must drop.
pub(crate) const NAMED: u32 = 0x200;
/// `Slot::kind >> TAG_SHIFT`: which hooked builder's runtime the task is on.
pub(crate) const TAG_SHIFT: u32 = 16;

/// A task's key: `(generation << 32) | (index + 1)`, never 0, used as span id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Key(pub(crate) u64);

impl Key {
    fn new(index: usize, generation: u32) -> Key {
        Key(((generation as u64) << 32) | (index as u64 + 1))
    }
    pub(crate) fn index(self) -> usize {
        ((self.0 & 0xffff_ffff) as usize).wrapping_sub(1)
    }
    fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

/// Everything recorded about one task. Times are raw clock ticks (0 = never).
///
/// Two cache lines, aligned: the first holds what every poll and the
/// completion touch, so a task polled on another thread than the one that
/// spawned it moves one line between cores, not the whole slot; the second
/// holds what spawn writes once and the full mode's wake and waker counts.
#[derive(Default)]
#[repr(C, align(64))]
pub(crate) struct Slot {
    // First line: polls and completion.
    pub generation: AtomicU32,
    /// Kind code (see [`kind_name`]), with the [`HOOKED`] flag.
    pub kind: AtomicU32,
    /// FREE, LIVE or DONE.
    pub phase: AtomicU8,
    /// Task-dump bookkeeping (see [`crate::recorder`]): TRACED, REPOLL.
    pub dump_flags: AtomicU8,
    /// Woken since its latest poll started: scheduled (full mode).
    pub woken: AtomicU8,
    /// In a poll now. (Not `poll_started > poll_ended`: the lean mode's
    /// clock can give a poll's start the same reading as the previous end.)
    pub running: AtomicU8,
    /// Interned spawn file (see [`crate::files::Files`]); 0 = unknown.
    pub file: AtomicU32,
    pub poll_started: AtomicU64,
    pub poll_ended: AtomicU64,
    pub polls: AtomicU64,
    pub busy: AtomicU64,
    pub completed_at: AtomicU64,
    /// Spawn line (high 32 bits) and column (low 32 bits). Here, not with
    /// the other spawn fields, because a completion counts its location.
    pub line_col: AtomicU64,
    // Second line: spawn, and wakes (full mode).
    pub task_id: AtomicU64,
    pub spawned_at: AtomicU64,
    /// Wakes by reference.
    pub wakes_by_ref: AtomicU64,
    /// Wakes by value: each wakes the task and consumes a waker, so one
    /// counter (one atomic add per event) serves both [`Slot::wakes`] and
    /// [`Slot::waker_drops`].
    pub wakes_by_val: AtomicU64,
    pub waker_clones: AtomicU64,
    /// Wakers dropped without waking (see [`Slot::waker_drops`]).
    pub dropped_unused: AtomicU64,
    /// Span references held by tokio (and anyone who cloned the span).
    pub refs: AtomicU32,
    /// Wakes from inside the task's own poll. Only the polling thread writes
    /// it, and tokio orders a task's polls, so it is a plain load and store;
    /// it stops at `u32::MAX`.
    pub self_wakes: AtomicU32,
    /// Task name, only for named tasks (boxed so unnamed tasks pay 8 bytes).
    pub name: AtomicPtr<Box<str>>,
}

const _: () = assert!(std::mem::size_of::<Slot>() == 128);

// SAFETY: atomics and an atomic pointer; all zero is a FREE slot of
// generation 0 with no name (what `Slot::default()` is).
unsafe impl crate::pages::Zeroable for Slot {}

impl Slot {
    /// Zeroes the first line's counters, on the thread that frees the slot
    /// (its line 1 is that thread's: it just recorded the completion), so
    /// that a hooked spawn, most likely on another core, writes only what it
    /// knows (see [`Table::open`]).
    fn clear_polls(&self) {
        for counter in [&self.completed_at, &self.polls, &self.busy, &self.poll_started, &self.poll_ended] {
            counter.store(0, Relaxed);
        }
        self.dump_flags.store(0, Relaxed);
        self.woken.store(0, Relaxed);
        self.running.store(0, Relaxed);
    }

    /// Zeroes the second line's counters, on the spawning thread (see
    /// [`Table::open`]).
    fn clear_spawn(&self) {
        for counter in [&self.wakes_by_ref, &self.wakes_by_val, &self.waker_clones, &self.dropped_unused] {
            counter.store(0, Relaxed);
        }
        self.refs.store(1, Relaxed);
        self.self_wakes.store(0, Relaxed);
    }

    /// Wakes, by reference and by value.
    pub(crate) fn wakes(&self) -> u64 {
        self.wakes_by_ref.load(Acquire).wrapping_add(self.wakes_by_val.load(Acquire))
    }

    /// Wakers dropped, including those consumed by waking by value.
    pub(crate) fn waker_drops(&self) -> u64 {
        self.dropped_unused.load(Acquire).wrapping_add(self.wakes_by_val.load(Acquire))
    }

    /// Sets the name (spawn time only, before the key is published).
    pub(crate) fn set_name(&self, name: &str) {
        let boxed = Box::into_raw(Box::new(Box::<str>::from(name)));
        let old = self.name.swap(boxed, AcqRel);
        drop_name(old);
        self.kind.fetch_or(NAMED, Relaxed);
    }

    /// The name, if any.
    pub(crate) fn name(&self) -> String {
        let ptr = self.name.load(Acquire);
        if ptr.is_null() {
            return String::new();
        }
        // SAFETY: the pointer came from Box::into_raw in `set_name`. Once a
        // state owner reads the table, a freed slot's name is dropped only by
        // `Table::bury_names`, which that owner calls between its scans, on
        // the thread that calls `name()`; so it is alive here.
        unsafe { (**ptr).to_owned() }
    }
}

fn drop_name(ptr: *mut Box<str>) {
    if !ptr.is_null() {
        // SAFETY: produced by Box::into_raw in `set_name`; swapped out exactly once.
        drop(unsafe { Box::from_raw(ptr) });
    }
}

/// The slot table. One per process.
pub(crate) struct Table {
    segments: Box<[AtomicPtr<Slot>]>,
    /// Indexes below this have been handed out at least once.
    high_water: AtomicUsize,
    /// Free slots no thread keeps for itself (see [`local`]).
    shared_free: Batches,
    /// Serialises segment allocation (rare: once per 4096 slots).
    grow: Mutex<()>,
    retention: Retention,
    /// Every thread's completion counts (see [`local`]).
    threads: Mutex<Threads>,
    /// Names of freed slots, dropped by the state owner between its scans
    /// (it may be reading one while a worker frees the slot); set once a
    /// state owner reads this table, until then names are dropped at once.
    graveyard: SegQueue<usize>,
    read: AtomicBool,
}

impl Table {
    pub(crate) fn new(retention: Retention) -> Table {
        Table {
            segments: (0..MAX_SEGMENTS).map(|_| AtomicPtr::new(std::ptr::null_mut())).collect(),
            high_water: AtomicUsize::new(0),
            shared_free: Batches::new(),
            grow: Mutex::new(()),
            retention,
            threads: Mutex::new(Threads::default()),
            graveyard: SegQueue::new(),
            read: AtomicBool::new(false),
        }
    }

    /// A slot for a new task, opened (see [`Self::open`]): counters zero, phase
    /// LIVE, spawn fields for the caller to write. `None` when the table is full.
    pub(crate) fn alloc(&'static self) -> Option<(Key, &'static Slot)> {
        let (key, slot) = self.reserve()?;
        self.open(slot);
        Some((key, slot))
    }

    /// A slot for a new task, not yet written: call [`Self::open`] on it
    /// before the task can be seen. (The hooks publish the task's id first:
    /// the slot's lines are usually another core's, and a locked instruction
    /// after their stores would wait for all of them.)
    pub(crate) fn reserve(&'static self) -> Option<(Key, &'static Slot)> {
        // The key comes with the slot's generation: the slot is only written,
        // never read, so its lines need not arrive before we go on.
        let key = local::take_free(self)?;
        Some((key, self.slot(key.index())?))
    }

    /// Sets up this thread's own state for the table now (see [`local`]),
    /// rather than at its first spawn or completion.
    pub(crate) fn settle_thread(&'static self) {
        local::settle(self);
    }

    /// Hands back a slot from [`Self::reserve`] that was not opened.
    pub(crate) fn unreserve(&'static self, key: Key) {
        local::give_back(self, key);
    }

    /// Makes a reserved slot LIVE; the spawn then writes kind, location, id,
    /// name and spawn time. The first line's counters are zero already: fresh
    /// slots are, and [`Self::release`] clears them.
    /// Why: that line is usually another core's (the one that finished the
    /// slot's previous task), and every store to it waits in the spawning
    /// core's store buffer until the line arrives; `perf` showed tokio's own
    /// stores right after the spawn hook stalling behind them.
    pub(crate) fn open(&self, slot: &Slot) {
        slot.clear_spawn();
        slot.phase.store(LIVE, Release);
    }

    /// The keys of `n` slots never handed out before (fewer at the table's
    /// end), with their segments allocated; `None` when the table is full.
    fn fresh(&self, n: u32) -> Option<impl DoubleEndedIterator<Item = Key>> {
        const END: usize = SEGMENT * MAX_SEGMENTS;
        let start = self.high_water.fetch_add(n as usize, Relaxed);
        if start >= END {
            // Keep the counter from creeping towards overflow.
            self.high_water.fetch_sub(n as usize, Relaxed);
            return None;
        }
        let end = (start + n as usize).min(END);
        for segment in start / SEGMENT..=(end - 1) / SEGMENT {
            self.ensure_segment(segment)?;
        }
        Some((start..end).map(|index| Key::new(index, 0)))
    }

    /// The task of `key` (in `slot`) completed at `now`: marks it DONE and
    /// hands it to this thread's retention (see [`local`]).
    pub(crate) fn finish(&'static self, key: Key, slot: &Slot, now: u64) {
        slot.completed_at.store(now, Relaxed);
        slot.phase.store(DONE, Release);
        local::finished(self, key, slot, now);
    }

    /// Frees the slot of `key`, whose task has a name if `named`, and returns
    /// the slot's next key. Bumps the generation first so that late events for
    /// the old task no longer match. Only the thread that keeps the task calls
    /// this, so the slot is `key`'s; it is only written (but for a name),
    /// which does not wait for a line that went cold while the task was kept.
    fn release(&self, key: Key, named: bool) -> Option<Key> {
        let slot = self.slot(key.index())?;
        let next = key.generation().wrapping_add(1);
        slot.generation.store(next, Release);
        slot.phase.store(FREE, Release);
        slot.clear_polls();
        let name = if named { slot.name.swap(std::ptr::null_mut(), AcqRel) } else { std::ptr::null_mut() };
        if !name.is_null() {
            if self.read.load(Acquire) {
                self.graveyard.push(name as usize);
            } else {
                drop_name(name);
            }
        }
        Some(Key::new(key.index(), next))
    }

    /// Names of slots freed from now on wait for [`Self::bury_names`]. Called
    /// before a state owner may read the table: when it is created, and
    /// before that for the process's recorder.
    pub(crate) fn expect_reader(&self) {
        self.read.store(true, Release);
    }

    /// Called by the state owner between its scans: drops the names of slots
    /// freed since.
    pub(crate) fn bury_names(&self) {
        self.expect_reader();
        while let Some(name) = self.graveyard.pop() {
            drop_name(name as *mut Box<str>);
        }
    }

    /// Completions so far, in total and per spawn location.
    pub(crate) fn completions(&self) -> (u64, std::collections::HashMap<LocKey, u64>) {
        self.threads().totals()
    }

    fn threads(&self) -> std::sync::MutexGuard<'_, Threads> {
        self.threads.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The retention settings.
    pub(crate) fn retention(&self) -> Retention {
        self.retention
    }

    /// The slot of `key` if it still belongs to that task.
    #[inline]
    pub(crate) fn get(&self, key: Key) -> Option<&Slot> {
        let slot = self.slot(key.index())?;
        (slot.generation.load(Acquire) == key.generation()).then_some(slot)
    }

    /// The slot of `key`'s task while tracing holds its span open: the
    /// span's id *is* the key, and the slot is freed only once the span
    /// closes, so no generation check is needed.
    ///
    /// Why it matters: the check read the slot before the poll wrote it, and
    /// that read waited for the line from whichever core touched the task
    /// last (its spawner, or its waker). Waker events, which may outlive the
    /// task, still go through [`Self::get`].
    #[cfg(feature = "tracing")]
    #[inline]
    pub(crate) fn open_span(&self, key: Key) -> Option<&Slot> {
        self.slot(key.index())
    }

    /// Whether `slot` still holds `key`'s task after reading it (a scan's
    /// check that the task did not finish and hand its slot to another while
    /// it was read).
    pub(crate) fn still(&self, key: Key, slot: &Slot) -> bool {
        std::sync::atomic::fence(Acquire);
        slot.generation.load(Relaxed) == key.generation()
    }

    /// Asks for both lines of `key`'s slot, to be written soon.
    #[inline]
    pub(crate) fn prefetch(&self, key: Key) {
        if let Some(slot) = self.slot(key.index()) {
            let at: *const Slot = slot;
            crate::prefetch::for_write(at);
            crate::prefetch::for_write(at.cast::<u8>().wrapping_add(64));
        }
    }

    /// The slot at `index`, whoever it belongs to (for scans).
    #[inline]
    pub(crate) fn slot(&self, index: usize) -> Option<&Slot> {
        let segment = self.segments.get(index / SEGMENT)?.load(Acquire);
        if segment.is_null() {
            return None;
        }
        // SAFETY: a non-null segment pointer points to SEGMENT slots allocated in
        // `ensure_segment` and never freed; `index % SEGMENT` is in bounds.
        Some(unsafe { &*segment.add(index % SEGMENT) })
    }

    /// Number of indexes ever handed out: scans look at `0..len()`.
    pub(crate) fn len(&self) -> usize {
        self.high_water.load(Acquire).min(SEGMENT * MAX_SEGMENTS)
    }

    /// The key and slot of the task now in `index`, if it is live or done.
    pub(crate) fn held(&self, index: usize) -> Option<(Key, &Slot)> {
        let slot = self.slot(index)?;
        (slot.phase.load(Acquire) != FREE).then(|| (Key::new(index, slot.generation.load(Acquire)), slot))
    }

    fn ensure_segment(&self, segment: usize) -> Option<()> {
        let cell = self.segments.get(segment)?;
        if !cell.load(Acquire).is_null() {
            return Some(());
        }
        let _guard = self.grow.lock().unwrap_or_else(|e| e.into_inner());
        if cell.load(Acquire).is_null() {
            // Mapped, not allocated: see `crate::pages`.
            let slots = crate::pages::zeroed::<Slot>(SEGMENT)?;
            cell.store(slots.as_ptr() as *mut Slot, Release);
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_codes() {
        for k in ["task", "local", "blocking", "block_on"] {
            assert_eq!(kind_name(kind_code(k)), k);
        }
        assert_eq!(kind_name(kind_code("unknown")), "task");
    }

    fn table(done: usize) -> &'static Table {
        crate::clock::start();
        Box::leak(Box::new(Table::new(Retention { done, for_ns: u64::MAX })))
    }

    fn finish(table: &'static Table, key: Key) {
        let slot = table.get(key).expect("live");
        table.finish(key, slot, crate::clock::raw());
    }

    #[test]
    fn keys_round_trip_and_stale_keys_miss() {
        let table = table(0);
        let (key, slot) = table.alloc().unwrap();
        slot.polls.store(3, Relaxed);
        assert_eq!(table.get(key).unwrap().polls.load(Relaxed), 3);
        finish(table, key);
        assert!(table.get(key).is_none(), "a stale key must not reach the recycled slot");
        let (again, slot) = table.alloc().unwrap();
        assert_eq!(again.index(), key.index(), "the slot just freed on this thread is reused first");
        assert_ne!(again, key);
        assert_eq!(slot.polls.load(Relaxed), 0, "recycled slots start from zero");
    }

    #[test]
    fn grows_across_segments() {
        let table = table(0);
        let keys: Vec<Key> = (0..SEGMENT + 10).map(|_| table.alloc().unwrap().0).collect();
        // Threads take fresh slots a few at a time.
        assert!((SEGMENT + 10..SEGMENT + 10 + 32).contains(&table.len()), "{}", table.len());
        assert!(keys.iter().all(|k| table.get(*k).is_some()));
        assert_ne!(keys[0].0, 0);
    }

    #[test]
    fn names_are_kept_and_dropped() {
        let table = table(0);
        let (key, slot) = table.alloc().unwrap();
        slot.set_name("worker-1");
        assert_eq!(table.get(key).unwrap().name(), "worker-1");
        finish(table, key);
        let (_, slot) = table.alloc().unwrap();
        assert_eq!(slot.name(), "");
    }

    #[test]
    fn a_hooked_task_in_a_recycled_slot_starts_from_zero() {
        // No retention: a finished task's slot is freed at once and reused next.
        let table = table(0);
        let (old, slot) = table.reserve().unwrap();
        table.open(slot);
        for counter in [&slot.polls, &slot.busy, &slot.poll_started, &slot.poll_ended, &slot.wakes_by_ref] {
            counter.store(7, Relaxed);
        }
        slot.running.store(1, Relaxed);
        slot.dump_flags.store(1, Relaxed);
        finish(table, old);
        let (new, again) = table.reserve().unwrap();
        assert!(std::ptr::eq(slot, again), "the freed slot is the next one handed out");
        assert_ne!(new, old, "with the next generation");
        table.open(again);
        for counter in [
            &again.polls,
            &again.busy,
            &again.poll_started,
            &again.poll_ended,
            &again.completed_at,
            &again.wakes_by_ref,
        ] {
            assert_eq!(counter.load(Relaxed), 0);
        }
        assert_eq!((again.running.load(Relaxed), again.dump_flags.load(Relaxed)), (0, 0));
        assert_eq!(again.phase.load(Relaxed), LIVE);
    }

    #[test]
    fn finished_tasks_are_kept_up_to_the_retention_count_then_freed() {
        let table = table(3);
        let keys: Vec<Key> = (0..5).map(|_| table.alloc().unwrap().0).collect();
        for key in &keys {
            finish(table, *key);
        }
        let kept: Vec<bool> = keys.iter().map(|k| table.get(*k).is_some()).collect();
        assert_eq!(kept, [false, false, true, true, true], "the 3 newest stay, DONE");
        assert!(keys[2..].iter().all(|k| table.get(*k).unwrap().phase.load(Relaxed) == DONE));
        let (total, by_location) = table.completions();
        assert_eq!(total, 5);
        assert_eq!(by_location.values().sum::<u64>(), 5);
    }

    #[test]
    fn slots_freed_on_one_thread_are_reused_by_another_and_counts_survive_its_exit() {
        let table = table(0);
        let keys: Vec<Key> = (0..2 * local::FREE_MAX).map(|_| table.alloc().unwrap().0).collect();
        std::thread::spawn(move || {
            for key in keys {
                finish(table, key);
            }
        })
        .join()
        .expect("finisher");
        let before = table.len();
        for _ in 0..2 * local::FREE_MAX {
            table.alloc().unwrap();
        }
        assert_eq!(table.len(), before, "the finisher's free slots came back when it exited");
        assert_eq!(table.completions().0, 2 * local::FREE_MAX as u64, "its counts were folded in");
    }
}
