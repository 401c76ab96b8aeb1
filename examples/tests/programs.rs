//! The example programs behave as their docs say, leaking and fixed: each
//! prints its start line with its PID, and its own progress line counts the
//! tasks left behind (the same count `taskscope stack` must find).
//!
//! These tests check the programs only; the tests that run the `taskscope`
//! CLI against them live with the CLI. No timing is asserted: waits are
//! generous deadlines, not measurements.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running example whose stdout is read line by line.
struct Example {
    child: Child,
    lines: mpsc::Receiver<String>,
    name: &'static str,
    _dir: TempDir,
}

impl Example {
    fn start(name: &'static str, exe: &str, args: &[&str]) -> Example {
        let dir = TempDir::new(name);
        let mut child = Command::new(exe)
            .args(args)
            // Keep the agent's socket out of the user's directory.
            .env("TASKSCOPE_DIR", &dir.0)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {exe}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Example { child, lines, name, _dir: dir }
    }

    /// The next line that contains `needle`, or a panic after a generous wait.
    fn line_with(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => continue,
                Err(e) => panic!("{}: no line containing {needle:?} ({e})", self.name),
            }
        }
    }

    /// Checks the start line: `<name>: pid <pid>, ...`.
    fn start_line(&self) -> String {
        let line = self.line_with(": pid ");
        let expected = format!("{}: pid {}, ", self.name, self.child.id());
        assert!(line.starts_with(&expected), "start line {line:?} should start with {expected:?}");
        line
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let unique = format!("taskscope-examples-{name}-{}-{:?}", std::process::id(), std::thread::current().id());
        let dir = std::env::temp_dir().join(unique.replace(['(', ')'], ""));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn done_signal_leaks_one_task_per_call() {
    let ex = Example::start("done_signal", env!("CARGO_BIN_EXE_done_signal"), &["--calls", "50", "--interval", "1ms"]);
    assert!(ex.start_line().contains("leaking one task per call (run with --fixed for the fix)"));
    let progress = ex.line_with("calls made");
    assert!(progress.contains("50 calls made; 50 helper tasks still alive"), "{progress}");
}

#[test]
fn done_signal_fixed_leaks_nothing() {
    let ex = Example::start(
        "done_signal",
        env!("CARGO_BIN_EXE_done_signal"),
        &["--calls", "50", "--interval", "1ms", "--fixed"],
    );
    assert!(ex.start_line().contains("fixed"));
    let progress = ex.line_with("calls made");
    assert!(progress.contains("50 calls made; 0 helper tasks still alive"), "{progress}");
}

#[test]
fn log_follow_keeps_a_handler_per_departed_client() {
    let ex = Example::start("log_follow", env!("CARGO_BIN_EXE_log_follow"), &["--self-clients", "3"]);
    let start = ex.start_line();
    assert!(start.contains("listening on http://127.0.0.1:"), "{start}");
    let progress = ex.line_with("clients hung up");
    assert!(progress.contains("3 clients hung up after 1s; 3 handlers still following"), "{progress}");
}

#[test]
fn log_follow_fixed_ends_handlers_on_hangup() {
    let ex = Example::start("log_follow", env!("CARGO_BIN_EXE_log_follow"), &["--self-clients", "3", "--fixed"]);
    ex.start_line();
    let progress = ex.line_with("clients hung up");
    assert!(progress.contains("3 clients hung up after 1s; 0 handlers still following"), "{progress}");
}

#[test]
fn log_follow_serves_plain_http() {
    use std::io::{Read, Write};
    let ex = Example::start("log_follow", env!("CARGO_BIN_EXE_log_follow"), &[]);
    let start = ex.start_line();
    let addr = start
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("no address in {start:?}"));
    let mut conn = std::net::TcpStream::connect(addr).expect("connect");
    conn.write_all(b"GET /logs HTTP/1.1\r\nhost: x\r\n\r\n").expect("send request");
    let mut response = String::new();
    conn.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    conn.read_to_string(&mut response).expect("read response");
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.ends_with("ready\n"), "{response}");
}

#[test]
fn orphan_receiver_leaves_two_tasks() {
    let ex = Example::start("orphan_receiver", env!("CARGO_BIN_EXE_orphan_receiver"), &[]);
    assert!(ex.start_line().contains("(run with --fixed for the fix)"));
    assert_eq!(ex.line_with("tasks alive"), "orphan_receiver: 2 tasks alive");
}

#[test]
fn orphan_receiver_fixed_leaves_none() {
    let ex = Example::start("orphan_receiver", env!("CARGO_BIN_EXE_orphan_receiver"), &["--fixed"]);
    ex.start_line();
    assert_eq!(ex.line_with("tasks alive"), "orphan_receiver: 0 tasks alive");
}

#[test]
fn blocker_blocks_then_recovers() {
    let mut ex = Example::start(
        "blocker",
        env!("CARGO_BIN_EXE_blocker"),
        &["--after", "100ms", "--for", "300ms", "--exit-after", "1s"],
    );
    assert!(ex.start_line().contains("blocking one of the runtime's two workers for 300ms after 100ms"));
    ex.line_with("blocking call started");
    ex.line_with("blocking call ended");
    let status = ex.child.wait().expect("wait");
    assert!(status.success(), "--exit-after should end the program cleanly: {status}");
}

#[test]
fn exit_after_ends_every_example() {
    for (name, exe) in [
        ("done_signal", env!("CARGO_BIN_EXE_done_signal")),
        ("log_follow", env!("CARGO_BIN_EXE_log_follow")),
        ("orphan_receiver", env!("CARGO_BIN_EXE_orphan_receiver")),
    ] {
        let mut ex = Example::start(name, exe, &["--exit-after", "300ms"]);
        ex.start_line();
        let status = ex.child.wait().expect("wait");
        assert!(status.success(), "{name}: {status}");
    }
}
