//! # harm: busy programs that a stack request must not harm
//!
//! Not a leak story: the corpus the harm test (`tests/harm.rs`) and
//! `scripts/harm-table` run `taskscope stack` against, over and over. Each
//! shape is a busy workload of the kind tokio 1.54.1's own task dump harms:
//! on a current-thread runtime a task whose traced poll wakes a task panics
//! inside the scheduler (tokio-rs/tokio#8391), on a multi-thread one a
//! worker can be left stuck for good (tokio-rs/tokio#8370). The rule the
//! corpus checks: no request of taskscope may wedge, slow for good, kill,
//! lose or abort anything in the inspected program.
//!
//! Shapes (`--shape`), each task a function named `harm_<shape>_...` so that
//! a captured stack is easy to find:
//! - `self-wake`: a task whose every poll wakes itself, and one parked on
//!   tokio's timer between short sleeps;
//! - `notify-other`: two tasks that call `Notify::notify_one` for two others
//!   in each of their polls (one per 1 ms tick), each of those counting the
//!   notifications;
//! - `futures-pingpong`: a `futures::channel::mpsc` ping-pong;
//! - `flume-pipeline`: producer → stage → consumer on bounded flume channels;
//! - `async-channel-pipeline`: the same on async-channel;
//! - `mpsc-pingpong`: a tokio mpsc ping-pong;
//! - `unordered-sleeps`: a `FuturesUnordered` of short tokio sleeps, refilled
//!   forever.
//!
//! Most tasks are spawned with `taskscope_agent::spawn` or its named
//! `task::Builder`, so the agent's safe capture traces them mid-work; one or
//! two per shape with plain `tokio::spawn`, so untraced tasks are there too.
//!
//! Output, on stdout: `tasks <name> ...` (the tasks in counter order), then
//! `ready pid=<pid>` once every task has made progress, then every 100 ms
//! `progress <count> ...`, one counter per task in that order. On SIGINT
//! every task is asked to stop; the program prints `exit ok tasks=<n>` and
//! exits 0 if each returned normally within 5 s, else one
//! `exit lost task=<name> why=<why>` line per task that did not, and exits 1.
//!
//! ```text
//! cargo run -p taskscope-examples --bin harm -- --shape self-wake --runtime current
//! taskscope stack <pid>            # harm_self_wake_task, mid-work
//! ```
//!
//! Flags: `--shape S`, `--runtime current|multi2|multi4`, `--lean` (the
//! runtime built through `taskscope_agent::build_runtime` instead of
//! `taskscope_agent::init()`), `--tasks N` (copies of the shape's workload).

use std::future::Future;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};

mod shapes;
use shapes::*;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A busy workload for stack requests to run against.
#[derive(Debug, Parser)]
#[command(name = "harm")]
struct Args {
    /// The workload.
    #[arg(long, value_enum)]
    shape: Shape,

    /// The runtime: `current` (current_thread), `multi2` / `multi4`
    /// (multi_thread with 2 / 4 workers).
    #[arg(long, value_enum)]
    runtime: Flavor,

    /// Lean mode: build the runtime through `taskscope_agent::build_runtime`
    /// (runtime hooks) instead of calling `taskscope_agent::init()` in it.
    #[arg(long)]
    lean: bool,

    /// Copies of the shape's workload to run side by side.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    tasks: u32,
}

/// The workloads (see the module docs).
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Shape {
    SelfWake,
    NotifyOther,
    FuturesPingpong,
    FlumePipeline,
    AsyncChannelPipeline,
    MpscPingpong,
    UnorderedSleeps,
}

