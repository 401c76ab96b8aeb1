//! The `console_leaks` example, started for a test: a real program running
//! console-subscriber (and no taskscope agent) on a port or socket of the
//! test's own.

use std::io::BufRead;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::example::{bin_dir, need_examples};

/// How long console-subscriber may take to listen (the machine may be busy compiling).
const PATIENCE: Duration = Duration::from_secs(30);

/// The example's source, to name its spawn sites as the records do.
const SOURCE: &str = include_str!("../../../examples/src/bin/console_leaks.rs");

/// `examples/src/bin/console_leaks.rs:LINE:`, the start of the spawn
/// location of the spawn call on the first line containing `needle`.
pub fn spawned_at(needle: &str) -> String {
    let line =
        SOURCE.lines().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("no {needle:?} in the example"));
    format!("examples/src/bin/console_leaks.rs:{}:", line + 1)
}

/// Where the `pending()` tasks, the job waiters and the ticker are spawned.
pub fn forgotten_at() -> String {
    spawned_at("tokio::spawn(std::future::pending")
}
pub fn waiters_at() -> String {
    spawned_at(".name(\"job waiter\").spawn(")
}
pub fn ticker_at() -> String {
    spawned_at("tokio::spawn(tick())")
}

/// Where a program listens.
#[derive(Debug, Clone)]
pub enum Listen {
    Tcp(u16),
    Unix(PathBuf),
}

/// A running `console_leaks`, killed on drop.
pub struct Program {
    child: Child,
    pub listen: Listen,
}

/// A TCP port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

impl Program {
    /// Starts it with `TOKIO_CONSOLE_BIND` on a free port (what
    /// `console_subscriber::init()` reads), and waits until it listens.
    pub fn start(args: &[&str]) -> Program {
        Program::start_at(Listen::Tcp(free_port()), args)
    }

    /// Starts it listening at `listen`.
    pub fn start_at(listen: Listen, args: &[&str]) -> Program {
        need_examples();
        let mut cmd = Command::new(bin_dir().join("console_leaks"));
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::null()).env_remove("RUST_LOG");
        match &listen {
            Listen::Tcp(port) => {
                cmd.env("TOKIO_CONSOLE_BIND", format!("127.0.0.1:{port}"));
            }
            Listen::Unix(path) => {
                cmd.arg("--unix").arg(path).env_remove("TOKIO_CONSOLE_BIND");
            }
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start console_leaks: {e}"));
        // Its line comes once every task is spawned.
        let (said, line) = std::sync::mpsc::channel();
        let out = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            let mut lines = std::io::BufReader::new(out).lines();
            let _ = said.send(lines.next().and_then(Result::ok).unwrap_or_default());
            // Read on, so that a later line never meets a closed pipe.
            lines.for_each(drop);
        });
        let program = Program { child, listen };
        let first = line.recv_timeout(PATIENCE).unwrap_or_default();
        assert!(first.starts_with("console_leaks: pid "), "console_leaks did not start: {first:?}");
        let start = Instant::now();
        while !program.listening() {
            assert!(start.elapsed() < PATIENCE, "console_leaks never listened at {}", program.addr());
            std::thread::sleep(Duration::from_millis(50));
        }
        program
    }

    fn listening(&self) -> bool {
        match &self.listen {
            Listen::Tcp(port) => TcpStream::connect(("127.0.0.1", *port)).is_ok(),
            Listen::Unix(path) => std::os::unix::net::UnixStream::connect(path).is_ok(),
        }
    }

    /// The address to give taskscope: `127.0.0.1:PORT` or the socket path.
    pub fn addr(&self) -> String {
        match &self.listen {
            Listen::Tcp(port) => format!("127.0.0.1:{port}"),
            Listen::Unix(path) => path.display().to_string(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills it (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A socket path in `dir`.
pub fn socket(dir: &Path) -> PathBuf {
    dir.join("console.sock")
}
