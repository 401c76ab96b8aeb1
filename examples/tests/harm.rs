//! The harm corpus (`src/bin/harm.rs`) against the real `taskscope stack`:
//! no request may wedge, slow for good, kill, lose or abort anything in the
//! inspected program.
//!
//! For every shape × runtime (full mode; the lean mode on a current-thread
//! and a two-worker runtime), the program is started with a private
//! socket directory, asked for its stacks 20 times, and must then still run
//! (every counter rising), have had a stack of its own functions captured
//! safely, and stop cleanly on SIGINT with no task lost. Configurations run
//! four at a time; one summary row per configuration goes to stderr.
//!
//! The `taskscope` binary is the one next to this test (`target/debug/`),
//! which `cargo test --workspace` builds; when it is missing the test builds
//! it with cargo. Run alone: `cargo test -p taskscope-examples --test harm`.
//!
//! With `TASKSCOPE_HARM_TABLE=<file>` the test asserts nothing and appends
//! one tab-separated row per configuration to the file instead (shape,
//! runtime, mode, alive, counters rose, stacks, tasks lost, clean exit,
//! notes), as each one ends:
//! `scripts/harm-table` runs it that way, with and without tokio's own dump.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const SHAPES: &[&str] = &[
    "self-wake",
    "notify-other",
    "futures-pingpong",
    "flume-pipeline",
    "async-channel-pipeline",
    "mpsc-pingpong",
    "unordered-sleeps",
];
const RUNTIMES: &[&str] = &["current", "multi2", "multi4"];
/// The lean mode runs every shape on these runtimes.
const LEAN_RUNTIMES: &[&str] = &["current", "multi2"];

const DUMPS: usize = 20;
/// Configurations at once (the CI machine has 2 cores).
const PARALLEL: usize = 4;
const READY_WITHIN: Duration = Duration::from_secs(30);
/// One `taskscope stack` run, including its own 5 s dump timeout.
const CLI_WITHIN: Duration = Duration::from_secs(20);
/// For every counter to move past its value at the end of the dumps.
const SETTLE_WITHIN: Duration = Duration::from_secs(3);
const EXIT_WITHIN: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
struct Config {
    shape: &'static str,
    runtime: &'static str,
    lean: bool,
}

impl Config {
    fn mode(&self) -> &'static str {
        if self.lean {
            "lean"
        } else {
            "full"
        }
    }

    /// What every function of the shape is named after.
    fn function_prefix(&self) -> String {
        format!("harm_{}_", self.shape.replace('-', "_"))
    }
}

/// How the program ended after SIGINT.
#[derive(Debug, PartialEq)]
enum Exit {
    /// `exit ok` and status 0.
    Clean,
    /// It ended otherwise (lost tasks, a panic, a signal).
    Unclean(String),
    /// It did not end within EXIT_WITHIN and was killed.
    Wedged,
    /// It was gone before SIGINT.
    DiedEarlier(String),
    NotStarted,
}

/// What one configuration did.
#[derive(Debug)]
struct Report {
    config: Config,
    /// Why the program could not be started, if it could not.
    start_error: Option<String>,
    dumps_ok: usize,
    /// The first failed `taskscope stack` run.
    dump_error: Option<String>,
    /// Still running and printing progress after the dumps.
    alive: bool,
    rose: usize,
    counters: usize,
    stacks: bool,
    /// Runs whose output named one of the shape's functions.
    stack_runs: usize,
    /// `exit lost` lines; None when the program did not say (it died or wedged).
    lost: Option<Vec<String>>,
    exit: Exit,
    stderr: String,
    took: Duration,
}

impl Report {
    fn new(config: Config) -> Report {
        Report {
            config,
            start_error: None,
            dumps_ok: 0,
            dump_error: None,
            alive: false,
            rose: 0,
            counters: 0,
            stacks: false,
            stack_runs: 0,
            lost: None,
            exit: Exit::NotStarted,
            stderr: String::new(),
            took: Duration::ZERO,
        }
    }

    fn passed(&self) -> bool {
        self.start_error.is_none()
            && self.dumps_ok == DUMPS
            && self.alive
            && self.counters > 0
            && self.rose == self.counters
            && self.stacks
            && self.exit == Exit::Clean
    }

    fn lost_text(&self) -> String {
        self.lost
            .as_ref()
            .map_or("?".to_string(), |lost| lost.len().to_string())
    }

