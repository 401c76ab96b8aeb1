//! The harm harness: the harm corpus (`src/bin/harm/main.rs`) against the real
//! `taskscope stack`, shared by `tests/harm.rs` (the published tokio) and
//! `tests/harm_patched_tokio.rs` (tokio with `patches/tokio`).
//!
//! For one configuration (shape × runtime × mode) the program is started
//! with a private socket directory, asked for its stacks [`DUMPS`] times, and
//! must then still run (every counter rising), have had a stack of its own
//! functions in the output, and stop cleanly on SIGINT with no task lost.
//! [`run_matrix`] runs configurations [`PARALLEL`] at a time and prints one
//! summary row per configuration to stderr.
//!
//! With [`Setup::tokio_dump`] set, every one of those runs must also say that
//! tokio dumped the runtime (`stacks: tokio dumped runtime main`), and then
//! `taskscope stack --json --all` must report every runtime `ok`, the
//! program's tokio carrying the expected fixes, and a stack from tokio's
//! dump (`stack_source: tokio_dump`) for every task of the shape, the ones
//! spawned with plain `tokio::spawn` included.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::process::{run_with_timeout, tail};
use super::program::Program;
use super::report::{Exit, Report};
use super::tokio_dump::{check_json, says_tokio_dumped};

pub const SHAPES: &[&str] = &[
    "self-wake",
    "notify-other",
    "futures-pingpong",
    "flume-pipeline",
    "async-channel-pipeline",
    "mpsc-pingpong",
    "unordered-sleeps",
];

pub const DUMPS: usize = 20;
/// Configurations at once (the CI machine has 2 cores).
pub const PARALLEL: usize = 4;
const READY_WITHIN: Duration = Duration::from_secs(30);
/// One `taskscope stack` run, including its own 5 s dump timeout.
pub(super) const CLI_WITHIN: Duration = Duration::from_secs(20);
/// For every counter to move past its value at the end of the dumps.
const SETTLE_WITHIN: Duration = Duration::from_secs(3);
const EXIT_WITHIN: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub shape: &'static str,
    pub runtime: &'static str,
    pub lean: bool,
}

impl Config {
    pub(super) fn mode(&self) -> &'static str {
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

/// What the configurations of a matrix run, and what they are checked for.
pub struct Setup {
    /// The harm binary.
    pub program: PathBuf,
    /// The `taskscope` binary.
    pub cli: PathBuf,
    /// Variables removed from the program's environment.
    pub env_remove: &'static [&'static str],
    /// When set, tokio's own dump must be taken on every request, and the
    /// program's tokio must announce exactly these taskdump fixes.
    pub tokio_dump: Option<&'static str>,
    /// When set, nothing is asserted; one tab-separated row per
    /// configuration is appended to this file instead (see
    /// [`Report::table_row`]).
    pub table: Option<PathBuf>,
}

/// Runs every configuration, [`PARALLEL`] at a time, printing a summary row
/// as each ends and, at the end, the whole table (headed by `title`) in
/// configuration order.
pub fn run_matrix(title: &str, configs: &[Config], setup: &Setup) -> Vec<Report> {
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let reports = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL {
            scope.spawn(|| {
                while let Some(&config) = configs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let report = run_config(config, setup);
                    eprintln!("{}", report.summary());
                    let mut reports = reports.lock().unwrap();
                    if let Some(table) = &setup.table {
                        append_row(table, &report.table_row());
                    }
                    reports.push(report);
                }
            });
        }
    });
    let mut reports = reports.into_inner().unwrap();
    reports.sort_by_key(|r| {
        configs.iter().position(|c| (c.shape, c.runtime, c.lean) == (r.config.shape, r.config.runtime, r.config.lean))
    });

    // Straight to stderr, past the test harness's capture: the table is the
    // point of the run, passed or not.
    let mut summary =
        format!("\n{title}: {} configurations in {:.1}s\n", reports.len(), started.elapsed().as_secs_f64());
    for report in &reports {
        summary += &report.summary();
        summary.push('\n');
    }
    let _ = std::io::Write::write_all(&mut std::io::stderr(), summary.as_bytes());
    reports
}

