//! The `<pid|addr>` argument of every command that talks to one agent.
//!
//! It follows gops: a bare number is a PID whose agent is found through
//! [`taskscope_proto::discovery`]; anything that looks like a path is a Unix
//! socket; `host:port` is TCP (for agents started with `TASKSCOPE_TCP`).
//! Parsing is done here rather than by clap so that a malformed address is
//! reported like every other failure (`taskscope: ...`, exit 1), with a
//! message that says what was expected.

use std::fmt;
use std::path::PathBuf;

/// Where to find one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A local process, reached through its socket in the discovery directory.
    Pid {
        /// The process id.
        pid: u32,
        /// `discovery::socket_path(pid)`, computed when the target was parsed.
        socket: PathBuf,
    },
    /// An explicit Unix socket path.
    Unix {
        /// The socket file.
        path: PathBuf,
    },
    /// A TCP address.
    Tcp {
        /// Host name or IP address; IPv6 addresses keep their brackets.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// `console://ADDR`: a console-subscriber (tokio-console's agent) at a
    /// Unix socket or TCP address, spoken to in its own protocol without
    /// trying taskscope's first (see [`crate::console`]).
    Console {
        /// Where it listens: a `Unix` or `Tcp` target.
        at: Box<Target>,
    },
}

/// Why a `<pid|addr>` argument could not be understood. The message is the
/// whole explanation; it is printed after `taskscope: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid target `{input}`: {reason}")]
pub struct TargetError {
    /// The argument as given.
    pub input: String,
    /// What is wrong with it and what was expected instead.
    pub reason: String,
}

const EXPECTED: &str = "expected a PID (e.g. `1234`), a Unix socket path (containing `/` or \
                        starting with `unix:`), or a TCP address (`host:port`, `http://host:port`, \
                        `[::1]:port`; `console://host:port` for a console-subscriber)";

/// Where console-subscriber listens unless told otherwise (its
/// `TOKIO_CONSOLE_BIND` default), for a bare `console://`.
pub const CONSOLE_DEFAULT: &str = "127.0.0.1:6669";

impl Target {
    /// Parses a `<pid|addr>` argument.
    ///
    /// ```text
    /// 1234                    -> Pid (socket from discovery::socket_path)
    /// /run/x/1234.sock, ./a   -> Unix
    /// unix:/tmp/a.sock        -> Unix
    /// localhost:6669          -> Tcp
    /// http://127.0.0.1:6669   -> Tcp (tcp://127.0.0.1:6669 too)
    /// [::1]:6669              -> Tcp
    /// console://[ADDR]        -> Console (ADDR a socket path or host:port;
    ///                            127.0.0.1:6669 when empty)
    /// ```
    pub fn parse(input: &str) -> Result<Target, TargetError> {
        let fail = |reason: &str| TargetError { input: input.to_string(), reason: reason.to_string() };
        let s = input.trim();
        if s.is_empty() {
            return Err(fail(EXPECTED));
        }
        if let Some(rest) = s.strip_prefix("console://") {
            let rest = if rest.is_empty() { CONSOLE_DEFAULT } else { rest };
            return match Target::parse(rest) {
                Ok(at @ (Target::Unix { .. } | Target::Tcp { .. })) => Ok(Target::Console { at: Box::new(at) }),
                Ok(_) => Err(fail("`console://` takes a socket path or `host:port`, not a PID")),
                Err(e) => Err(TargetError { input: input.to_string(), reason: e.reason }),
            };
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            let pid: u32 = match s.parse() {
                Ok(pid) if pid <= i32::MAX as u32 => pid,
                _ => return Err(fail("the number is too large to be a process id")),
            };
            if pid == 0 {
                return Err(fail("0 is not a process id"));
            }
            return Ok(Target::Pid { pid, socket: taskscope_proto::discovery::socket_path(pid) });
        }
        if let Some(rest) = s.strip_prefix("unix:") {
            // Accept `unix:/p`, `unix:///p` and `unix:relative`.
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(fail("`unix:` must be followed by a socket path"));
            }
            return Ok(Target::Unix { path: PathBuf::from(path) });
        }
        if s.starts_with("https://") {
            return Err(fail("TLS is not supported: agents serve plain gRPC; use `http://host:port`"));
        }
        // `tcp://` as many tools spell a TCP address; the agent speaks plain
        // gRPC over it either way.
        if let Some(rest) = s.strip_prefix("http://").or_else(|| s.strip_prefix("tcp://")) {
            let hostport = rest.strip_suffix('/').unwrap_or(rest);
            if hostport.contains('/') {
                return Err(fail("a TCP address takes no path: use `host:port`"));
            }
            return parse_host_port(hostport).map_err(|reason| fail(&reason));
        }
        if s.contains("://") {
            return Err(fail(&format!("unknown scheme; {EXPECTED}")));
        }
        if s.contains('/') {
            return Ok(Target::Unix { path: PathBuf::from(s) });
        }
        if s.contains(':') {
            return parse_host_port(s).map_err(|reason| fail(&reason));
        }
        Err(fail(&format!("{EXPECTED} (a socket file in the current directory is written `./{s}`)")))
    }

    /// The PID this target designates, when it designates one: a PID target,
    /// or a socket named `<pid>.sock` as the agent names them.
    pub fn pid(&self) -> Option<u32> {
        match self {
            Target::Pid { pid, .. } => Some(*pid),
            Target::Unix { path } => taskscope_proto::discovery::pid_of_socket(path),
            // console-subscriber's sockets are not named after a PID.
            Target::Tcp { .. } | Target::Console { .. } => None,
        }
    }

    /// The Unix socket to connect to, if this target is reached through one.
    pub fn socket(&self) -> Option<&std::path::Path> {
        match self {
            Target::Pid { socket, .. } => Some(socket),
            Target::Unix { path } => Some(path),
            Target::Tcp { .. } => None,
            Target::Console { at } => at.socket(),
        }
    }

    /// The address as text: the socket path, or `host:port`.
    pub fn address(&self) -> String {
        match self {
            Target::Pid { socket, .. } => socket.display().to_string(),
            Target::Unix { path } => path.display().to_string(),
            Target::Tcp { host, port } => format!("{host}:{port}"),
            Target::Console { at } => at.address(),
        }
    }

    /// What to open a connection to: the target itself, or the address a
    /// `console://` target names (never a `Console`).
    pub fn transport(&self) -> &Target {
        match self {
            Target::Console { at } => at.transport(),
            other => other,
        }
    }

    /// Whether only console-subscriber's protocol is to be spoken.
    pub fn is_console(&self) -> bool {
        matches!(self, Target::Console { .. })
    }
}

