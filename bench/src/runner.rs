//! The parent side: runs every (workload, variant) pair once per run, each in
//! a fresh child process, interleaved, under a time and memory cap; and times
//! the real `taskscope stack` against a child that holds parked tasks.
//!
//! Children of the lean variants are `taskscope-bench-lean`, the others this
//! binary re-executed (see `plan.rs` for why two binaries).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::child::parse_status_kib;
use crate::plan::{Variant, Workload, VARIANT_COLUMN};
use crate::sibling;
use crate::steal;

/// A workload under a variant: what one child measures.
pub type Pair = (Workload, Variant);

/// What to run.
pub struct Plan {
    pub runs: usize,
    pub workloads: Vec<Workload>,
    pub variants: Vec<Variant>,
    pub quick: bool,
    pub limits: Limits,
    pub taskscope: Option<PathBuf>,
    /// `taskscope-bench-lean`, if not the one next to this binary.
    pub lean_bin: Option<PathBuf>,
    /// Repeat a round whose host steal exceeded this percentage (see `steal.rs`).
    pub max_steal: Option<f64>,
}

impl Plan {
    /// Every (workload, variant) pair the plan measures.
    fn pairs(&self) -> impl Iterator<Item = Pair> + '_ {
        self.workloads.iter().flat_map(|&w| w.variants(&self.variants).into_iter().map(move |v| (w, v)))
    }
}

/// Caps on one child: beyond them it is killed and the pair is skipped.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub time: Duration,
    pub mem_kib: u64,
}

/// One measurement of a spawn/channel/idle workload.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub elapsed: Duration,
    /// CPU time of the child over the same span, all threads.
    pub cpu: Duration,
    pub rss_kib: u64,
    pub base_rss_kib: u64,
    pub peak_rss_kib: u64,
}

/// One timing of `taskscope stack` against a fresh child.
#[derive(Debug, Clone)]
pub struct StackSample {
    /// First call: nothing symbolised yet.
    pub cold: Duration,
    /// Second call against the same process: symbols cached.
    pub warm: Duration,
    /// First line of the output (the totals header).
    pub header: String,
}

/// Everything measured, and what could not be.
#[derive(Debug, Default)]
pub struct Results {
    pub samples: BTreeMap<Pair, Vec<Sample>>,
    /// `taskscope stack` timings, by the variant of the child it inspected.
    pub stack: BTreeMap<Variant, Vec<StackSample>>,
    /// Pairs not measured, with the reason (`>cap`, a failure, a binary missing).
    pub skipped: BTreeMap<Pair, String>,
    /// The host's steal in each kept round of each workload, in percent of
    /// its CPU time (none where `/proc/stat` has no steal).
    pub steal: BTreeMap<Workload, Vec<f64>>,
    /// Rounds measured again because of `--max-steal`.
    pub repeated: usize,
}

/// What one round of one workload measured, kept only once its steal is known.
#[derive(Default)]
struct Round {
    samples: Vec<(Pair, Sample)>,
    stack: Vec<(Variant, StackSample)>,
}

/// Runs the plan: `runs` rounds, each round every pair once, the order of the
/// variants rotating from round to round.
pub fn run(plan: &Plan) -> Results {
    let mut results = Results::default();
    let dir = BenchDir::create();
    // A binary that cannot be found skips every pair that runs it, up front.
    let mut find = |sibling: &sibling::Sibling, explicit: Option<&Path>, runs_it: fn(Pair) -> bool| {
        if !plan.pairs().any(runs_it) {
            return None;
        }
        sibling
            .find(explicit)
            .map_err(|why| {
                for pair in plan.pairs().filter(|&pair| runs_it(pair)) {
                    results.skipped.insert(pair, why.clone());
                }
            })
            .ok()
    };
    let taskscope = find(&sibling::TASKSCOPE, plan.taskscope.as_deref(), |(w, _)| w == Workload::Stack);
    let lean = find(&sibling::LEAN, plan.lean_bin.as_deref(), |(_, v)| v.is_lean());
    let full = std::env::current_exe().map_err(|e| format!("find own binary: {e}"));
    let exe = |variant: Variant| -> Result<&Path, String> {
        match (variant.is_lean(), &lean) {
            (true, Some(path)) => Ok(path),
            (true, None) => Err(format!("no {}", sibling::LEAN.name)),
            (false, _) => full.as_deref().map_err(Clone::clone),
        }
    };
    for round in 0..plan.runs {
        for &workload in &plan.workloads {
            loop {
                let before = steal::read();
                let measured = run_round(plan, &mut results, round, workload, &exe, taskscope.as_deref(), &dir.0);
                let share = before.zip(steal::read()).and_then(|(before, after)| steal::share(before, after));
                if let (Some(share), Some(max)) = (share, plan.max_steal) {
                    // At most `runs` repeats in all, so a host that is never quiet still ends.
                    if share > max && results.repeated < plan.runs {
                        results.repeated += 1;
                        eprintln!(
                            "[run {}/{}] {}: host steal {share:.1}% > {max}%: round measured again",
                            round + 1,
                            plan.runs,
                            workload.name()
                        );
                        continue;
                    }
                }
                if let Some(share) = share {
                    eprintln!("[run {}/{}] {}: host steal {share:.1}%", round + 1, plan.runs, workload.name());
                    results.steal.entry(workload).or_default().push(share);
                }
                for (pair, sample) in measured.samples {
                    results.samples.entry(pair).or_default().push(sample);
                }
                for (variant, sample) in measured.stack {
                    results.stack.entry(variant).or_default().push(sample);
                }
                break;
            }
        }
    }
    results
}

