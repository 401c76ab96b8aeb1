//! Asking one runtime for a tokio task dump and reducing it to instruction
//! pointers (only built where tokio offers task dumps).
//!
//! A multi-thread runtime is only dumped once none of its workers is stuck
//! in a poll (see [`wait_until_responsive`]). The dump is read on a blocking thread: formatting ten thousand traces, and
//! in the rare fallback resolving them, must not stall the agent's runtime,
//! which keeps answering `GetInfo` and `Watch` meanwhile.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use taskscope_proto::duration;
use tokio::runtime::{Dump, Handle, RuntimeFlavor};
use tokio::sync::oneshot;

use super::flight::Progress;
use super::{parse_ips, RawDump, RawTrace};

/// Dumps the runtime behind `handle`. Never cancels the dump itself: the
/// caller runs this to completion in a task of its own. `None` when the dump
/// was withdrawn (nobody waited any more) before tokio was asked for it.
pub(super) async fn take(name: &str, handle: &Handle, progress: &Progress) -> Option<Result<RawDump, String>> {
    let shut_down = || format!("runtime `{name}` has shut down");
    let (dump, own_task) = match handle.runtime_flavor() {
        RuntimeFlavor::CurrentThread => {
            // While the dump polls tasks, those polls are not recorded as the program's.
            let _dumping = crate::recorder::dumping();
            crate::hooks::before_dump(handle);
            // The dump must be requested from a task on that very runtime.
            // A blocked runtime just never runs it; no harm is done meanwhile.
            let (tx, rx) = oneshot::channel();
            handle.spawn(async move {
                let me = tokio::task::id();
                let dump = Handle::current().dump().await;
                let _ = tx.send((dump, me));
            });
            match rx.await {
                Ok((dump, me)) => (dump, Some(me)),
                Err(_) => return Some(Err(shut_down())),
            }
        }
        _ => {
            if let Err(why) = multi_thread_allowed(name, handle) {
                return Some(Err(why));
            }
            if has_shut_down(handle).await {
                return Some(Err(shut_down()));
            }
            if !wait_until_responsive(handle, progress).await {
                return None;
            }
            let _dumping = crate::recorder::dumping();
            crate::hooks::before_dump(handle);
            (handle.dump().await, None)
        }
    };
    let reduced = tokio::task::spawn_blocking(move || reduce(&dump, own_task)).await;
    Some(reduced.map_err(|e| format!("reading the dump of runtime `{name}` failed: {e}")))
}

/// A task spawned on a runtime that has shut down is cancelled on the spot;
/// on a live but busy runtime it just waits, which is not shutdown.
async fn has_shut_down(handle: &Handle) -> bool {
    let probe = handle.spawn(async {});
    matches!(tokio::time::timeout(Duration::from_millis(50), probe).await, Ok(Err(e)) if e.is_cancelled())
}

/// How often worker activity is sampled while waiting.
/// Most tasks queued on the workers for a dump to start (tokio's limit is 256
/// in all; the margin covers wake-ups that arrive while the dump starts).
const MAX_QUEUED: usize = 64;

const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Waits until no worker of a multi-thread runtime is stuck inside one poll.
///
/// tokio 1.54's multi-thread dump makes the workers meet at a barrier that
/// gives up after 250ms, and a give-up leaks an arrival (tokio-rs/tokio#8370):
/// later dumps can then elect a leader that traces without exclusive access,
/// wedging a worker for good or panicking it. A worker is stuck when, between
/// two samples, it neither parked nor unparked nor finished a batch of polls
/// (tokio publishes those counters at park time and every 61 polls). Dumping
/// only runtimes with no stuck worker keeps that from happening, except for a
/// task that starts blocking during the few milliseconds the dump takes.
///
/// It also waits for the workers' run queues to be short. tokio's dump moves
/// every queued task into one fixed-size queue of 256 (`steal_all`) and
/// loops until the workers' queues are empty, so with more queued tasks than
/// fit it spins forever, and the other worker waits for it forever: the
/// program loses its workers and can no longer shut down. Measured here
/// before this check: `done_signal` with 1000 parked tasks, whose previous
/// dump had just woken them all, was left spinning in 3 of 4 runs of 8
/// dumps in a row. (The same race remains for a burst of more than
/// [`MAX_QUEUED`] wake-ups arriving during the few milliseconds of a dump.)
///
/// Returns false when nobody waits for the dump any more.
async fn wait_until_responsive(handle: &Handle, progress: &Progress) -> bool {
    let metrics = handle.metrics();
    let sample = || -> Vec<(u64, u64)> {
        (0..metrics.num_workers())
            .map(|worker| (metrics.worker_park_unpark_count(worker), metrics.worker_poll_count(worker)))
            .collect()
    };
    let mut previous = sample();
    let mut unchanged_since = vec![Instant::now(); previous.len()];
    loop {
        tokio::time::sleep(SAMPLE_EVERY).await;
        let now = Instant::now();
        let current = sample();
        let mut longest: Option<(usize, Duration)> = None;
        for (worker, (before, after)) in previous.iter().zip(&current).enumerate() {
            // An odd park/unpark count means the worker is parked: idle, fine.
            if before != after || after.0 % 2 == 1 {
                unchanged_since[worker] = now;
                continue;
            }
            let stuck_for = now.duration_since(unchanged_since[worker]);
            if longest.is_none_or(|(_, longest)| stuck_for > longest) {
                longest = Some((worker, stuck_for));
            }
        }
        let queued: usize = (0..metrics.num_workers()).map(|w| metrics.worker_local_queue_depth(w)).sum();
        let Some((worker, stuck_for)) = longest else {
            if queued <= MAX_QUEUED {
                progress.stalled(None);
                return true;
            }
            progress.stalled(Some(format!(
                "{queued} tasks are queued on the workers; the dump waits until fewer than {MAX_QUEUED} are"
            )));
            if progress.unwanted() {
                return false;
            }
            previous = current;
            continue;
        };
        progress.stalled(Some(format!(
            "worker {worker} has been inside one poll for at least {}; the dump waits for it to return",
            duration::format(stuck_for)
        )));
        if progress.unwanted() {
            return false;
        }
        previous = current;
    }
}

