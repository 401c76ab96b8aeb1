//! Which runtime a task is on: a small tag per runtime, kept in the upper
//! bits of its slot's `kind`.
//!
//! Why: the test guard ([`crate::guard`]) counts only the tasks of the
//! runtime it was taken on, so that tests running in parallel in one test
//! binary (each `#[tokio::test]` has a runtime of its own) never see each
//! other's tasks; dumps mark only the dumped runtime's tasks.
//!
//! How a task gets its tag, at no cost to a service's hot path:
//! - **lean mode**: each hooked builder gets a tag when its hooks are
//!   installed, and its spawn hook writes it (exact: the hook is the
//!   runtime's own); the runtime's id is bound to the tag when it is built
//!   through the agent, or learnt at its first poll;
//! - **full mode**: tokio's task spans say nothing of the runtime, so once
//!   attribution is switched on ([`attribute_spawns`]: by the guard and
//!   `#[taskscope_agent::test]`, and by the registration of a second
//!   runtime), each spawn asks for the current runtime
//!   (`Handle::try_current`, an `Arc` clone: too dear for every spawn of a
//!   service with one runtime, which pays one relaxed load), and so does the
//!   end of each task's first poll ([`tag_current`]), on the thread that
//!   polled it. The runtime that polls a task is the one that owns it; the
//!   spawn alone would put a task spawned through another runtime's
//!   `Handle` (`io.spawn(..)` from `main`) on the spawning runtime until
//!   its first poll.
//!
//! The tags also give each task its `Task.runtime`, the index of its
//! registered runtime ([`Index`]), read when the table is scanned.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};

use crate::slots::{Slot, HOOKED, TAG_SHIFT};

/// `Task.runtime` of a task whose runtime is not a registered one, or not
/// known: out of range of `ProcessInfo.runtimes`.
pub(crate) const UNKNOWN: u32 = u32::MAX;

/// The bits of `Slot::kind` that hold the tag.
const TAG_BITS: u32 = !0 << TAG_SHIFT;

/// Runtimes told apart, at most (later ones share the last tag, and the
/// guard then counts their tasks together). A test binary builds one
/// runtime per test.
pub(crate) const TAGS: usize = 4096;

/// Flag in `Slot::kind`: a full-mode task that carries a tag.
pub(crate) const TAGGED: u32 = 0x400;

/// The runtime id (as [`runtime_u64`] gives it) of each tag; 0 until known.
pub(crate) static RUNTIMES: [AtomicU64; TAGS] = [const { AtomicU64::new(0) }; TAGS];
static NEXT_TAG: AtomicUsize = AtomicUsize::new(0);

/// Whether full-mode spawns look up their runtime.
static ATTRIBUTING: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// The last runtime this thread tagged a spawn for, and its tag.
    static LAST: Cell<(u64, usize)> = const { Cell::new((0, 0)) };
}

/// A new tag, for a hooked builder.
pub(crate) fn new_tag() -> usize {
    NEXT_TAG.fetch_add(1, Relaxed).min(TAGS - 1)
}

/// Binds `tag` to the runtime behind `handle`.
pub(crate) fn bind(tag: usize, handle: &tokio::runtime::Handle) {
    RUNTIMES[tag.min(TAGS - 1)].store(runtime_u64(handle), Release);
}

/// From now on, full-mode spawns record their runtime.
pub(crate) fn attribute_spawns() {
    ATTRIBUTING.store(true, Release);
}

/// Tags `slot` with the runtime the calling thread is in, if attribution is
/// on: at a full-mode spawn (the spawning runtime) and at the end of a
/// task's first poll, on the thread that polled it, so inside the runtime
/// that owns it (the caller knows the poll was the first from the count it
/// just wrote: nothing per poll). One relaxed load while attribution is off.
#[cfg(feature = "tracing")]
#[inline]
pub(crate) fn tag_current(slot: &Slot) {
    if ATTRIBUTING.load(Relaxed) {
        tag_current_slow(slot);
    }
}

