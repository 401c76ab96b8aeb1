//! The `-metrics` variants' Prometheus stand-in: the child serves the
//! agent's `/metrics` (`TASKSCOPE_HTTP`'s builder setting, on a free
//! loopback port) and this thread scrapes it every second
//! (`BENCH_SCRAPE_EVERY` for another period), reading each answer to its
//! end as Prometheus does, gzip and all. The first scrape comes at a random
//! moment of the first period: a real scraper's phase has nothing to do
//! with the program's work, and the workloads are shorter than a second, so
//! a scrape at their very start would see no tasks and cost nothing. Over
//! the rounds, a run gets a scrape in the middle of its work as often as
//! its length in seconds says. What the variant costs over `agent` (or
//! `lean`) is the agent's rendering of each scrape on its own thread, plus
//! this thread's requests (included, and small beside it).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often Prometheus would scrape, by default.
const EVERY: Duration = Duration::from_secs(1);

/// The scrape period: `BENCH_SCRAPE_EVERY` (`250ms`, `2s`) or [`EVERY`].
/// (Parsed here: taskscope-bench-lean has no humantime.)
fn every() -> Duration {
    let parse = |v: &str| match v.strip_suffix("ms") {
        Some(ms) => ms.parse().ok().map(Duration::from_millis),
        None => v.strip_suffix('s')?.parse().ok().map(Duration::from_secs_f64),
    };
    std::env::var("BENCH_SCRAPE_EVERY").ok().and_then(|v| parse(v.trim())).filter(|d| !d.is_zero()).unwrap_or(EVERY)
}

/// A moment in `0..period`, different from run to run.
fn phase(period: Duration) -> Duration {
    let noise = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64 ^ u64::from(std::process::id()).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let nanos = period.as_nanos().max(1) as u64;
    Duration::from_nanos(noise.wrapping_mul(0x2545_f491_4f6c_dd1d) % nanos)
}

/// A loopback address nothing listens on (free a moment ago).
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 9464)))
}

/// The scraping thread; stopped when dropped.
pub struct Scraper {
    stop: Arc<AtomicBool>,
    thread: std::thread::Thread,
}

impl Scraper {
    /// Waits (up to 5 s) until `addr` accepts connections, then scrapes it
    /// every period, the first at a random moment of the first. (Nothing is
    /// asked before: an answer would be served again for 200 ms, and spare
    /// a scrape that early its work.)
    pub fn start(addr: SocketAddr) -> Scraper {
        let deadline = Instant::now() + Duration::from_secs(5);
        let listening = || TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok();
        while !listening() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let period = every();
        let mut next = Instant::now() + phase(period);
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                // Parked, not polling: woken by the drop or the next scrape.
                while !stopped.load(Ordering::Relaxed) && Instant::now() < next {
                    std::thread::park_timeout(next.saturating_duration_since(Instant::now()));
                }
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                next += period;
                let _ = scrape(addr);
            }
        });
        Scraper { stop, thread: thread.thread().clone() }
    }
}

impl Drop for Scraper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.unpark();
    }
}

/// One scrape: the answer's size, `None` if it failed.
fn scrape(addr: SocketAddr) -> Option<usize> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    stream
        .write_all(
            b"GET /metrics HTTP/1.1\r\nHost: bench\r\nAccept: application/openmetrics-text;version=1.0.0\r\n\
              Accept-Encoding: gzip\r\nConnection: close\r\n\r\n",
        )
        .ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    answer.starts_with(b"HTTP/1.1 200").then_some(answer.len())
}
