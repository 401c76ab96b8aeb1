//! What flows between the connection task and the UI.

use std::time::Duration;

use taskscope_proto as proto;

use super::state::DumpOutcome;

/// Data from the connection task to the UI.
#[derive(Debug)]
// A dump's answer is the large one, and it comes once per dump: boxing it
// would save nothing worth an allocation.
#[allow(clippy::large_enum_variant)]
pub enum DataEvent {
    /// The link changed state.
    Link(LinkEvent),
    /// `GetInfo` answered (after each successful connect).
    Info(Box<proto::ProcessInfo>),
    /// One message of the `Watch` stream.
    Update(Box<proto::WatchUpdate>),
    /// The answer to [`Command::Dump`] number `seq`.
    Dump { seq: u64, result: Result<DumpOutcome, String> },
}

/// A change of the link to the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// Dialing; attempt 1 is the first.
    Connecting { attempt: u32 },
    /// Connected; updates follow.
    Live,
    /// Failed or dropped; the next attempt comes in `retry_in`.
    Lost { reason: String, retry_in: Duration },
    /// The target PID no longer exists. When following its program, the
    /// connection task looks for the program's next process every
    /// `retry_in`; otherwise it stops trying.
    Exited { pid: u32, retry_in: Duration },
    /// Following program `name` (`--follow NAME`), none of whose processes
    /// has been found yet.
    Seeking { name: String },
    /// Now connected to process `pid` of the followed program; `previous`
    /// is the one that exited before it, if any. Its `Info` comes next.
    Followed { pid: u32, previous: Option<u32> },
}

/// Requests from the UI to the connection task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Capture the stacks of these tasks; answered by [`DataEvent::Dump`].
    Dump { seq: u64, task_ids: Vec<u64> },
}
