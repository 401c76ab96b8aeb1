//! taskscope-soak: the agent's safe capture under load, thousands of times.
//!
//! The rule for the agent is that no request may wedge, slow for good, kill,
//! lose or abort anything in the inspected program. This bench holds it to
//! that. For each configuration (a multi-thread runtime with 2 workers, and
//! with 4) it starts a child process (this binary re-executed with hidden
//! `--child` flags) that embeds the agent on a private socket and runs a
//! load of wrapped tasks (see `load.rs`), takes 1,000 `Dump`s of it over
//! the socket, checks every 50 captures that the program still makes
//! progress, and at the end that every task joins and the runtime shuts
//! down in time. A second mode times captures of N parked wrapped tasks in
//! an idle program, under the full mode and the lean one.
//!
//! ```text
//! cargo run --release -p taskscope-soak
//! cargo run --release -p taskscope-soak -- --modes soak --captures 20 --workers 2 --parked 100
//! ```
//!
//! Exit status 1 when a must-be-zero property failed in any configuration
//! (a wedged or failed capture, a lost task, an unclean exit, a failed health
//! check). See `bench/README.md`, "Soak: safe captures under load".

mod child;
mod client;
mod load;
mod process;
mod report;
mod scale;
mod soak;

use std::path::PathBuf;

use clap::Parser;

use child::Agent;

/// Soaks the taskscope agent's safe capture: Dumps of a loaded tokio program.
#[derive(Debug, Parser)]
#[command(name = "taskscope-soak")]
struct Args {
    /// What to run, comma-separated: `soak` (captures under load) and
    /// `scale` (capture time against N parked tasks).
    #[arg(long, value_delimiter = ',', default_values = ["soak", "scale"])]
    modes: Vec<Mode>,

    /// Worker threads of the soaked runtime, one configuration each.
    #[arg(long, value_delimiter = ',', default_values_t = [2, 4])]
    workers: Vec<usize>,

    /// Captures (Dump RPCs) per soak configuration.
    #[arg(long, default_value_t = 1000)]
    captures: usize,

    /// Tasks parked on oneshots in the soaked program (in the child: its
    /// parked tasks).
    #[arg(long, default_value_t = 1000)]
    parked: usize,

    /// Each capture's `DumpRequest.timeout_ms`.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u32,

    /// A health check every this many captures (and one before, one at the
    /// end and one a second after).
    #[arg(long, default_value_t = 50)]
    check_every: usize,

    /// Every this many captures, cancel one a few ms after it starts (0:
    /// never), as a `taskscope stack` killed mid-way would.
    #[arg(long, default_value_t = 0)]
    cancel_every: usize,

    /// Parked tasks of the scale mode, one child per size and mode.
    #[arg(long, value_delimiter = ',', default_values_t = [1000, 10000])]
    scale_sizes: Vec<usize>,

    /// Captures per scale row.
    #[arg(long, default_value_t = 20)]
    scale_captures: usize,

    /// Child mode (internal): be the inspected program.
    #[arg(long, hide = true)]
    child: bool,

    /// Child mode (internal): how the agent is embedded.
    #[arg(long, hide = true, default_value = "full")]
    agent: Agent,

    /// Child mode (internal): worker threads.
    #[arg(long, hide = true, default_value_t = 2)]
    child_workers: usize,

    /// Child mode (internal): parked tasks only, no load.
    #[arg(long, hide = true)]
    idle: bool,

    /// Child mode (internal): the agent's socket directory.
    #[arg(long, hide = true)]
    socket_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    Soak,
    Scale,
}

fn main() {
    let args = Args::parse();
    if args.child {
        std::process::exit(run_child(&args));
    }
    if args.captures == 0 || args.check_every == 0 || args.workers.contains(&0) {
        eprintln!("taskscope-soak: --captures, --check-every and --workers must be at least 1");
        std::process::exit(2);
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("taskscope-soak: find own binary to re-execute as the child: {e}");
            std::process::exit(2);
        }
    };
    let dir = match process::SocketDir::create() {
        Ok(dir) => dir,
        Err(why) => {
            eprintln!("taskscope-soak: {why}");
            std::process::exit(2);
        }
    };
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("taskscope-soak: {cpus} CPU(s); one child process per configuration\n");
    let mut ok = true;
    if args.modes.contains(&Mode::Soak) {
        for &workers in &args.workers {
            let config = soak::Config {
                workers,
                parked: args.parked,
                captures: args.captures,
                timeout_ms: args.timeout_ms,
                check_every: args.check_every,
                cancel_every: args.cancel_every,
            };
            let outcome = soak::run(&exe, &dir.0, config);
            report::print_soak(&outcome);
            ok &= outcome.ok();
        }
    }
    if args.modes.contains(&Mode::Scale) {
        let mut rows = Vec::new();
        for agent in [Agent::Full, Agent::Lean] {
            for &tasks in &args.scale_sizes {
                eprintln!("taskscope-soak: scale {} {tasks}", agent.name());
                rows.push(scale::run(&exe, &dir.0, agent, tasks, args.scale_captures, args.timeout_ms));
            }
        }
        report::print_scale(&rows, args.scale_captures, args.timeout_ms);
        ok &= rows.iter().all(scale::Row::ok);
    }
    drop(dir);
    std::process::exit(if ok { 0 } else { 1 });
}

fn run_child(args: &Args) -> i32 {
    let Some(socket_dir) = args.socket_dir.clone() else {
        eprintln!("taskscope-soak child: --socket-dir is required");
        return 2;
    };
    let shape =
        if args.idle { load::Shape::idle(args.parked) } else { load::Shape::loaded(args.child_workers, args.parked) };
    let spec = child::Spec { agent: args.agent, workers: args.child_workers, shape, socket_dir };
    match child::run(spec) {
        Ok(()) => 0,
        Err(why) => {
            eprintln!("taskscope-soak child: {why}");
            2
        }
    }
}
