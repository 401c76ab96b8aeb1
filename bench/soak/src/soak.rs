//! The soak of one configuration: a loaded child, `captures` Dumps in a row,
//! a health check every `check_every` of them, and the end (every task
//! joined, the runtime shut down, the child exited 0).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::child::{Agent, Spec};
use crate::client::{self, Capture};
use crate::load::{self, Kind, Shape};
use crate::process::{self, Finished, Proc, ThreadCpu};

/// Counters need time to rise: a health check reads them at least this long
/// after the previous one. More than the blocker's 400 ms, so that a task
/// left in the blocked worker's queue for a whole block is not taken for a
/// stalled one.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// The windows without captures, before the first and after the last, that
/// the rates during the captures are compared with.
const QUIET_WINDOW: Duration = Duration::from_secs(2);
/// Wedged captures in a row after which the configuration stops: each costs
/// `timeout + 5 s`, and one is already a failure.
const WEDGED_IN_A_ROW: usize = 3;

/// One configuration of the soak.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub workers: usize,
    pub parked: usize,
    pub captures: usize,
    pub timeout_ms: u32,
    pub check_every: usize,
    /// Every this many captures, one is cancelled by the client shortly after
    /// it starts (0: never): a `taskscope stack` killed mid-way.
    pub cancel_every: usize,
}

/// One answered capture, reduced to what the report needs.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub rpc: Duration,
    pub safe: Duration,
    pub wanted: u32,
    pub answered: u32,
}

/// A reading of the child's counters (its `counters` line).
#[derive(Debug, Clone, Default)]
pub struct Counters {
    pub t_us: u64,
    pub heartbeat: u64,
    pub busy: u64,
    pub rounds: u64,
    pub blocks: u64,
    pub stalled: String,
    /// The child's threads' CPU time when the line arrived.
    pub cpu: ThreadCpu,
}

impl Counters {
    fn parse(line: &str) -> Result<Counters, String> {
        let n = |name| process::num(line, name).ok_or_else(|| format!("bad counters line {line:?}"));
        Ok(Counters {
            t_us: n("t_us")?,
            heartbeat: n("heartbeat")?,
            busy: n("busy")?,
            rounds: n("rounds")?,
            blocks: n("blocks")?,
            stalled: process::field(line, "stalled").unwrap_or("?").to_string(),
            cpu: ThreadCpu::default(),
        })
    }
}

/// Progress per second between two readings.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rates {
    pub busy: f64,
    pub heartbeat: f64,
    pub rounds: f64,
    /// CPU seconds per second of the workers, and of the agent's thread.
    pub worker_cpu: f64,
    pub agent_cpu: f64,
}

impl Rates {
    fn between(a: &Counters, b: &Counters) -> Rates {
        let secs = (b.t_us.saturating_sub(a.t_us) as f64 / 1e6).max(1e-9);
        let per = |x: u64, y: u64| y.saturating_sub(x) as f64 / secs;
        let cpu = |x: Duration, y: Duration| y.saturating_sub(x).as_secs_f64() / secs;
        Rates {
            busy: per(a.busy, b.busy),
            heartbeat: per(a.heartbeat, b.heartbeat),
            rounds: per(a.rounds, b.rounds),
            worker_cpu: cpu(a.cpu.workers, b.cpu.workers),
            agent_cpu: cpu(a.cpu.agent, b.cpu.agent),
        }
    }

    /// Busy slices per second of worker CPU: what the workers get done with
    /// the CPU they get, whatever else the machine runs.
    pub fn busy_per_cpu(&self) -> f64 {
        self.busy / self.worker_cpu.max(1e-9)
    }
}

/// Everything one configuration gave.
#[derive(Debug, Default)]
pub struct Outcome {
    pub config: Option<Config>,
    /// Why the configuration could not run at all, or stopped early.
    pub error: Option<String>,
    pub tasks: usize,
    pub samples: Vec<Sample>,
    pub failed: Vec<String>,
    pub wedged: usize,
    /// Captures the client cancelled on purpose (see `Config::cancel_every`).
    pub cancelled: usize,
    pub checks: usize,
    pub checks_passed: usize,
    pub check_failures: Vec<String>,
    /// Per kind: captures where some of its tasks were NOT_POLLED, and
    /// those tasks summed over all captures.
    pub not_polled: BTreeMap<Kind, (usize, u64)>,
    /// What a capture got wrong (first few kept), and how many in all.
    pub anomalies: Vec<String>,
    pub anomaly_count: usize,
    pub rates_before: Rates,
    pub rates_during: Rates,
    pub rates_after: Rates,
    /// The child's RSS at each health check, KiB.
    pub rss_kib: Vec<(String, u64)>,
    /// Times the blocker held a worker between the first and last capture.
    pub blocks: u64,
    pub finished: Finished,
}

