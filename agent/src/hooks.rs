//! The lean mode: task lifecycles from tokio's runtime hooks instead of its
//! `tracing` feature.
//!
//! Why: tokio's `tracing` feature costs a program something even with no
//! subscriber at all (every task is wrapped in a span, every waker op emits an
//! event), more than the whole budget of an agent that a service leaves on.
//! Runtime hooks (`on_task_spawn`, `on_before_task_poll`, `on_after_task_poll`,
//! `on_task_terminate`, unstable) cost close to nothing when set and need no
//! tokio feature, so a build without `tracing` pays only for what the agent
//! records.
//!
//! What it gives up: hooks see no wakes and no wakers, and tokio passes them
//! no task name or kind. A hooked task is running, scheduled (spawned, never
//! polled yet) or idle, with its parked time, polls and busy time; it is never
//! called leaked, since nothing tells whether a waker still exists. Stacks
//! come from task dumps as in the full mode.
//!
//! Hooks hand back tokio's task id, not a key of ours, so each task's slot is
//! found through `ids`: a lock-free table that spawn and termination write,
//! behind a per-thread cache that answers the polls of tasks a thread has seen.
//! Times come from `clock::coarse`, a clock with 10 ms ticks: two
//! counter reads per poll were most of what this mode cost.

use std::cell::Cell;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering::*};

use tokio::runtime::TaskMeta;

use crate::clock;
use crate::files::FILES;
use crate::recorder::{end_poll, exit_slot, no_dump_flags, on_agent_thread, start_poll, unrecorded, Recorder, TRACED};
use crate::slots::{Key, Slot, HOOKED, LIVE, TAG_SHIFT};
use crate::tags;

mod ids;

/// Installs the recording hooks on `builder`, feeding `recorder`.
/// Returns the builder's tag (see [`crate::tags`]).
pub(crate) fn install(builder: &mut tokio::runtime::Builder, recorder: &'static Recorder) -> usize {
    let tag = tags::new_tag();
    let runtime = tags::entry(tag);
    builder
        .on_task_spawn(move |meta| spawn(recorder, meta, tag))
        .on_before_task_poll(move |meta| before_poll(recorder, meta, runtime))
        .on_after_task_poll(move |meta| after_poll(recorder, meta))
        .on_task_terminate(move |meta| terminate(recorder, meta));
    tag
}

/// Before a dump of the runtime `handle`: marks its hooked tasks so that the
/// poll the dump causes is not counted as the program's.
///
/// tokio polls every task of the runtime once in tracing mode (without
/// calling the poll hooks) and then wakes it, so each is polled once more
/// through the scheduler, hooks and all. That re-poll is the first poll of a
/// marked task, and [`Recorder::enter_at`] skips it.
pub(crate) fn before_dump(handle: &tokio::runtime::Handle) {
    let Some(recorder) = crate::recorder_if_started() else { return };
    if !crate::recorder::hooked() {
        return;
    }
    let tags = tags::tags_of(tags::runtime_u64(handle));
    for index in 0..recorder.table.len() {
        let Some(slot) = recorder.table.slot(index) else { continue };
        let kind = slot.kind.load(Acquire);
        if slot.phase.load(Acquire) == LIVE && kind & HOOKED != 0 && tags.contains(&(kind >> TAG_SHIFT)) {
            slot.dump_flags.fetch_or(TRACED, AcqRel);
        }
    }
}

/// Learns which runtime a hooked builder built (its entry of [`tags::RUNTIMES`]),
/// from inside its first poll.
#[cold]
fn learn_runtime(runtime: &AtomicU64) {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        runtime.store(tags::runtime_u64(&handle), Release);
    }
}

fn spawn(recorder: &'static Recorder, meta: &TaskMeta<'_>, tag: usize) {
    if on_agent_thread() {
        return;
    }
    if !SETTLED.get() {
        settle_thread(recorder);
    }
    let Some((key, slot)) = recorder.table.reserve() else {
        recorder.dropped.fetch_add(1, Relaxed);
        return;
    };
    let id = id_u64(meta.id());
    // The id first: no task can be polled before this hook returns, and the
    // map's compare-and-swap would otherwise wait for the slot's stores.
    let Some(entry) = IDS.insert(id, key) else {
        recorder.table.unreserve(key);
        recorder.dropped.fetch_add(1, Relaxed);
        return;
    };
    recorder.table.open(slot);
    let location = meta.spawned_at();
    slot.task_id.store(id, Relaxed);
    slot.kind.store(HOOKED | ((tag as u32) << TAG_SHIFT), Relaxed);
    slot.file.store(FILES.get().map_or(0, |files| files.intern(location.file())), Relaxed);
    slot.line_col.store(((location.line() as u64) << 32) | location.column() as u64, Relaxed);
    slot.spawned_at.store(clock::coarse::now(), Release);
    remember(id, Live { key, slot, entry });
    IDS.prefetch_insert(id + 1);
}

