//! # blocker: a task blocks the runtime's only worker
//!
//! Not a leak but the case an inspector has to survive: a task calls a blocking
//! function (`std::thread::sleep` standing in for a synchronous lock, file read
//! or DNS lookup) on a worker thread. This runtime has one worker, so after
//! `--after` (500ms) nothing else runs for `--for` (30s): the `count_ticks`
//! task, woken every 100ms by a plain thread, stays scheduled but is never
//! polled; the runtime's timers stop firing (the worker also drives them); and
//! a task dump, which needs every worker to come back to the scheduler, cannot
//! be taken.
//!
//! The agent serves from a thread of its own, so it keeps answering:
//! `taskscope stack <pid>` reports that the dump timed out (rather than hanging)
//! and still prints the lifecycle data, with `block_worker`'s task *running* for
//! as long as it has been blocking and `count_ticks` *scheduled*.
//!
//! The fix (`--fixed`): the blocking call goes to `spawn_blocking`, so it runs
//! on tokio's blocking pool and the worker stays free.
//!
//! ```text
//! cargo run -p taskscope-examples --bin blocker -- --for 60s
//! taskscope stack <pid>            # dump timed out; block_worker running
//! ```
//!
//! Flags: `--after DUR` (default 500ms), `--for DUR` (default 30s), `--fixed`,
//! `--exit-after DUR`. While the worker is blocked the runtime's timers do not
//! fire, so `--exit-after` takes effect at the earliest when the block ends.

use std::time::Duration;

use clap::Parser;
use taskscope_examples::{parse_duration, Common};
use tokio::sync::mpsc;

/// A program whose only worker thread gets blocked.
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

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    taskscope_agent::init();
    let args = Args::parse();
    let pid = std::process::id();
    let (after, block_for) = (
        humantime::format_duration(args.after),
        humantime::format_duration(args.block_for),
    );
    if args.common.fixed {
        println!("blocker: pid {pid}, fixed: the {block_for} blocking call after {after} runs on the blocking pool");
    } else {
        println!(
            "blocker: pid {pid}, blocking the runtime's only worker for {block_for} after {after} \
             (run with --fixed for the fix)"
        );
    }

    let (ticks, inbox) = mpsc::channel(1);
    std::thread::spawn(move || tick_every_100ms(ticks));
    tokio::spawn(count_ticks(inbox));
    tokio::spawn(block_later(args.after, args.block_for, args.common.fixed));
    // No SIGINT/SIGTERM handler here, unlike the other examples: the handler
    // would wait for the blocked runtime, and the program could not be stopped.
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

/// Receives the ticks: woken every 100ms, so *scheduled* while the worker is
/// blocked, since nobody can poll it.
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
