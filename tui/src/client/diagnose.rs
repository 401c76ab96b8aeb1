//! Turns a low-level failure (an `io::Error` deep in tonic's error chain, a
//! gRPC status) into the [`ConnectError`] that explains it.
//!
//! The same symptom means different things depending on the process behind
//! the socket: "connection refused" is a stale socket when the PID is dead and
//! a wedged agent when it is alive. So each classifier looks at the process
//! (via [`crate::process`]) before choosing a message. The only side effect is
//! removing a stale socket of a dead PID in the discovery directory.

use std::error::Error as StdError;
use std::io;
use std::path::Path;
use std::sync::Arc;

use super::error::ConnectError;
use crate::process::{self, Liveness};
use crate::target::Target;

/// `process 1234 (name)` for a target with a PID, else its address.
pub fn who(target: &Target) -> String {
    match target {
        Target::Pid { pid, .. } => process::describe(*pid, process::name(*pid).as_deref()),
        _ => target.address(),
    }
}

/// The socket of `target` does not exist.
pub fn missing_socket(target: &Target, socket: &Path) -> ConnectError {
    match target {
        Target::Pid { pid, .. } => missing_pid_socket(*pid, socket),
        _ => {
            let hint = match target.pid().map(|pid| (pid, process::liveness(pid))) {
                Some((pid, Liveness::Dead)) => format!(" (process {pid} is not running)"),
                _ => String::new(),
            };
            ConnectError::NoSocket { path: socket.to_path_buf(), hint }
        }
    }
}

fn missing_pid_socket(pid: u32, socket: &Path) -> ConnectError {
    let who = process::describe(pid, process::name(pid).as_deref());
    let owner = process::uid(pid);
    match process::liveness(pid) {
        Liveness::Dead => ConnectError::NotRunning { pid },
        Liveness::AliveOtherUser => other_user(who, owner),
        Liveness::Alive if owner.is_some_and(|uid| uid != our_uid()) => other_user(who, owner),
        Liveness::Alive => match process::thread_group(pid) {
            Some(group) if group != pid => ConnectError::Thread {
                tid: pid,
                pid: group,
                who: process::describe(group, process::name(group).as_deref()),
            },
            _ if process::has_agent_thread(pid) => ConnectError::AgentElsewhere { who, socket: socket.to_path_buf() },
            _ => ConnectError::NoAgent { who, socket: socket.to_path_buf() },
        },
    }
}

/// No answer within `after`; says so when the process is stopped, which
/// explains it.
pub fn timed_out(target: &Target, after: String) -> ConnectError {
    ConnectError::Timeout { who: who(target), hint: stopped_hint(target.pid()), after }
}

/// `" (it is stopped: ...)"` when process `pid` is stopped, else empty.
pub fn stopped_hint(pid: Option<u32>) -> String {
    match pid.filter(|&pid| process::is_stopped(pid)) {
        Some(pid) => format!(" (the process is stopped: resume it with `kill -CONT {pid}`)"),
        None => String::new(),
    }
}

fn other_user(who: String, owner: Option<u32>) -> ConnectError {
    let hint = match owner {
        Some(uid) => format!(" (uid {uid}); its agent serves only that user: run taskscope as uid {uid}"),
        None => "; its agent serves only that user: run taskscope as that user".to_string(),
    };
    ConnectError::OtherUser { who, hint }
}

