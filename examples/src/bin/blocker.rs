//! # blocker: a task blocks a worker thread
//!
//! Not a leak but the case an inspector has to survive: a task calls a blocking
//! function (`std::thread::sleep` standing in for a synchronous lock, file read
//! or DNS lookup) on a worker thread. After `--after` (500ms) `block_worker`
//! holds one of the runtime's two workers for `--for` (30s). The other worker
//! carries on: `count_ticks`, woken every 100ms by a plain thread, still runs,
//! and so do the timers. What is lost is everything that needs *every* worker
//! to come back to the scheduler: tokio's own task dump (off by default on
//! tokio 1.54; with `TASKSCOPE_TOKIO_DUMPS=1` it times out) and the runtime's
//! shutdown, which waits for the blocked worker.
//!
//! The agent serves from a thread of its own, so it keeps answering, and its
//! safe capture needs no worker but the task's own: `taskscope stack <pid>
//! --timeout 1s` shows `block_worker`'s task *running*, polling for as long as
//! it has been blocking, with no stack (a task inside a poll cannot be asked
//! for one; `not polled within 1s`), and `count_ticks` idle between ticks
//! with its stack `captured safely` on the free worker. Both tasks are spawned
//! with `taskscope_agent::spawn`.
//!
//! The fix (`--fixed`): the blocking call goes to `spawn_blocking`, so it runs
//! on tokio's blocking pool and the worker stays free.
//!
//! ```text
//! cargo run -p taskscope-examples --bin blocker -- --for 60s
//! taskscope stack <pid> --timeout 1s   # block_worker running, count_ticks captured
//! ```
//!
//! Flags: `--after DUR` (default 500ms), `--for DUR` (default 30s), `--fixed`,
//! `--exit-after DUR`. The runtime cannot shut down while a worker is
//! blocked, so the program ends, after `--exit-after`, at the earliest when
//! the block ends.

use std::time::Duration;

use clap::Parser;
use taskscope_examples::{parse_duration, Common};
use tokio::sync::mpsc;

/// A program one of whose worker threads gets blocked.
#[derive(Debug, Parser)]
#[command(name = "blocker")]
struct Args {
    /// How long to run normally before blocking.
    #[arg(long, value_name = "DUR", default_value = "500ms", value_parser = parse_duration)]
    after: Duration,

    /// How long to block the worker.
    #[arg(long = "for", value_name = "DUR", default_value = "30s", value_parser = parse_duration)]
    block_for: Duration,

    #[command(flatten)]
    common: Common,
}

// Two workers on any machine (`#[tokio::main]` would start one per CPU, so
// only one on a single-CPU machine): one to block, one that carries on.
#[tokio::main(worker_threads = 2)]
async fn main() {
    taskscope_agent::init();
    let args = Args::parse();
    let pid = std::process::id();
    let (after, block_for) = (humantime::format_duration(args.after), humantime::format_duration(args.block_for));
    if args.common.fixed {
        println!("blocker: pid {pid}, fixed: the {block_for} blocking call after {after} runs on the blocking pool");
    } else {
        println!(
            "blocker: pid {pid}, blocking one of the runtime's two workers for {block_for} after {after} \
             (run with --fixed for the fix)"
        );
    }

    let (ticks, inbox) = mpsc::channel(1);
    std::thread::spawn(move || tick_every_100ms(ticks));
    taskscope_agent::spawn(count_ticks(inbox));
    taskscope_agent::spawn(block_later(args.after, args.block_for, args.common.fixed));
    // No SIGINT/SIGTERM handler here, unlike the other examples: returning
    // from `main` shuts the runtime down, which waits for the blocked worker,
    // so with a handler Ctrl-C would not stop the program until the block ends.
    match args.common.exit_after {
        Some(after) => tokio::time::sleep(after).await,
        None => std::future::pending().await,
    }
}

/// A plain thread, outside the runtime, that sends a tick every 100ms: it
/// keeps waking `count_ticks`, whether or not the runtime can run it.
fn tick_every_100ms(ticks: mpsc::Sender<()>) {
    loop {
        std::thread::sleep(Duration::from_millis(100));
        match ticks.try_send(()) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(())) => {}
            Err(mpsc::error::TrySendError::Closed(())) => return,
        }
    }
}

/// Receives the ticks: woken every 100ms and polled by whichever worker is
/// free, so it keeps running while the other worker is blocked.
async fn count_ticks(mut inbox: mpsc::Receiver<()>) {
    let mut ticks = 0u64;
    while inbox.recv().await.is_some() {
        ticks += 1;
    }
    let _ = ticks;
}

/// Waits `after`, then makes the blocking call.
async fn block_later(after: Duration, block_for: Duration, fixed: bool) {
    tokio::time::sleep(after).await;
    if fixed {
        let _ = tokio::task::spawn_blocking(move || blocking_call(block_for)).await;
    } else {
        block_worker(block_for).await;
    }
}

/// The bug: a blocking call straight on the worker thread.
async fn block_worker(block_for: Duration) {
    blocking_call(block_for);
}

/// A synchronous call that takes `block_for`.
fn blocking_call(block_for: Duration) {
    println!("blocker: blocking call started");
    std::thread::sleep(block_for);
    println!("blocker: blocking call ended");
}
