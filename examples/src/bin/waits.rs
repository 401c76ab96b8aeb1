//! # waits: one task parked on each thing a tokio task can wait on
//!
//! A catalogue, not a leak: each task below is spawned with
//! `taskscope_agent::spawn` (so `taskscope stack` captures its stack safely)
//! and parks on one primitive, under a name that says which (`wait:mpsc
//! receive`, `wait:oneshot receive`, ...). The test of the wait-reason table
//! (`examples/tests/waits.rs`) runs it and checks that `taskscope stack
//! --json` gives each task the reason its name announces, so a tokio
//! upgrade that moves a frame fails a test instead of printing "unknown".
//!
//! ```text
//! cargo run -p taskscope-examples --bin waits
//! taskscope stack <pid> --all      # each task with its wait reason
//! ```
//!
//! Flags: `--exit-after DUR`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use taskscope_examples::{run_until_stopped, Common};
use tokio::io::AsyncReadExt;
use tokio::sync::{broadcast, mpsc, oneshot, watch, Barrier, Mutex, Notify, RwLock, Semaphore};
use tokio_util::sync::CancellationToken;

/// One task per wait.
#[derive(Debug, Parser)]
#[command(name = "waits")]
struct Args {
    #[command(flatten)]
    common: Common,
}

/// What the program keeps alive so that no task is released.
#[derive(Default)]
struct Kept {
    senders: Vec<Box<dyn std::any::Any + Send>>,
}

impl Kept {
    fn keep<T: Send + 'static>(&mut self, value: T) {
        self.senders.push(Box::new(value));
    }
}

/// Spawns `future` named `wait:<reason>`.
#[track_caller]
fn park<F>(reason: &str, future: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let name = format!("wait:{reason}");
    if let Err(e) = taskscope_agent::task::Builder::new().name(&name).spawn(future) {
        eprintln!("waits: cannot spawn {name}: {e}");
    }
}

#[tokio::main]
async fn main() {
    taskscope_agent::init();
    let args = Args::parse();
    println!("waits: pid {}, one task parked on each primitive", std::process::id());
    let kept = start().await;
    run_until_stopped(args.common.exit_after).await;
    drop(kept);
}

/// Spawns the catalogue; returns what must stay alive.
async fn start() -> Kept {
    let mut kept = Kept::default();

    let (tx, mut rx) = mpsc::channel::<u8>(1);
    park("mpsc receive", async move {
        let _ = rx.recv().await;
    });
    kept.keep(tx);

    let (tx, mut rx) = mpsc::unbounded_channel::<u8>();
    park("mpsc receive", async move {
        let _ = rx.recv().await;
    });
    kept.keep(tx);

    let (full, keep_rx) = mpsc::channel::<u8>(1);
    let _ = full.try_send(0);
    park("mpsc send (channel full)", async move {
        let _ = full.send(1).await;
    });
    kept.keep(keep_rx);

    let (tx, rx) = oneshot::channel::<u8>();
    park("oneshot receive", async move {
        let _ = rx.await;
    });
    kept.keep(tx);

    let (tx, mut rx) = broadcast::channel::<u8>(4);
    park("broadcast receive", async move {
        let _ = rx.recv().await;
    });
    kept.keep(tx);

    let (tx, mut rx) = watch::channel(0u8);
    park("watch changed", async move {
        let _ = rx.changed().await;
    });
    kept.keep(tx);

    let notify = Arc::new(Notify::new());
    let n = notify.clone();
    park("Notify", async move { n.notified().await });
    kept.keep(notify);

    let semaphore = Arc::new(Semaphore::new(0));
    let s = semaphore.clone();
    park("Semaphore acquire", async move {
        let _ = s.acquire().await;
    });
    kept.keep(semaphore);

    let mutex = Arc::new(Mutex::new(()));
    let held = mutex.clone().lock_owned().await;
    let m = mutex.clone();
    park("Mutex lock", async move {
        let _ = m.lock().await;
    });
    kept.keep(held);

    let rwlock = Arc::new(RwLock::new(()));
    let held = rwlock.clone().write_owned().await;
    let r = rwlock.clone();
    park("RwLock read", async move {
        let _ = r.read().await;
    });
    kept.keep(held);

    let rwlock = Arc::new(RwLock::new(()));
    let held = rwlock.clone().read_owned().await;
    let r = rwlock.clone();
    park("RwLock write", async move {
        let _ = r.write().await;
    });
    kept.keep(held);

    let barrier = Arc::new(Barrier::new(2));
    let b = barrier.clone();
    park("Barrier wait", async move {
        let _ = b.wait().await;
    });
    kept.keep(barrier);

    let token = CancellationToken::new();
    let t = token.clone();
    park("CancellationToken", async move { t.cancelled().await });
    kept.keep(token);

    let never = tokio::spawn(std::future::pending::<()>());
    park("JoinHandle", async move {
        let _ = never.await;
    });

    park("sleep", async move { tokio::time::sleep(Duration::from_secs(3600)).await });

    park("interval", async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(3600));
        loop {
            ticker.tick().await;
        }
    });

    match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        // Nobody connects: the accept loop waits on I/O readiness, which
        // tokio's trace does not reach (no leaf: "something a dump cannot
        // trace" in the full mode).
        Ok(listener) => park("accept", async move {
            let _ = listener.accept().await;
        }),
        Err(e) => eprintln!("waits: cannot listen: {e}"),
    }
    match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(listener) => {
            if let Ok(address) = listener.local_addr() {
                // A connection whose peer never writes: the reader parks on I/O.
                if let Ok(mut stream) = tokio::net::TcpStream::connect(address).await {
                    park("I/O read", async move {
                        let mut buf = [0u8; 16];
                        let _ = stream.read(&mut buf).await;
                    });
                }
                if let Ok((peer, _)) = listener.accept().await {
                    kept.keep(peer);
                }
            }
        }
        Err(e) => eprintln!("waits: cannot listen: {e}"),
    }

    park("signal", async move {
        let _ = tokio::signal::ctrl_c().await;
    });

    let (tx, rx) = oneshot::channel::<u8>();
    let (shutdown, mut stop) = broadcast::channel::<u8>(1);
    park("broadcast receive | oneshot receive", async move {
        tokio::select! {
            _ = rx => {}
            _ = stop.recv() => {}
        }
    });
    kept.keep(tx);
    kept.keep(shutdown);

    let (tx, mut rx) = mpsc::channel::<u8>(1);
    park("mpsc receive | sleep", async move {
        tokio::select! {
            _ = rx.recv() => {}
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    });
    kept.keep(tx);

    park("pending", std::future::pending::<()>());
    kept
}