/// Connecting failed (before any request was sent).
pub fn connect_failed(target: &Target, err: &(dyn StdError + 'static)) -> ConnectError {
    let Some(io_err) = find_io_error(err) else {
        if let Some(why) = not_http2(err) {
            // An echo server, an HTTP/1 server, a database: it answered,
            // but its bytes are no HTTP/2 frames.
            return ConnectError::NotAnAgent {
                who: who(target),
                detail: format!("it does not speak HTTP/2, as gRPC does: {why}"),
            };
        }
        return closed_or_other_user(target, innermost(err));
    };
    match io_err.kind() {
        io::ErrorKind::ConnectionRefused => refused(target),
        io::ErrorKind::NotFound => match target.socket() {
            Some(socket) => missing_socket(target, socket),
            None => ConnectError::Io { who: who(target), detail: io_err.to_string() },
        },
        io::ErrorKind::PermissionDenied => permission_denied(target, io_err),
        // Normally the caller's own limit fires first (see `connect_with`).
        io::ErrorKind::TimedOut => timed_out(target, "the time allowed".into()),
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => closed_or_other_user(target, io_err.to_string()),
        _ => ConnectError::Io { who: who(target), detail: innermost(err) },
    }
}

/// Whether a failed `GetInfo` came from a gRPC server that serves another
/// service (UNIMPLEMENTED, with a real `grpc-status`): worth asking in
/// console-subscriber's protocol next.
pub fn other_grpc_service(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::Unimplemented && !status.message().starts_with("grpc-status header missing")
}

/// `GetInfo` returned an error status.
pub fn get_info_failed(target: &Target, status: &tonic::Status) -> ConnectError {
    // tonic invents a status from the HTTP status when a response carries no
    // `grpc-status`: whatever answered does not speak gRPC at all.
    if let Some(http) = status.message().strip_prefix("grpc-status header missing, mapped from HTTP status code ") {
        return ConnectError::NotAnAgent { who: who(target), detail: format!("it answered HTTP {http}, not gRPC") };
    }
    match status.code() {
        tonic::Code::Unimplemented => {
            ConnectError::OtherProtocol { who: who(target), ours: taskscope_proto::PROTOCOL_VERSION }
        }
        // The peer closed the connection before answering: hyper cancels the
        // request, with or without an underlying error. The agent does that
        // to other users, so diagnose it like a failed connect.
        tonic::Code::Cancelled => connect_failed(target, status),
        // Transport trouble surfaces as UNAVAILABLE (or UNKNOWN from hyper):
        // look at the underlying error like a failed connect.
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal
            if StdError::source(status).is_some() =>
        {
            connect_failed(target, status)
        }
        code => ConnectError::Status { who: who(target), code, message: status.message().to_string() },
    }
}

/// Connection refused: stale socket, wedged agent, or nothing on that port.
fn refused(target: &Target) -> ConnectError {
    match target {
        Target::Pid { pid, socket } => match process::liveness(*pid) {
            Liveness::Dead => ConnectError::StaleSocket {
                pid: *pid,
                socket: socket.clone(),
                removed: remove_socket(socket).map_err(Arc::new),
            },
            _ => ConnectError::NotAnswering { who: who(target), socket: socket.clone() },
        },
        Target::Unix { path } if !is_socket(path) => ConnectError::NotASocket { path: path.clone() },
        Target::Unix { path } => {
            let hint = match target.pid().map(|pid| (pid, process::liveness(pid))) {
                Some((pid, Liveness::Dead)) => {
                    format!(": nothing listens there (process {pid} is not running; the socket is stale)")
                }
                Some((pid, _)) => format!(": process {pid} runs but its agent is not answering"),
                None => ": nothing listens there (stale socket?)".to_string(),
            };
            ConnectError::Refused { address: path.display().to_string(), hint }
        }
        Target::Tcp { .. } => ConnectError::Refused {
            address: target.address(),
            hint: format!(
                ": is the program running with {}={} (or console-subscriber listening there)?",
                taskscope_proto::env::TCP.name,
                target.address()
            ),
        },
        Target::Console { at } => ConnectError::Refused {
            address: at.address(),
            hint: format!(
                ": is the program running with console-subscriber listening there (its default {}, or \
                 TOKIO_CONSOLE_BIND)?",
                crate::target::CONSOLE_DEFAULT
            ),
        },
    }
}

/// Whether `path` is a socket file (a missing path counts as one: the
/// caller reports that case itself).
fn is_socket(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).map_or(true, |m| m.file_type().is_socket())
}

/// Removes a stale socket; a socket already gone counts as removed.
fn remove_socket(socket: &Path) -> io::Result<()> {
    match std::fs::remove_file(socket) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn permission_denied(target: &Target, io_err: &io::Error) -> ConnectError {
    if let Some(other) = owned_by_other_user(target) {
        return other;
    }
    ConnectError::PermissionDenied { address: target.address(), detail: io_err.to_string() }
}

/// The agent dropped the connection. It does so when our uid differs from
/// its own, so check that before blaming the agent.
fn closed_or_other_user(target: &Target, detail: String) -> ConnectError {
    owned_by_other_user(target).unwrap_or_else(|| ConnectError::Closed { who: who(target), detail })
}

/// `OtherUser` when the socket file or the process belongs to another uid.
fn owned_by_other_user(target: &Target) -> Option<ConnectError> {
    let me = our_uid();
    let socket_owner = target.socket().and_then(process::file_uid).filter(|&uid| uid != me);
    let process_owner = target.pid().and_then(process::uid).filter(|&uid| uid != me);
    let owner = process_owner.or(socket_owner)?;
    let who = match target.pid() {
        Some(pid) => process::describe(pid, process::name(pid).as_deref()),
        None => target.address(),
    };
    Some(other_user(who, Some(owner)))
}

fn our_uid() -> u32 {
    taskscope_proto::discovery::effective_uid()
}

/// The most telling `io::Error` in an error's source chain: the first whose
/// kind is not `Other`, else the first of any kind.
fn find_io_error<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a io::Error> {
    let mut first = None;
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if io.kind() != io::ErrorKind::Other {
                return Some(io);
            }
            first = first.or(Some(io));
        }
        cur = next_cause(e);
    }
    first
}