/// Whether the agent may ask tokio for a dump of this multi-thread runtime.
///
/// tokio 1.54's multi-thread dump is not safe to repeat: its workers meet at
/// a barrier whose timed-out arrivals stay counted (tokio-rs/tokio#8370), and
/// it re-wakes every traced task, after which a dump that finds more than 128
/// tasks queued spins forever in `steal_all`. Either leaves a worker stuck for
/// good and the program unable to shut down. Measured here on `done_signal`
/// (2 workers): 8 dumps in a row left it unable to exit on SIGTERM in 4 of 4
/// runs with 80 parked tasks, and 3 dumps in 3 of 5 runs with 300. So by
/// default the agent dumps only current-thread runtimes and multi-thread
/// runtimes with a single worker (no barrier partner) and at most
/// [`SINGLE_WORKER_MAX_TASKS`] tasks (no overflowing re-wake);
/// `TASKSCOPE_MT_DUMPS=1` lifts this at the user's risk.
fn multi_thread_allowed(name: &str, handle: &Handle) -> Result<(), String> {
    let metrics = handle.metrics();
    let opted_in = super::MT_DUMPS.load(std::sync::atomic::Ordering::Relaxed);
    allowed(name, opted_in, metrics.num_workers(), metrics.num_alive_tasks())
}

/// The rule of [`multi_thread_allowed`], on plain numbers.
pub(super) fn allowed(name: &str, opted_in: bool, workers: usize, alive: usize) -> Result<(), String> {
    if opted_in {
        return Ok(());
    }
    if workers == 1 && alive <= SINGLE_WORKER_MAX_TASKS {
        return Ok(());
    }
    let why = if workers > 1 {
        format!("it has {workers} workers")
    } else {
        format!("it has {alive} tasks (more than {SINGLE_WORKER_MAX_TASKS})")
    };
    Err(format!(
        "{}runtime `{name}` is a multi-thread runtime and {why}; tokio 1.54's \
         multi-thread task dump can leave a worker stuck for good (tokio-rs/tokio#8370), so the \
         agent takes it only if the program was started with {}=1 (for a debugging session, \
         on a program you will restart); a current-thread runtime is always dumped",
        super::REFUSED,
        taskscope_proto::env::MT_DUMPS.name
    ))
}

/// Most tasks of a single-worker multi-thread runtime the agent dumps.
const SINGLE_WORKER_MAX_TASKS: usize = 100;

/// Extracts each task's instruction pointers, storing identical traces once.
fn reduce(dump: &Dump, skip: Option<tokio::task::Id>) -> RawDump {
    let mut raw = RawDump::default();
    let mut seen: HashMap<Vec<Vec<usize>>, usize> = HashMap::new();
    for task in dump.tasks().iter() {
        if Some(task.id()) == skip {
            continue;
        }
        let id = crate::hooks::id_u64(task.id());
        let trace = task.trace();
        let ips: Vec<Vec<usize>> = parse_ips(&format!("{trace:?}"))
            .unwrap_or_default()
            .into_iter()
            .filter(|ips| !ips.is_empty())
            .collect();
        if ips.is_empty() {
            // Either the task awaits no tokio leaf (no stack), or tokio's
            // Debug output changed shape: then let tokio resolve it.
            if trace.to_string().trim().is_empty() {
                continue;
            }
            raw.traces.push(RawTrace::Resolved(resolve_with_tokio(trace)));
            raw.tasks.push((id, raw.traces.len() - 1));
            continue;
        }
        let index = match seen.get(&ips) {
            Some(&index) => index,
            None => {
                raw.traces.push(RawTrace::Ips(ips.clone()));
                seen.insert(ips, raw.traces.len() - 1);
                raw.traces.len() - 1
            }
        };
        raw.tasks.push((id, index));
    }
    raw
}

/// The slow path: tokio resolves every frame itself (no cache).
fn resolve_with_tokio(trace: &tokio::runtime::dump::Trace) -> Vec<Vec<taskscope_proto::Frame>> {
    trace
        .resolve_backtraces()
        .iter()
        .map(|backtrace| {
            // Frames come leaf first and inlined symbols innermost first.
            let frames: Vec<_> = backtrace.frames().collect();
            let mut out = Vec::new();
            for frame in frames.into_iter().rev() {
                let symbols: Vec<_> = frame.symbols().collect();
                for symbol in symbols.into_iter().rev() {
                    out.push(crate::symbols::frame(
                        symbol.name_demangled(),
                        symbol.filename().map(|p| p.display().to_string()),
                        symbol.lineno(),
                        symbol.colno(),
                    ));
                }
            }
            crate::symbols::trim(out)
        })
        .collect()
}
