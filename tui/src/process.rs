//! What the operating system says about a local process, for error messages.
//!
//! When an agent cannot be reached, the precise reason depends on the process
//! behind it: gone (then a socket left behind is stale), alive without an
//! agent, or owned by another user. These probes never fail; an unknown
//! answer is `None` and the message falls back to a more general wording.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Whether a PID designates a running process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Running (or stopped); signals could reach it.
    Alive,
    /// Running, but owned by another user (we may not signal it).
    AliveOtherUser,
    /// No such process, or a zombie waiting to be reaped.
    Dead,
}

/// Probes `pid` with signal 0, which checks existence and permission without
/// delivering anything.
pub fn liveness(pid: u32) -> Liveness {
    let Ok(raw) = libc::pid_t::try_from(pid) else {
        return Liveness::Dead;
    };
    if raw <= 0 {
        // kill(0 or negative) would address process groups, never one process.
        return Liveness::Dead;
    }
    // SAFETY: kill with signal 0 performs only the existence/permission check.
    let rc = unsafe { libc::kill(raw, 0) };
    if rc == 0 {
        return if is_zombie(pid) { Liveness::Dead } else { Liveness::Alive };
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EPERM) => Liveness::AliveOtherUser,
        _ => Liveness::Dead,
    }
}

/// True when `/proc` shows the process as a zombie: it has exited and only
/// waits for its parent to collect it.
fn is_zombie(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // Fields after the `(comm)` part, which may itself contain spaces or `)`.
    stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()) == Some("Z")
}

/// The short process name (`/proc/<pid>/comm`), when readable.
pub fn name(pid: u32) -> Option<String> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    let comm = comm.trim_end_matches('\n');
    (!comm.is_empty()).then(|| comm.to_string())
}

/// The user owning the process, when known.
pub fn uid(pid: u32) -> Option<u32> {
    std::fs::metadata(format!("/proc/{pid}")).ok().map(|m| m.uid())
}

/// The user owning a file (the agent's socket), when it exists.
pub fn file_uid(path: &Path) -> Option<u32> {
    std::fs::symlink_metadata(path).ok().map(|m| m.uid())
}

/// `process 1234 (name)`, or `process 1234` when the name is unknown.
pub fn describe(pid: u32, name: Option<&str>) -> String {
    match name {
        Some(name) if !name.is_empty() => format!("process {pid} ({name})"),
        _ => format!("process {pid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_named() {
        let me = std::process::id();
        assert_eq!(liveness(me), Liveness::Alive);
        assert!(name(me).is_some());
        assert_eq!(uid(me), Some(taskscope_proto::discovery::effective_uid()));
    }

    #[test]
    fn reaped_child_is_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert_eq!(liveness(pid), Liveness::Dead);
    }

    #[test]
    fn unreaped_child_is_dead_too() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Wait until it has exited without reaping it.
        for _ in 0..200 {
            if is_zombie(pid) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(liveness(pid), Liveness::Dead);
        child.wait().unwrap();
    }

    #[test]
    fn impossible_pids_are_dead() {
        assert_eq!(liveness(0), Liveness::Dead);
        assert_eq!(liveness(u32::MAX), Liveness::Dead);
    }

    #[test]
    fn describe_with_and_without_name() {
        assert_eq!(describe(7, Some("sleep")), "process 7 (sleep)");
        assert_eq!(describe(7, None), "process 7");
    }
}
