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
//! Ownership: the hot path writes the counters; the state owner
//! ([`crate::state`]) reads them, decides when a completed task's slot is
//! recycled ([`Table::free`]), and is the only one that does so.

use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::Mutex;

use crossbeam_queue::SegQueue;

/// Slots per segment. Segments are allocated whole when first needed.
const SEGMENT: usize = 4096;
/// Segments at most: 4096 × 4096 = 16.7 M concurrent (live + retained) tasks.
const MAX_SEGMENTS: usize = 4096;

/// Slot lifecycle, in `Slot::phase`.
pub(crate) const FREE: u32 = 0;
pub(crate) const LIVE: u32 = 1;
pub(crate) const DONE: u32 = 2;

/// Kinds of task, as codes stored in a slot.
const KINDS: [&str; 5] = ["task", "task", "local", "blocking", "block_on"];

/// The kind name for a code.
pub(crate) fn kind_name(code: u32) -> &'static str {
    KINDS.get((code & 0xff) as usize).copied().unwrap_or("task")
}

#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) fn kind_code(kind: &str) -> u32 {
    KINDS.iter().skip(1).position(|k| *k == kind).map_or(0, |p| p as u32 + 1)
}

/// Flag in `Slot::kind`: recorded by runtime hooks (lean mode), which see
/// no wakers, so the slot has no wake counts and no leak verdict.
pub(crate) const HOOKED: u32 = 0x100;
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
#[derive(Default)]
pub(crate) struct Slot {
    pub generation: AtomicU32,
    /// FREE, LIVE or DONE.
    pub phase: AtomicU32,
    /// Span references held by tokio (and anyone who cloned the span).
    pub refs: AtomicU32,
    /// Interned spawn file (see [`crate::fields::Files`]); 0 = unknown.
    pub file: AtomicU32,
    /// Spawn line (high 32 bits) and column (low 32 bits).
    pub line_col: AtomicU64,
    pub task_id: AtomicU64,
    /// Kind code (see [`kind_name`]), with the [`HOOKED`] flag.
    pub kind: AtomicU32,
    /// Task-dump bookkeeping (see [`crate::recorder`]): TRACED, REPOLL.
    pub dump_flags: AtomicU32,
    pub spawned_at: AtomicU64,
    pub completed_at: AtomicU64,
    pub polls: AtomicU64,
    pub busy: AtomicU64,
    pub poll_started: AtomicU64,
    pub poll_ended: AtomicU64,
    pub wakes: AtomicU64,
    /// `wakes` when the latest poll started: more wakes since then = scheduled.
    pub wakes_at_poll: AtomicU64,
    pub waker_clones: AtomicU64,
    pub waker_drops: AtomicU64,
    pub self_wakes: AtomicU64,
    /// Task name, only for named tasks (boxed so unnamed tasks pay 8 bytes).
    pub name: AtomicPtr<Box<str>>,
}

impl Slot {
    /// Resets the counters for a new task.
    fn reset(&self) {
        for counter in [
            &self.task_id,
            &self.spawned_at,
            &self.completed_at,
            &self.polls,
            &self.busy,
            &self.poll_started,
            &self.poll_ended,
            &self.wakes,
            &self.wakes_at_poll,
            &self.waker_clones,
            &self.waker_drops,
            &self.self_wakes,
            &self.line_col,
        ] {
            counter.store(0, Relaxed);
        }
        self.file.store(0, Relaxed);
        self.kind.store(0, Relaxed);
        self.dump_flags.store(0, Relaxed);
        self.refs.store(1, Relaxed);
        self.take_name();
    }

    /// Sets the name (spawn time only, before the key is published).
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) fn set_name(&self, name: &str) {
        let boxed = Box::into_raw(Box::new(Box::<str>::from(name)));
        let old = self.name.swap(boxed, AcqRel);
        drop_name(old);
    }

    fn take_name(&self) {
        drop_name(self.name.swap(std::ptr::null_mut(), AcqRel));
    }

    /// The name, if any.
    pub(crate) fn name(&self) -> String {
        let ptr = self.name.load(Acquire);
        if ptr.is_null() {
            return String::new();
        }
        // SAFETY: the pointer came from Box::into_raw in `set_name` and is only
        // freed by `take_name`, which the state owner calls when recycling the
        // slot — the same thread that calls `name()` — so it is alive here.
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
    free: SegQueue<u32>,
    /// Serialises segment allocation (rare: once per 4096 slots).
    grow: Mutex<()>,
}