/// One round of `workload`: every variant once, in an order that rotates
/// from round to round. A pair that fails is skipped from then on.
fn run_round<'a>(
    plan: &Plan,
    results: &mut Results,
    round: usize,
    workload: Workload,
    exe: &impl Fn(Variant) -> Result<&'a Path, String>,
    taskscope: Option<&Path>,
    dir: &Path,
) -> Round {
    let mut measured = Round::default();
    let mut variants = workload.variants(&plan.variants);
    let turn = round % variants.len().max(1);
    variants.rotate_left(turn);
    for variant in variants {
        if results.skipped.contains_key(&(workload, variant)) {
            continue;
        }
        let count = workload.count(plan.quick);
        let label =
            format!("[run {}/{}] {:<8} {:<VARIANT_COLUMN$}", round + 1, plan.runs, workload.name(), variant.name());
        let outcome = match (workload, taskscope) {
            (Workload::Stack, None) => continue,
            (Workload::Stack, Some(cli)) => {
                exe(variant).and_then(|exe| time_stack(cli, exe, variant, count, plan.limits, dir)).map(|s| {
                    eprintln!("{label} cold {:.3} s, warm {:.3} s", s.cold.as_secs_f64(), s.warm.as_secs_f64());
                    measured.stack.push((variant, s));
                })
            }
            _ => exe(variant).and_then(|exe| measure(exe, workload, variant, count, plan.limits, dir)).map(|s| {
                eprintln!(
                    "{label} {:.3} s (CPU {:.3} s), RSS {} MiB (peak {} MiB)",
                    s.elapsed.as_secs_f64(),
                    s.cpu.as_secs_f64(),
                    s.rss_kib / 1024,
                    s.peak_rss_kib / 1024
                );
                measured.samples.push(((workload, variant), s));
            }),
        };
        if let Err(why) = outcome {
            eprintln!("{label} skipped ({why})");
            results.skipped.insert((workload, variant), why);
        }
    }
    measured
}

/// Runs one child (`exe`) and returns its result line, parsed.
fn measure(
    exe: &Path,
    workload: Workload,
    variant: Variant,
    count: usize,
    limits: Limits,
    dir: &Path,
) -> Result<Sample, String> {
    let mut child = Watched::start(exe, workload, variant, count, dir)?;
    let line = child.wait_for_line(|l| l.starts_with("result "), limits)?;
    child.finish(limits);
    let field = |name: &str| -> Result<u64, String> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("bad result line {line:?}"))
    };
    Ok(Sample {
        elapsed: Duration::from_nanos(field("elapsed_ns")?),
        cpu: Duration::from_nanos(field("cpu_ns")?),
        rss_kib: field("rss_kib")?,
        base_rss_kib: field("base_rss_kib")?,
        peak_rss_kib: field("peak_rss_kib")?,
    })
}

/// Starts a child (`exe`) holding `count` parked tasks under `variant`, then
/// times two `taskscope stack <pid>` calls against it.
fn time_stack(
    cli: &Path,
    exe: &Path,
    variant: Variant,
    count: usize,
    limits: Limits,
    dir: &Path,
) -> Result<StackSample, String> {
    let mut child = Watched::start(exe, Workload::Stack, variant, count, dir)?;
    child.wait_for_line(|l| l == "ready", limits)?;
    let pid = child.child.id();
    let (cold, header) = run_cli(cli, pid, limits.time, dir)?;
    let (warm, _) = run_cli(cli, pid, limits.time, dir)?;
    Ok(StackSample { cold, warm, header })
}