/// The error's cause. `io::Error::source` skips the error an `io::Error`
/// wraps (it returns that error's source), so step into it explicitly.
fn next_cause<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a (dyn StdError + 'static)> {
    if let Some(inner) = err.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
        return Some(inner as &(dyn StdError + 'static));
    }
    err.source()
}

/// The HTTP/2 library's own complaint about what the peer sent (a frame
/// too large, a malformed preface), if that is what failed: the peer does
/// not speak HTTP/2 at all.
fn not_http2(err: &(dyn StdError + 'static)) -> Option<String> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return (h2.is_library() && !h2.is_io()).then(|| h2.to_string());
        }
        cur = next_cause(e);
    }
    None
}

/// The most specific message in an error chain (its last source).
fn innermost(err: &(dyn StdError + 'static)) -> String {
    let mut cur = err;
    while let Some(next) = next_cause(cur) {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn refused_on_a_dead_pid_removes_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let pid = dead_pid();
        let socket = dir.path().join(format!("{pid}.sock"));
        std::fs::write(&socket, b"").unwrap();
        let target = Target::Pid { pid, socket: socket.clone() };
        let err = connect_failed(&target, &io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(matches!(err, ConnectError::StaleSocket { removed: Ok(()), .. }), "{err}");
        assert!(!socket.exists());
    }

    #[test]
    fn refused_on_a_live_pid_is_an_agent_not_answering() {
        let pid = std::process::id();
        let target = Target::Pid { pid, socket: "/nonexistent/x.sock".into() };
        let err = connect_failed(&target, &io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(err.to_string().contains("agent not answering"), "{err}");
    }

    #[test]
    fn tcp_refused_names_the_variable() {
        let target = Target::Tcp { host: "127.0.0.1".into(), port: 1 };
        let err = connect_failed(&target, &io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(
            err.to_string(),
            "connection refused by 127.0.0.1:1: is the program running with TASKSCOPE_TCP=127.0.0.1:1 \
             (or console-subscriber listening there)?"
        );
        let console = Target::Console { at: Box::new(target) };
        let err = connect_failed(&console, &io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(err.to_string().contains("console-subscriber listening there"), "{err}");
        assert!(!err.to_string().contains("TASKSCOPE_TCP"), "{err}");
    }

    #[test]
    fn nested_io_errors_are_found() {
        let inner = io::Error::from(io::ErrorKind::PermissionDenied);
        let outer = io::Error::other(inner);
        assert_eq!(find_io_error(&outer).map(io::Error::kind), Some(io::ErrorKind::PermissionDenied));
        assert_eq!(innermost(&outer), io::Error::from(io::ErrorKind::PermissionDenied).to_string());
    }

    #[test]
    fn unimplemented_is_another_protocol() {
        let target = Target::Tcp { host: "h".into(), port: 1 };
        let err = get_info_failed(&target, &tonic::Status::unimplemented("no"));
        assert!(matches!(err, ConnectError::OtherProtocol { ours: 1, .. }));
    }

    #[test]
    fn plain_http_servers_are_not_agents() {
        let target = Target::Tcp { host: "h".into(), port: 80 };
        let status = tonic::Status::unimplemented("grpc-status header missing, mapped from HTTP status code 404");
        assert_eq!(
            get_info_failed(&target, &status).to_string(),
            "h:80: neither a taskscope agent nor a console-subscriber (it answered HTTP 404, not gRPC)"
        );
    }

    #[test]
    fn missing_socket_of_this_process_means_no_agent() {
        let pid = std::process::id();
        let target = Target::Pid { pid, socket: "/nonexistent/x.sock".into() };
        let err = missing_socket(&target, Path::new("/nonexistent/x.sock"));
        assert!(err.to_string().contains("is running but has no taskscope agent"), "{err}");
    }
}
