//! The child side: one workload under one variant, in a process of its own, so
//! that no variant inherits another's subscriber, allocations or warm caches.
//!
//! Both `taskscope-bench` (tokio with `tracing`; cargo feature `full`) and
//! `taskscope-bench-lean` (tokio without it) compile this file, so that the
//! lean mode and its baseline run exactly the code the other variants run.
//! Each binary runs only the variants its tokio was built for.
//!
//! The child prints one line for the parent,
//! `result elapsed_ns=N cpu_ns=N rss_kib=N base_rss_kib=N peak_rss_kib=N`, or, for the
//! `stack` workload, `ready` once its tasks are parked, and then waits to be
//! killed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::plan::{Variant, Workload};

#[path = "scraper.rs"]
mod scraper;

#[cfg(feature = "full")]
mod controls {
    //! The `noop` and `fields` controls: the agent's full mode subscribes to
    //! tokio's `runtime.spawn` spans and `tokio::task::waker` events only;
    //! these subscribers ask for the same callsites, so tokio builds the same
    //! spans, enters them around every poll and emits the same events as
    //! under the agent. `noop` does nothing with them; `fields` reads their
    //! fields and keeps nothing, which is the part of the full mode's cost
    //! that no recorder of task names and wakers can avoid (tracing hands
    //! field values over only through a visitor, one dynamic call each).

    use taskscope_agent::subscriber::{is_task_callsite, task_interest};
    use tracing_core::field::{Field, Visit};
    use tracing_core::span::{Attributes, Id, Record};
    use tracing_core::subscriber::{Interest, Subscriber};
    use tracing_core::{Event, LevelFilter, Metadata};

    /// Both controls: `noop` when `read_fields` is false, `fields` when true.
    pub struct TaskCallsites {
        pub read_fields: bool,
    }

    /// Folds what it is shown into one number, so that reading is not
    /// optimised away.
    #[derive(Default)]
    struct Fold(u64);

    impl std::fmt::Write for Fold {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0 = self.0.wrapping_add(s.len() as u64);
            Ok(())
        }
    }

    impl Visit for Fold {
        fn record_u64(&mut self, _field: &Field, value: u64) {
            self.0 ^= value;
        }
        fn record_str(&mut self, _field: &Field, value: &str) {
            self.0 ^= value.len() as u64;
        }
        // `%` values arrive here; formatting them is what a recorder of
        // task names must do too.
        fn record_debug(&mut self, _field: &Field, value: &dyn std::fmt::Debug) {
            use std::fmt::Write as _;
            let _ = write!(self, "{value:?}");
        }
    }

    impl Subscriber for TaskCallsites {
        fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
            task_interest(meta)
        }
        fn enabled(&self, meta: &Metadata<'_>) -> bool {
            is_task_callsite(meta)
        }
        fn max_level_hint(&self) -> Option<LevelFilter> {
            Some(LevelFilter::TRACE)
        }
        // Nothing is kept per span, so one id serves them all.
        fn new_span(&self, attrs: &Attributes<'_>) -> Id {
            if self.read_fields {
                let mut fold = Fold::default();
                attrs.record(&mut fold);
                std::hint::black_box(fold.0);
            }
            Id::from_u64(1)
        }
        fn record(&self, _span: &Id, _values: &Record<'_>) {}
        fn record_follows_from(&self, _span: &Id, _follows: &Id) {}
        fn event(&self, event: &Event<'_>) {
            if self.read_fields {
                let mut fold = Fold::default();
                event.record(&mut fold);
                std::hint::black_box(fold.0);
            }
        }
        fn enter(&self, _span: &Id) {}
        fn exit(&self, _span: &Id) {}
    }
}

/// Installs a control's subscriber for the whole process.
#[cfg(feature = "full")]
fn install(control: controls::TaskCallsites) {
    if tracing_core::dispatcher::set_global_default(tracing_core::Dispatch::new(control)).is_err() {
        eprintln!("a subscriber was already installed");
    }
}