/// Runs `taskscope stack <pid>` and returns its wall time and first line.
fn run_cli(cli: &Path, pid: u32, cap: Duration, dir: &Path) -> Result<(Duration, String), String> {
    let out_path = dir.join("stack.out");
    let err_path = dir.join("stack.err");
    let file = |p: &Path| std::fs::File::create(p).map_err(|e| format!("create {}: {e}", p.display()));
    let start = Instant::now();
    let mut proc = Command::new(cli)
        .arg("stack")
        .arg(pid.to_string())
        .env("TASKSCOPE_DIR", dir)
        .stdout(file(&out_path)?)
        .stderr(file(&err_path)?)
        .spawn()
        .map_err(|e| format!("run {}: {e}", cli.display()))?;
    let status = loop {
        if let Some(status) = proc.try_wait().map_err(|e| format!("wait for taskscope: {e}"))? {
            break status;
        }
        if start.elapsed() > cap {
            let _ = proc.kill();
            let _ = proc.wait();
            return Err(format!("`taskscope stack` took >{}", humantime::format_duration(cap)));
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let elapsed = start.elapsed();
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    if !status.success() {
        let err = read(&err_path);
        return Err(format!("`taskscope stack` failed: {}", err.lines().next().unwrap_or("no message")));
    }
    let header = read(&out_path).lines().next().unwrap_or_default().to_string();
    Ok((elapsed, header))
}

/// A child process whose stdout is read line by line and whose memory is
/// watched.
struct Watched {
    child: Child,
    lines: mpsc::Receiver<String>,
    started: Instant,
}

impl Watched {
    fn start(exe: &Path, workload: Workload, variant: Variant, count: usize, dir: &Path) -> Result<Watched, String> {
        let mut child = Command::new(exe)
            .args(["--variant", variant.name(), "--workload", workload.name(), "--count", &count.to_string()])
            .env("TASKSCOPE_DIR", dir)
            // The `stack` child runs a multi-thread runtime. Unwrapped, its
            // tasks have stacks only from tokio's own dump, opted into here
            // (the child is killed right after); wrapped, the safe capture
            // alone is timed.
            .env("TASKSCOPE_TOKIO_DUMPS", if variant.wraps() { "0" } else { "1" })
            // console-subscriber: a free port, and its log layer quiet as by default.
            .env("TOKIO_CONSOLE_BIND", "127.0.0.1:0")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("start {}: {e}", exe.display()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Watched { child, lines, started: Instant::now() })
    }

    /// Waits for a stdout line matching `wanted`, killing the child when it
    /// exceeds a cap or exits first.
    fn wait_for_line(&mut self, wanted: impl Fn(&str) -> bool, limits: Limits) -> Result<String, String> {
        let status_path = format!("/proc/{}/status", self.child.id());
        loop {
            match self.lines.recv_timeout(Duration::from_millis(10)) {
                Ok(line) if wanted(&line) => return Ok(line),
                Ok(_) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().map_err(|e| format!("wait for child: {e}"))?;
                    return Err(format!("child exited ({status}) without a result"));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            let rss = parse_status_kib(&std::fs::read_to_string(&status_path).unwrap_or_default(), "VmRSS:");
            if rss > limits.mem_kib {
                return Err(format!(">cap: RSS over {} MiB", limits.mem_kib / 1024));
            }
            if self.started.elapsed() > limits.time {
                return Err(format!(">cap: over {}", humantime::format_duration(limits.time)));
            }
        }
    }

    /// Lets the child exit on its own for a while, then kills it.
    fn finish(&mut self, limits: Limits) {
        let deadline = Instant::now() + limits.time.min(Duration::from_secs(10));
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The children's `TASKSCOPE_DIR`: private to this run, removed at the end.
struct BenchDir(PathBuf);

impl BenchDir {
    fn create() -> BenchDir {
        let dir = std::env::temp_dir().join(format!("taskscope-bench-{}", std::process::id()));
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        if let Err(e) = builder.create(&dir) {
            eprintln!("taskscope-bench: create {}: {e}", dir.display());
        }
        BenchDir(dir)
    }
}

impl Drop for BenchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
