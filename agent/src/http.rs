//! The opt-in HTTP endpoint for fleets (`TASKSCOPE_HTTP`): task metrics
//! for Prometheus on `/metrics` ([`metrics`]) and the task profile for
//! pprof tools on `/debug/pprof/tasks` and `/debug/pprof/goroutine`
//! ([`profile`]).
//!
//! Why HTTP beside the gRPC socket: a fleet's scrapers and profilers
//! (Prometheus, Pyroscope, Grafana Alloy, Parca) speak HTTP and already
//! look for `/metrics` and `/debug/pprof/*`; they will not speak
//! `taskscope.v1`. It is opt-in and loopback-only unless
//! `TASKSCOPE_HTTP_ANY=1`, by the rule `TASKSCOPE_TCP` follows (see
//! [`crate::config`]): spawn locations, names and stacks say much about a
//! program.
//!
//! Served by a small hyper server on the agent's own thread and runtime, as
//! the gRPC service is. Answering touches no runtime of the program: the
//! metrics come from the state owner's scan of the task table, the profile
//! from the dump the `Dump` RPC takes, bounded by its timeout. So both
//! answer while the program's runtimes are saturated or wedged.
//!
//! Bounded, since anyone on the loopback may connect:
//! - at most [`MAX_CONNECTIONS`] connections; past that a short `503` and close;
//! - a request head within [`HEAD_TIMEOUT`] and [`MAX_HEAD`] bytes; bodies are
//!   never read;
//! - a client that stops reading for [`STALL_TIMEOUT`] is dropped ([`io`]),
//!   and every connection is closed, between requests, after [`LIFETIME`];
//! - requests for the same answer that arrive together share one rendering
//!   and one body ([`shared`]), so a hundred scrapes at once cost one scan.
//!
//! A bind failure is one line on stderr; the program runs on. Errors of
//! single connections (a client that hung up, a timeout) are not logged:
//! a client must not be able to fill the program's stderr.

mod io;
mod metrics;
mod profile;
mod routes;
mod shared;
pub(crate) mod stats;
#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::StatusCode;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::state::StateHandle;
use crate::Config;

/// Connections served at once.
pub(crate) const MAX_CONNECTIONS: usize = 64;
/// Connections past [`MAX_CONNECTIONS`] being answered `503` at once; past
/// these, a connection is closed unanswered.
const MAX_REFUSING: usize = 64;
/// How long a request head may take to arrive (also between requests).
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head, in bytes (hyper's smallest read buffer).
const MAX_HEAD: usize = 8 * 1024;
/// How long a write may wait for a client that does not read.
const STALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection is kept; then it is closed between two requests.
const LIFETIME: Duration = Duration::from_secs(60);
/// How long a request in progress at [`LIFETIME`] may take to finish.
const GRACE: Duration = Duration::from_secs(30);

/// Why a request got no answer, as its status and one line.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub status: StatusCode,
    pub message: String,
}

impl Failure {
    fn unavailable(message: impl Into<String>) -> Failure {
        Failure { status: StatusCode::SERVICE_UNAVAILABLE, message: message.into() }
    }

    fn internal(message: impl Into<String>) -> Failure {
        Failure { status: StatusCode::INTERNAL_SERVER_ERROR, message: message.into() }
    }
}

/// A body and its content type.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub body: Bytes,
    pub content_type: &'static str,
    /// The body is gzipped (`Content-Encoding: gzip`).
    pub gzipped: bool,
}

/// Serves the endpoint on `addr` until the agent's runtime stops. Run it on
/// the agent's runtime.
pub(crate) async fn serve(addr: SocketAddr, config: Arc<Config>, state: StateHandle) {
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => return log(&format!("cannot serve HTTP (metrics, profile) on {addr}: {e}")),
    };
    serve_on(listener, Arc::new(routes::App::new(config, state)), MAX_CONNECTIONS).await;
}

/// [`serve`] on a bound listener, with the connection cap given (tests use a small one).
async fn serve_on(listener: TcpListener, app: Arc<routes::App>, max: usize) {
    let serving = Arc::new(Semaphore::new(max));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                accept_failed(&e).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        if let Ok(permit) = Arc::clone(&serving).try_acquire_owned() {
            tokio::spawn(connection(stream, Arc::clone(&app), permit));
        } else if let Ok(permit) = Arc::clone(&refusing).try_acquire_owned() {
            tokio::spawn(refuse(stream, permit));
        }
        // Else `stream` is dropped: closed unanswered.
    }
}

/// One client's connection, for its lifetime.
async fn connection(stream: TcpStream, app: Arc<routes::App>, _permit: OwnedSemaphorePermit) {
    let service = service_fn(move |request| {
        let app = Arc::clone(&app);
        async move { Ok::<_, Infallible>(app.answer(request).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .serve_connection(TokioIo::new(io::Stalling::new(stream, STALL_TIMEOUT)), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = tokio::time::sleep(LIFETIME) => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(GRACE, conn).await;
}

/// The answer past the connection cap: `503` with `Retry-After`, then close.
/// The request is read (a little) after the answer, so that closing with it
/// unread does not reset the connection before the client sees the status.
async fn refuse(mut stream: TcpStream, _permit: OwnedSemaphorePermit) {
    const BODY: &str = "too many connections to the taskscope agent; retry in a second\n";
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let answer = async {
        stream.write_all(head.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), answer).await;
}

async fn accept_failed(e: &std::io::Error) {
    static LOGGED: AtomicBool = AtomicBool::new(false);
    if !LOGGED.swap(true, Ordering::Relaxed) {
        log(&format!("cannot accept an HTTP connection (will keep trying): {e}"));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
}

fn log(e: &dyn std::fmt::Display) {
    eprintln!("taskscope-agent: {e}");
}
