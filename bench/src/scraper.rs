//! The `-metrics` variants' Prometheus stand-in: the child serves the
//! agent's `/metrics` (`TASKSCOPE_HTTP`'s builder setting, on a free
//! loopback port) and this thread scrapes it every second, the first time
//! as the workload starts, reading each answer to its end as Prometheus
//! does. What the variant costs over `agent` (or `lean`) is the agent's
//! rendering of each scrape on its own thread, plus this thread's one
//! request a second (included, and small beside it).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often Prometheus would scrape (the "every second").
const EVERY: Duration = Duration::from_secs(1);

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
    /// Waits (up to 5 s) until `addr` answers, then scrapes it every second.
    pub fn start(addr: SocketAddr) -> Scraper {
        let deadline = Instant::now() + Duration::from_secs(5);
        while scrape(addr).is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let next = Instant::now() + EVERY;
                let _ = scrape(addr);
                // Parked, not polling: woken by the drop or the next second.
                while !stopped.load(Ordering::Relaxed) && Instant::now() < next {
                    std::thread::park_timeout(next.saturating_duration_since(Instant::now()));
                }
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
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nAccept: application/openmetrics-text;version=1.0.0\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    answer.starts_with(b"HTTP/1.1 200").then_some(answer.len())
}