    fn exit_text(&self) -> String {
        match &self.exit {
            Exit::Clean => "yes".to_string(),
            Exit::Unclean(why) => format!("no ({why})"),
            Exit::Wedged => "no (wedged, killed)".to_string(),
            Exit::DiedEarlier(why) => format!("no (died before SIGINT: {why})"),
            Exit::NotStarted => "no (not started)".to_string(),
        }
    }

    fn summary(&self) -> String {
        let c = &self.config;
        let yes = |b: bool| if b { "yes" } else { "no" };
        format!(
            "{} {} {}: alive {}, counters rose {}/{}, stacks captured {} ({}/{} runs), tasks lost {}, dumps ok {}/{DUMPS}, clean exit {} ({:.1}s)",
            c.shape,
            c.runtime,
            c.mode(),
            yes(self.alive),
            self.rose,
            self.counters,
            yes(self.stacks),
            self.stack_runs,
            self.dumps_ok,
            self.lost_text(),
            self.dumps_ok,
            self.exit_text(),
            self.took.as_secs_f64(),
        )
    }

    /// The row `scripts/harm-table` reads.
    fn table_row(&self) -> String {
        let c = &self.config;
        let alive = match (&self.start_error, self.alive, &self.exit) {
            (Some(_), ..) => "not started".to_string(),
            (None, true, _) => "yes".to_string(),
            (None, false, Exit::DiedEarlier(why)) => format!("no (died: {why})"),
            (None, false, _) => "no (no progress)".to_string(),
        };
        let mut notes: Vec<String> = Vec::new();
        notes.extend(self.start_error.clone());
        if self.dumps_ok < DUMPS {
            notes.push(format!("dumps ok {}/{DUMPS}", self.dumps_ok));
        }
        notes.extend(self.dump_error.clone());
        notes.extend(self.lost.iter().flatten().cloned());
        let notes = notes.join("; ").replace(['\t', '\n'], " ");
        format!(
            "{}\t{}\t{}\t{alive}\t{}/{}\t{}\t{}\t{}\t{notes}",
            c.shape,
            c.runtime,
            c.mode(),
            self.rose,
            self.counters,
            if self.stacks {
                format!("yes ({}/{} runs)", self.stack_runs, self.dumps_ok)
            } else {
                "no".to_string()
            },
            self.lost_text(),
            self.exit_text(),
        )
    }
}

#[test]
fn stack_requests_harm_no_program() {
    let started = Instant::now();
    let mut configs = Vec::new();
    for &shape in SHAPES {
        for &runtime in RUNTIMES {
            configs.push(Config {
                shape,
                runtime,
                lean: false,
            });
        }
    }
    for &shape in SHAPES {
        for &runtime in LEAN_RUNTIMES {
            configs.push(Config {
                shape,
                runtime,
                lean: true,
            });
        }
    }
    let cli = taskscope_cli();
    let table = std::env::var_os("TASKSCOPE_HARM_TABLE").map(PathBuf::from);

    let next = AtomicUsize::new(0);
    let reports = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL {
            scope.spawn(|| {
                while let Some(&config) = configs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let report = run_config(config, &cli);
                    eprintln!("{}", report.summary());
                    let mut reports = reports.lock().unwrap();
                    if let Some(table) = &table {
                        append_row(table, &report.table_row());
                    }
                    reports.push(report);
                }
            });
        }
    });
    let mut reports = reports.into_inner().unwrap();
    reports.sort_by_key(|r| {
        configs.iter().position(|c| {
            (c.shape, c.runtime, c.lean) == (r.config.shape, r.config.runtime, r.config.lean)
        })
    });

    // Straight to stderr, past the test harness's capture: the table is the
    // point of the run, passed or not.
    let mut summary = format!(
        "\nharm: {} configurations in {:.1}s\n",
        reports.len(),
        started.elapsed().as_secs_f64()
    );
    for report in &reports {
        summary += &report.summary();
        summary.push('\n');
    }
    let _ = std::io::Write::write_all(&mut std::io::stderr(), summary.as_bytes());
    if table.is_some() {
        return;
    }
    let failed: Vec<String> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(|r| {
            let why = [r.start_error.clone(), r.dump_error.clone()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("; ");
            format!(
                "{}\n  {why}\n  program stderr (tail): {}",
                r.summary(),
                tail(&r.stderr, 1500)
            )
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} configurations were harmed:\n{}",
        failed.len(),
        reports.len(),
        failed.join("\n")
    );
}

