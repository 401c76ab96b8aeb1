//! Safe stacks: the futures the agent wraps trace themselves inside their
//! own poll.
//!
//! Why: tokio's task dump (`Handle::dump`) stops a runtime and re-polls every
//! task in tracing mode from inside the scheduler, and in tokio 1.54 that
//! harms programs (see [`crate::dump`]): a multi-thread worker wedged for
//! good, a current-thread task lost or killed by a panic. tokio also makes
//! public what a dump is made of: `trace_with` runs a closure in tracing
//! mode, in which every tokio leaf future (a channel, a timer, a lock, ...)
//! that gets polled records a backtrace up to the nearest `Trace::root` and
//! returns `Pending`. A [`Traced`] future does exactly that, once per
//! request, in a poll the scheduler makes as it makes any other: no barrier,
//! no scheduler lock, no poll from inside the scheduler. The leaves it cut
//! short are polled again for real right after, woken by the wake tokio
//! defers for each of them.
//!
//! A request ([`collect`]): every wrapped future that has parked is on the
//! [`board`]. The agent marks each one's slot (so the polls it causes are
//! not counted as the program's), names the request in its entry, moves
//! [`EPOCH`] on and wakes it with the waker it parked with. Each future sees
//! the new epoch at its next poll, finds itself asked, polls once traced and
//! answers. The request waits until all have answered or its timeout ends;
//! a future stuck in a long poll, or on a blocked runtime, just does not
//! answer in time, and nothing waits for it afterwards.
//!
//! Cost while nothing is asked: one relaxed load of [`EPOCH`] per poll; a
//! future's first `Pending` puts it on the board (an allocation, an
//! uncontended lock, a waker clone), its end takes it off.
//!
//! Limits, all of them shared with tokio's own dump: only tokio's leaves are
//! traced (a future parked on something else, e.g. `std::future::pending()`
//! or a `futures` channel, answers with no stack); in the traced poll those
//! leaves return `Pending` once, so code that polls a tokio future once and
//! treats `Pending` as "not ready" (`now_or_never`, `futures::poll!`, a
//! `biased` select with an always-ready branch) may see it not ready once;
//! and code that runs a nested executor inside a poll (`futures::executor::
//! block_on` of a tokio future) after a non-tokio future completed in that
//! same traced poll waits for a wake deferred to the end of that poll.

mod board;
mod own;
mod trace;
mod traced;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};
use std::sync::Arc;
use std::time::{Duration, Instant};

use taskscope_proto as proto;
use taskscope_proto::duration;

pub use traced::Traced;

/// The epoch of the latest request; a wrapped future that sees it change
/// looks whether it is asked for its stack.
pub(crate) static EPOCH: AtomicU64 = AtomicU64::new(0);

/// One request for the stacks of the wrapped futures.
pub(crate) struct Request {
    epoch: u64,
    /// Futures asked that have not answered yet.
    remaining: AtomicUsize,
    /// Notified when the last one answers.
    done: tokio::sync::Notify,
}

impl Request {
    /// `entry`'s future answers with its leaves' backtraces.
    pub(crate) fn answer(&self, entry: &board::Entry, leaves: Vec<Vec<usize>>) {
        let counted = {
            let mut shared = entry.shared();
            if shared.wanted.as_ref().is_none_or(|r| r.epoch != self.epoch) {
                return;
            }
            shared.wanted = None;
            shared.answer = Some(Box::new((self.epoch, leaves)));
            entry.take_counted(&shared)
        };
        // Only the futures the request waits for count down (see `collect`).
        if counted && self.remaining.fetch_sub(1, AcqRel) == 1 {
            self.done.notify_one();
        }
    }
}

/// What a request collected.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    /// By task id, the backtraces of each future that answered (leaf first;
    /// empty when it reached no tokio leaf).
    pub answers: HashMap<u64, Vec<Vec<usize>>>,
    /// Task ids of the futures asked that did not answer in time.
    pub unanswered: Vec<u64>,
    /// The summary for the dump's header.
    pub summary: proto::SafeCapture,
}

