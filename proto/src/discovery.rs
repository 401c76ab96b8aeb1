//! Where an agent listens, so that a tool can find it from the PID alone.
//!
//! Each process with an agent owns one Unix socket named `<pid>.sock` in a
//! per-user directory (mode 0700; the socket itself is 0600):
//!
//! 1. `$TASKSCOPE_DIR` when set (tests and unusual setups);
//! 2. else `$XDG_RUNTIME_DIR/taskscope` when `XDG_RUNTIME_DIR` is set;
//! 3. else `<temp dir>/taskscope-<uid>`.
//!
//! Agent and tools compute the directory with the same function, so they agree
//! as long as they run with the same environment and user. Both also remove
//! the sockets of processes that are gone, by the same [`liveness`] probe.

use std::path::{Path, PathBuf};

/// The per-user directory holding one socket per inspected process.
pub fn socket_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(crate::env::DIR.name).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return Path::new(&dir).join("taskscope");
    }
    std::env::temp_dir().join(format!("taskscope-{}", effective_uid()))
}

/// The socket of process `pid` in [`socket_dir`].
pub fn socket_path(pid: u32) -> PathBuf {
    socket_dir().join(format!("{pid}.sock"))
}

/// The PID a socket file in [`socket_dir`] belongs to, from its name.
pub fn pid_of_socket(path: &Path) -> Option<u32> {
    let name = path.file_name()?.to_str()?;
    name.strip_suffix(".sock")?.parse().ok()
}

/// Whether a process listens on the Unix socket at `path` right now.
///
/// A PID alone cannot tell a stale socket from a live one: a program in
/// another PID namespace (a container sharing the directory) has a PID that
/// does not exist here, or that a different process here has. So whoever
/// removes or replaces a socket file first connects to it, without blocking
/// (a listener whose queue is full counts as in use): only a refused
/// connection, or no file, means nobody serves it. Anything unexpected
/// counts as in use, since removing a live socket cuts its program off.
pub fn in_use(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: sockaddr_un is plain data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return true;
    }
    for (slot, byte) in addr.sun_path.iter_mut().zip(bytes) {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: creating a socket has no preconditions; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return true;
    }
    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: `addr` is a valid, NUL-terminated sockaddr_un of `len` bytes.
    let rc = unsafe { libc::connect(fd, std::ptr::addr_of!(addr).cast(), len) };
    let errno = std::io::Error::last_os_error().raw_os_error();
    // SAFETY: `fd` is ours and closed once.
    unsafe { libc::close(fd) };
    rc == 0 || !matches!(errno, Some(libc::ECONNREFUSED | libc::ENOENT | libc::ENOTDIR))
}

/// The name of the agent's thread: a process that has one runs an agent,
/// wherever its socket is.
pub const AGENT_THREAD: &str = "taskscope-agent";

/// The effective user id of this process.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

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

/// The inode of the PID namespace of `pid` (`None`: this process), from
/// the `/proc/<pid>/ns/pid` link (`pid:[4026531836]`), when readable.
/// Two processes see each other's PIDs as the same numbers only when this is
/// the same for both.
pub fn pid_namespace(pid: Option<u32>) -> Option<u64> {
    let link = match pid {
        Some(pid) => format!("/proc/{pid}/ns/pid"),
        None => "/proc/self/ns/pid".to_string(),
    };
    let target = std::fs::read_link(link).ok()?;
    target.to_str()?.strip_prefix("pid:[")?.strip_suffix(']')?.parse().ok()
}

/// True when `/proc` shows the process as a zombie: it has exited and only
/// waits for its parent to collect it.
fn is_zombie(pid: u32) -> bool {
    state(pid) == Some('Z')
}

/// The process's state letter from `/proc/<pid>/stat` (`R`, `S`, `T`, `Z`,
/// ...), when readable.
pub fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the `(comm)` part, which may itself contain spaces or `)`.
    stat.rsplit_once(')')?.1.split_whitespace().next()?.chars().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_namespace_is_shared_with_a_child() {
        let own = pid_namespace(None).expect("/proc/self/ns/pid is readable");
        assert!(own > 0);
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        assert_eq!(pid_namespace(Some(child.id())), Some(own));
        let _ = child.kill();
        let _ = child.wait();
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
    fn a_socket_is_in_use_only_while_something_listens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.sock");
        assert!(!in_use(&path), "no file");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert!(in_use(&path), "listening");
        drop(listener);
        assert!(path.exists());
        // A child another test forks may hold a copy of the listener until
        // it execs (close-on-exec), so allow a moment.
        let stale = (0..100).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            !in_use(&path)
        });
        assert!(stale, "the file of a closed listener is stale");
        std::fs::write(dir.path().join("2.sock"), b"").unwrap();
        assert!(!in_use(&dir.path().join("2.sock")), "a plain file serves nothing");
    }

    #[test]
    fn impossible_pids_are_dead() {
        assert_eq!(liveness(0), Liveness::Dead);
        assert_eq!(liveness(u32::MAX), Liveness::Dead);
    }
}
