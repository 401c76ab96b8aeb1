//! The hot path: what happens on spawn, poll, wake and completion.
//!
//! Shared by the bare [`crate::subscriber::TaskSubscriber`] (fastest: the span
//! id *is* the slot key) and the composable [`crate::layer()`] (the key is kept
//! in the span's extensions). Every operation is a few atomic loads and
//! stores on the task's own slot: no lock, no allocation (a named task's name
//! is allocated once, at spawn). A completion is handed to the thread it
//! happens on, which counts it, keeps the task for display and frees the slot
//! later, all in memory of its own ([`crate::slots`]): nothing crosses to
//! another thread per task.
//!
//! Task dumps poll every task once in a tracing mode and then wake each of
//! them so that it is polled again for real. Counted naively, one dump would
//! make every task look freshly polled and reset every parked time. So while a
//! dump is in flight, a poll made in tracing mode (tokio's
//! `Handle::is_tracing`) is not recorded and marks the task TRACED; the wake
//! that follows is the dump's own and marks it REPOLL; and the poll after that
//! is the dump's re-poll, not recorded either (a program's wake that lands
//! before the re-poll has run is served by it, tokio running a task woken
//! twice once, so that one poll of the program's goes uncounted: the price
//! of never counting a dump's). Waker clones and drops are
//! always counted, so the live-waker balance stays exact. Runtime hooks (the
//! lean mode, [`mod@crate::hooks`]) see neither the tracing poll nor the wake:
//! the dump's tasks are marked before it starts, and the first poll of a
//! marked task is taken to be the dump's re-poll.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};

#[cfg(feature = "tracing")]
use tracing_core::span::Attributes;

#[cfg(feature = "tracing")]
use crate::clock;
#[cfg(feature = "tracing")]
use crate::fields::{SpawnFields, WakeOp};
use crate::slots::{Key, Retention, Slot, Table, HOOKED};

/// The process-wide recorder.
pub(crate) struct Recorder {
    pub table: Table,
    /// Tasks that could not be recorded: spawned while the table was full.
    pub dropped: AtomicU64,
}

/// `Slot::dump_flags`: polled in tracing mode by a dump in flight (or, for a
/// hooked task, about to be: see [`crate::hooks::before_dump`]).
pub(crate) const TRACED: u8 = 1;
/// `Slot::dump_flags`: woken by the dump; its next poll is the dump's re-poll.
pub(crate) const REPOLL: u8 = 2;
/// `Slot::dump_flags`: a wrapped future about to be traced inside its own
/// next poll (a safe capture, [`crate::capture`]); the agent's wake that
/// causes that poll is not the program's, nor is the poll, nor (once it has
/// become [`REPOLL`]) the wake tokio defers for it and the re-poll after it.
pub(crate) const CAPTURE: u8 = 4;

/// How lifecycles reach the recorder: see [`mode`].
static MODE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// What feeds the recorder (see [`mode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // Subscriber and Layer need the `tracing` feature; None is the default.
pub(crate) enum Mode {
    /// Nothing: no subscriber, layer or hooks could be installed.
    None = 0,
    /// The bare subscriber of [`crate::init`].
    Subscriber = 1,
    /// The composable layer.
    Layer = 2,
    /// Runtime hooks (lean mode).
    Hooks = 3,
}

/// Records what now feeds the recorder.
pub(crate) fn set_mode(mode: Mode) {
    MODE.store(mode as u8, Release);
}

/// Whether runtime hooks feed the recorder: then no subscriber is installed.
pub(crate) fn hooked() -> bool {
    MODE.load(Acquire) == Mode::Hooks as u8
}

/// `ProcessInfo.mode`: "tracing" once the subscriber or the layer records
/// lifecycles, "hooks" for runtime hooks, "none" when nothing could be
/// installed (stacks only).
pub(crate) fn mode() -> &'static str {
    match MODE.load(Acquire) {
        0 => "none",
        3 => "hooks",
        _ => "tracing",
    }
}

