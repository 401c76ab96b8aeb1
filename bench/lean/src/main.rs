//! taskscope-bench-lean: the children of taskscope-bench's `plain-lean` and
//! `lean` variants.
//!
//! A package of its own because the lean mode's cost is measured against
//! tokio WITHOUT its `tracing` feature, and cargo unifies features per build:
//! taskscope-bench depends on console-subscriber and the agent's full mode,
//! both of which turn that feature on, so no binary of that package can be
//! the baseline. This one runs the same child code (`bench/src/child.rs`) and
//! knows the same variants and workloads (`bench/src/plan.rs`), but only the
//! child mode; taskscope-bench starts it, one process per measurement.
//!
//! ```text
//! taskscope-bench-lean --variant lean --workload spawn --count 300000
//! ```

#[path = "../../src/child.rs"]
mod child;
// The parent's side of the plan (which variants a workload runs under, ...)
// goes unused here.
#[allow(dead_code)]
#[path = "../../src/plan.rs"]
mod plan;

use clap::Parser;

use plan::{Variant, Workload};

/// Runs one bench workload under `plain-lean` or `lean` and prints its result line.
#[derive(Debug, Parser)]
#[command(name = "taskscope-bench-lean")]
struct Args {
    /// The variant: `plain-lean` or `lean` (the others run in taskscope-bench).
    #[arg(long)]
    variant: Variant,

    /// The workload to run.
    #[arg(long)]
    workload: Workload,

    /// The workload's size; by default the full one.
    #[arg(long)]
    count: Option<usize>,
}

fn main() {
    let args = Args::parse();
    let count = args.count.unwrap_or_else(|| args.workload.count(false));
    if let Err(why) = child::run(args.variant, args.workload, count) {
        eprintln!("taskscope-bench-lean: {why}");
        std::process::exit(2);
    }
}