impl Outcome {
    /// Tasks lost; every task when the child never said how the end went.
    pub fn lost(&self) -> u64 {
        self.finished.lost().unwrap_or(self.tasks as u64)
    }

    /// The must-be-zero properties all held.
    pub fn ok(&self) -> bool {
        self.error.is_none()
            && self.wedged == 0
            && self.failed.is_empty()
            && self.lost() == 0
            && self.finished.clean()
            && self.checks_passed == self.checks
    }

    fn anomaly(&mut self, what: String) {
        self.anomaly_count += 1;
        if self.anomalies.len() < 10 {
            self.anomalies.push(what);
        }
    }
}

/// Runs one configuration against a fresh child of `exe`.
pub fn run(exe: &Path, dir: &Path, config: Config) -> Outcome {
    let mut outcome = Outcome { config: Some(config), ..Outcome::default() };
    let spec = Spec {
        agent: Agent::Full,
        workers: config.workers,
        shape: Shape::loaded(config.workers, config.parked),
        socket_dir: dir.to_path_buf(),
    };
    let proc = match Proc::start(exe, &spec) {
        Ok(proc) => proc,
        Err(why) => {
            outcome.error = Some(why);
            return outcome;
        }
    };
    outcome.tasks = proc.tasks;
    if let Err(why) = soak(proc, config, &mut outcome) {
        outcome.error = Some(why);
    }
    outcome
}

fn soak(mut proc: Proc, config: Config, outcome: &mut Outcome) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("client runtime: {e}"))?;
    let mut client = rt.block_on(client::connect(&proc.socket))?;
    let mut health = Health { last: snapshot(&mut proc)?, last_at: Instant::now() };
    let first = health.last.clone();
    let before = health.check(&mut proc, "before the captures", QUIET_WINDOW, outcome)?;
    outcome.rates_before = Rates::between(&first, &before);
    let mut in_a_row = 0;
    for i in 1..=config.captures {
        // Where in the capture the cancel lands varies from one to the next.
        let cancel = (config.cancel_every > 0 && i % config.cancel_every == 0)
            .then(|| Duration::from_millis(1 + (i / config.cancel_every % 20) as u64));
        match rt.block_on(client::dump(&mut client, config.timeout_ms, cancel)) {
            client::Outcome::Cancelled => outcome.cancelled += 1,
            client::Outcome::Answered(capture) => {
                in_a_row = 0;
                record(outcome, i, &capture, config.timeout_ms);
            }
            client::Outcome::Failed(why) => {
                in_a_row = 0;
                outcome.failed.push(format!("capture {i}: {why}"));
            }
            client::Outcome::Wedged => {
                outcome.wedged += 1;
                in_a_row += 1;
                eprintln!("taskscope-soak: capture {i} wedged (no answer within its timeout + 5 s)");
                if in_a_row == WEDGED_IN_A_ROW {
                    outcome.error = Some(format!("stopped after {i} captures: {WEDGED_IN_A_ROW} wedged in a row"));
                    break;
                }
            }
        }
        if i % config.check_every == 0 {
            health.check(&mut proc, &format!("after capture {i}"), CHECK_INTERVAL, outcome)?;
        }
        if i % 100 == 0 {
            eprintln!("taskscope-soak: {} workers: {i}/{} captures", config.workers, config.captures);
        }
    }
    let end = health.check(&mut proc, "at the end", CHECK_INTERVAL, outcome)?;
    outcome.rates_during = Rates::between(&before, &end);
    outcome.blocks = end.blocks - before.blocks;
    let recovered = health.check(&mut proc, "2 s after the end", QUIET_WINDOW, outcome)?;
    outcome.rates_after = Rates::between(&end, &recovered);
    drop(client);
    outcome.finished = proc.finish();
    Ok(())
}

