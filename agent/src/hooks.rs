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
//! found through [`IdMap`]: a sharded map that spawn and termination write,
//! behind a per-thread cache that answers the polls of tasks a thread has seen.

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};
use std::sync::Mutex;

use tokio::runtime::TaskMeta;

use crate::clock;
use crate::files::FILES;
use crate::recorder::{on_agent_thread, Recorder, TRACED};
use crate::slots::{Key, HOOKED, LIVE, TAG_SHIFT};

/// Hooked builders told apart, at most (later ones share the last tag).
const TAGS: usize = 64;

/// Id of the runtime built from each hooked builder, by tag; 0 until its
/// first poll tells. Dumps use it to mark only the dumped runtime's tasks.
static RUNTIMES: [AtomicU64; TAGS] = [const { AtomicU64::new(0) }; TAGS];
static NEXT_TAG: AtomicUsize = AtomicUsize::new(0);

/// Installs the recording hooks on `builder`, feeding `recorder`.
pub(crate) fn install(builder: &mut tokio::runtime::Builder, recorder: &'static Recorder) {
    let tag = NEXT_TAG.fetch_add(1, Relaxed).min(TAGS - 1);
    builder
        .on_task_spawn(move |meta| spawn(recorder, meta, tag))
        .on_before_task_poll(move |meta| before_poll(recorder, meta, tag))
        .on_after_task_poll(move |meta| after_poll(recorder, meta))
        .on_task_terminate(move |meta| terminate(recorder, meta));
}

/// Before a dump of the runtime `handle`: marks its hooked tasks so that the
/// poll the dump causes is not counted as the program's.
///
/// tokio polls every task of the runtime once in tracing mode (without
/// calling the poll hooks) and then wakes it, so each is polled once more
/// through the scheduler, hooks and all. That re-poll is the first poll of a
/// marked task, and [`Recorder::enter`] skips it.
pub(crate) fn before_dump(handle: &tokio::runtime::Handle) {
    let Some(recorder) = crate::recorder_if_started() else { return };
    if !crate::recorder::hooked() {
        return;
    }
    let runtime = hash_u64(handle.id());
    let tags: Vec<u32> = (0..TAGS).filter(|&t| RUNTIMES[t].load(Acquire) == runtime).map(|t| t as u32).collect();
    for index in 0..recorder.table.len() {
        let Some(slot) = recorder.table.slot(index) else { continue };
        let kind = slot.kind.load(Acquire);
        if slot.phase.load(Acquire) == LIVE && kind & HOOKED != 0 && tags.contains(&(kind >> TAG_SHIFT)) {
            slot.dump_flags.fetch_or(TRACED, AcqRel);
        }
    }
}

/// Learns which runtime a hooked builder built, from inside its first poll.
#[cold]
fn learn_runtime(tag: usize) {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        RUNTIMES[tag].store(hash_u64(handle.id()), Release);
    }
}

fn spawn(recorder: &Recorder, meta: &TaskMeta<'_>, tag: usize) {
    if on_agent_thread() {
        return;
    }
    let Some((key, slot)) = recorder.table.alloc() else {
        recorder.dropped.fetch_add(1, Relaxed);
        return;
    };
    let id = id_u64(meta.id());
    let location = meta.spawned_at();
    slot.task_id.store(id, Relaxed);
    slot.kind.store(HOOKED | ((tag as u32) << TAG_SHIFT), Relaxed);
    slot.file.store(FILES.get().map_or(0, |files| files.intern(location.file())), Relaxed);
    slot.line_col.store(((location.line() as u64) << 32) | location.column() as u64, Relaxed);
    slot.spawned_at.store(clock::raw(), Release);
    IDS.insert(id, key);
    remember(id, key);
}

fn before_poll(recorder: &Recorder, meta: &TaskMeta<'_>, tag: usize) {
    if RUNTIMES[tag].load(Relaxed) == 0 {
        learn_runtime(tag);
    }
    if let Some(key) = find(id_u64(meta.id())) {
        recorder.enter(key);
    }
}