/// Live wrapped futures that have parked at least once.
pub(crate) fn wrapped() -> usize {
    board::BOARD.len()
}

/// Asks every wrapped future whose task id `wanted` accepts for its stack,
/// and waits up to `timeout` for their answers. Requests run one at a time.
pub(crate) async fn collect(timeout: Duration, wanted: impl Fn(u64) -> bool) -> Collected {
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    if !trace::SUPPORTED {
        return Collected::default();
    }
    let _turn = ONE_AT_A_TIME.lock().await;
    let started = Instant::now();
    let mut entries = board::BOARD.entries();
    entries.retain(|entry| wanted(entry.task_id));
    if entries.is_empty() {
        return Collected::default();
    }
    // Polls read their slots' flags while this lives (see `crate::recorder`).
    let _dumping = crate::recorder::dumping();
    let epoch = EPOCH.load(Relaxed) + 1;
    // Futures not polled since an earlier request gave up on them are woken
    // and asked again, but not waited for: their runtime is blocked, or
    // tokio's own dump lost them, and each request would wait its whole
    // timeout. Decided once per future, before any is asked.
    let counted: Vec<bool> = entries.iter().map(|entry| !entry.stuck()).collect();
    let waited_for = counted.iter().filter(|&&c| c).count();
    let request = Arc::new(Request { epoch, remaining: AtomicUsize::new(waited_for), done: Default::default() });
    for (entry, &counted) in entries.iter().zip(&counted) {
        {
            let mut shared = entry.shared();
            shared.wanted = Some(Arc::clone(&request));
            entry.set_counted(&shared, counted);
        }
        if let Some(key) = entry.key() {
            crate::recorder::mark_capture(key);
        }
    }
    EPOCH.store(epoch, Release);
    for entry in &entries {
        // Cloned out of the lock: a waker may do anything, even poll.
        let waker = entry.shared().waker.clone();
        match waker {
            Some(waker) => waker.wake(),
            // Its future is ending: it will not answer.
            None => request.answer(entry, Vec::new()),
        }
    }
    let deadline = tokio::time::Instant::now() + timeout;
    while request.remaining.load(Acquire) > 0 {
        if tokio::time::timeout_at(deadline, request.done.notified()).await.is_err() {
            break;
        }
    }
    let elapsed = started.elapsed();
    let mut collected = Collected::default();
    for entry in &entries {
        let mut shared = entry.shared();
        shared.wanted = None;
        match shared.answer.take().map(|answer| *answer) {
            Some((answered, leaves)) if answered == epoch => {
                collected.answers.insert(entry.task_id, leaves);
            }
            _ => {
                collected.unanswered.push(entry.task_id);
                entry.set_counted(&shared, false);
                drop(shared);
                // Until it is polled again, later requests do not wait for it.
                entry.gave_up.store(epoch, Relaxed);
                if let Some(key) = entry.key() {
                    crate::recorder::unmark_capture(key);
                }
            }
        }
    }
    let wanted = u32::try_from(entries.len()).unwrap_or(u32::MAX);
    let answered = u32::try_from(collected.answers.len()).unwrap_or(u32::MAX);
    collected.summary = proto::SafeCapture {
        wanted,
        answered,
        elapsed_ns: u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
        detail: if answered < wanted {
            format!(
                "{} of {wanted} wrapped tasks were not polled within {} (inside a long poll, or on a blocked runtime)",
                wanted - answered,
                duration::format(timeout)
            )
        } else {
            String::new()
        },
    };
    collected
}

#[cfg(all(test, tokio_unstable, target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
mod tests {
    use super::*;