/// Tallies one capture: its times, the kinds that had NOT_POLLED tasks, and
/// anything a capture of a wrapped task should not give.
fn record(outcome: &mut Outcome, i: usize, capture: &Capture, timeout_ms: u32) {
    outcome.samples.push(Sample {
        rpc: capture.rpc,
        safe: Duration::from_nanos(capture.safe.elapsed_ns),
        wanted: capture.safe.wanted,
        answered: capture.safe.answered,
    });
    let mut not_polled = 0;
    // Nothing holds a worker longer than the blocker does: with a timeout
    // well past its block, every task is polled in time.
    let all_owed = u128::from(timeout_ms) >= 2 * load::BLOCK_FOR.as_millis();
    let mut wrong: [(Vec<String>, &str); 4] = [
        (Vec::new(), "not captured nor NOT_POLLED"),
        (Vec::new(), "captured with no stack"),
        (Vec::new(), "captured with a stack that lacks its own function"),
        (Vec::new(), "NOT_POLLED, though no worker is held for as long as the timeout"),
    ];
    for (&kind, seen) in &capture.kinds {
        not_polled += seen.not_polled;
        if seen.not_polled > 0 {
            let entry = outcome.not_polled.entry(kind).or_default();
            entry.0 += 1;
            entry.1 += u64::from(seen.not_polled);
        }
        // A short task may end while asked, which answers with no stack.
        if kind == Kind::Churn {
            continue;
        }
        let owed = if all_owed { seen.not_polled } else { 0 };
        for ((tasks, _), count) in wrong.iter_mut().zip([seen.other_source, seen.empty_stack, seen.wrong_stack, owed]) {
            if count > 0 {
                tasks.push(format!("{count} {}", kind.name()));
            }
        }
    }
    for (tasks, what) in wrong {
        if !tasks.is_empty() {
            outcome.anomaly(format!("capture {i}: {} {what}", tasks.join(", ")));
        }
    }
    // Each task the header counts as unanswered is NOT_POLLED in the list.
    // One that is not in the list was gone by the time the list was made: it
    // ended (a churner's short task) after the capture asked it and never
    // answered, and the capture waited its whole timeout for it (see
    // examples/ending_while_asked.rs).
    let unanswered = capture.unanswered();
    let waited_out = capture.safe.elapsed_ns >= u64::from(timeout_ms) * 950_000;
    if unanswered == 0 && waited_out {
        outcome.anomaly(format!(
            "capture {i}: every task answered, yet the capture took {} ms of its {timeout_ms} ms timeout",
            capture.safe.elapsed_ns / 1_000_000
        ));
    }
    if not_polled > unanswered {
        outcome.anomaly(format!(
            "capture {i}: the header says {} of {} answered, the list has {not_polled} NOT_POLLED",
            capture.safe.answered, capture.safe.wanted
        ));
    } else if unanswered > not_polled {
        outcome.anomaly(format!(
            "capture {i}: {} asked task(s) never answered and are in no list (they ended while asked); \
             the capture took {} ms of its {} ms timeout",
            unanswered - not_polled,
            capture.safe.elapsed_ns / 1_000_000,
            timeout_ms
        ));
    }
}

fn snapshot(proc: &mut Proc) -> Result<Counters, String> {
    let mut counters = Counters::parse(&proc.ask("snapshot", "counters ", process::ANSWER_WITHIN)?)?;
    counters.cpu = proc.thread_cpu();
    Ok(counters)
}

/// The health checks: every check reads the counters and takes the child's
/// word on what did not rise since the previous reading.
struct Health {
    last: Counters,
    last_at: Instant,
}

impl Health {
    /// Checks at least `interval` after the previous reading.
    fn check(
        &mut self,
        proc: &mut Proc,
        when: &str,
        interval: Duration,
        outcome: &mut Outcome,
    ) -> Result<Counters, String> {
        if let Some(wait) = interval.checked_sub(self.last_at.elapsed()) {
            std::thread::sleep(wait);
        }
        let now = snapshot(proc)?;
        self.last_at = Instant::now();
        outcome.rss_kib.push((when.to_string(), proc.rss_kib()));
        outcome.checks += 1;
        if now.stalled == "-" {
            outcome.checks_passed += 1;
        } else {
            outcome.check_failures.push(format!("{when}: no progress of {}", now.stalled));
        }
        self.last = now.clone();
        Ok(now)
    }
}
