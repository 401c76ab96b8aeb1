//! Counts the agent keeps about itself for `/metrics`: how many dumps it
//! took for its clients and how long each took.
//!
//! A dump is the one thing the agent does that costs the program: it wakes
//! the wrapped tasks for the safe capture and, where its policy allows,
//! pauses a runtime for tokio's own dump. So a fleet should see how often
//! it happens and how long it lasts, whoever asked (`taskscope stack`,
//! `attach`'s surveys, a profiler pulling `/debug/pprof/tasks`). The test
//! guard's in-process captures are not counted: they are a test's, not a
//! client's.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Instant;

use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

/// Dump durations, in seconds: 1 ms to about 16 s in powers of two (a
/// dump bounded by the default 5 s timeout lands below the last bucket).
pub(crate) fn dump_seconds() -> &'static Histogram {
    static HISTOGRAM: OnceLock<Histogram> = OnceLock::new();
    HISTOGRAM.get_or_init(|| Histogram::new(exponential_buckets(0.001, 2.0, 15)))
}

/// Runs `dump` and counts it, with its duration, once it is done. A dump
/// whose client went away before it finished is not counted.
pub(crate) async fn timed<F: Future>(dump: F) -> F::Output {
    let started = Instant::now();
    let out = dump.await;
    dump_seconds().observe(started.elapsed().as_secs_f64());
    out
}
