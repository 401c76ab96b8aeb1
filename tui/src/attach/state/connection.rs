//! The state of the link to the agent, as the header shows it, and which
//! process of a followed program it is to: when a PID's process exits, the
//! header says so by name, and then which process took its place.

use std::time::{Duration, Instant};

use super::State;

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
    /// the last data; what comes next (following the program's next process,
    /// or nothing) is [`State::link_problem`](super::State::link_problem)'s
    /// to say, which knows the process's name.
    Exited { pid: u32 },
    /// Following a program none of whose processes is running yet.
    Seeking { name: String },
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
            Self::Exited { .. } => "exited".to_string(),
            Self::Seeking { name } => format!("waiting for a {name} process"),
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

/// A switch to a new process of the followed program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Followed {
    pid: u32,
    /// The process that exited before it, as the header named it.
    previous: Option<String>,
}

/// `process 1234 (name)`, the name as the program's own text is shown.
fn describe_process(pid: u32, name: Option<&str>) -> String {
    crate::process::describe(pid, name.map(crate::output::shown).as_deref())
}

impl State {
    /// Records that the connection task now follows process `pid` of the
    /// program, after `previous` exited. Comes before that process's `Info`.
    pub fn set_followed(&mut self, pid: u32, previous: Option<u32>) {
        let previous = previous.map(|prev| describe_process(prev, self.process_name_of(prev)));
        self.followed = Some(Followed { pid, previous });
    }

    /// The name of process `pid`, when the last `GetInfo` was its.
    fn process_name_of(&self, pid: u32) -> Option<&str> {
        self.process.as_ref().filter(|p| p.pid == pid && !p.process_name.is_empty()).map(|p| p.process_name.as_str())
    }

    /// What is wrong with the link, in full, for the header to wrap: the
    /// failure's own words, or which process exited and what happens next.
    pub fn link_problem(&self) -> Option<String> {
        match &self.connection {
            Connection::Exited { pid } => {
                let gone = describe_process(*pid, self.process_name_of(*pid));
                Some(match &self.follow {
                    Some(name) => {
                        format!("{gone} exited; waiting for a new {} process to follow", crate::output::shown(name))
                    }
                    None => format!("{gone} exited"),
                })
            }
            other => other.problem().map(str::to_string),
        }
    }

    /// Which process is followed now, once it has been switched to (and its
    /// `Info` has come): "now following process 5678 (server), after process
    /// 1234 (server) exited".
    pub fn follow_notice(&self) -> Option<String> {
        let followed = self.followed.as_ref()?;
        let now = describe_process(followed.pid, Some(self.process_name_of(followed.pid)?));
        Some(match &followed.previous {
            Some(previous) => format!("now following {now}, after {previous} exited"),
            None => format!("now following {now}"),
        })
    }
}