// The poll hooks run twice per poll. Each is split in two: a fast path,
// inlined into tokio's hook closure, for the common case (the task is in
// this thread's cache, the clock ticks, no dump is about), which writes the
// slot and calls nothing; and everything else, out of line and reached by a
// tail call. Calling nothing lets the closure skip saving and restoring
// registers (callgrind: before the split, about a quarter of the two
// closures' instructions on the channel workload went to that).
#[inline(always)]
fn before_poll(recorder: &'static Recorder, meta: &TaskMeta<'_>, runtime: &'static AtomicU64) {
    let id = id_u64(meta.id());
    if let Some(live) = recent(id) {
        if let Some(now) = clock::coarse::ticking() {
            if runtime.load(Relaxed) != 0 && no_dump_flags() {
                start_poll(live.slot, now);
                POLLING.set(id);
                return;
            }
        }
    }
    before_poll_slow(recorder, id, runtime);
}

/// [`before_poll`] in every case: the runtime not learnt yet, the task not
/// in this thread's cache, the clock asleep, a dump about.
#[inline(never)]
fn before_poll_slow(recorder: &'static Recorder, id: u64, runtime: &'static AtomicU64) {
    if runtime.load(Relaxed) == 0 {
        learn_runtime(runtime);
    }
    if !SETTLED.get() {
        settle_thread(recorder);
    }
    let Some(live) = find(recorder, id) else { return };
    let now = clock::coarse::now();
    recorder.enter_at(live.key, live.slot, now);
    POLLING.set(id);
}

#[inline(always)]
fn after_poll(recorder: &'static Recorder, meta: &TaskMeta<'_>) {
    let id = id_u64(meta.id());
    if POLLING.get() == id {
        if let Some(live) = recent(id) {
            // The poll's start read the clock and noted it as read.
            if let Some(now) = clock::coarse::ticking_noted() {
                if !unrecorded(live.key) {
                    POLLING.set(0);
                    end_poll(live.slot, now);
                    return;
                }
            }
        }
    } else if ENDED.get() == id {
        // Completed in this poll: `terminate` recorded the poll's end.
        ENDED.set(0);
        return;
    }
    after_poll_slow(recorder, id);
}

/// [`after_poll`] in every case: the poll was a dump's, a nested poll
/// replaced this thread's record, the clock is asleep.
#[inline(never)]
fn after_poll_slow(recorder: &'static Recorder, id: u64) {
    let now = clock::coarse::now();
    // Not in this thread's cache any more if a task spawned during the poll
    // took its place; a poll nested in this one (a runtime blocked on inside
    // `block_in_place`) may have replaced `POLLING`.
    let Some(live) = find(recorder, id) else { return };
    POLLING.set(0);
    exit_slot(live.key, live.slot, now);
}

fn terminate(recorder: &'static Recorder, meta: &TaskMeta<'_>) {
    let id = id_u64(meta.id());
    // Completed inside its poll (nearly always): the poll ends here, and
    // the after-poll hook that tokio calls next finds `ENDED` and touches
    // nothing (the slot may be another task's by then, when retention keeps
    // no completed tasks).
    if POLLING.get() == id {
        if let Some(live) = find(recorder, id) {
            forget_later(live.entry);
            let now = clock::coarse::now();
            POLLING.set(0);
            exit_slot(live.key, live.slot, now);
            ENDED.set(id);
            recorder.table.finish(live.key, live.slot, now);
            return;
        }
    }
    // Outside a poll (aborted, or dropped with its runtime); no entry when
    // spawned on the agent's thread or while the table was full.
    let Some(key) = IDS.remove(id) else { return };
    recorder.complete_at(key, clock::coarse::now());
}

/// The key of the hooked task this thread is polling, if any.
pub(crate) fn current_key() -> Option<Key> {
    let id = POLLING.get();
    if id == 0 {
        return None;
    }
    find(crate::recorder_if_started()?, id).map(|live| live.key)
}

/// The numeric value of a task id. `tokio::task::Id` shows it only through
/// `Display` and `Hash`; its derived `Hash` writes exactly that `u64`, so a
/// hasher that keeps the last `u64` written reads it without formatting.
#[inline]
pub(crate) fn id_u64(id: tokio::task::Id) -> u64 {
    hash_u64(id)
}

/// The `u64` a newtype id (task or runtime) hashes as.
#[inline]
pub(crate) fn hash_u64(id: impl Hash) -> u64 {
    let mut reader = IdReader(0);
    id.hash(&mut reader);
    reader.0
}

/// See [`id_u64`].
struct IdReader(u64);