fn after_poll(recorder: &Recorder, meta: &TaskMeta<'_>) {
    if let Some(key) = find(id_u64(meta.id())) {
        recorder.exit(key);
    }
}

fn terminate(recorder: &Recorder, meta: &TaskMeta<'_>) {
    let id = id_u64(meta.id());
    // No entry: spawned on the agent's thread, or while the table was full.
    if let Some(key) = IDS.remove(id) {
        recorder.complete(key);
    }
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
fn hash_u64(id: impl Hash) -> u64 {
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

/// Spreads sequential ids over the map's buckets (Fibonacci hashing).
#[derive(Default)]
struct Spread(u64);

impl Hasher for Spread {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | *b as u64;
        }
        self.0 = self.0.wrapping_mul(SPREAD);
    }
    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(SPREAD);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

const SPREAD: u64 = 0x9E37_79B9_7F4A_7C15;
const SHARDS: usize = 64;

/// One shard, on cache lines of its own so that two workers spawning at once
/// rarely touch the same line.
#[repr(align(128))]
#[derive(Default)]
struct Shard(Mutex<HashMap<u64, Key, BuildHasherDefault<Spread>>>);

/// Task id → slot key for the live tasks the hooks recorded. Task ids are
/// never reused within a process (tokio draws them from one 64-bit counter),
/// so an entry can only be stale once its task is gone, and no poll asks for
/// it then.
struct IdMap {
    shards: [Shard; SHARDS],
}

static IDS: std::sync::LazyLock<IdMap> =
    std::sync::LazyLock::new(|| IdMap { shards: std::array::from_fn(|_| Shard::default()) });

impl IdMap {
    fn shard(&self, id: u64) -> &Mutex<HashMap<u64, Key, BuildHasherDefault<Spread>>> {
        &self.shards[(id.wrapping_mul(SPREAD) >> 58) as usize % SHARDS].0
    }

    fn insert(&self, id: u64, key: Key) {
        self.shard(id).lock().unwrap_or_else(|e| e.into_inner()).insert(id, key);
    }

    fn get(&self, id: u64) -> Option<Key> {
        self.shard(id).lock().unwrap_or_else(|e| e.into_inner()).get(&id).copied()
    }

    fn remove(&self, id: u64) -> Option<Key> {
        self.shard(id).lock().unwrap_or_else(|e| e.into_inner()).remove(&id)
    }
}

/// Entries in each thread's cache of recent ids.
const CACHE: usize = 256;

thread_local! {
    /// `(id, key)` of tasks this thread spawned or polled lately, by `id % CACHE`.
    static RECENT: [Cell<(u64, u64)>; CACHE] = const { [const { Cell::new((0, 0)) }; CACHE] };
}

fn remember(id: u64, key: Key) {
    RECENT.with(|r| r[id as usize % CACHE].set((id, key.0)));
}

/// The key of live task `id`: from this thread's cache, else the shared map.
#[inline]
fn find(id: u64) -> Option<Key> {
    let (cached, key) = RECENT.with(|r| r[id as usize % CACHE].get());
    if cached == id {
        return Some(Key(key));
    }
    let key = IDS.get(id)?;
    remember(id, key);
    Some(key)
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

    #[test]
    fn ids_map_to_keys_until_removed() {
        let map = IdMap { shards: std::array::from_fn(|_| Shard::default()) };
        for id in 1..1000u64 {
            map.insert(id, Key(id * 7));
        }
        assert_eq!(map.get(500), Some(Key(3500)));
        assert_eq!(map.remove(500), Some(Key(3500)));
        assert_eq!(map.get(500), None);
        assert_eq!(map.remove(500), None);
        assert_eq!(map.get(999), Some(Key(6993)));
    }
}