/// Fails the test, with what went wrong and the program's stderr, when a
/// configuration was harmed (or, with [`Setup::tokio_dump`], did not get
/// tokio's dump).
pub fn assert_unharmed(reports: &[Report]) {
    let failed: Vec<String> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(|r| {
            let why =
                [r.start_error.clone(), r.dump_error.clone()].into_iter().flatten().collect::<Vec<_>>().join("; ");
            let stackless = r.stackless.as_ref().map_or(String::new(), |(run, out)| {
                format!(
                    "\n  `taskscope stack` run {run} named none of the shape's functions; its output (tail):\n{}",
                    tail(out, 2000)
                )
            });
            format!("{}\n  {why}\n  program stderr (tail): {}{stackless}", r.summary(), tail(&r.stderr, 1500))
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
fn append_row(table: &Path, row: &str) {
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
fn run_config(config: Config, setup: &Setup) -> Report {
    let started = Instant::now();
    let mut report = Report::new(config, setup.tokio_dump.is_some());
    let mut program = match Program::start(config, setup) {
        Ok(program) => program,
        Err(e) => {
            report.start_error = Some(e);
            return report;
        }
    };
    check(&mut program, &mut report, setup);
    report.stderr = program.stderr.lock().unwrap().clone();
    report.took = started.elapsed();
    report
}

fn check(program: &mut Program, report: &mut Report, setup: &Setup) {
    let config = report.config;
    let deadline = Instant::now() + READY_WITHIN;
    let mut names = None;
    loop {
        match program.line_until(deadline) {
            Some(line) if line.starts_with("tasks ") => names = Some(line.split_whitespace().count() - 1),
            Some(line) if line.starts_with("ready pid=") => break,
            Some(_) => {}
            None => {
                report.start_error = Some(format!("no `ready` line within {READY_WITHIN:?} ({})", program.status()));
                return;
            }
        }
    }
    report.counters = names.unwrap_or(0);
    let Some(before) = program.next_progress(Instant::now() + Duration::from_secs(5)) else {
        report.start_error = Some(format!("no progress line after `ready` ({})", program.status()));
        return;
    };

    let pid = program.child.id().to_string();
    // The agent binds its socket on a thread of its own, maybe after `ready`.
    let socket = program.dir.0.join(format!("{pid}.sock"));
    while !socket.exists() {
        if Instant::now() >= deadline {
            report.start_error =
                Some(format!("no agent socket {} within {READY_WITHIN:?} ({})", socket.display(), program.status()));
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let prefix = config.function_prefix();
    let mut timeouts = 0;
    for run in 1..=DUMPS {
        let out = run_with_timeout(
            Command::new(&setup.cli).args(["stack", &pid]).env("TASKSCOPE_DIR", &program.dir.0),
            CLI_WITHIN,
        );
        match out.status {
            Some(status) if status.success() => report.dumps_ok += 1,
            Some(status) => {
                let why = format!("taskscope stack run {run}: {status}: {}", tail(&out.stderr, 300).trim());
                report.dump_error.get_or_insert(why);
            }
            None => {
                timeouts += 1;
                let why = format!("taskscope stack run {run}: no answer within {CLI_WITHIN:?}, killed");
                report.dump_error.get_or_insert(why);
            }
        }
        if out.stdout.contains(&prefix) {
            report.stacks = true;
            report.stack_runs += 1;
        } else if out.status.is_some_and(|s| s.success()) && report.stackless.is_none() {
            report.stackless = Some((run, out.stdout.clone()));
        }
        if says_tokio_dumped(&out.stdout) {
            report.tokio_dumped += 1;
        }
        if timeouts == 2 || program.exited().is_some() {
            break;
        }
    }
    if let Some(fixes) = setup.tokio_dump {
        if program.exited().is_none() && timeouts < 2 {
            let json = check_json(&setup.cli, &pid, &program.dir.0, &prefix, report.counters, fixes);
            report.json = Some(json);
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
        let rose = progress.iter().zip(&baseline).filter(|(now, then)| now > then).count();
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
        let lost = program.exit_lines(Instant::now() + Duration::from_secs(1)).1;
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
