//! # console_leaks: a service that runs tokio-console's agent, not taskscope's
//!
//! Many tokio services already call `console_subscriber::init()` so that
//! `tokio-console` can watch them. This one does exactly that and nothing of
//! taskscope's, to show that `taskscope stack 127.0.0.1:6669` and
//! `taskscope attach 127.0.0.1:6669` inspect it as it is, through
//! console-subscriber's own protocol. Its tasks:
//!
//! 1. `forget`: `--forgotten N` tasks (3) await `std::future::pending()`,
//!    Go's receive on a nil channel: no waker was kept anywhere, so nothing
//!    can wake them. taskscope calls them **leaked** (idle, no live waker).
//! 2. `wait_for_jobs`: `--waiters N` tasks (5), named `job waiter`, each
//!    awaiting a oneshot whose sender `main` keeps and never uses. They are
//!    stuck for good too, but their channel holds their waker: taskscope
//!    reports them **parked**, their parked time growing, not leaked.
//!    `--grow-every DUR` adds one more such waiter each DUR, a group that grows.
//! 3. `tick`: a healthy ticker, every 100 ms.
//! 4. `hand_off`: a task that spawns a long sleeper and returns at once, the
//!    shape of tokio-rs/console#380 (a parent once shown as having lost its
//!    waker while its child ran). On this tokio the parent is simply done.
//!
//! The fix (`--fixed`): the waiters get their values and end, and the
//! forgotten tasks await a shutdown signal that `main` sends when it exits,
//! so no task is leaked.
//!
//! console-subscriber listens on `TOKIO_CONSOLE_BIND` (127.0.0.1:6669 by
//! default), or on `--bind HOST:PORT`, or on a Unix socket with `--unix PATH`.
//!
//! ```text
//! cargo run -p taskscope-examples --bin console_leaks
//! taskscope stack 127.0.0.1:6669     # forget leaked, the job waiters parked
//! tokio-console                      # the same program, in tokio-console
//! ```
//!
//! Flags: `--fixed`, `--exit-after DUR`, `--bind`, `--unix`, `--forgotten`,
//! `--waiters`, `--grow-every`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use taskscope_examples::{parse_duration, run_until_stopped, Common};
use tokio::sync::{oneshot, watch};

/// A service with console-subscriber, leaking tasks two ways.
#[derive(Debug, Parser)]
#[command(name = "console_leaks")]
struct Args {
    #[command(flatten)]
    common: Common,

    /// Where console-subscriber listens (default: TOKIO_CONSOLE_BIND, else 127.0.0.1:6669).
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "unix")]
    bind: Option<SocketAddr>,

    /// Serve console-subscriber on this Unix socket instead of TCP.
    #[arg(long, value_name = "PATH")]
    unix: Option<PathBuf>,

    /// Tasks left on `std::future::pending()`.
    #[arg(long, value_name = "N", default_value_t = 3)]
    forgotten: usize,

    /// Tasks left on a oneshot whose sender is kept.
    #[arg(long, value_name = "N", default_value_t = 5)]
    waiters: usize,

    /// Add one more waiter every DUR.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    grow_every: Option<Duration>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let listens = match (&args.bind, &args.unix) {
        (Some(addr), _) => {
            console_subscriber::ConsoleLayer::builder().with_default_env().server_addr(*addr).init();
            addr.to_string()
        }
        (None, Some(path)) => {
            console_subscriber::ConsoleLayer::builder().with_default_env().server_addr(path.clone()).init();
            path.display().to_string()
        }
        (None, None) => {
            // The one line a program that embeds it has.
            console_subscriber::init();
            std::env::var("TOKIO_CONSOLE_BIND").unwrap_or_else(|_| "127.0.0.1:6669".to_string())
        }
    };
    let fixed = args.common.fixed;
    let (shutdown, stopping) = watch::channel(false);
    forget(args.forgotten, fixed, &stopping);
    let senders = wait_for_jobs(args.waiters);
    if fixed {
        for (i, tx) in senders.into_iter().enumerate() {
            let _ = tx.send(i as u64);
        }
    } else {
        // Kept, never used: the waiters stay parked.
        std::mem::forget(senders);
    }
    if let Some(every) = args.grow_every {
        tokio::spawn(grow(every));
    }
    tokio::spawn(tick());
    tokio::spawn(hand_off());
    // Once every task is spawned, so that a reader of this line sees them all.
    let pid = std::process::id();
    if fixed {
        println!("console_leaks: pid {pid}, console-subscriber on {listens}, fixed: every task ends or can be woken");
    } else {
        println!(
            "console_leaks: pid {pid}, console-subscriber on {listens}, {} tasks on pending(), {} on a kept \
             oneshot (run with --fixed for the fix)",
            args.forgotten, args.waiters
        );
    }
    run_until_stopped(args.common.exit_after).await;
    let _ = shutdown.send(true);
}

/// The leak: tasks that await nothing that can ever wake them. Fixed: they
/// await the shutdown signal instead.
fn forget(n: usize, fixed: bool, stopping: &watch::Receiver<bool>) {
    for _ in 0..n {
        if fixed {
            let mut stopping = stopping.clone();
            tokio::spawn(async move {
                let _ = stopping.wait_for(|&stop| stop).await;
            });
        } else {
            tokio::spawn(std::future::pending::<()>());
        }
    }
}

/// Tasks waiting for a job result that never comes; the caller keeps the senders.
fn wait_for_jobs(n: usize) -> Vec<oneshot::Sender<u64>> {
    (0..n).filter_map(|_| spawn_waiter()).collect()
}

fn spawn_waiter() -> Option<oneshot::Sender<u64>> {
    let (tx, rx) = oneshot::channel::<u64>();
    let spawned = tokio::task::Builder::new().name("job waiter").spawn(async move {
        let _ = rx.await;
    });
    match spawned {
        Ok(_) => Some(tx),
        Err(e) => {
            eprintln!("console_leaks: spawn a waiter: {e}");
            None
        }
    }
}

/// One more waiter every `every`, its sender kept here: a growing group.
async fn grow(every: Duration) {
    let mut kept = Vec::new();
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        kept.extend(spawn_waiter());
    }
}

/// A healthy task: a ticker.
async fn tick() {
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    loop {
        ticks.tick().await;
    }
}

/// Spawns a long sleeper and returns at once, dropping its JoinHandle.
async fn hand_off() {
    tokio::spawn(tokio::time::sleep(Duration::from_secs(3600)));
}