impl Table {
    pub(crate) fn new() -> Table {
        Table {
            segments: (0..MAX_SEGMENTS).map(|_| AtomicPtr::new(std::ptr::null_mut())).collect(),
            high_water: AtomicUsize::new(0),
            free: SegQueue::new(),
            grow: Mutex::new(()),
        }
    }

    /// A fresh slot for a new task, reset, in phase LIVE. `None` when the table is full.
    pub(crate) fn alloc(&self) -> Option<(Key, &Slot)> {
        let index = match self.free.pop() {
            Some(i) => i as usize,
            None => {
                let i = self.high_water.fetch_add(1, Relaxed);
                if i >= SEGMENT * MAX_SEGMENTS {
                    self.high_water.fetch_sub(1, Relaxed);
                    return None;
                }
                self.ensure_segment(i / SEGMENT)?;
                i
            }
        };
        let slot = self.slot(index)?;
        slot.reset();
        slot.phase.store(LIVE, Release);
        Some((Key::new(index, slot.generation.load(Relaxed)), slot))
    }

    /// The slot of `key` if it still belongs to that task.
    #[inline]
    pub(crate) fn get(&self, key: Key) -> Option<&Slot> {
        let slot = self.slot(key.index())?;
        (slot.generation.load(Acquire) == key.generation()).then_some(slot)
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

    /// Recycles the slot at `index` (state owner only). Bumps the generation first
    /// so that late events for the old task no longer match.
    pub(crate) fn free(&self, index: usize) {
        if let Some(slot) = self.slot(index) {
            slot.generation.fetch_add(1, AcqRel);
            slot.phase.store(FREE, Release);
            slot.take_name();
            self.free.push(index as u32);
        }
    }

    /// Key of the task now in `index`, if it is live or done.
    pub(crate) fn key_at(&self, index: usize) -> Option<Key> {
        let slot = self.slot(index)?;
        (slot.phase.load(Acquire) != FREE).then(|| Key::new(index, slot.generation.load(Acquire)))
    }

    fn ensure_segment(&self, segment: usize) -> Option<()> {
        let cell = self.segments.get(segment)?;
        if !cell.load(Acquire).is_null() {
            return Some(());
        }
        let _guard = self.grow.lock().unwrap_or_else(|e| e.into_inner());
        if cell.load(Acquire).is_null() {
            let slots: Box<[Slot]> = (0..SEGMENT).map(|_| Slot::default()).collect();
            cell.store(Box::into_raw(slots) as *mut Slot, Release);
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

    #[test]
    fn keys_round_trip_and_stale_keys_miss() {
        let table = Table::new();
        let (key, slot) = table.alloc().unwrap();
        slot.polls.store(3, Relaxed);
        assert_eq!(table.get(key).unwrap().polls.load(Relaxed), 3);
        table.free(key.index());
        assert!(table.get(key).is_none(), "a stale key must not reach the recycled slot");
        let (again, slot) = table.alloc().unwrap();
        assert_eq!(again.index(), key.index());
        assert_ne!(again, key);
        assert_eq!(slot.polls.load(Relaxed), 0, "recycled slots start from zero");
    }

    #[test]
    fn grows_across_segments() {
        let table = Table::new();
        let keys: Vec<Key> = (0..SEGMENT + 10).map(|_| table.alloc().unwrap().0).collect();
        assert_eq!(table.len(), SEGMENT + 10);
        assert!(keys.iter().all(|k| table.get(*k).is_some()));
        assert_ne!(keys[0].0, 0);
    }

    #[test]
    fn names_are_kept_and_dropped() {
        let table = Table::new();
        let (key, slot) = table.alloc().unwrap();
        slot.set_name("worker-1");
        assert_eq!(table.get(key).unwrap().name(), "worker-1");
        table.free(key.index());
        let (_, slot) = table.alloc().unwrap();
        assert_eq!(slot.name(), "");
    }
}