/// The runtime flavours.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Flavor {
    Current,
    Multi2,
    Multi4,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut builder = match args.runtime {
        Flavor::Current => tokio::runtime::Builder::new_current_thread(),
        Flavor::Multi2 | Flavor::Multi4 => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(if matches!(args.runtime, Flavor::Multi2) { 2 } else { 4 });
            builder
        }
    };
    builder.enable_all();
    let built = if args.lean { taskscope_agent::build_runtime(&mut builder) } else { builder.build() };
    let runtime = match built {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("harm: cannot build the tokio runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let lean = args.lean;
    let clean = runtime.block_on(async move {
        if !lean {
            taskscope_agent::init();
        }
        run(args).await
    });
    // A worker a dump left stuck must not keep the program from exiting.
    runtime.shutdown_timeout(Duration::from_secs(1));
    if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs the shape until SIGINT; whether every task then ended normally.
async fn run(args: Args) -> bool {
    // Registered before `ready`, so that a SIGINT sent as soon as the line
    // is read stops the tasks instead of killing the process.
    let mut interrupt = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()) {
        Ok(signal) => signal,
        Err(e) => {
            eprintln!("harm: cannot handle SIGINT: {e}");
            return false;
        }
    };
    let mut tasks = Tasks::default();
    for copy in 0..args.tasks {
        let suffix = if args.tasks == 1 { String::new() } else { format!("#{copy}") };
        tasks.suffix = suffix;
        if let Err(e) = spawn_shape(args.shape, &mut tasks) {
            eprintln!("harm: cannot spawn the {:?} tasks: {e}", args.shape);
            return false;
        }
    }
    let names: Vec<&str> = tasks.list.iter().map(|t| t.name.as_str()).collect();
    println!("tasks {}", names.join(" "));

    // `ready` once every task has counted at least once.
    while tasks.list.iter().any(|t| t.count.load(Relaxed) == 0) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    println!("ready pid={}", std::process::id());

    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let counts: Vec<String> = tasks.list.iter().map(|t| t.count.load(Relaxed).to_string()).collect();
                println!("progress {}", counts.join(" "));
            }
            received = interrupt.recv() => {
                if received.is_none() {
                    eprintln!("harm: stopping without a SIGINT: the runtime's signal driver is gone");
                }
                break;
            }
        }
    }
    tasks.stop().await
}

/// How a task's loop ended.
#[derive(Debug)]
enum Ended {
    /// It saw the stop request.
    Stopped,
    /// It could not go on (a peer's channel closed before any stop request).
    Broke(&'static str),
}

/// The tasks of the program, in counter order.
#[derive(Default)]
struct Tasks {
    stop: CancellationToken,
    list: Vec<Task>,
    /// Appended to the names of the copy being spawned.
    suffix: String,
}

struct Task {
    name: String,
    count: Arc<AtomicU64>,
    handle: JoinHandle<Ended>,
}

/// How a task is spawned.
#[derive(Clone, Copy)]
enum Spawn {
    /// `taskscope_agent::task::Builder` with the task's name: captured safely.
    Named,
    /// `taskscope_agent::spawn`: captured safely.
    Traced,
    /// `tokio::spawn`: only tokio's own dump can see its stack.
    Plain,
}

impl Tasks {
    /// Spawns the task `role` of the current copy: `work` gets its stop
    /// token and progress counter.
    #[track_caller]
    fn spawn<F>(
        &mut self,
        role: &str,
        how: Spawn,
        work: impl FnOnce(CancellationToken, Arc<AtomicU64>) -> F,
    ) -> std::io::Result<()>
    where
        F: Future<Output = Ended> + Send + 'static,
    {
        let name = format!("{role}{}", self.suffix);
        let count = Arc::new(AtomicU64::new(0));
        let future = work(self.stop.clone(), Arc::clone(&count));
        let handle = match how {
            Spawn::Named => taskscope_agent::task::Builder::new().name(&name).spawn(future)?,
            Spawn::Traced => taskscope_agent::spawn(future),
            Spawn::Plain => tokio::spawn(future),
        };
        self.list.push(Task { name, count, handle });
        Ok(())
    }