impl Hasher for IdReader {
    fn write(&mut self, bytes: &[u8]) {
        // Not reached for a `NonZeroU64`; kept total all the same.
        for b in bytes {
            self.0 = (self.0 << 8) | *b as u64;
        }
    }
    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Task id → key of every live hooked task.
static IDS: ids::IdMap = ids::IdMap::new();

/// Entries in each thread's cache of recent ids.
const CACHE: usize = 256;

/// Where a live hooked task is recorded: its key, its slot and its entry in
/// [`IDS`].
#[derive(Clone, Copy)]
struct Live {
    key: Key,
    slot: &'static Slot,
    entry: &'static ids::Entry,
}

thread_local! {
    /// Id of the task whose poll this thread is in; 0 between polls.
    static POLLING: Cell<u64> = const { Cell::new(0) };
    /// Id of the task that completed in the poll this thread is in (its
    /// poll's end already recorded by `terminate`), until its after-poll hook.
    static ENDED: Cell<u64> = const { Cell::new(0) };
    /// Tasks this thread spawned or polled lately, by `id % CACHE`. The slot
    /// needs no generation check: hooks name a task only while it lives (its
    /// slot is freed after its last hook), and ids are never reused, so an
    /// entry found by a live task's id is current.
    static RECENT: [Cell<(u64, Option<Live>)>; CACHE] = const { [const { Cell::new((0, None)) }; CACHE] };
}

/// Entries of tasks that ended on this thread, removed from [`IDS`] in a
/// batch. Why: the spawning thread is most likely inserting the next ids
/// into the same cache line; a removal right away would pull that line over
/// here and back for every task. Nothing looks an ended task up, so its
/// entry may wait.
struct Forgotten {
    entries: [Option<&'static ids::Entry>; FORGET_BATCH],
    len: usize,
}

/// Ended tasks whose entries wait, at most.
const FORGET_BATCH: usize = 32;

impl Forgotten {
    fn flush(&mut self) {
        for entry in self.entries[..self.len].iter_mut() {
            if let Some(entry) = entry.take() {
                entry.forget();
            }
        }
        self.len = 0;
    }
}

impl Drop for Forgotten {
    fn drop(&mut self) {
        self.flush();
    }
}

thread_local! {
    static FORGOTTEN: std::cell::RefCell<Forgotten> =
        const { std::cell::RefCell::new(Forgotten { entries: [None; FORGET_BATCH], len: 0 }) };
}

thread_local! {
    /// Whether this thread's agent state is set up (see [`settle_thread`]).
    static SETTLED: Cell<bool> = const { Cell::new(false) };
}

/// Sets up what this thread keeps for the agent (its [`FORGOTTEN`] list, its
/// free slots and kept tasks) at its first spawn or its first poll through
/// the slow path, which every thread that ends a task in a poll has taken
/// (or spawned) before. Why not at first use: setting up allocates (the
/// per-thread state, and glibc's record of a thread-local's destructor),
/// and the first use of [`FORGOTTEN`] is a thread's first completion in a
/// poll. In a burst of spawns that came at its very end, from the spawning
/// task's own completion, on the thread whose heap held every task cell:
/// the 32 bytes landed at the top of that heap and kept it from being
/// trimmed once the cells were freed. Measured after the bench's 300k-task
/// burst: 131.8 MiB resident against plain tokio's 68.3, and 72 MiB with
/// this.
#[cold]
fn settle_thread(recorder: &'static Recorder) {
    SETTLED.set(true);
    let _ = FORGOTTEN.try_with(|_| ());
    recorder.table.settle_thread();
}

/// Removes `entry` from [`IDS`] soon (see [`Forgotten`]).
#[inline]
fn forget_later(entry: &'static ids::Entry) {
    let kept = FORGOTTEN.try_with(|f| {
        let Ok(mut f) = f.try_borrow_mut() else { return false };
        if f.len == FORGET_BATCH {
            f.flush();
        }
        let len = f.len;
        f.entries[len] = Some(entry);
        f.len += 1;
        true
    });
    if kept != Ok(true) {
        entry.forget();
    }
}

fn remember(id: u64, live: Live) {
    RECENT.with(|r| r[id as usize % CACHE].set((id, Some(live))));
}

/// Where live task `id` is recorded, if this thread's cache has it.
#[inline(always)]
fn recent(id: u64) -> Option<Live> {
    match RECENT.with(|r| r[id as usize % CACHE].get()) {
        (cached, Some(live)) if cached == id => Some(live),
        _ => None,
    }
}

/// Where live task `id` is recorded: from this thread's cache, else the shared map.
#[inline(always)]
fn find(recorder: &'static Recorder, id: u64) -> Option<Live> {
    recent(id).or_else(|| find_shared(recorder, id))
}

/// [`find`] through the shared map, remembering the answer.
#[inline(never)]
fn find_shared(recorder: &'static Recorder, id: u64) -> Option<Live> {
    let entry = IDS.get(id)?;
    let key = entry.key();
    // No generation check: the map holds a task's key only while it lives,
    // and reading the slot here would wait for a line that the spawning core
    // has just written.
    let slot = recorder.table.slot(key.index())?;
    let live = Live { key, slot, entry };
    remember(id, live);
    Some(live)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_read_as_their_number() {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let handle = rt.spawn(async {});
        let shown: u64 = handle.id().to_string().parse().expect("ids display as numbers");
        assert_eq!(id_u64(handle.id()), shown);
    }
}
