//! Asking one runtime for a tokio task dump and reducing it to instruction
//! pointers (only built where tokio offers task dumps). [`super::policy`]
//! has already allowed it.
//!
//! A multi-thread runtime is only dumped once none of its workers is stuck
//! in a poll and few tasks are queued (see [`wait_until_responsive`]); on a
//! tokio without the taskdump fixes its workers are then watched for a
//! while ([`super::harm`]). The dump is read on a blocking thread:
//! formatting ten thousand traces, and in the rare fallback resolving them,
//! must not stall the agent's runtime, which keeps answering `GetInfo` and
//! `Watch` meanwhile.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::{Dump, Handle, RuntimeFlavor};
use tokio::sync::oneshot;

use super::flight::Progress;
use super::stall::Stall;
use super::{parse_ips, DumpError, RawDump, RawTrace, Registered};

/// Dumps the runtime `rt`. Never cancels the dump itself: the caller runs
/// this to completion in a task of its own. `None` when the dump was
/// withdrawn (nobody waited any more) before tokio was asked for it.
pub(super) async fn take(rt: &Arc<Registered>, progress: &Progress) -> Option<Result<RawDump, DumpError>> {
    let name = &rt.name;
    let handle = &rt.handle;
    let shut_down = || DumpError::failed(format!("runtime `{name}` has shut down"));
    let (dump, own_task) = match handle.runtime_flavor() {
        RuntimeFlavor::CurrentThread => {
            // While the dump polls tasks, those polls are not recorded as the program's.
            let _dumping = crate::recorder::dumping();
            crate::hooks::before_dump(handle);
            // The dump must be requested from a task on that very runtime.
            // A blocked runtime just never runs it; no harm is done meanwhile.
            if !super::policy::fixed(true) {
                super::harm::count_dump_panics();
            }
            let panics = super::harm::dump_panics();
            let (tx, rx) = oneshot::channel();
            let helper = handle.spawn(async move {
                let me = tokio::task::id();
                let dump = {
                    let _in_dump = super::harm::in_dump();
                    Handle::current().dump().await
                };
                let _ = tx.send((dump, me));
            });
            match rx.await {
                Ok(_) if super::harm::dump_panics() > panics => {
                    return Some(Err(super::harm::tasks_panicked(rt, super::harm::dump_panics() - panics)));
                }
                Ok((dump, me)) => (dump, Some(me)),
                Err(_) => {
                    return Some(Err(match helper.await {
                        Err(e) if e.is_panic() => rt.harm.set(format!(
                            "a panic inside tokio's current-thread dump (tokio-rs/tokio#8391: a traced task \
                             woke a task while the dump held the scheduler): {}; tasks of the runtime may \
                             have been lost or killed",
                            super::harm::panic_message(e)
                        )),
                        _ => shut_down(),
                    }));
                }
            }
        }
        _ => {
            if has_shut_down(handle).await {
                return Some(Err(shut_down()));
            }
            if !wait_until_responsive(handle, progress).await {
                return None;
            }
            let _dumping = crate::recorder::dumping();
            crate::hooks::before_dump(handle);
            progress.asked();
            let dump = handle.dump().await;
            if !super::policy::fixed(false) {
                tokio::spawn(super::harm::watch_workers(Arc::clone(rt)));
            }
            (dump, None)
        }
    };
    let reduced = tokio::task::spawn_blocking(move || reduce(&dump, own_task)).await;
    Some(reduced.map_err(|e| DumpError::failed(format!("reading the dump of runtime `{name}` failed: {e}"))))
}

/// A task spawned on a runtime that has shut down is cancelled on the spot;
/// on a live but busy runtime it just waits, which is not shutdown.
async fn has_shut_down(handle: &Handle) -> bool {
    let probe = handle.spawn(async {});
    matches!(tokio::time::timeout(Duration::from_millis(50), probe).await, Ok(Err(e)) if e.is_cancelled())
}

/// Most tasks queued on the workers for a dump to start. tokio 1.54's
/// `steal_all` moves every queued task into one local queue whose
/// `steal_into` refuses once it holds half of its 256 slots, so from about
/// 129 queued tasks on it spins forever; the margin covers wake-ups that
/// arrive while the dump starts.
const MAX_QUEUED: usize = 64;

/// How often worker activity is sampled while waiting.
pub(super) const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Waits until no worker of a multi-thread runtime is stuck inside one poll
/// and few tasks are queued on the workers.
///
/// A blocked worker makes tokio 1.54's dump barrier time out, which leaks an
/// arrival (tokio-rs/tokio#8370); so does, far more often, a worker that
/// enters the trace alone because the "trace requested" flag outlived the
/// previous dump, which no waiting here can prevent (see [`super::policy`]).
/// A worker is stuck when, between two samples, it neither parked nor
/// unparked nor finished a batch of polls (tokio publishes those counters at
/// park time and every 61 polls).
///
/// Short run queues: with more than about 129 tasks queued, tokio 1.54's
/// `steal_all` spins forever (see [`MAX_QUEUED`]), and the dump's own
/// deferred wakes queue every task it traced, so the dump right after
/// another finds them queued. Measured before this check: `done_signal` with
/// 1000 parked tasks was left spinning in 3 of 4 runs of 8 dumps in a row.
/// (A burst of wake-ups during the few milliseconds of a dump remains a risk
/// on a tokio without the fixes.)
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
            progress.stalled(Some(Stall::Queued { queued, most: MAX_QUEUED }));
            if progress.unwanted() {
                return false;
            }
            previous = current;
            continue;
        };
        progress.stalled(Some(Stall::Worker { worker, still_for: stuck_for }));
        if progress.unwanted() {
            return false;
        }
        previous = current;
    }
}

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
        let ips: Vec<Vec<usize>> =
            parse_ips(&format!("{trace:?}")).unwrap_or_default().into_iter().filter(|ips| !ips.is_empty()).collect();
        if ips.is_empty() {
            // Either the task awaits no tokio leaf (no stack), or tokio's
            // Debug output changed shape: then let tokio resolve it.
            if trace.to_string().trim().is_empty() {
                raw.empty.push(id);
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