    fn tool() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
    }

    #[test]
    fn a_wrapped_future_answers_inside_its_next_poll() {
        let program =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let (_tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = program.spawn(Traced::task(async move { rx.await.is_ok() }, None));
        let id = crate::hooks::id_u64(task.id());
        std::thread::sleep(Duration::from_millis(50));
        let collected = tool().block_on(collect(Duration::from_secs(20), |asked| asked == id));
        let leaves = collected.answers.get(&id).expect("it answered");
        assert_eq!(leaves.len(), 1, "one leaf, the oneshot: {leaves:?}");
        assert!(!leaves[0].is_empty());
        assert_eq!((collected.summary.wanted, collected.summary.answered), (1, 1));
        assert!(!task.is_finished(), "still waiting for its sender");
    }

    #[test]
    fn a_wrapped_future_dropped_while_asked_does_not_hold_the_request_up() {
        let program =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
        let task = program.spawn(Traced::task(std::future::pending::<()>(), None));
        let id = crate::hooks::id_u64(task.id());
        std::thread::sleep(Duration::from_millis(50));
        // The only worker is blocked, so the asked future waits in the queue;
        // it is aborted meanwhile, so tokio drops it there, never polled.
        program.spawn(async { std::thread::sleep(Duration::from_millis(500)) });
        std::thread::sleep(Duration::from_millis(20));
        let aborter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            task.abort();
        });
        let asked = Instant::now();
        let collected = tool().block_on(collect(Duration::from_secs(20), |asked| asked == id));
        assert!(asked.elapsed() < Duration::from_secs(5), "waited {:?} for a future that was gone", asked.elapsed());
        assert_eq!(collected.summary.wanted, 1);
        aborter.join().expect("aborted");
        program.shutdown_timeout(Duration::from_secs(5));
    }

    #[test]
    fn a_future_not_polled_since_it_was_last_asked_is_not_waited_for_again() {
        let program =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
        let task = program.spawn(Traced::task(std::future::pending::<()>(), None));
        let id = crate::hooks::id_u64(task.id());
        std::thread::sleep(Duration::from_millis(50));
        program.spawn(async { std::thread::sleep(Duration::from_secs(3)) });
        std::thread::sleep(Duration::from_millis(20));
        let tool = tool();
        let first = tool.block_on(collect(Duration::from_millis(300), |asked| asked == id));
        assert_eq!(first.unanswered, [id]);
        let asked = Instant::now();
        let second = tool.block_on(collect(Duration::from_secs(20), |asked| asked == id));
        assert!(asked.elapsed() < Duration::from_secs(1), "waited {:?} again", asked.elapsed());
        assert_eq!(second.unanswered, [id]);
        // Once its runtime runs again it answers the next request, which waits for it again.
        std::thread::sleep(Duration::from_secs(3));
        let third = tool.block_on(collect(Duration::from_secs(20), |asked| asked == id));
        assert!(third.answers.contains_key(&id), "{third:?}");
        program.shutdown_timeout(Duration::from_secs(5));
    }

    #[test]
    fn a_request_cancelled_midway_leaves_the_next_one_whole() {
        let program =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let (senders, tasks): (Vec<_>, Vec<_>) = (0..2000)
            .map(|_| {
                let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                (tx, program.spawn(Traced::task(async move { rx.await.is_ok() }, None)))
            })
            .unzip();
        let ids: std::collections::HashSet<u64> = tasks.iter().map(|t| crate::hooks::id_u64(t.id())).collect();
        std::thread::sleep(Duration::from_millis(200));
        let tool = tool();
        for round in 0..10 {
            // A client that hangs up a moment after asking (a killed `taskscope stack`).
            let cancelled = tool.block_on(async {
                tokio::time::timeout(
                    Duration::from_millis(1 + round % 5),
                    collect(Duration::from_secs(2), |id| ids.contains(&id)),
                )
                .await
            });
            assert!(cancelled.is_err(), "round {round}: the first request was meant to be cut short");
            let asked = Instant::now();
            let whole = tool.block_on(collect(Duration::from_secs(2), |id| ids.contains(&id)));
            assert!(whole.unanswered.is_empty(), "round {round}: {} unanswered", whole.unanswered.len());
            assert_eq!(whole.answers.len(), ids.len(), "round {round}");
            assert!(asked.elapsed() < Duration::from_millis(1500), "round {round}: took {:?}", asked.elapsed());
        }
        drop(senders);
        for task in tasks {
            assert_eq!(program.block_on(task).ok(), Some(false), "every task ran to its end");
        }
    }
}
