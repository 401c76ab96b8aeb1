//! taskscope-bench: what embedding the taskscope agent costs a tokio program.
//!
//! One run compares, side by side, the same workloads under three variants:
//! `plain` (no subscriber at all, same tokio features), `agent`
//! (`taskscope_agent::init()`) and `console` (`console_subscriber::init()`),
//! and times the real `taskscope stack` against a program holding 10k parked
//! tasks. Every measurement is a fresh child process (this binary re-executed
//! with `--variant NAME --workload NAME`), runs are interleaved, and the report
//! gives medians and ratios against `plain`.
//!
//! ```text
//! cargo run --release -p taskscope-bench -- --runs 5
//! ```
//!
//! See `bench/README.md` for the workloads, the caps, and measured numbers.

mod child;
mod report;
mod runner;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// What a child process runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum)]
pub enum Variant {
    /// No subscriber: tokio's instrumentation compiled in but unused.
    Plain,
    /// `taskscope_agent::init()`.
    Agent,
    /// `console_subscriber::init()` (console-subscriber 0.5, default settings).
    Console,
}

/// What a child process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum)]
pub enum Workload {
    /// Spawn 300k short tasks, then await them all.
    Spawn,
    /// 500k round trips over two bounded mpsc channels between two tasks.
    Channel,
    /// Spawn 100k tasks parked on a oneshot; resident memory once parked.
    Idle,
    /// Hold 10k parked tasks while the parent times `taskscope stack`.
    Stack,
}

impl Workload {
    /// The workload's size: tasks or round trips.
    pub fn count(self, quick: bool) -> usize {
        let full = match self {
            Workload::Spawn => 300_000,
            Workload::Channel => 500_000,
            Workload::Idle => 100_000,
            Workload::Stack => 10_000,
        };
        if quick {
            full / 100
        } else {
            full
        }
    }

    /// The variants worth comparing on this workload: `stack` needs the agent.
    pub fn variants(self, wanted: &[Variant]) -> Vec<Variant> {
        match self {
            Workload::Stack => vec![Variant::Agent],
            _ => wanted.to_vec(),
        }
    }

    /// The workload's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Spawn => "spawn",
            Workload::Channel => "channel",
            Workload::Idle => "idle",
            Workload::Stack => "stack",
        }
    }
}

impl Variant {
    /// The variant's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Plain => "plain",
            Variant::Agent => "agent",
            Variant::Console => "console",
        }
    }
}

/// Compares plain tokio, the taskscope agent and console-subscriber.
#[derive(Debug, Parser)]
#[command(name = "taskscope-bench")]
struct Args {
    /// Measurements per workload and variant; the report shows medians.
    #[arg(long, default_value_t = 5)]
    runs: usize,

    /// Workloads to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_values = ["spawn", "channel", "idle", "stack"])]
    workloads: Vec<Workload>,

    /// Variants to compare, comma-separated.
    #[arg(long, value_delimiter = ',', default_values = ["plain", "agent", "console"])]
    variants: Vec<Variant>,

    /// Workloads 100 times smaller: checks that the bench works, measures nothing.
    #[arg(long)]
    quick: bool,

    /// A child running longer than this is killed and reported "skipped (>cap)".
    #[arg(long, value_name = "DUR", default_value = "60s", value_parser = humantime::parse_duration)]
    time_cap: Duration,

    /// A child whose resident memory exceeds this many MiB is killed and
    /// reported "skipped (>cap)".
    #[arg(long, value_name = "MIB", default_value_t = 2048)]
    mem_cap_mib: u64,

    /// The `taskscope` binary for the stack workload; by default the one next
    /// to this binary (built on demand when run through cargo).
    #[arg(long, value_name = "PATH")]
    taskscope: Option<PathBuf>,

    /// Child mode (internal): run one workload under this variant.
    #[arg(long, hide = true, requires = "workload")]
    variant: Option<Variant>,

    /// Child mode (internal): the workload to run.
    #[arg(long, hide = true, requires = "variant")]
    workload: Option<Workload>,

    /// Child mode (internal): the workload's size.
    #[arg(long, hide = true)]
    count: Option<usize>,
}

fn main() {
    let args = Args::parse();
    if let (Some(variant), Some(workload)) = (args.variant, args.workload) {
        let count = args.count.unwrap_or_else(|| workload.count(false));
        child::run(variant, workload, count);
        return;
    }
    if args.runs == 0 {
        eprintln!("taskscope-bench: --runs must be at least 1");
        std::process::exit(2);
    }
    let plan = runner::Plan {
        runs: args.runs,
        workloads: args.workloads,
        variants: args.variants,
        quick: args.quick,
        limits: runner::Limits {
            time: args.time_cap,
            mem_kib: args.mem_cap_mib * 1024,
        },
        taskscope: args.taskscope,
    };
    let results = runner::run(&plan);
    report::print(&plan, &results);
}
