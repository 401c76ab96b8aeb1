//! The state of the link to the agent, as the header shows it.

use std::time::{Duration, Instant};

/// Where the connection to the target stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    /// Dialing (attempt 1 is the first).
    Connecting { attempt: u32 },
    /// Receiving the watch stream.
    Live,
    /// The connection failed or dropped; the next attempt is at `retry_at`.
    Lost { reason: String, retry_at: Instant },
    /// The target was a PID and that process no longer exists. The UI keeps
    /// the last data and checks again at `retry_at`.
    Exited { pid: u32, retry_at: Instant },
}

impl Connection {
    /// Whether data is flowing.
    pub fn is_live(&self) -> bool {
        matches!(self, Self::Live)
    }

    /// Short description at local time `now`, for the header's first line;
    /// the reason of a lost link is [`Self::problem`], shown in full below it.
    pub fn describe(&self, now: Instant) -> String {
        let wait = |at: &Instant| at.saturating_duration_since(now);
        match self {
            Self::Connecting { attempt: 1 } => "connecting…".to_string(),
            Self::Connecting { attempt } => format!("reconnecting (attempt {attempt})…"),
            Self::Live => "live".to_string(),
            Self::Lost { retry_at, .. } => format!("lost, retry in {}", countdown(wait(retry_at))),
            Self::Exited { pid, retry_at } => {
                format!("process {pid} exited; checking again in {}", countdown(wait(retry_at)))
            }
        }
    }

    /// Why the link is down, in the words of the failure (which often end
    /// with what to do: `kill -CONT 1234` resumes a stopped process).
    pub fn problem(&self) -> Option<&str> {
        match self {
            Self::Lost { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

/// Whole seconds, rounded up, so a countdown never shows "0s" before it fires.
fn countdown(d: Duration) -> String {
    let secs = d.as_millis().div_ceil(1000);
    format!("{secs}s")
}
