//! # log_follow: an HTTP handler still following a log for a client that left
//!
//! The tokio version of PouchContainer's logs API leak ("PouchContainer
//! Goroutine Leak Detection Practices"). `GET /logs?follow=1` writes the log
//! lines so far, then waits for new ones and streams them until the container
//! stops. The client can hang up at any time (`curl -m 3` gives up after 3 s),
//! but the handler only finds out when a write fails with a broken pipe, and
//! that needs a new log line. A quiet container writes none, so every follower
//! that hung up leaves a handler task parked on the log channel, for good.
//!
//! ```text
//! cargo run -p taskscope-examples --bin log_follow -- --port 8080
//! curl -m 3 'http://127.0.0.1:8080/logs?follow=1'     # gives up after 3 s
//! taskscope stack <pid> --match "logs handler"        # the handler is still there
//! ```
//!
//! `taskscope stack` shows one idle task per departed client, named
//! `logs handler`, with its stack (`captured safely`): from
//! `handle_connection` into `follow_logs`, parked on `broadcast::Receiver::recv`.
//! Like Pouch's `logsContainer` goroutine it is *parked*, not leaked: the log's
//! sender is alive and could still wake it. The keyword check Pouch's
//! integration tests did on the goroutine dump is `--match` here.
//!
//! The handlers and the self-clients are spawned with the agent's
//! `taskscope_agent::task::Builder` and `taskscope_agent::spawn`, so their
//! stacks are captured safely on this default multi-thread runtime. The
//! accept loop is spawned with plain `tokio::spawn` on purpose, to show what
//! that costs: `taskscope stack` lists it all the same (state, parked time,
//! spawn location) but says `no stack captured: not wrapped`.
//!
//! The fix (`--fixed`) is Pouch's `CloseNotify` in tokio form: while following,
//! the handler also reads the client's socket, and returns when the read says
//! the client is gone (0 bytes or an error).
//!
//! Flags: `--port N` (0, the default, picks a free port; the start line prints
//! the address), `--self-clients N` (the program connects N followers itself that
//! hang up after 1 s, so the demo needs no curl), `--fixed`, `--exit-after DUR`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use taskscope_examples::{run_until_stopped, Common};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

/// A tiny HTTP/1.1 server with a log-follow endpoint.
#[derive(Debug, Parser)]
#[command(name = "log_follow")]
struct Args {
    /// TCP port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,

    /// Connect N followers from this program, each hanging up after 1 s.
    #[arg(long, value_name = "N", default_value_t = 0)]
    self_clients: usize,

    #[command(flatten)]
    common: Common,
}

/// The container's log: the lines so far, and where new lines would appear.
struct Log {
    lines: Vec<String>,
    /// Kept alive but never sent on: the container has gone quiet.
    new_lines: broadcast::Sender<String>,
}

/// Handlers currently running, for the progress line.
static HANDLERS: AtomicUsize = AtomicUsize::new(0);

#[tokio::main]
async fn main() {
    taskscope_agent::init();
    let args = Args::parse();
    let listener = match TcpListener::bind(("127.0.0.1", args.port)).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("log_follow: cannot listen on 127.0.0.1:{}: {e}", args.port);
            std::process::exit(1);
        }
    };
    let addr = listener.local_addr().expect("a bound listener has an address");
    let pid = std::process::id();
    if args.common.fixed {
        println!(
            "log_follow: pid {pid}, listening on http://{addr}, fixed: a handler returns when its client hangs up"
        );
    } else {
        println!(
            "log_follow: pid {pid}, listening on http://{addr}, leaking one handler task per client that hangs up \
             (run with --fixed for the fix)"
        );
    }

    let log = Arc::new(Log {
        lines: vec![
            "2024-04-14T10:00:00Z container 4f2a started".into(),
            "2024-04-14T10:00:01Z listening on :80".into(),
            "2024-04-14T10:00:02Z ready".into(),
        ],
        new_lines: broadcast::channel(16).0,
    });
    // Plain `tokio::spawn`, on purpose: an unwrapped task, listed by
    // `taskscope stack` with its state and spawn location but no stack ("not
    // wrapped"; tokio's own dump, which could trace it, is off by default).
    // Little is lost here: tokio does not trace `TcpListener::accept`, so
    // even wrapped, its stack would be empty.
    tokio::spawn(accept_loop(listener, log, args.common.fixed));
    if args.self_clients > 0 {
        taskscope_agent::spawn(self_clients(addr.to_string(), args.self_clients));
    }
    run_until_stopped(args.common.exit_after).await;
}

/// Accepts connections, one handler task per connection.
async fn accept_loop(listener: TcpListener, log: Arc<Log>, fixed: bool) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                eprintln!("log_follow: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let log = log.clone();
        let spawned =
            taskscope_agent::task::Builder::new().name("logs handler").spawn(handle_connection(stream, log, fixed));
        if let Err(e) = spawned {
            eprintln!("log_follow: spawn handler: {e}");
        }
    }
}

