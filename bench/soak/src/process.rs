//! The parent's handle on one child: started with the hidden `--child`
//! flags, spoken to over its stdin and stdout one line at a time (see
//! `child.rs`), killed if it is still there when the handle goes.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::child::Spec;

/// How long a child may take to start its load and print `ready`.
const READY_WITHIN: Duration = Duration::from_secs(60);
/// How long a child may take to answer a `snapshot`. Its main thread
/// answers from outside the runtime, so only a wedged process is slower.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(10);
/// After its `final` line, how long the child may take to exit.
const EXIT_WITHIN: Duration = Duration::from_secs(10);

/// A running child.
pub struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    pub pid: u32,
    pub socket: PathBuf,
    /// Tasks of its load (each joined at the end).
    pub tasks: usize,
}

/// CPU time (user + system) of a child's threads, by role.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadCpu {
    /// The runtime's worker threads.
    pub workers: Duration,
    /// The agent's own thread (its server, state owner and symboliser).
    pub agent: Duration,
    /// The rest: the main thread, blocking threads.
    pub other: Duration,
}

/// How a child ended.
#[derive(Debug, Default)]
pub struct Finished {
    /// Its `final` line, if it printed one.
    pub line: Option<String>,
    pub status: Option<ExitStatus>,
    /// What went wrong on the way, if anything.
    pub error: Option<String>,
}

impl Finished {
    pub fn field(&self, name: &str) -> Option<u64> {
        self.line.as_deref().and_then(|l| num(l, name))
    }

    /// Tasks that did not come back; `None` when the child never said.
    pub fn lost(&self) -> Option<u64> {
        let parts = ["not_joined", "join_errors", "wrong_values", "burst_short"];
        parts.iter().map(|p| self.field(p)).sum()
    }

    /// Joined, shut down and exited 0, each in time.
    pub fn clean(&self) -> bool {
        let in_time = |name, within: Duration| self.field(name).is_some_and(|ms| ms < within.as_millis() as u64);
        self.error.is_none()
            && self.status.is_some_and(|s| s.success())
            && self.field("not_joined") == Some(0)
            && in_time("join_ms", crate::child::JOIN_WITHIN)
            && in_time("shutdown_ms", crate::child::SHUTDOWN_WITHIN)
    }
}

impl Proc {
    /// Starts `exe` as the child `spec` describes and waits for its `ready`.
    pub fn start(exe: &Path, spec: &Spec) -> Result<Proc, String> {
        let mut command = Command::new(exe);
        command
            .args(["--child", "--agent", spec.agent.name()])
            .args(["--child-workers", &spec.workers.to_string(), "--parked", &spec.shape.parked.to_string()])
            .arg("--socket-dir")
            .arg(&spec.socket_dir);
        if !spec.shape.active {
            command.arg("--idle");
        }
        // The agent reads TASKSCOPE_* at start: a user's TASKSCOPE_DISABLE or
        // TASKSCOPE_TOKIO_DUMPS must not change what the soak exercises.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("TASKSCOPE_") {
                command.env_remove(key);
            }
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("start the child {}: {e}", exe.display()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let pid = child.id();
        let mut proc = Proc { stdin: child.stdin.take(), child, lines, pid, socket: PathBuf::new(), tasks: 0 };
        let ready = proc.line_starting("ready ", READY_WITHIN)?;
        proc.socket = field(&ready, "socket").map(PathBuf::from).ok_or_else(|| format!("bad ready line {ready:?}"))?;
        proc.tasks = num(&ready, "tasks").ok_or_else(|| format!("bad ready line {ready:?}"))? as usize;
        Ok(proc)
    }

    /// Sends `command` and returns the child's answer, the next line that
    /// starts with `prefix`.
    pub fn ask(&mut self, command: &str, prefix: &str, within: Duration) -> Result<String, String> {
        let stdin = self.stdin.as_mut().ok_or("the child's stdin is closed")?;
        writeln!(stdin, "{command}").and_then(|()| stdin.flush()).map_err(|e| format!("send {command:?}: {e}"))?;
        self.line_starting(prefix, within)
    }

    fn line_starting(&mut self, prefix: &str, within: Duration) -> Result<String, String> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return Ok(line),
                Ok(line) => eprintln!("taskscope-soak: child {}: {line}", self.pid),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "no {:?} line from the child within {}",
                        prefix.trim(),
                        humantime::format_duration(within)
                    ))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                    return Err(format!("the child exited ({status}) before its {:?} line", prefix.trim()));
                }
            }
        }
    }

    /// Resident memory of the child now, KiB (0 where there is no procfs).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// CPU time the child's threads have used so far, by role.
    pub fn thread_cpu(&self) -> ThreadCpu {
        let mut cpu = ThreadCpu::default();
        // SAFETY: sysconf reads a constant of the system; no memory is passed.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let Ok(threads) = std::fs::read_dir(format!("/proc/{}/task", self.pid)) else { return cpu };
        for thread in threads.flatten() {
            let stat = std::fs::read_to_string(thread.path().join("stat")).unwrap_or_default();
            // `tid (comm) state ...`: the name may hold spaces, so split at the last ')'.
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
            let comm = &stat[open + 1..close];
            let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
            // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
            let used: f64 = fields.get(11..13).into_iter().flatten().filter_map(|f| f.parse::<f64>().ok()).sum();
            let used = Duration::from_secs_f64(used / ticks);
            match comm {
                // tokio's default worker name: "tokio-rt-worker" since 1.49,
                // "tokio-runtime-worker" (cut to 15 bytes) before.
                "tokio-rt-worker" | "tokio-runtime-w" => cpu.workers += used,
                c if c == taskscope_proto::discovery::AGENT_THREAD => cpu.agent += used,
                _ => cpu.other += used,
            }
        }
        cpu
    }

    /// Asks the child to end (see `child.rs`) and waits for it to exit.
    pub fn finish(mut self) -> Finished {
        let within = crate::child::JOIN_WITHIN + crate::child::SHUTDOWN_WITHIN + Duration::from_secs(5);
        let mut finished = Finished::default();
        match self.ask("finish", "final ", within) {
            Ok(line) => finished.line = Some(line),
            Err(why) => finished.error = Some(why),
        }
        drop(self.stdin.take());
        let deadline = Instant::now() + EXIT_WITHIN;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    finished.status = Some(status);
                    break;
                }
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                Ok(None) => {
                    let why = format!(
                        "the child did not exit within {} of `finish`",
                        humantime::format_duration(EXIT_WITHIN)
                    );
                    finished.error.get_or_insert(why);
                    break;
                }
                Err(e) => {
                    finished.error.get_or_insert(format!("wait for the child: {e}"));
                    break;
                }
            }
        }
        finished
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The value of `name=VALUE` in a line of `key=value` words.
pub fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

pub fn num(line: &str, name: &str) -> Option<u64> {
    field(line, name)?.parse().ok()
}

/// The children's socket directory: private to this run (0700), removed at
/// the end.
pub struct SocketDir(pub PathBuf);

impl SocketDir {
    pub fn create() -> Result<SocketDir, String> {
        let dir = std::env::temp_dir().join(format!("taskscope-soak-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&dir).map_err(|e| format!("create the socket directory {}: {e}", dir.display()))?;
        Ok(SocketDir(dir))
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
