//! What the operating system says about a local process, for error messages.
//!
//! When an agent cannot be reached, the precise reason depends on the process
//! behind it: gone (then a socket left behind is stale), alive without an
//! agent, or owned by another user. These probes never fail; an unknown
//! answer is `None` and the message falls back to a more general wording.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

pub use taskscope_proto::discovery::{liveness, Liveness};

/// The short process name (`/proc/<pid>/comm`), when readable.
pub fn name(pid: u32) -> Option<String> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    let comm = comm.trim_end_matches('\n');
    (!comm.is_empty()).then(|| crate::output::shown(comm).into_owned())
}

/// The user owning the process, when known.
pub fn uid(pid: u32) -> Option<u32> {
    std::fs::metadata(format!("/proc/{pid}")).ok().map(|m| m.uid())
}

/// The user owning a file (the agent's socket), when it exists.
pub fn file_uid(path: &Path) -> Option<u32> {
    std::fs::symlink_metadata(path).ok().map(|m| m.uid())
}

/// The process a thread id belongs to (`Tgid` in `/proc/<id>/status`):
/// itself for a process, another PID for a thread, `None` when unknown.
pub fn thread_group(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("Tgid:")).and_then(|v| v.trim().parse().ok())
}

/// Whether the process is stopped (`SIGSTOP`, `SIGTSTP`, or held by a
/// debugger): it cannot answer until resumed.
pub fn is_stopped(pid: u32) -> bool {
    matches!(taskscope_proto::discovery::state(pid), Some('T' | 't'))
}

/// Whether one of the process's threads is the agent's (named
/// [`AGENT_THREAD`](taskscope_proto::discovery::AGENT_THREAD)): it has an
/// agent even if its socket is not where we look.
pub fn has_agent_thread(pid: u32) -> bool {
    let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    threads.filter_map(Result::ok).any(|t| {
        std::fs::read_to_string(t.path().join("comm"))
            .is_ok_and(|comm| comm.trim_end() == taskscope_proto::discovery::AGENT_THREAD)
    })
}

/// How long ago the process started (`/proc/<pid>/stat`'s start time
/// against `/proc/uptime`), when known.
pub fn age(pid: u32) -> Option<std::time::Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name, in parentheses, may hold spaces: fields are counted after it.
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Field 22 of the whole line, the 20th after the name and its state.
    let started_ticks: u64 = after_name.split_whitespace().nth(19)?.parse().ok()?;
    let uptime = std::fs::read_to_string("/proc/uptime").ok()?;
    let uptime: f64 = uptime.split_whitespace().next()?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks_per_second <= 0 {
        return None;
    }
    let started = started_ticks as f64 / ticks_per_second as f64;
    Some(std::time::Duration::from_secs_f64((uptime - started).max(0.0)))
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
    fn threads_and_stops_are_seen() {
        let me = std::process::id();
        assert_eq!(thread_group(me), Some(me));
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            tx.send(unsafe { libc::gettid() } as u32).unwrap();
            let _ = done_rx.recv();
        });
        let live_tid = rx.recv().unwrap();
        assert_ne!(live_tid, me);
        assert_eq!(thread_group(live_tid), Some(me));
        drop(done_tx);
        t.join().unwrap();
        assert!(!is_stopped(me));
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
        let stopped = (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            is_stopped(pid)
        });
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(stopped);
        assert!(!has_agent_thread(me));
    }

    #[test]
    fn describe_with_and_without_name() {
        assert_eq!(describe(7, Some("sleep")), "process 7 (sleep)");
        assert_eq!(describe(7, None), "process 7");
    }

    #[test]
    fn this_process_is_young_and_pid_1_is_older() {
        let me = super::age(std::process::id()).expect("our own age");
        assert!(me < std::time::Duration::from_secs(600), "{me:?}");
        if let Some(init) = super::age(1) {
            assert!(init >= me, "{init:?} < {me:?}");
        }
    }
}