/// Appends `row` to the table file (rows are written as configurations end,
/// so that a run stopped midway still leaves its rows).
fn append_row(table: &std::path::Path, row: &str) {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(table)
        .unwrap_or_else(|e| panic!("open {}: {e}", table.display()));
    writeln!(file, "{row}").unwrap_or_else(|e| panic!("write {}: {e}", table.display()));
}

/// Starts the program, asks for its stacks DUMPS times, checks it still runs,
/// stops it with SIGINT.
fn run_config(config: Config, cli: &PathBuf) -> Report {
    let started = Instant::now();
    let mut report = Report::new(config);
    let mut program = match Program::start(config) {
        Ok(program) => program,
        Err(e) => {
            report.start_error = Some(e);
            return report;
        }
    };
    check(&mut program, &mut report, cli);
    report.stderr = program.stderr.lock().unwrap().clone();
    report.took = started.elapsed();
    report
}

fn check(program: &mut Program, report: &mut Report, cli: &PathBuf) {
    let config = report.config;
    let deadline = Instant::now() + READY_WITHIN;
    let mut names = None;
    loop {
        match program.line_until(deadline) {
            Some(line) if line.starts_with("tasks ") => {
                names = Some(line.split_whitespace().count() - 1)
            }
            Some(line) if line.starts_with("ready pid=") => break,
            Some(_) => {}
            None => {
                report.start_error = Some(format!(
                    "no `ready` line within {READY_WITHIN:?} ({})",
                    program.status()
                ));
                return;
            }
        }
    }
    report.counters = names.unwrap_or(0);
    let Some(before) = program.next_progress(Instant::now() + Duration::from_secs(5)) else {
        report.start_error = Some(format!(
            "no progress line after `ready` ({})",
            program.status()
        ));
        return;
    };

    let pid = program.child.id().to_string();
    // The agent binds its socket on a thread of its own, maybe after `ready`.
    let socket = program.dir.0.join(format!("{pid}.sock"));
    while !socket.exists() {
        if Instant::now() >= deadline {
            report.start_error = Some(format!(
                "no agent socket {} within {READY_WITHIN:?} ({})",
                socket.display(),
                program.status()
            ));
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let prefix = config.function_prefix();
    let mut timeouts = 0;
    for run in 1..=DUMPS {
        let out = run_with_timeout(
            Command::new(cli)
                .args(["stack", &pid])
                .env("TASKSCOPE_DIR", &program.dir.0),
            CLI_WITHIN,
        );
        match out.status {
            Some(status) if status.success() => report.dumps_ok += 1,
            Some(status) => {
                let why = format!(
                    "taskscope stack run {run}: {status}: {}",
                    tail(&out.stderr, 300).trim()
                );
                report.dump_error.get_or_insert(why);
            }
            None => {
                timeouts += 1;
                let why =
                    format!("taskscope stack run {run}: no answer within {CLI_WITHIN:?}, killed");
                report.dump_error.get_or_insert(why);
            }
        }
        if out.stdout.contains(&prefix) {
            report.stacks = true;
            report.stack_runs += 1;
        }
        if timeouts == 2 || program.exited().is_some() {
            break;
        }
    }

    // Every counter must move past where it was once the dumps ended.
    let mut baseline = before;
    while let Some(progress) = program.try_progress() {
        baseline = progress;
    }
    let settle = Instant::now() + SETTLE_WITHIN;
    let mut latest = None;
    while let Some(progress) = program.next_progress(settle) {
        let rose = progress
            .iter()
            .zip(&baseline)
            .filter(|(now, then)| now > then)
            .count();
        latest = Some(progress);
        report.rose = rose;
        if rose == baseline.len() {
            break;
        }
    }
    report.alive = latest.is_some() && program.exited().is_none();

    if let Some(status) = program.exited() {
        report.exit = Exit::DiedEarlier(status.to_string());
        // What it said on its way out, if anything.
        let lost = program
            .exit_lines(Instant::now() + Duration::from_secs(1))
            .1;
        report.lost = (!lost.is_empty()).then_some(lost);
        return;
    }
    // SAFETY: kill(2) on our own child's pid; it has not been waited for, so the pid is still its.
    unsafe { libc::kill(program.child.id() as libc::pid_t, libc::SIGINT) };
    let deadline = Instant::now() + EXIT_WITHIN;
    let (said_ok, lost) = program.exit_lines(deadline);
    let status = match program.exited() {
        Some(status) => status,
        None => match program.wait_until(deadline) {
            Some(status) => status,
            None => {
                report.exit = Exit::Wedged;
                return;
            }
        },
    };
    report.exit = if said_ok && lost.is_empty() && status.success() {
        Exit::Clean
    } else if !lost.is_empty() {
        Exit::Unclean(format!("{} task(s) lost, {status}", lost.len()))
    } else {
        Exit::Unclean(format!("no `exit ok` line, {status}"))
    };
    if said_ok || !lost.is_empty() {
        report.lost = Some(lost);
    }
}

/// A running harm program, its stdout read line by line.
struct Program {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
    dir: TempDir,
}

impl Program {
    fn start(config: Config) -> Result<Program, String> {
        let dir = TempDir::new(&format!(
            "{}-{}-{}",
            config.shape,
            config.runtime,
            config.mode()
        ));
        let mut command = Command::new(env!("CARGO_BIN_EXE_harm"));
        command.args(["--shape", config.shape, "--runtime", config.runtime]);
        if config.lean {
            command.arg("--lean");
        }
        let mut child = command
            .env("TASKSCOPE_DIR", &dir.0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", env!("CARGO_BIN_EXE_harm")))?;
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
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Ok(Program {
            child,
            lines,
            stderr,
            dir,
        })
    }

    /// The next stdout line, or None at the deadline or the end of stdout.
    fn line_until(&self, deadline: Instant) -> Option<String> {
        self.lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .ok()
    }

    /// Reads stdout to its end or the deadline: whether it said `exit ok`,
    /// and its `exit lost` lines.
    fn exit_lines(&self, deadline: Instant) -> (bool, Vec<String>) {
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

    fn next_progress(&self, deadline: Instant) -> Option<Vec<u64>> {
        std::iter::from_fn(|| self.line_until(deadline)).find_map(|line| parse_progress(&line))
    }

    /// The next progress line already printed, if any.
    fn try_progress(&self) -> Option<Vec<u64>> {
        std::iter::from_fn(|| self.lines.try_recv().ok()).find_map(|line| parse_progress(&line))
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn wait_until(&mut self, deadline: Instant) -> Option<ExitStatus> {
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.exited()
    }

    fn status(&mut self) -> String {
        match self.exited() {
            Some(status) => format!(
                "it exited: {status}; stderr: {}",
                tail(&self.stderr.lock().unwrap(), 500)
            ),
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

/// A finished (or killed) command.
struct Output {
    /// None when it was killed at the timeout.
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
}

fn run_with_timeout(command: &mut Command, within: Duration) -> Output {
    let deadline = Instant::now() + within;
    let mut child = match command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => panic!("cannot run {command:?}: {e}"),
    };
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = read_all(Box::new(child.stderr.take().expect("piped stderr")));
    let status = loop {
        if let Some(status) = child.try_wait().ok().flatten() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// The `taskscope` binary next to this test (`target/<profile>/taskscope`),
/// built with cargo if it is not there: a missing CLI fails the test.
fn taskscope_cli() -> PathBuf {
    static CLI: OnceLock<PathBuf> = OnceLock::new();
    CLI.get_or_init(|| {
        let exe = std::env::current_exe().expect("this test's path");
        let profile_dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("target/<profile>/deps");
        let cli = profile_dir.join("taskscope");
        if !cli.is_file() {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut build = Command::new(cargo);
            build.args(["build", "-p", "taskscope"]);
            if profile_dir
                .file_name()
                .is_some_and(|name| name == "release")
            {
                build.arg("--release");
            }
            let status = build.status().unwrap_or_else(|e| {
                panic!("no {} and cannot run cargo to build it: {e}", cli.display())
            });
            assert!(
                status.success(),
                "no {} and `cargo build -p taskscope` failed: {status}",
                cli.display()
            );
            assert!(
                cli.is_file(),
                "`cargo build -p taskscope` did not produce {}",
                cli.display()
            );
        }
        cli
    })
    .clone()
}

fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("taskscope-harm-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