/// Dumps in flight (see the module docs).
static DUMPING: AtomicUsize = AtomicUsize::new(0);

/// Odd while a dump is in flight or slots may still carry the flags one set;
/// every dump's start and end also add 2, so that [`settle_dump_flags`]
/// notices a dump that came and went while it looked.
///
/// Why: a poll that had to read its slot's flags before anything else waited
/// for the slot's line, which in spawn-heavy work was written by another core
/// a moment before; measured, that wait was the largest part of the lean
/// mode's cost. While this is even, a poll only writes to its slot.
static FLAGGED: AtomicU64 = AtomicU64::new(0);

/// Marks a task dump as in flight until dropped.
pub(crate) struct Dumping(());

/// Call around every `Handle::dump` and until its tasks' re-polls are done.
pub(crate) fn dumping() -> Dumping {
    FLAGGED.fetch_or(1, SeqCst);
    FLAGGED.fetch_add(2, SeqCst);
    DUMPING.fetch_add(1, SeqCst);
    Dumping(())
}

impl Drop for Dumping {
    fn drop(&mut self) {
        DUMPING.fetch_sub(1, SeqCst);
        FLAGGED.fetch_add(2, SeqCst);
    }
}

/// Once no dump is in flight and no slot of `table` carries dump flags, lets
/// polls skip them again (see [`FLAGGED`]). Flags are set only while a dump
/// is in flight, so a dump that starts after the look changes `FLAGGED` and
/// the clearing fails.
pub(crate) fn settle_dump_flags(table: &Table) {
    let seen = FLAGGED.load(SeqCst);
    if seen & 1 == 0 || DUMPING.load(SeqCst) != 0 {
        return;
    }
    let flagged =
        (0..table.len()).any(|index| table.slot(index).is_some_and(|slot| slot.dump_flags.load(Acquire) != 0));
    if !flagged {
        let _ = FLAGGED.compare_exchange(seen, seen + 1, SeqCst, Relaxed);
    }
}

