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
//!   attribution is switched on ([`attribute_spawns`], by the guard and
//!   `#[taskscope_agent::test]`), each spawn asks for the current runtime
//!   (`Handle::try_current`, an `Arc` clone: too dear for every spawn of a
//!   service, which pays one relaxed load). A task spawned through another
//!   runtime's `Handle` is then counted on the spawning runtime.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};

use crate::slots::{Slot, HOOKED, TAG_SHIFT};

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

/// At a full-mode spawn, into `slot` just filled: its runtime's tag, if
/// attribution is on and the spawn is inside a runtime.
#[inline]
pub(crate) fn tag_spawn(slot: &Slot) {
    if ATTRIBUTING.load(Relaxed) {
        tag_spawn_slow(slot);
    }
}

#[cold]
#[inline(never)]
fn tag_spawn_slow(slot: &Slot) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else { return };
    let tag = tag_of(runtime_u64(&handle));
    slot.kind.fetch_or(TAGGED | ((tag as u32) << TAG_SHIFT), Relaxed);
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