#[cfg(feature = "tracing")]
#[cold]
#[inline(never)]
fn tag_current_slow(slot: &Slot) {
    if let Some(runtime) = current_runtime() {
        tag_with(slot, runtime);
    }
}

/// Tags `slot`'s task as on `runtime`, replacing a tag the spawn gave it.
pub(crate) fn tag_with(slot: &Slot, runtime: u64) {
    let tag = (tag_of(runtime) as u32) << TAG_SHIFT;
    // The name's flag may be set meanwhile by the task's own poll: keep it.
    let _ = slot.kind.fetch_update(Release, Relaxed, |kind| Some((kind & !TAG_BITS) | TAGGED | tag));
}

/// The tag of `runtime`, found among the known ones or made for it.
fn tag_of(runtime: u64) -> usize {
    let (last, tag) = LAST.get();
    if last == runtime {
        return tag;
    }
    let known = NEXT_TAG.load(Acquire).min(TAGS);
    let tag = match (0..known).find(|&t| RUNTIMES[t].load(Acquire) == runtime) {
        Some(tag) => tag,
        None => {
            // Two threads may both make one for a new runtime: both tags
            // then name it, which [`runtime_of`] readers do not mind.
            let tag = new_tag();
            RUNTIMES[tag].store(runtime, Release);
            tag
        }
    };
    LAST.set((runtime, tag));
    tag
}

/// The runtime (as [`runtime_u64`]) of a task whose slot's kind is `kind`,
/// when known.
pub(crate) fn runtime_of(kind: u32) -> Option<u64> {
    if kind & (HOOKED | TAGGED) == 0 {
        return None;
    }
    let tag = ((kind >> TAG_SHIFT) as usize).min(TAGS - 1);
    Some(RUNTIMES[tag].load(Acquire)).filter(|&runtime| runtime != 0)
}

/// The runtime the caller is in, as [`runtime_u64`] gives it.
pub(crate) fn current_runtime() -> Option<u64> {
    tokio::runtime::Handle::try_current().ok().map(|handle| runtime_u64(&handle))
}

/// A runtime's id as a number (never 0 for a real runtime).
pub(crate) fn runtime_u64(handle: &tokio::runtime::Handle) -> u64 {
    crate::hooks::hash_u64(handle.id())
}

/// A tag's entry, for the hooks' fast path.
pub(crate) fn entry(tag: usize) -> &'static AtomicU64 {
    &RUNTIMES[tag.min(TAGS - 1)]
}

/// The tags bound to `runtime`.
pub(crate) fn tags_of(runtime: u64) -> Vec<u32> {
    let known = NEXT_TAG.load(Acquire).min(TAGS);
    (0..known).filter(|&t| RUNTIMES[t].load(Acquire) == runtime).map(|t| t as u32).collect()
}

/// The registered runtimes, as of one scan of the task table: gives each
/// task the index of its runtime in `ProcessInfo.runtimes`.
pub(crate) struct Index {
    /// Each registered runtime's id (as [`runtime_u64`]), in registration
    /// order, the order of `ProcessInfo.runtimes`.
    ids: Vec<u64>,
}

impl Index {
    /// The runtimes registered now.
    pub(crate) fn registered() -> Index {
        Index { ids: crate::dump::runtime_ids() }
    }

    /// `Task.runtime` of a task whose slot's kind is `kind`: its runtime's
    /// index, or [`UNKNOWN`]. A task without a tag is the full mode's while
    /// attribution is off, that is while at most one runtime is registered:
    /// it is taken to be on that one.
    pub(crate) fn of(&self, kind: u32) -> u32 {
        match runtime_of(kind) {
            Some(runtime) => self.ids.iter().position(|&id| id == runtime).map_or(UNKNOWN, |i| i as u32),
            None if self.ids.len() == 1 => 0,
            None => UNKNOWN,
        }
    }
}