/// Serves one HTTP request: `GET /logs` (`?follow=1` to keep streaming).
async fn handle_connection(mut stream: TcpStream, log: Arc<Log>, fixed: bool) {
    HANDLERS.fetch_add(1, Ordering::Relaxed);
    let _running = scopeguard(|| {
        HANDLERS.fetch_sub(1, Ordering::Relaxed);
    });
    let Some(target) = read_request_target(&mut stream).await else {
        return;
    };
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    if path != "/logs" {
        let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
        return;
    }
    let follow = query.split('&').any(|kv| kv == "follow=1" || kv == "follow=true");

    // Subscribe before writing the old lines so that no new line falls between.
    let mut new_lines = log.new_lines.subscribe();
    let (mut reader, mut writer) = stream.split();
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n";
    if writer.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    for line in &log.lines {
        if writer.write_all(format!("{line}\n").as_bytes()).await.is_err() {
            return;
        }
    }
    if !follow {
        return;
    }
    if fixed {
        follow_logs_until_hangup(&mut reader, &mut writer, &mut new_lines).await;
    } else {
        follow_logs(&mut writer, &mut new_lines).await;
    }
}

/// Streams new log lines until a write fails. The leak: with no new line, no
/// write ever fails, so a client that hung up is never noticed.
async fn follow_logs(writer: &mut (impl AsyncWrite + Unpin), new_lines: &mut broadcast::Receiver<String>) {
    loop {
        match new_lines.recv().await {
            Ok(line) => {
                if writer.write_all(format!("{line}\n").as_bytes()).await.is_err() {
                    return; // write: broken pipe
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return, // the container stopped
        }
    }
}

/// The fix: stream new lines, and return as soon as the client hangs up.
async fn follow_logs_until_hangup(
    reader: &mut (impl AsyncRead + Unpin),
    writer: &mut (impl AsyncWrite + Unpin),
    new_lines: &mut broadcast::Receiver<String>,
) {
    let mut scratch = [0u8; 512];
    loop {
        tokio::select! {
            line = new_lines.recv() => match line {
                Ok(line) => {
                    if writer.write_all(format!("{line}\n").as_bytes()).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            read = reader.read(&mut scratch) => match read {
                Ok(0) | Err(_) => return, // the client hung up
                Ok(_) => continue,        // a client talking after its request: ignore it
            },
        }
    }
}

/// Reads the request head and returns its target (`/logs?follow=1`), or `None`
/// if the client sent no complete, well-formed GET request.
async fn read_request_target(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let mut request_line = head.lines().next()?.split_whitespace();
    match (request_line.next()?, request_line.next()?) {
        ("GET", target) => Some(target.to_string()),
        _ => None,
    }
}

/// Connects `n` followers that hang up after 1 s, like `curl -m 1`, then
/// reports how many handlers are still running.
async fn self_clients(addr: String, n: usize) {
    let clients: Vec<_> = (0..n).map(|_| taskscope_agent::spawn(impatient_follower(addr.clone()))).collect();
    for client in clients {
        let _ = client.await;
    }
    // Give the fixed handlers up to a second to see the hang-ups; the leaking
    // ones never will.
    for _ in 0..100 {
        if HANDLERS.load(Ordering::Relaxed) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let still = HANDLERS.load(Ordering::Relaxed);
    println!("log_follow: {n} clients hung up after 1s; {still} handlers still following");
}

/// One follower that gives up after 1 s.
async fn impatient_follower(addr: String) {
    let Ok(mut stream) = TcpStream::connect(&addr).await else {
        return;
    };
    let request = format!("GET /logs?follow=1 HTTP/1.1\r\nhost: {addr}\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return;
    }
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    // Dropping the stream hangs up.
}

/// Runs `f` when dropped.
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}

/// The leak caught in a unit test: a follower that hangs up leaves the
/// leaking handler behind (the guard's report names it and `follow_logs`),
/// while the fixed handler returns.
#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use taskscope_agent::guard::Guard;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::broadcast;

    /// One follower that reads the old lines and hangs up, against a
    /// handler spawned as `accept_loop` spawns it.
    async fn follow_and_hang_up(fixed: bool) -> Arc<super::Log> {
        let log = Arc::new(super::Log { lines: vec!["one".into()], new_lines: broadcast::channel(4).0 });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("listen");
        let mut client = TcpStream::connect(listener.local_addr().expect("addr")).await.expect("connect");
        let (stream, _) = listener.accept().await.expect("accept");
        taskscope_agent::task::Builder::new()
            .name("logs handler")
            .spawn(super::handle_connection(stream, log.clone(), fixed))
            .expect("spawned");
        client.write_all(b"GET /logs?follow=1 HTTP/1.1\r\n\r\n").await.expect("request");
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains("one\n") {
            let mut buf = [0; 256];
            let n = client.read(&mut buf).await.expect("response");
            assert!(n > 0, "the handler hung up first");
            seen.extend_from_slice(&buf[..n]);
        }
        drop(client);
        log
    }

    #[tokio::test]
    async fn the_guard_catches_the_handler_of_a_client_that_left() {
        let guard = Guard::new().retry_for(Duration::from_millis(300));
        let _log = follow_and_hang_up(false).await;
        let report = guard.check().await.expect_err("the handler is left").to_string();
        assert!(report.contains("1 task [idle, broadcast receive] parked"), "{report}");
        assert!(report.contains("  name: logs handler"), "{report}");
        assert!(report.contains("log_follow::follow_logs"), "{report}");
        assert!(report.contains("log_follow::handle_connection"), "{report}");
    }

    #[taskscope_agent::test(retry = "2s")]
    async fn the_fixed_handler_returns_when_its_client_leaves() {
        let _log = follow_and_hang_up(true).await;
    }
}