    /// Asks every task to stop and waits 5 s for all of them; reports the
    /// outcome on stdout and returns whether all ended normally.
    async fn stop(self) -> bool {
        self.stop.cancel();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let total = self.list.len();
        let mut lost = 0;
        for task in self.list {
            let why = match tokio::time::timeout_at(deadline, task.handle).await {
                Ok(Ok(Ended::Stopped)) => continue,
                Ok(Ok(Ended::Broke(why))) => why.to_string(),
                Ok(Err(e)) if e.is_panic() => "panicked".to_string(),
                Ok(Err(e)) if e.is_cancelled() => "cancelled".to_string(),
                Ok(Err(e)) => format!("join-error({e})"),
                Err(_) => "did-not-finish".to_string(),
            };
            lost += 1;
            println!("exit lost task={} why={why}", task.name);
        }
        if lost == 0 {
            println!("exit ok tasks={total}");
        }
        lost == 0
    }
}

/// Runs `work` until it ends or `stop` is cancelled; a `Broke` seen after
/// the stop request is the peer stopping first, so it counts as stopped.
async fn stoppable(stop: &CancellationToken, work: impl Future<Output = Ended>) -> Ended {
    let ended = tokio::select! {
        _ = stop.cancelled() => Ended::Stopped,
        ended = work => ended,
    };
    match ended {
        Ended::Broke(_) if stop.is_cancelled() => Ended::Stopped,
        ended => ended,
    }
}

fn spawn_shape(shape: Shape, tasks: &mut Tasks) -> std::io::Result<()> {
    match shape {
        Shape::SelfWake => {
            tasks.spawn("spinner", Spawn::Named, harm_self_wake_task)?;
            tasks.spawn("parked", Spawn::Traced, harm_self_wake_parked_task)?;
            tasks.spawn("spinner-plain", Spawn::Plain, harm_self_wake_task)?;
        }
        Shape::NotifyOther => {
            let targets = [Arc::new(Notify::new()), Arc::new(Notify::new())];
            let (first, second) = (Arc::clone(&targets[0]), Arc::clone(&targets[1]));
            // The waiters first: tokio's current-thread dump traces idle
            // tasks in about spawn order, and a wake harms it when it hits
            // a task traced before.
            tasks
                .spawn("waiter", Spawn::Traced, move |stop, count| harm_notify_other_waiter_task(stop, count, first))?;
            tasks.spawn("waiter-plain", Spawn::Plain, move |stop, count| {
                harm_notify_other_waiter_task(stop, count, second)
            })?;
            // Captured safely, it notifies from inside its own poll.
            let also = targets.clone();
            tasks.spawn("notifier", Spawn::Named, move |stop, count| harm_notify_other_task(stop, count, also))?;
            // Left to tokio's dump, which polls it with the scheduler held
            // (and the safe capture does not wake it first).
            tasks.spawn("notifier-plain", Spawn::Plain, move |stop, count| {
                harm_notify_other_task(stop, count, targets)
            })?;
        }
        Shape::FuturesPingpong => {
            let (ping_tx, ping_rx) = futures::channel::mpsc::channel(1);
            let (pong_tx, pong_rx) = futures::channel::mpsc::channel(1);
            tasks.spawn("ping", Spawn::Named, move |stop, count| {
                harm_futures_pingpong_ping_task(stop, count, ping_tx, pong_rx)
            })?;
            tasks.spawn("pong-plain", Spawn::Plain, move |stop, count| {
                harm_futures_pingpong_pong_task(stop, count, ping_rx, pong_tx)
            })?;
        }
        Shape::FlumePipeline => {
            let (raw_tx, raw_rx) = flume::bounded(16);
            let (done_tx, done_rx) = flume::bounded(16);
            tasks.spawn("producer", Spawn::Named, move |stop, count| {
                harm_flume_pipeline_producer_task(stop, count, raw_tx)
            })?;
            tasks.spawn("stage", Spawn::Traced, move |stop, count| {
                harm_flume_pipeline_stage_task(stop, count, raw_rx, done_tx)
            })?;
            tasks.spawn("consumer-plain", Spawn::Plain, move |stop, count| {
                harm_flume_pipeline_consumer_task(stop, count, done_rx)
            })?;
        }
        Shape::AsyncChannelPipeline => {
            let (raw_tx, raw_rx) = async_channel::bounded(16);
            let (done_tx, done_rx) = async_channel::bounded(16);
            tasks.spawn("producer", Spawn::Named, move |stop, count| {
                harm_async_channel_pipeline_producer_task(stop, count, raw_tx)
            })?;
            tasks.spawn("stage", Spawn::Traced, move |stop, count| {
                harm_async_channel_pipeline_stage_task(stop, count, raw_rx, done_tx)
            })?;
            tasks.spawn("consumer-plain", Spawn::Plain, move |stop, count| {
                harm_async_channel_pipeline_consumer_task(stop, count, done_rx)
            })?;
        }
        Shape::MpscPingpong => {
            let (ping_tx, ping_rx) = tokio::sync::mpsc::channel(1);
            let (pong_tx, pong_rx) = tokio::sync::mpsc::channel(1);
            tasks.spawn("ping", Spawn::Named, move |stop, count| {
                harm_mpsc_pingpong_ping_task(stop, count, ping_tx, pong_rx)
            })?;
            tasks.spawn("pong-plain", Spawn::Plain, move |stop, count| {
                harm_mpsc_pingpong_pong_task(stop, count, ping_rx, pong_tx)
            })?;
        }
        Shape::UnorderedSleeps => {
            tasks.spawn("sleeps", Spawn::Named, harm_unordered_sleeps_task)?;
            tasks.spawn("sleeps-plain", Spawn::Plain, harm_unordered_sleeps_task)?;
        }
    }
    Ok(())
}
