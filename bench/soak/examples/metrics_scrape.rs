//! One scrape of `/metrics` for 10,000 parked tasks in 100 spawn
//! locations: its size and the time the agent takes to answer it (the
//! figures README's "Many services" gives). The program embeds the agent
//! (full mode) with its HTTP endpoint on a free loopback port, parks
//! `--tasks` tasks (default 10,000) evenly over 100 spawn sites, then
//! scrapes itself `--scrapes` times (default 40), each 250 ms after the
//! last (the agent serves an answer again for 200 ms), with
//! `TASKSCOPE_METRICS_LOCATIONS` at 100 (every location named) and at its
//! default 50, and prints the sizes and the median and slowest answer.
//!
//! ```text
//! cargo run --release -p taskscope-soak --example metrics_scrape
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// Parks `$n` tasks spawned here: each invocation, on a line of its own, is
/// one spawn location (the site a macro is invoked at).
macro_rules! site {
    ($keep:expr, $n:expr) => {
        for _ in 0..$n {
            let (tx, rx) = oneshot::channel::<()>();
            $keep.push(tx);
            tokio::spawn(async move {
                let _ = rx.await;
            });
        }
    };
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One scrape: (answer bytes, body bytes, time to the last byte).
fn scrape(addr: SocketAddr, accept: &str) -> (usize, usize, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .write_all(format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{accept}Connection: close\r\n\r\n").as_bytes())
        .expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read");
    let took = started.elapsed();
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
    let body = answer.windows(4).position(|w| w == b"\r\n\r\n").map_or(0, |at| answer.len() - at - 4);
    (answer.len(), body, took)
}

fn report(what: &str, addr: SocketAddr, scrapes: usize, accept: &str) {
    let mut times = Vec::new();
    let mut size = (0, 0);
    for _ in 0..scrapes {
        std::thread::sleep(Duration::from_millis(250));
        let (all, body, took) = scrape(addr, accept);
        size = (all, body);
        times.push(took);
    }
    times.sort();
    let median = times[times.len() / 2];
    let slowest = times[times.len() - 1];
    println!(
        "{what}: body {} bytes ({} with headers); answer median {:.1} ms, slowest {:.1} ms over {scrapes} scrapes",
        size.1,
        size.0,
        median.as_secs_f64() * 1e3,
        slowest.as_secs_f64() * 1e3
    );
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port")
}

#[tokio::main]
async fn main() {
    let tasks = arg("--tasks", 10_000);
    let scrapes = arg("--scrapes", 40).max(1);
    let named = free_addr();
    // Two endpoints would need two agents: one process per setting instead.
    let top = arg("--locations", 100);
    taskscope_agent::Builder::from_env().http(named).metrics_locations(top).init();
    let per_site = tasks / 100;
    let mut keep: Vec<oneshot::Sender<()>> = Vec::with_capacity(tasks);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    site!(keep, per_site);
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!(
        "metrics_scrape: pid {}, {} tasks parked in 100 spawn locations, TASKSCOPE_METRICS_LOCATIONS={top}",
        std::process::id(),
        keep.len()
    );
    tokio::task::spawn_blocking(move || {
        // What Prometheus 2.42 asks for.
        let prometheus = "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n\
                          Accept-Encoding: gzip\r\n";
        report("OpenMetrics, gzipped (as Prometheus asks)", named, scrapes, prometheus);
        report("OpenMetrics", named, scrapes, "Accept: application/openmetrics-text;version=1.0.0\r\n");
        report("Prometheus text 0.0.4", named, scrapes, "");
    })
    .await
    .expect("the scrapes");
    drop(keep);
}
