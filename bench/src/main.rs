//! taskscope-bench: what embedding the taskscope agent costs a tokio program.
//!
//! One run compares, side by side, the same workloads under five variants:
//! `plain` (no subscriber at all, same tokio features), `agent`
//! (`taskscope_agent::init()`) and `console` (`console_subscriber::init()`),
//! all with tokio's `tracing` feature; and `plain-lean` (tokio without it) and
//! `lean` (`taskscope_agent::build_runtime`), compared with each other. It
//! also times the real `taskscope stack` against a program holding 10k parked
//! tasks. Every measurement is a fresh child process (this binary re-executed
//! with `--variant NAME --workload NAME`, or `taskscope-bench-lean` for the
//! lean variants), runs are interleaved, and the report gives medians and
//! ratios against each variant's baseline.
//!
//! ```text
//! cargo run --release -p taskscope-bench -- --runs 5
//! ```
//!
//! See `bench/README.md` for the workloads, the caps, and measured numbers.

mod child;
mod plan;
mod report;
mod runner;
mod sibling;
mod steal;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use plan::{Variant, Workload};

/// Compares plain tokio, the taskscope agent (full and lean) and console-subscriber.
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
    #[arg(long, value_delimiter = ',', default_values = ["plain", "agent", "agent-wrapped", "noop", "fields", "console", "plain-lean", "lean", "lean-wrapped", "hooks"])]
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

    /// The `taskscope-bench-lean` binary for the `plain-lean` and `lean`
    /// variants; by default the one next to this binary (built on demand when
    /// run through cargo).
    #[arg(long, value_name = "PATH")]
    lean_bin: Option<PathBuf>,

    /// Repeat a workload's round whose host steal time (CPU time the
    /// hypervisor gave to other machines) exceeded this percentage of the
    /// host's CPU time, at most `--runs` times in all; every round's steal is
    /// reported either way.
    #[arg(long, value_name = "PCT")]
    max_steal: Option<f64>,

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
        if let Err(why) = child::run(variant, workload, count) {
            eprintln!("taskscope-bench: {why}");
            std::process::exit(2);
        }
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
        limits: runner::Limits { time: args.time_cap, mem_kib: args.mem_cap_mib.saturating_mul(1024) },
        taskscope: args.taskscope,
        lean_bin: args.lean_bin,
        max_steal: args.max_steal,
    };
    let results = runner::run(&plan);
    report::print(&plan, &results);
}