thread_local! {
    /// Key of the task being polled on this thread (0 = none), for self-wakes.
    static CURRENT: Cell<u64> = const { Cell::new(0) };
    /// Key of a task whose current poll is not recorded (a dump's poll).
    static UNRECORDED: Cell<u64> = const { Cell::new(0) };
    /// Set on the agent's own thread: what it spawns is not the program's.
    static AGENT_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling thread as the agent's: tasks spawned from it are not recorded.
pub(crate) fn mark_agent_thread() {
    AGENT_THREAD.set(true);
}

/// Whether the calling thread is the agent's.
#[inline]
pub(crate) fn on_agent_thread() -> bool {
    AGENT_THREAD.get()
}

impl Recorder {
    pub(crate) fn new(retention: Retention) -> Recorder {
        Recorder { table: Table::new(retention), dropped: AtomicU64::new(0) }
    }

    /// A task was spawned: returns its key, or `None` when it is not recorded.
    #[cfg(feature = "tracing")]
    #[inline]
    pub(crate) fn spawn(&'static self, attrs: &Attributes<'_>) -> Option<Key> {
        if AGENT_THREAD.get() {
            return None;
        }
        let mut fields = SpawnFields::new();
        attrs.record(&mut fields);
        if fields.tokios_own() {
            return None;
        }
        let Some((key, slot)) = self.table.alloc() else {
            self.dropped.fetch_add(1, Relaxed);
            return None;
        };
        slot.task_id.store(fields.task_id, Relaxed);
        slot.kind.store(fields.kind, Relaxed);
        crate::tags::tag_current(slot);
        slot.file.store(fields.file, Relaxed);
        slot.line_col.store(((fields.line as u64) << 32) | fields.col as u64, Relaxed);
        if let Some(name) = fields.name() {
            slot.set_name(name);
        }
        slot.spawned_at.store(clock::coarse::now(), Release);
        Some(key)
    }

    /// A poll starts.
    #[cfg(feature = "tracing")]
    #[inline]
    pub(crate) fn enter(&self, key: Key) {
        if let Some(slot) = self.table.open_span(key) {
            if self.enter_at(key, slot, clock::coarse::now()) {
                slot.woken.store(0, Relaxed);
                CURRENT.with(|current| current.set(key.0));
            }
        }
    }

    /// A poll of `key`'s task (in `slot`) starts at `now`. False when the
    /// poll is a dump's: then it is not recorded, up to its [`Self::exit_at`].
    #[inline]
    pub(crate) fn enter_at(&self, key: Key, slot: &Slot, now: u64) -> bool {
        if !self.records_poll(key, slot) {
            return false;
        }
        start_poll(slot, now);
        true
    }

    /// Whether a poll of `key`'s task (in `slot`) that starts now is the
    /// program's. False for a dump's poll, which is then not recorded up to
    /// its [`exit_slot`]. Reads nothing of the slot unless a dump may have
    /// marked it (see [`FLAGGED`]).
    #[inline]
    fn records_poll(&self, key: Key, slot: &Slot) -> bool {
        if !no_dump_flags()
            && (slot.dump_flags.load(Relaxed) != 0 || DUMPING.load(Relaxed) != 0)
            && self.dump_poll(slot)
        {
            UNRECORDED.set(key.0);
            return false;
        }
        true
    }

    /// Whether this poll is a dump's (tracing poll or the re-poll after it).
    #[cold]
    fn dump_poll(&self, slot: &Slot) -> bool {
        let flags = slot.dump_flags.load(Acquire);
        if flags & CAPTURE != 0 {
            // The traced poll of a safe capture; its re-poll comes next.
            slot.dump_flags.store(REPOLL, Release);
            slot.woken.store(0, Relaxed);
            return true;
        }
        if flags & REPOLL != 0 {
            slot.dump_flags.fetch_and(!REPOLL, AcqRel);
            // Whatever woke the task before the dump is served by this poll.
            slot.woken.store(0, Relaxed);
            return true;
        }
        #[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
        if DUMPING.load(Acquire) != 0 && tokio::runtime::Handle::is_tracing() {
            slot.dump_flags.fetch_or(TRACED, AcqRel);
            return true;
        }
        if flags & TRACED != 0 && slot.kind.load(Relaxed) & HOOKED != 0 {
            // Hooks see neither the dump's tracing poll nor its wake: the first
            // poll of a task marked before the dump is the dump's re-poll.
            slot.dump_flags.fetch_and(!TRACED, AcqRel);
            slot.woken.store(0, Relaxed);
            return true;
        }
        false
    }

    /// A poll ends.
    #[cfg(feature = "tracing")]
    #[inline]
    pub(crate) fn exit(&self, key: Key) {
        self.exit_at(key, clock::coarse::now_noted());
        CURRENT.set(0);
    }

    /// A poll ends at `now`. Only the polling thread writes these counters,
    /// and tokio orders successive polls of a task, so plain load + store
    /// suffices.
    #[cfg(feature = "tracing")]
    #[inline]
    pub(crate) fn exit_at(&self, key: Key, now: u64) {
        if let Some(slot) = self.table.open_span(key) {
            if exit_slot(key, slot, now) {
                // Still inside the runtime that polled it: the task's own.
                crate::tags::tag_current(slot);
            }
        }
    }

    /// Someone cloned the task's span (bare subscriber only).
    #[cfg(feature = "tracing")]
    #[inline]
    pub(crate) fn clone_span(&self, key: Key) {
        if let Some(slot) = self.table.open_span(key) {
            slot.refs.fetch_add(1, Relaxed);
        }
    }

    /// A span reference was dropped (bare subscriber only): the task is
    /// complete when the last one goes. Returns true then.
    #[cfg(feature = "tracing")]
    #[inline]
    pub(crate) fn release(&'static self, key: Key) -> bool {
        // The only reference cannot be cloned by anyone else meanwhile, so
        // the common case (tokio's own span, never cloned) needs no
        // read-modify-write.
        match self.table.open_span(key) {
            Some(slot) if slot.refs.load(Acquire) == 1 || slot.refs.fetch_sub(1, AcqRel) == 1 => {
                self.complete(key);
                true
            }
            Some(_) => false,
            None => true,
        }
    }

    /// The task's future was dropped: it completed, was aborted or panicked.
    #[cfg(feature = "tracing")]
    #[inline]
    pub(crate) fn complete(&'static self, key: Key) {
        if let Some(slot) = self.table.open_span(key) {
            // tracing's `Instrumented` enters the span once more to drop the
            // future; that enter/exit is not a poll.
            slot.polls.store(slot.polls.load(Relaxed).saturating_sub(1), Relaxed);
            self.table.finish(key, slot, clock::coarse::now());
        }
    }

    /// A hooked task completed at `now`, outside its own poll.
    #[inline]
    pub(crate) fn complete_at(&'static self, key: Key, now: u64) {
        if let Some(slot) = self.table.get(key) {
            self.table.finish(key, slot, now);
        }
    }

    /// A waker of the task was cloned, dropped or used: one atomic add,
    /// since waking by value counts as a wake and a drop at once (see
    /// [`Slot::wakes_by_val`]).
    #[cfg(feature = "tracing")]
    #[inline]
    pub(crate) fn waker(&self, key: Key, op: WakeOp) {
        let Some(slot) = self.table.get(key) else { return };
        if !no_dump_flags() && not_the_programs(slot, op) {
            return;
        }
        let (counter, wakes) = match op {
            WakeOp::Clone => (&slot.waker_clones, false),
            WakeOp::Drop => (&slot.dropped_unused, false),
            WakeOp::Wake => (&slot.wakes_by_val, true),
            WakeOp::WakeByRef => (&slot.wakes_by_ref, true),
        };
        counter.fetch_add(1, Relaxed);
        if wakes {
            // No clock read here: "woken since its latest poll started" is a
            // flag that the poll's start clears.
            slot.woken.store(1, Release);
            if CURRENT.get() == key.0 {
                // Inside the task's own poll: only this thread writes the count.
                let own = slot.self_wakes.load(Relaxed);
                slot.self_wakes.store(own.saturating_add(1), Relaxed);
            }
        }
    }
}

/// While a dump or capture may be in flight: whether a waker event of the
/// task in `slot` is the agent's or a dump's, not the program's (what of it
/// counts is counted here).
#[cfg(feature = "tracing")]
#[cold]
fn not_the_programs(slot: &Slot, op: WakeOp) -> bool {
    // The agent's own clone and wake of a task's waker (a safe capture
    // waking it, on the agent's thread): not the program's, and a snapshot
    // read between the two would count a live waker more.
    AGENT_THREAD.get() || (matches!(op, WakeOp::Wake | WakeOp::WakeByRef) && dump_wake(slot, op))
}

/// Whether a wake of the task in `slot` is a dump's, which wakes each task
/// it traced: not a wake of the program's, so only the waker it consumes
/// (by value) is counted.
#[cfg(feature = "tracing")]
#[cold]
fn dump_wake(slot: &Slot, op: WakeOp) -> bool {
    let flags = slot.dump_flags.load(Relaxed);
    if flags & (TRACED | CAPTURE | REPOLL) == 0 {
        return false;
    }
    if op == WakeOp::Wake {
        slot.dropped_unused.fetch_add(1, Relaxed);
    }
    // A dump's wake of a task it traced makes the next poll its re-poll; a
    // capture's flags change at the polls themselves.
    if flags & TRACED != 0 {
        slot.dump_flags.store(REPOLL, Release);
    }
    true
}

/// The key of the task this thread is polling, if the agent records it
/// (through tokio's spans, or its hooks in the lean mode).
pub(crate) fn current_key() -> Option<Key> {
    if hooked() {
        return crate::hooks::current_key();
    }
    match CURRENT.get() {
        0 => None,
        key => Some(Key(key)),
    }
}

/// A wrapped future's clone of its task's waker (see [`crate::capture`]) is
/// the agent's, not the program's: `held` true when it was just cloned,
/// false just before it is dropped. In the full mode tokio reports that
/// clone and that drop like any other, so the slot's balance is corrected
/// by one to keep "no live waker" (the leak verdict) exact.
pub(crate) fn agent_waker(key: Key, held: bool) {
    let Some(slot) = crate::recorder_if_started().and_then(|r| r.table.get(key)) else { return };
    if slot.kind.load(Relaxed) & HOOKED != 0 {
        return;
    }
    if held {
        slot.dropped_unused.fetch_add(1, Relaxed);
    } else {
        slot.dropped_unused.fetch_sub(1, Relaxed);
    }
}

/// A poll of `key`'s task, whose slot `slot` is, ends at `now` (see
/// [`Recorder::exit_at`]; the hooks hold the slot already). True when it
/// was the task's first recorded poll.
#[inline]
pub(crate) fn exit_slot(key: Key, slot: &Slot, now: u64) -> bool {
    if unrecorded(key) {
        UNRECORDED.set(0);
        return false;
    }
    end_poll(slot, now)
}

/// True while no dump may have left flags on any slot: a poll that starts
/// then is the program's, with nothing of its slot to read (see [`FLAGGED`]).
#[inline(always)]
pub(crate) fn no_dump_flags() -> bool {
    FLAGGED.load(Relaxed) & 1 == 0
}

/// Whether the poll of `key`'s task that this thread is in is a dump's, not
/// recorded (see [`Recorder::records_poll`]).
#[inline(always)]
pub(crate) fn unrecorded(key: Key) -> bool {
    UNRECORDED.get() == key.0
}

/// Writes the start of a recorded poll at `now` into `slot`.
#[inline(always)]
pub(crate) fn start_poll(slot: &Slot, now: u64) {
    slot.poll_started.store(now, Release);
    slot.running.store(1, Release);
}

/// Writes the end at `now` of a recorded poll, whose start [`start_poll`]
/// wrote into the slot (only the polling thread writes it, so the load
/// finds its own store). True when it was the task's first: the count it
/// read says so at no cost.
#[inline(always)]
pub(crate) fn end_poll(slot: &Slot, now: u64) -> bool {
    let started = slot.poll_started.load(Relaxed);
    slot.busy.store(slot.busy.load(Relaxed) + now.saturating_sub(started), Relaxed);
    let polls = slot.polls.load(Relaxed);
    slot.polls.store(polls + 1, Relaxed);
    slot.poll_ended.store(now, Release);
    slot.running.store(0, Release);
    polls == 0
}

/// Marks `key`'s slot for a safe capture (see [`CAPTURE`]); the caller
/// holds a [`Dumping`] so that polls read the mark.
pub(crate) fn mark_capture(key: Key) {
    if let Some(slot) = crate::recorder_if_started().and_then(|r| r.table.get(key)) {
        slot.dump_flags.fetch_or(CAPTURE, AcqRel);
    }
}

/// Takes back the mark of a capture that `key`'s task did not answer in
/// time: its next poll is the program's again.
pub(crate) fn unmark_capture(key: Key) {
    if let Some(slot) = crate::recorder_if_started().and_then(|r| r.table.get(key)) {
        slot.dump_flags.fetch_and(!CAPTURE, AcqRel);
    }
}

/// A capture's traced poll of `key`'s task reached no tokio leaf, so no
/// wake was deferred and no re-poll follows: its next poll is the program's.
pub(crate) fn no_repoll(key: Key) {
    if let Some(slot) = crate::recorder_if_started().and_then(|r| r.table.get(key)) {
        slot.dump_flags.fetch_and(!REPOLL, AcqRel);
    }
}

/// Names the task this thread is polling (the lean mode's hooks are told no
/// names; a wrapped task carries its own to its first poll).
pub(crate) fn name_current_task(name: &str) {
    let Some(key) = current_key() else { return };
    if let Some(slot) = crate::recorder_if_started().and_then(|r| r.table.get(key)) {
        if slot.name.load(Acquire).is_null() {
            slot.set_name(name);
        }
    }
}
