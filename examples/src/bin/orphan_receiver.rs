//! # orphan_receiver: a receiver nobody sends to, and a wait on nothing
//!
//! The "channel without a sender" goroutines of the PouchContainer report, in
//! tokio:
//!
//! 1. `job_worker` receives on an mpsc channel. The program keeps the sender
//!    alive but never sends: the worker is parked for good. taskscope reports it
//!    **parked**, with a parked time that only grows: the channel holds its
//!    waker, and a send (or dropping the sender) would still wake it.
//! 2. `wait_for_value` awaits `std::future::pending()`, tokio's version of Go's
//!    receive on a nil channel (`var ch chan int; <-ch`). No waker was kept
//!    anywhere, so nothing can ever wake it: taskscope reports it **leaked**.
//!
//! The fix (`--fixed`): the sender is dropped once the jobs are queued, so the
//!    worker's `recv()` returns `None` and it ends; and `wait_for_value` is given
//!    a real channel that gets its value (Go: `make` the channel), so no task is
//!    left waiting.
//!
//! ```text
//! cargo run -p taskscope-examples --bin orphan_receiver
//! taskscope stack <pid>            # job_worker parked, wait_for_value leaked
//! ```
//!
//! Both tasks are spawned with `taskscope_agent::spawn`, so `taskscope stack`
//! asks each for its stack safely, on this default multi-thread runtime.
//! `job_worker`'s comes back (`captured safely`: `orphan_receiver::job_worker`
//! awaiting the channel's `recv`); `wait_for_value`'s comes back empty and
//! `stack` says why: `pending()` is nothing a task dump can trace. Its spawn
//! location and the *leaked* verdict still point at it.
//!
//! Flags: `--fixed`, `--exit-after DUR`.

use std::future::Future;
use std::time::Duration;

use clap::Parser;
use taskscope_examples::{run_until_stopped, Common};
use tokio::sync::{mpsc, oneshot};

/// A worker with no producer, and a task waiting on nothing.
#[derive(Debug, Parser)]
#[command(name = "orphan_receiver")]
struct Args {
    #[command(flatten)]
    common: Common,
}

/// Work for `job_worker`.
#[derive(Debug)]
struct Job(u64);

#[tokio::main]
async fn main() {
    taskscope_agent::init();
    let args = Args::parse();
    let pid = std::process::id();
    if args.common.fixed {
        println!("orphan_receiver: pid {pid}, fixed: the sender is dropped and the value is sent, so both tasks end");
    } else {
        println!(
            "orphan_receiver: pid {pid}, leaking a receiver whose sender is never used and a task on pending() \
             (run with --fixed for the fix)"
        );
    }

    // Kept until the program stops: in the leaking version, never used.
    let _unused_sender = start(args.common.fixed).await;

    // Like the report's `logGoNum()`: how many tasks are left once things settle.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let alive = tokio::runtime::Handle::current().metrics().num_alive_tasks();
    println!("orphan_receiver: {alive} tasks alive");

    run_until_stopped(args.common.exit_after).await;
}

/// Spawns the worker and the value's waiter. Leaking: returns the job
/// sender, which the caller keeps and never uses, so the worker waits
/// forever, and the waiter waits on `pending()`. Fixed: sends one job and
/// drops the sender, and sends the value, so both tasks end.
async fn start(fixed: bool) -> Option<mpsc::Sender<Job>> {
    let (jobs, queue) = mpsc::channel::<Job>(8);
    taskscope_agent::spawn(job_worker(queue));
    if fixed {
        let _ = jobs.send(Job(1)).await;
        // Dropping the last sender ends the worker's `recv()` loop.
        drop(jobs);
        let (value_tx, value_rx) = oneshot::channel::<u64>();
        taskscope_agent::spawn(wait_for_value(async move { value_rx.await.unwrap_or(0) }));
        let _ = value_tx.send(42);
        None
    } else {
        taskscope_agent::spawn(wait_for_value(std::future::pending::<u64>()));
        Some(jobs)
    }
}

/// Handles jobs until every sender is gone.
async fn job_worker(mut queue: mpsc::Receiver<Job>) {
    while let Some(Job(id)) = queue.recv().await {
        println!("orphan_receiver: job {id} done");
    }
}

/// Waits for one value. Given `pending()`, it waits forever, and nothing could
/// ever wake it.
async fn wait_for_value(value: impl Future<Output = u64>) {
    let value = value.await;
    println!("orphan_receiver: got value {value}");
}

/// The leak caught in a unit test, as a project would catch it: the guard
/// fails the leaking version with the tasks it left, and passes the fix.
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use taskscope_agent::guard::Guard;

    #[tokio::test]
    async fn the_guard_catches_the_orphaned_worker_and_the_waiter() {
        let guard = Guard::new().retry_for(Duration::from_millis(200));
        let _kept = super::start(false).await;
        let leaks = guard.check().await.expect_err("both tasks are left");
        let report = leaks.to_string();
        assert_eq!(leaks.count(), 2, "{report}");
        assert!(report.contains("(1 leaked: nothing can wake it)"), "{report}");
        let worker = report
            .split("\n\n")
            .find(|g| g.starts_with("1 task [idle, mpsc receive] parked"))
            .unwrap_or_else(|| panic!("{report}"));
        assert!(worker.contains("spawned at examples/src/bin/orphan_receiver.rs:"), "{report}");
        assert!(worker.contains("orphan_receiver::job_worker"), "the worker's stack: {report}");
        assert!(report.contains("1 task [idle, leaked] parked"), "{report}");
    }

    #[taskscope_agent::test]
    async fn the_fixed_version_leaves_nothing() {
        assert!(super::start(true).await.is_none());
    }
}
