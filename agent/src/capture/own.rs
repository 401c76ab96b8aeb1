//! A future the agent records itself: the one a runtime blocks on.
//!
//! Why: `block_on`'s future is no tokio task, so tokio's runtime hooks never
//! see it and, in the lean mode, it was not listed at all, although it is
//! often the program's accept loop or its main select. The future that
//! `#[taskscope_agent::main]` runs records its own lifecycle into a slot of
//! the task table, as a `block_on` task spawned where the attribute is.
//!
//! Its ids are the agent's own, counted down from `u64::MAX` so that they
//! never meet tokio's, which count up from 1.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::clock;
use crate::files::FILES;
use crate::recorder::{end_poll, start_poll};
use crate::slots::{kind_code, Key, Slot};

/// The next id for a future the agent records itself.
static NEXT_ID: AtomicU64 = AtomicU64::new(u64::MAX);

/// The slot of a future that records itself, and its bookkeeping.
pub(crate) struct Own {
    key: Key,
    slot: &'static Slot,
    task_id: u64,
    /// Polls still to leave unrecorded: the re-poll after a capture's
    /// traced poll is not the program's.
    skip: u8,
    /// Set once known: whether a traced poll must wake the future itself
    /// (see `super::trace::traced_poll`); tokio defers that wake on a
    /// current-thread runtime's `block_on`, not on a multi-thread one's.
    wakes_itself: Option<bool>,
}

impl Own {
    /// Opens a slot for a `block_on` future spawned at `location`; `None`
    /// when the agent is not started or its table is full.
    pub(crate) fn start(location: &'static std::panic::Location<'static>) -> Option<Own> {
        let recorder = crate::recorder_if_started()?;
        let Some((key, slot)) = recorder.table.alloc() else {
            recorder.dropped.fetch_add(1, Relaxed);
            return None;
        };
        let task_id = NEXT_ID.fetch_sub(1, Relaxed);
        slot.task_id.store(task_id, Relaxed);
        slot.kind.store(kind_code("block_on"), Relaxed);
        slot.file.store(FILES.get().map_or(0, |files| files.intern(location.file())), Relaxed);
        slot.line_col.store((u64::from(location.line()) << 32) | u64::from(location.column()), Relaxed);
        slot.spawned_at.store(clock::coarse::now(), std::sync::atomic::Ordering::Release);
        Some(Own { key, slot, task_id, skip: 0, wakes_itself: None })
    }

    pub(crate) fn task_id(&self) -> u64 {
        self.task_id
    }

    /// Whether a traced poll must wake the future itself.
    pub(crate) fn wakes_itself(&self) -> bool {
        self.wakes_itself.unwrap_or(true)
    }

    /// A poll starts; `traced` when it is a capture's. Returns whether it is
    /// recorded: not a capture's traced poll, nor the re-poll after it.
    pub(crate) fn before_poll(&mut self, traced: bool) -> bool {
        if self.wakes_itself.is_none() {
            let runtime = tokio::runtime::Handle::try_current().ok();
            self.wakes_itself = Some(
                runtime.as_ref().is_none_or(|h| h.runtime_flavor() != tokio::runtime::RuntimeFlavor::CurrentThread),
            );
            // The runtime that blocks on it, once: its `Task.runtime`.
            if let Some(handle) = &runtime {
                crate::tags::tag_with(self.slot, crate::tags::runtime_u64(handle));
            }
        }
        if traced {
            return false;
        }
        if self.skip > 0 {
            self.skip -= 1;
            return false;
        }
        start_poll(self.slot, clock::coarse::now());
        true
    }

    /// The poll ends. A traced poll that reached a tokio leaf is polled
    /// again at once, and that re-poll is not recorded either.
    pub(crate) fn after_poll(&mut self, recorded: bool, traced_a_leaf: bool) {
        if traced_a_leaf {
            self.skip = 1;
        } else if recorded {
            end_poll(self.slot, clock::coarse::now_noted());
        }
    }
}

impl Drop for Own {
    fn drop(&mut self) {
        if let Some(recorder) = crate::recorder_if_started() {
            self.slot.running.store(0, std::sync::atomic::Ordering::Release);
            recorder.table.finish(self.key, self.slot, clock::coarse::now());
        }
    }
}