impl fmt::Display for Target {
    /// How messages name the target: `process 1234`, or its address.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Pid { pid, .. } => write!(f, "process {pid}"),
            Target::Console { at } => write!(f, "the console-subscriber at {}", at.address()),
            _ => write!(f, "the agent at {}", self.address()),
        }
    }
}

/// `host:port` or `[v6]:port`; the error is the reason only.
fn parse_host_port(s: &str) -> Result<Target, String> {
    if s.starts_with('[') && s.ends_with(']') {
        return Err(format!("missing port: write `{s}:6669`"));
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err("missing port: a TCP address is `host:port`".to_string());
    };
    if host.is_empty() {
        return Err("missing host before `:port` (e.g. `127.0.0.1:6669`)".to_string());
    }
    let port = match port.parse::<u16>() {
        Ok(p) if p != 0 => p,
        _ if port.is_empty() => return Err("missing port after `:`".to_string()),
        _ => return Err(format!("`{port}` is not a TCP port (1-65535)")),
    };
    if let Some(inner) = host.strip_prefix('[') {
        let Some(ip) = inner.strip_suffix(']') else {
            return Err("unclosed `[` in IPv6 address (write `[::1]:6669`)".to_string());
        };
        if ip.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("`{ip}` is not an IPv6 address"));
        }
    } else if host.contains(':') {
        return Err("IPv6 addresses need brackets: `[::1]:6669`".to_string());
    } else if !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_') {
        return Err(format!("`{host}` is not a host name or IP address"));
    }
    Ok(Target::Tcp { host: host.to_string(), port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Target {
        Target::Tcp { host: host.to_string(), port }
    }

    fn unix(path: &str) -> Target {
        Target::Unix { path: PathBuf::from(path) }
    }

    #[test]
    fn digits_are_a_pid_with_its_discovery_socket() {
        let t = Target::parse("1234").unwrap();
        assert_eq!(t, Target::Pid { pid: 1234, socket: taskscope_proto::discovery::socket_path(1234) });
        assert_eq!(t.pid(), Some(1234));
        assert_eq!(t.to_string(), "process 1234");
    }

    #[test]
    fn bad_pids_are_refused() {
        assert!(Target::parse("0").unwrap_err().reason.contains("not a process id"));
        assert!(Target::parse("99999999999").unwrap_err().reason.contains("too large"));
        assert!(Target::parse("4294967295").unwrap_err().reason.contains("too large"));
    }

    #[test]
    fn paths_are_unix_sockets() {
        assert_eq!(Target::parse("/run/taskscope/12.sock").unwrap(), unix("/run/taskscope/12.sock"));
        assert_eq!(Target::parse("./a.sock").unwrap(), unix("./a.sock"));
        assert_eq!(Target::parse("unix:/tmp/a.sock").unwrap(), unix("/tmp/a.sock"));
        assert_eq!(Target::parse("unix:///tmp/a.sock").unwrap(), unix("/tmp/a.sock"));
        assert_eq!(Target::parse("unix:a.sock").unwrap(), unix("a.sock"));
        assert!(Target::parse("unix:").is_err());
        assert_eq!(unix("/x/77.sock").pid(), Some(77));
        assert_eq!(unix("/x/agent.sock").pid(), None);
    }

    #[test]
    fn host_port_is_tcp() {
        assert_eq!(Target::parse("localhost:6669").unwrap(), tcp("localhost", 6669));
        assert_eq!(Target::parse("127.0.0.1:7000").unwrap(), tcp("127.0.0.1", 7000));
        assert_eq!(Target::parse("http://127.0.0.1:7000").unwrap(), tcp("127.0.0.1", 7000));
        assert_eq!(Target::parse("http://127.0.0.1:7000/").unwrap(), tcp("127.0.0.1", 7000));
        assert_eq!(Target::parse("[::1]:6669").unwrap(), tcp("[::1]", 6669));
        assert_eq!(Target::parse("http://[::1]:6669").unwrap(), tcp("[::1]", 6669));
        assert_eq!(Target::parse("tcp://127.0.0.1:7000").unwrap(), tcp("127.0.0.1", 7000));
        assert_eq!(Target::parse("tcp://[::1]:6669/").unwrap(), tcp("[::1]", 6669));
        assert_eq!(tcp("[::1]", 6669).address(), "[::1]:6669");
        assert_eq!(tcp("h", 1).to_string(), "the agent at h:1");
    }

    #[test]
    fn console_scheme_forces_console_subscriber() {
        let console = |t: Target| Target::Console { at: Box::new(t) };
        assert_eq!(Target::parse("console://127.0.0.1:7000").unwrap(), console(tcp("127.0.0.1", 7000)));
        assert_eq!(Target::parse("console://").unwrap(), console(tcp("127.0.0.1", 6669)));
        assert_eq!(Target::parse("console:///tmp/c.sock").unwrap(), console(unix("/tmp/c.sock")));
        let t = Target::parse("console://localhost:6669").unwrap();
        assert_eq!(t.transport(), &tcp("localhost", 6669));
        assert_eq!(t.address(), "localhost:6669");
        assert_eq!(t.to_string(), "the console-subscriber at localhost:6669");
        assert!(t.is_console() && t.pid().is_none() && t.socket().is_none());
        assert!(Target::parse("console://1234").unwrap_err().reason.contains("not a PID"));
        assert!(Target::parse("console://h:0").unwrap_err().to_string().starts_with("invalid target `console://h:0`"));
    }

    #[test]
    fn malformed_addresses_say_what_was_expected() {
        for (input, needle) in [
            ("", "expected a PID"),
            ("foo", "expected a PID"),
            ("foo.sock", "./foo.sock"),
            ("localhost:", "missing port"),
            (":6669", "missing host"),
            ("localhost:http", "not a TCP port"),
            ("localhost:70000", "not a TCP port"),
            ("localhost:0", "not a TCP port"),
            ("::1:6669", "brackets"),
            ("[::1:6669", "unclosed"),
            ("[::1]", "missing port"),
            ("http://[::1]", "missing port"),
            ("[nope]:6669", "not an IPv6"),
            ("http://localhost", "missing port"),
            ("http://h:1/path", "no path"),
            ("tcp://h:1/path", "no path"),
            ("tcp://", "missing port"),
            ("https://h:1", "TLS"),
            ("ftp://h:1", "unknown scheme"),
            ("a b:1", "not a host name"),
        ] {
            let err = Target::parse(input).unwrap_err();
            assert!(err.to_string().contains(needle), "{input:?}: {err}");
            assert!(err.to_string().starts_with(&format!("invalid target `{input}`")), "{err}");
        }
    }
}
