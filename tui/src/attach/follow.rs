//! Following a program rather than one process. A restarted service comes
//! back with a new PID, so a PID target that exits would otherwise be a dead
//! end: `attach <pid>` (unless `--no-follow`) and `attach --follow NAME` go
//! on to the program's next process instead.
//!
//! Processes are found the way `taskscope ps` finds them, by their sockets in
//! the discovery directory, and asked `GetInfo`. A process belongs to the
//! program when its agent reports the same name (the executable's file
//! name). After an exit, only a process that started later counts, the
//! earliest of them: another instance that was already running beside the
//! exited one is not its successor. With none exited yet (`--follow NAME`
//! at start), the newest process of the program is taken.

use std::time::{Duration, SystemTime};

use taskscope_proto::{discovery, ProcessInfo};

use crate::client::{self, Connected, Timeouts};
use crate::target::Target;

/// How often to look for the program's next process while there is none.
pub const SEEK_EVERY: Duration = Duration::from_secs(1);

/// Limits for asking each candidate: short, so that one wedged agent does
/// not hold up the search for long.
const PROBE: Timeouts = Timeouts { connect: Duration::from_secs(1), request: Duration::from_secs(1) };

/// A process of the followed program that has exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone {
    pub pid: u32,
    /// When it started (see [`started`]).
    pub started: SystemTime,
}

/// When the process `info` describes started, from its uptime as its agent
/// reported it at about `now`.
pub fn started(info: &ProcessInfo, now: SystemTime) -> SystemTime {
    now.checked_sub(Duration::from_nanos(info.uptime_ns)).unwrap_or(SystemTime::UNIX_EPOCH)
}

/// A running process of program `name` whose agent answers: after `gone`,
/// the first one started since it; without, the newest. `None` when there is
/// none (yet).
pub async fn find(name: &str, gone: Option<Gone>) -> Option<Connected> {
    let sockets = crate::ps::list_sockets(&discovery::socket_dir()).ok()?;
    let probes = sockets
        .into_iter()
        .filter(|(pid, _)| gone.is_none_or(|g| *pid != g.pid))
        .map(|(pid, socket)| async move { client::connect_with(&Target::Pid { pid, socket }, PROBE).await.ok() });
    let now = SystemTime::now();
    let candidates = futures::future::join_all(probes)
        .await
        .into_iter()
        .flatten()
        .filter(|c| c.info.process_name == name)
        .map(|c| (started(&c.info, now), c));
    pick(candidates, gone.map(|g| g.started))
}

/// The choice among `(started, process)` candidates, as [`find`] makes it.
fn pick<T>(candidates: impl Iterator<Item = (SystemTime, T)>, after: Option<SystemTime>) -> Option<T> {
    match after {
        Some(after) => candidates.filter(|(started, _)| *started > after).min_by_key(|(started, _)| *started),
        None => candidates.max_by_key(|(started, _)| *started),
    }
    .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_successor_is_the_first_started_after_the_exit_and_else_the_newest() {
        let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let running = || [(at(10), "beside"), (at(30), "second"), (at(20), "first")].into_iter();
        assert_eq!(pick(running(), Some(at(15))), Some("first"), "the one already beside it is no successor");
        assert_eq!(pick(running(), Some(at(30))), None, "none started since");
        assert_eq!(pick(running(), None), Some("second"), "the newest");
        assert_eq!(pick(std::iter::empty::<(SystemTime, ())>(), None), None);
        let info = ProcessInfo { uptime_ns: 5_000_000_000, ..Default::default() };
        assert_eq!(started(&info, at(100)), at(95));
    }
}
