//! The one owner of the task table (interface; body in progress).

use std::time::Duration;

use taskscope_proto as proto;
use tokio::sync::mpsc;

/// The agent's state thread is gone (the host is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the taskscope agent's state task has stopped")]
pub(crate) struct StateGone;

/// The task table at one instant.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// Agent clock when it was read.
    pub now_ns: u64,
    /// Live tasks and retained completed ones.
    pub tasks: Vec<proto::Task>,
    /// Counts at `now_ns`.
    pub counts: proto::TaskCounts,
    /// Events lost so far.
    pub dropped_events: u64,
}

/// Counts without the table: cheap, for `GetInfo`.
#[derive(Debug, Default, Clone)]
pub(crate) struct Summary {
    pub now_ns: u64,
    pub counts: proto::TaskCounts,
    pub dropped_events: u64,
}

/// Cloneable handle used by the server to ask the state owner for data.
#[derive(Clone)]
pub(crate) struct StateHandle {
    _private: (),
}

impl StateHandle {
    /// The whole table now.
    pub(crate) async fn snapshot(&self) -> Result<Snapshot, StateGone> {
        Err(StateGone)
    }

    /// Counts now.
    pub(crate) async fn summary(&self) -> Result<Summary, StateGone> {
        Err(StateGone)
    }

    /// A stream of updates: a full snapshot (possibly in several messages, the
    /// first with `reset`, the last with `complete`), then one batch of
    /// changes every `interval`. Ends when the receiver is dropped.
    pub(crate) async fn watch(
        &self,
        _interval: Duration,
    ) -> Result<mpsc::Receiver<proto::WatchUpdate>, StateGone> {
        Err(StateGone)
    }
}
