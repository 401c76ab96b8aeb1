//! The child: the inspected program. It builds a multi-thread runtime,
//! embeds the agent on a private socket, starts the load (see `load.rs`)
//! and then answers the parent, one line per command on stdin:
//!
//! - `snapshot` → `counters t_us=N heartbeat=N busy=N rounds=N burst=N
//!   churned=N blocks=N stalled=LIST` (`LIST` names what did not rise since
//!   the previous snapshot, `-` for nothing);
//! - `finish` → stops the load, sends every parked task its value, joins
//!   every task within 5 s, shuts the runtime down within 5 s, prints
//!   `final tasks=N joined=N not_joined=N join_errors=N wrong_values=N
//!   burst_short=N join_ms=N shutdown_ms=N` and exits 0.
//!
//! The main thread does all of this from outside the runtime, reading
//! atomics: a runtime the captures had wedged could not hide it by also
//! wedging the answers.

use std::io::BufRead;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::load::{Load, Shape};

/// How the child embeds the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Agent {
    /// `taskscope_agent::Builder::init()` inside the runtime (tokio's spans).
    Full,
    /// `taskscope_agent::Builder::build_runtime` (tokio's runtime hooks).
    Lean,
}

impl Agent {
    pub fn name(self) -> &'static str {
        match self {
            Agent::Full => "full",
            Agent::Lean => "lean",
        }
    }
}

/// What the parent asks the child to be.
#[derive(Debug, Clone)]
pub struct Spec {
    pub agent: Agent,
    pub workers: usize,
    pub shape: Shape,
    pub socket_dir: PathBuf,
}

/// How long the end may take to join every task, and the runtime to stop.
pub const JOIN_WITHIN: Duration = Duration::from_secs(5);
pub const SHUTDOWN_WITHIN: Duration = Duration::from_secs(5);

/// Runs the child until the parent says `finish` (or goes away).
pub fn run(spec: Spec) -> Result<(), String> {
    let born = Instant::now();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(spec.workers).enable_all();
    // tokio's own dump stays off whatever tokio this is built with: the soak
    // measures the safe capture alone.
    let agent = taskscope_agent::Builder::from_env().socket_dir(&spec.socket_dir).tokio_dumps(false);
    let runtime = match spec.agent {
        Agent::Lean => agent.clone().build_runtime(&mut builder),
        Agent::Full => builder.build(),
    }
    .map_err(|e| format!("build the tokio runtime: {e}"))?;
    let load = runtime.block_on(async {
        if spec.agent == Agent::Full {
            agent.init();
        }
        Load::start(spec.shape).await
    });
    // Every task has been polled; give the agent a moment to record them.
    std::thread::sleep(Duration::from_millis(300));
    let pid = std::process::id();
    println!("ready pid={pid} socket={} tasks={}", spec.socket_dir.join(format!("{pid}.sock")).display(), load.tasks());
    let mut last = load.snapshot();
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| format!("read a command: {e}"))?;
        match line.trim() {
            "snapshot" => {
                let now = load.snapshot();
                let stalled = now.stalled_since(&last);
                println!(
                    "counters t_us={} heartbeat={} busy={} rounds={} burst={} churned={} blocks={} stalled={}",
                    born.elapsed().as_micros(),
                    now.heartbeat,
                    now.busy.iter().sum::<u64>(),
                    now.rounds,
                    now.burst.iter().sum::<u64>(),
                    now.churned,
                    now.blocks,
                    if stalled.is_empty() { "-".to_string() } else { stalled.join(",") },
                );
                last = now;
            }
            "finish" => {
                let joined = load.finish(&runtime, JOIN_WITHIN);
                let stopping = Instant::now();
                runtime.shutdown_timeout(SHUTDOWN_WITHIN);
                println!(
                    "final tasks={} joined={} not_joined={} join_errors={} wrong_values={} burst_short={} join_ms={} shutdown_ms={}",
                    joined.tasks,
                    joined.joined,
                    joined.not_joined,
                    joined.join_errors,
                    joined.wrong_values,
                    joined.burst_short,
                    joined.elapsed.as_millis(),
                    stopping.elapsed().as_millis(),
                );
                return Ok(());
            }
            other => eprintln!("taskscope-soak child: unknown command {other:?}"),
        }
    }
    Err("stdin closed before `finish`: the parent went away".to_string())
}
