//! Every way reaching an agent can fail, each with the one line a user reads.
//!
//! Messages name the process (or address), the step that failed, and what to
//! do about it when there is something to do. Callers print them after
//! `taskscope: `; `ps` prints them in its table. The variants are public so
//! that a caller (the live TUI's reconnect loop, `ps`) can act on the kind of
//! failure rather than parse text.

use std::path::PathBuf;

/// Why [`super::connect`] did not produce a usable connection.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The PID names no running process, and no socket was left behind.
    #[error("process {pid} is not running")]
    NotRunning {
        /// The PID asked for.
        pid: u32,
    },

    /// The PID is a thread's, not a process's.
    #[error("{tid} is a thread of {who}, not a process: use its PID, {pid}")]
    Thread {
        /// The thread id given.
        tid: u32,
        /// The process it belongs to.
        pid: u32,
        /// `process 1234 (name)`.
        who: String,
    },

    /// The process has an agent (its thread runs), but its socket is not
    /// where this `taskscope` looks.
    #[error(
        "{who} has a taskscope agent but no socket at {}: it runs with another \
         TASKSCOPE_DIR (or XDG_RUNTIME_DIR) than this shell, or its agent could not listen \
         (see the program's stderr); run taskscope with the same environment, or name the socket",
        socket.display()
    )]
    AgentElsewhere {
        /// `process 1234 (name)`.
        who: String,
        /// Where its socket would be.
        socket: PathBuf,
    },

    /// The process runs, but never created a socket.
    #[error(
        "{who} is running but has no taskscope agent: add `taskscope_agent::init()` at the start \
         of its tokio main (no socket at {})",
        socket.display()
    )]
    NoAgent {
        /// `process 1234 (name)`.
        who: String,
        /// Where its socket would be.
        socket: PathBuf,
    },

    /// The process (or its socket) belongs to another user; the agent only
    /// serves its own user, and sockets live in per-user directories.
    #[error("permission refused: {who} belongs to another user{hint}")]
    OtherUser {
        /// `process 1234 (name)` or the socket path.
        who: String,
        /// Extra explanation, starting with a separator, or empty.
        hint: String,
    },

    /// The process is gone but its socket was still there (killed with -9,
    /// or crashed): the socket was removed, or could not be.
    #[error(
        "process {pid} is not running; {} stale socket {}{}",
        if removed.is_ok() { "removed its" } else { "could not remove its" },
        socket.display(),
        removed.as_ref().err().map(|e| format!(": {e}")).unwrap_or_default()
    )]
    StaleSocket {
        /// The dead PID.
        pid: u32,
        /// The socket it left.
        socket: PathBuf,
        /// Outcome of removing it.
        removed: Result<(), std::sync::Arc<std::io::Error>>,
    },

    /// The socket exists and its process runs, but nothing accepts connections.
    #[error("{who}: agent not answering (connection refused on {})", socket.display())]
    NotAnswering {
        /// `process 1234 (name)`.
        who: String,
        /// The socket.
        socket: PathBuf,
    },

    /// An explicit socket path does not exist.
    #[error("no socket at {}{hint}", path.display())]
    NoSocket {
        /// The path given.
        path: PathBuf,
        /// Extra explanation, starting with a separator, or empty.
        hint: String,
    },

    /// An explicit socket path names a file of another kind.
    #[error("{} is not a socket (an agent's socket is `<pid>.sock` in the socket directory)", path.display())]
    NotASocket {
        /// The path given.
        path: PathBuf,
    },

    /// Nothing listens at the address.
    #[error("connection refused by {address}{hint}")]
    Refused {
        /// Socket path or `host:port`.
        address: String,
        /// Extra explanation, starting with a separator, or empty.
        hint: String,
    },

    /// Permission denied for a reason other than another user's ownership.
    #[error("permission denied connecting to {address}: {detail}")]
    PermissionDenied {
        /// Socket path or `host:port`.
        address: String,
        /// The system's explanation.
        detail: String,
    },

    /// Connecting or the first request took longer than allowed.
    #[error("no answer from {who} within {after}{hint}")]
    Timeout {
        /// `process 1234 (name)` or the address.
        who: String,
        /// Extra explanation (the process is stopped), starting with a separator, or empty.
        hint: String,
        /// The limit, formatted (`5s`).
        after: String,
    },

    /// `GetInfo` is UNIMPLEMENTED, and so is console-subscriber's
    /// `WatchUpdates`: the agent serves another `taskscope.vN` package (or
    /// the server is neither a taskscope agent nor a console-subscriber).
    #[error(
        "{who}: a gRPC server that speaks neither taskscope.v{ours} nor console-subscriber's protocol \
         (an agent of another taskscope version needs the taskscope built for it)"
    )]
    OtherProtocol {
        /// `process 1234 (name)` or the address.
        who: String,
        /// Our version.
        ours: u32,
    },

    /// Something answered, but not in gRPC: another HTTP server (or a proxy,
    /// or a server of another protocol) listens at that address.
    #[error("{who}: neither a taskscope agent nor a console-subscriber ({detail})")]
    NotAnAgent {
        /// The address.
        who: String,
        /// What it answered instead.
        detail: String,
    },

    /// The agent answered, with a protocol version other than ours.
    #[error("{who}: agent speaks protocol v{theirs}, this taskscope speaks v{ours}")]
    VersionMismatch {
        /// `process 1234 (name)` or the address.
        who: String,
        /// The agent's version.
        theirs: u32,
        /// Our version.
        ours: u32,
    },

    /// The agent accepted the connection and then dropped it.
    #[error("{who}: agent closed the connection ({detail})")]
    Closed {
        /// `process 1234 (name)` or the address.
        who: String,
        /// What the transport reported.
        detail: String,
    },

    /// Any other failure to connect (unresolvable host, unreachable network...).
    #[error("cannot connect to {who}: {detail}")]
    Io {
        /// `process 1234 (name)` or the address.
        who: String,
        /// What the system reported.
        detail: String,
    },

    /// `GetInfo` failed with a gRPC status that says nothing about the above.
    #[error("{who}: GetInfo failed: {code:?}: {message}")]
    Status {
        /// `process 1234 (name)` or the address.
        who: String,
        /// The gRPC code.
        code: tonic::Code,
        /// The status message.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_socket_messages() {
        let removed = ConnectError::StaleSocket { pid: 9, socket: "/d/9.sock".into(), removed: Ok(()) };
        assert_eq!(removed.to_string(), "process 9 is not running; removed its stale socket /d/9.sock");
        let kept = ConnectError::StaleSocket {
            pid: 9,
            socket: "/d/9.sock".into(),
            removed: Err(std::sync::Arc::new(std::io::Error::other("read-only"))),
        };
        assert_eq!(
            kept.to_string(),
            "process 9 is not running; could not remove its stale socket /d/9.sock: read-only"
        );
    }

    #[test]
    fn protocol_messages() {
        let other = ConnectError::OtherProtocol { who: "process 1 (x)".into(), ours: 1 };
        assert!(other.to_string().contains("speaks neither taskscope.v1 nor console-subscriber's protocol"));
        let mismatch = ConnectError::VersionMismatch { who: "a".into(), theirs: 2, ours: 1 };
        assert_eq!(mismatch.to_string(), "a: agent speaks protocol v2, this taskscope speaks v1");
    }
}
