//! # service: a small server whose healthy waits hide three leaks
//!
//! Most parked tasks of a real server are healthy: connection handlers
//! waiting for their clients, an accept loop, a ticker, a housekeeping loop
//! between two sleeps. Age does not tell them from a leak; what they wait on
//! does. This program has both kinds, each spawned with
//! `taskscope_agent::spawn` so `taskscope stack` captures its stack safely:
//!
//! Healthy (never suspects):
//! - the accept loop (`accept_loop`);
//! - `--clients` (30) idle connection handlers, each in a `select!` of a
//!   socket read and a shutdown broadcast (`handle_connection`); the
//!   program itself connects the clients, which then send nothing;
//! - an interval ticker (`metrics_ticker`) and a `sleep`-based housekeeping
//!   loop (`housekeeping`).
//!
//! Leaks (the suspects):
//! - 20 producers blocked on a full mpsc channel nobody drains
//!   (`send_report`: **mpsc send (channel full)**);
//! - 10 tasks waiting on a oneshot whose sender the program keeps and never
//!   uses (`await_reply`: **oneshot receive**);
//! - 5 tasks on `std::future::pending()` (`wait_forever`): nothing can wake
//!   them, so the full mode calls them **leaked**.
//!
//! ```text
//! cargo run -p taskscope-examples --bin service
//! taskscope stack <pid>         # the leaks first, each with what it waits on
//! ```
//!
//! Flags: `--clients N`, `--exit-after DUR`.

use std::time::Duration;

use clap::Parser;
use taskscope_examples::{run_until_stopped, Common};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, oneshot};

/// A server with healthy waits and three leaks.
#[derive(Debug, Parser)]
#[command(name = "service")]
struct Args {
    #[command(flatten)]
    common: Common,
    /// Idle clients to connect (each gets a connection handler).
    #[arg(long, default_value_t = 30)]
    clients: usize,
}

#[tokio::main]
async fn main() {
    // The full mode: it sees wakers, so it can call the pending() tasks leaked.
    taskscope_agent::init();
    let args = Args::parse();
    let listener = match TcpListener::bind("127.0.0.1:0").await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("service: cannot listen on 127.0.0.1: {e}");
            std::process::exit(1);
        }
    };
    let address = match listener.local_addr() {
        Ok(address) => address,
        Err(e) => {
            eprintln!("service: no local address: {e}");
            std::process::exit(1);
        }
    };
    let (shutdown, _) = broadcast::channel::<()>(1);
    let handlers = shutdown.clone();
    taskscope_agent::spawn(accept_loop(listener, handlers));
    taskscope_agent::spawn(metrics_ticker());
    taskscope_agent::spawn(housekeeping());

    // The clients: connected, then silent, and kept open.
    let mut clients = Vec::new();
    for _ in 0..args.clients {
        match TcpStream::connect(address).await {
            Ok(stream) => clients.push(stream),
            Err(e) => eprintln!("service: a client cannot connect: {e}"),
        }
    }

    let kept = leak();
    println!(
        "service: pid {}, {} idle connections on {address}, leaking 20 producers on a full channel, \
         10 waiters on a oneshot and 5 tasks on pending()",
        std::process::id(),
        clients.len()
    );
    run_until_stopped(args.common.exit_after).await;
    let _ = shutdown.send(());
    drop((kept, clients));
}

/// Accepts connections and hands each to its handler.
async fn accept_loop(listener: TcpListener, shutdown: broadcast::Sender<()>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                taskscope_agent::spawn(handle_connection(stream, shutdown.subscribe()));
            }
            Err(e) => {
                eprintln!("service: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Serves one client until it hangs up or the server shuts down.
async fn handle_connection(mut stream: TcpStream, mut shutdown: broadcast::Receiver<()>) {
    let mut buf = [0u8; 512];
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            _ = shutdown.recv() => return,
        }
    }
}

/// Publishes metrics every few seconds.
async fn metrics_ticker() {
    let mut ticker = tokio::time::interval(Duration::from_secs(5));
    loop {
        ticker.tick().await;
    }
}

/// Cleans up now and then.
async fn housekeeping() {
    loop {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

/// What the leaks need kept alive: the full channel's receiver and the
/// oneshot senders, neither of which is ever used.
struct Kept {
    _reports: mpsc::Receiver<u64>,
    _replies: Vec<oneshot::Sender<u64>>,
}

/// Starts the three leaks.
fn leak() -> Kept {
    let (reports, receiver) = mpsc::channel::<u64>(1);
    // Full from the start: every producer waits for room.
    let _ = reports.try_send(0);
    for i in 0..20 {
        taskscope_agent::spawn(send_report(reports.clone(), i));
    }
    let mut replies = Vec::new();
    for _ in 0..10 {
        let (tx, rx) = oneshot::channel();
        replies.push(tx);
        taskscope_agent::spawn(await_reply(rx));
    }
    for _ in 0..5 {
        taskscope_agent::spawn(wait_forever());
    }
    Kept { _reports: receiver, _replies: replies }
}

/// Sends a report to a channel nobody drains: it waits for room for good.
async fn send_report(reports: mpsc::Sender<u64>, i: u64) {
    let _ = reports.send(i).await;
}

/// Waits for a reply whose sender is kept but never used.
async fn await_reply(reply: oneshot::Receiver<u64>) {
    let _ = reply.await;
}

/// Waits on nothing: nothing can wake it.
async fn wait_forever() {
    std::future::pending::<()>().await;
}
