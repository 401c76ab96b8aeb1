//! A running harm program (`src/bin/harm/main.rs`): started with a private
//! socket directory, its stdout read line by line (`tasks`, `ready`,
//! `progress`, `exit`), killed if the test is done with it first.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use super::harm::{Config, Setup};
use super::process::{tail, TempDir};

/// A running harm program, its stdout read line by line.
pub(super) struct Program {
    pub(super) child: Child,
    pub(super) lines: mpsc::Receiver<String>,
    pub(super) stderr: Arc<Mutex<String>>,
    pub(super) dir: TempDir,
}

impl Program {
    pub(super) fn start(config: Config, setup: &Setup) -> Result<Program, String> {
        let dir = TempDir::new(&format!("{}-{}-{}", config.shape, config.runtime, config.mode()));
        let mut command = Command::new(&setup.program);
        command.args(["--shape", config.shape, "--runtime", config.runtime]);
        if config.lean {
            command.arg("--lean");
        }
        for var in setup.env_remove {
            command.env_remove(var);
        }
        let mut child = command
            .env("TASKSCOPE_DIR", &dir.0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", setup.program.display()))?;
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("piped stderr");
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Ok(Program { child, lines, stderr, dir })
    }

    /// The next stdout line, or None at the deadline or the end of stdout.
    pub(super) fn line_until(&self, deadline: Instant) -> Option<String> {
        self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())).ok()
    }

    /// Reads stdout to its end or the deadline: whether it said `exit ok`,
    /// and its `exit lost` lines.
    pub(super) fn exit_lines(&self, deadline: Instant) -> (bool, Vec<String>) {
        let mut lost = Vec::new();
        let mut said_ok = false;
        while let Some(line) = self.line_until(deadline) {
            if let Some(task) = line.strip_prefix("exit lost ") {
                lost.push(task.to_string());
            }
            said_ok |= line.starts_with("exit ok ");
        }
        (said_ok, lost)
    }

    pub(super) fn next_progress(&self, deadline: Instant) -> Option<Vec<u64>> {
        std::iter::from_fn(|| self.line_until(deadline)).find_map(|line| parse_progress(&line))
    }

    /// The next progress line already printed, if any.
    pub(super) fn try_progress(&self) -> Option<Vec<u64>> {
        std::iter::from_fn(|| self.lines.try_recv().ok()).find_map(|line| parse_progress(&line))
    }

    pub(super) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub(super) fn wait_until(&mut self, deadline: Instant) -> Option<ExitStatus> {
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.exited()
    }

    pub(super) fn status(&mut self) -> String {
        match self.exited() {
            Some(status) => format!("it exited: {status}; stderr: {}", tail(&self.stderr.lock().unwrap(), 500)),
            None => "it is still running".to_string(),
        }
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_progress(line: &str) -> Option<Vec<u64>> {
    let counts = line.strip_prefix("progress ")?;
    counts.split_whitespace().map(|c| c.parse().ok()).collect()
}