/// What a workload measured.
struct Measured {
    elapsed: Duration,
    /// CPU time of the whole process (every thread, the agent's included)
    /// over the same span: unlike wall time, barely moved by other processes
    /// competing for the machine.
    cpu: Duration,
    /// Resident memory when the measurement ended (for `idle`: tasks parked).
    rss_kib: u64,
}

/// Sets tokio's four task hooks (the ones the lean mode uses) to closures
/// that do nothing but keep their argument from being optimised away.
fn empty_hooks(builder: &mut tokio::runtime::Builder) -> &mut tokio::runtime::Builder {
    builder
        .on_task_spawn(|meta| {
            std::hint::black_box(meta);
        })
        .on_before_task_poll(|meta| {
            std::hint::black_box(meta);
        })
        .on_after_task_poll(|meta| {
            std::hint::black_box(meta);
        })
        .on_task_terminate(|meta| {
            std::hint::black_box(meta);
        })
}

/// Runs `workload` under `variant` on a multi-thread runtime, as
/// `#[tokio::main]` would build it, and prints the result line. Fails when
/// this binary cannot run `variant` or the runtime cannot be built.
pub fn run(variant: Variant, workload: Workload, count: usize) -> Result<(), String> {
    if variant.is_lean() == cfg!(feature = "full") {
        return Err(if variant.is_lean() {
            format!(
                "variant {} needs tokio without its `tracing` feature: run it with taskscope-bench-lean",
                variant.name()
            )
        } else {
            format!("variant {} needs tokio's `tracing` feature: run it with taskscope-bench", variant.name())
        });
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    let http = scraper::free_addr();
    let runtime = match variant {
        Variant::Lean | Variant::LeanWrapped => taskscope_agent::build_runtime(&mut builder),
        Variant::LeanMetrics => taskscope_agent::Builder::from_env().http(http).build_runtime(&mut builder),
        Variant::Hooks => empty_hooks(&mut builder).build(),
        _ => builder.build(),
    }
    .map_err(|e| format!("build the tokio runtime: {e}"))?;
    runtime.block_on(async move {
        match variant {
            #[cfg(feature = "full")]
            Variant::Agent | Variant::AgentWrapped => taskscope_agent::init(),
            #[cfg(feature = "full")]
            Variant::AgentExact => taskscope_agent::Builder::from_env().exact_times(true).init(),
            #[cfg(feature = "full")]
            Variant::AgentMetrics => taskscope_agent::Builder::from_env().http(http).init(),
            #[cfg(feature = "full")]
            Variant::Console => console_subscriber::init(),
            #[cfg(feature = "full")]
            Variant::Noop => install(controls::TaskCallsites { read_fields: false }),
            #[cfg(feature = "full")]
            Variant::Fields => install(controls::TaskCallsites { read_fields: true }),
            // Plain and plain-lean install nothing; lean did at build time.
            _ => {}
        }
        let base_rss_kib = status_kib("VmRSS:");
        let _scraper = variant.scraped().then(|| scraper::Scraper::start(http));
        // The workload runs in a task, on the worker threads, as real code does.
        let wrapped = variant.wraps();
        let measured = spawn(wrapped, async move {
            match workload {
                Workload::Spawn => spawn_many(wrapped, count).await,
                Workload::Channel => round_trips(wrapped, count).await,
                Workload::Idle => park_many(wrapped, count).await,
                Workload::Stack => hold_parked(wrapped, count).await,
            }
        })
        .await
        .expect("the workload task panicked");
        println!(
            "result elapsed_ns={} cpu_ns={} rss_kib={} base_rss_kib={base_rss_kib} peak_rss_kib={}",
            measured.elapsed.as_nanos(),
            measured.cpu.as_nanos(),
            measured.rss_kib,
            status_kib("VmHWM:"),
        );
    });
    Ok(())
}

/// `tokio::spawn`, or `taskscope_agent::spawn` when `wrapped`.
fn spawn<F>(wrapped: bool, future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    if wrapped {
        taskscope_agent::spawn(future)
    } else {
        tokio::spawn(future)
    }
}

/// Spawns `count` short tasks, then awaits them all.
async fn spawn_many(wrapped: bool, count: usize) -> Measured {
    let cpu = process_cpu();
    let start = Instant::now();
    let tasks: Vec<_> = (0..count).map(|i| spawn(wrapped, async move { std::hint::black_box(i) })).collect();
    for task in tasks {
        task.await.expect("short task");
    }
    Measured { elapsed: start.elapsed(), cpu: process_cpu() - cpu, rss_kib: status_kib("VmRSS:") }
}

/// `count` round trips between this task and an echo task over two bounded
/// mpsc channels.
async fn round_trips(wrapped: bool, count: usize) -> Measured {
    let (to_echo, mut echo_inbox) = mpsc::channel::<usize>(1);
    let (to_caller, mut caller_inbox) = mpsc::channel::<usize>(1);
    let echo = spawn(wrapped, async move {
        while let Some(n) = echo_inbox.recv().await {
            if to_caller.send(n).await.is_err() {
                break;
            }
        }
    });
    let cpu = process_cpu();
    let start = Instant::now();
    for i in 0..count {
        to_echo.send(i).await.expect("echo alive");
        let back = caller_inbox.recv().await.expect("echo answers");
        debug_assert_eq!(back, i);
    }
    let elapsed = start.elapsed();
    let cpu = process_cpu() - cpu;
    drop(to_echo);
    echo.await.expect("echo task");
    Measured { elapsed, cpu, rss_kib: status_kib("VmRSS:") }
}

/// Spawns `count` tasks parked on a oneshot each, waits until all have parked
/// and the agent had time to record them, then reads resident memory.
async fn park_many(wrapped: bool, count: usize) -> Measured {
    let cpu = process_cpu();
    let (senders, tasks, elapsed) = spawn_parked(wrapped, count).await;
    let cpu = process_cpu() - cpu;
    // Let every task return Pending and any agent/console drain its queues.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_kib = status_kib("VmRSS:");
    drop(senders);
    for task in tasks {
        task.await.expect("parked task");
    }
    Measured { elapsed, cpu, rss_kib }
}

/// Holds `count` parked tasks and prints `ready`; the parent times
/// `taskscope stack` against this process, then kills it.
async fn hold_parked(wrapped: bool, count: usize) -> Measured {
    let (_senders, _tasks, _) = spawn_parked(wrapped, count).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!("ready");
    // Parked on a channel that stays open (not on `pending()`, which the agent
    // would rightly report as leaked).
    let (_open, never) = oneshot::channel::<Measured>();
    never.await.expect("the sender lives as long as this task")
}

type Parked = (Vec<oneshot::Sender<()>>, Vec<tokio::task::JoinHandle<()>>, Duration);

/// Spawns `count` tasks that each park on a oneshot receiver, and returns once
/// all of them have been polled, with the time that took.
async fn spawn_parked(wrapped: bool, count: usize) -> Parked {
    let polled = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::with_capacity(count);
    let mut tasks = Vec::with_capacity(count);
    let start = Instant::now();
    for _ in 0..count {
        let (tx, rx) = oneshot::channel::<()>();
        let polled = polled.clone();
        senders.push(tx);
        tasks.push(spawn(wrapped, async move {
            polled.fetch_add(1, Ordering::Relaxed);
            let _ = rx.await;
        }));
    }
    while polled.load(Ordering::Relaxed) < count {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    (senders, tasks, start.elapsed())
}

/// User + system CPU time of this process so far, all threads.
fn process_cpu() -> Duration {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return Duration::ZERO;
        }
        usage
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// A `kB` field of `/proc/self/status` (`VmRSS:`, `VmHWM:`), 0 where there is
/// no procfs.
pub fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    parse_status_kib(&status, field)
}

/// The value of `field` in a `/proc/<pid>/status` text, in KiB.
pub fn parse_status_kib(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}
