//! What a tokio dump did to a runtime, once it harmed it.
//!
//! Only reached where tokio's dump was opted into on a tokio without the
//! taskdump fixes (see [`super::policy`]). There a multi-thread dump can
//! leave a worker stuck for good: in the dump itself (it never returns), or
//! at the workers' barrier after it (it returns, but a worker never comes
//! back). The first shows as a dump that tokio was asked for and that has
//! not returned within the request's timeout (`flight`); the second as a
//! worker that, in the [`WATCH_FOR`] after the dump, is still for
//! [`STILL_FOR`] or more: it neither parks, unparks nor finishes a batch of
//! polls ([`watch_workers`]). A current-thread dump can
//! panic inside the scheduler (tokio-rs/tokio#8391). Any of these marks the
//! runtime as harmed: every later tokio dump of it is refused, and every
//! surface says so, with the advice to restart the program. A worker that a
//! task blocks for that long right after a dump is taken for a lost one too:
//! refusing later dumps is the safe side of that doubt.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Once, PoisonError};
use std::time::{Duration, Instant};

use taskscope_proto as proto;
use taskscope_proto::duration;

use super::{DumpError, Registered};

/// How long workers are watched after a dump.
const WATCH_FOR: Duration = Duration::from_secs(3);
/// How long a worker must have been still, at the end of the watch, to be
/// taken for lost.
const STILL_FOR: Duration = Duration::from_secs(2);

/// The harm done to one runtime, once there is some.
#[derive(Default)]
pub(super) struct Harm(Mutex<Option<String>>);

impl Harm {
    /// What harmed the runtime, if anything did.
    pub(super) fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Records `what` (the first harm stays) and returns it as a dump error.
    pub(super) fn set(&self, what: String) -> DumpError {
        let mut harm = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if harm.is_none() {
            eprintln!("taskscope-agent: {what}; tokio's task dump of this runtime is refused from now on");
        }
        let detail = harm.get_or_insert(what).clone();
        DumpError { status: proto::DumpStatus::Harmed, detail }
    }
}

/// The message of a panic a join error carries.
pub(super) fn panic_message(error: tokio::task::JoinError) -> String {
    match error.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned()),
        Err(error) => error.to_string(),
    }
}

/// Watches the workers of `rt` for [`WATCH_FOR`] after a dump, and marks
/// the runtime harmed if one of them is still, at the end, for at least
/// [`STILL_FOR`]: neither parked, nor parking, unparking or finishing a batch
/// of polls (tokio publishes those counters at park time and every 61 polls).
pub(super) async fn watch_workers(rt: Arc<Registered>) {
    let metrics = rt.handle.metrics();
    let sample = || -> Vec<(u64, u64)> {
        (0..metrics.num_workers())
            .map(|worker| (metrics.worker_park_unpark_count(worker), metrics.worker_poll_count(worker)))
            .collect()
    };
    let started = Instant::now();
    let mut previous = sample();
    let mut still_since = vec![started; previous.len()];
    while started.elapsed() < WATCH_FOR {
        tokio::time::sleep(super::take::SAMPLE_EVERY).await;
        let now = Instant::now();
        let current = sample();
        for (worker, (before, after)) in previous.iter().zip(&current).enumerate() {
            // An odd park/unpark count: parked, i.e. idle, not lost.
            if before != after || after.0 % 2 == 1 {
                still_since[worker] = now;
            }
        }
        previous = current;
    }
    let now = Instant::now();
    if let Some(worker) = still_since.iter().position(|since| now.duration_since(*since) >= STILL_FOR) {
        rt.harm.set(format!(
            "worker {worker} of runtime `{}` has made no progress for {} right after tokio's dump of it: \
             it was lost to the dump (tokio-rs/tokio#8370) or a task blocks it",
            rt.name,
            duration::format(now.duration_since(still_since[worker]))
        ));
    }
}

/// A dump tokio was asked for has not returned within `waited`.
pub(super) fn dump_did_not_return(rt: &Registered, waited: Duration) {
    rt.harm.set(format!(
        "tokio's dump of runtime `{}` has not returned for {}: a worker is stuck inside it for good \
         (tokio-rs/tokio#8370, or its `steal_all` spinning on a full queue)",
        rt.name,
        duration::format(waited)
    ));
}

/// Current-thread dumps running now.
static IN_DUMP: AtomicUsize = AtomicUsize::new(0);
/// Panics of tokio#8391's kind seen while one ran.
static DUMP_PANICS: AtomicU64 = AtomicU64::new(0);

/// The panic tokio 1.54's current-thread dump causes: the scheduler's core
/// borrowed again by a wake during a traced poll.
fn is_8391(message: &str) -> bool {
    message.contains("already borrowed") || message.contains("already mutably borrowed")
}

/// Counts, from now on, panics of tokio#8391's kind during current-thread
/// dumps: the task that panics is caught by tokio and dies, and nothing
/// else tells. Installs a panic hook that calls the program's own hook
/// first, once, and only when such a dump is about to be taken on a tokio
/// without the fixes.
pub(super) fn count_dump_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            if IN_DUMP.load(Relaxed) > 0 {
                let payload = info.payload();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                if is_8391(&message) {
                    DUMP_PANICS.fetch_add(1, Relaxed);
                }
            }
        }));
    });
}

/// Panics of tokio#8391's kind so far (see [`count_dump_panics`]).
pub(super) fn dump_panics() -> u64 {
    DUMP_PANICS.load(Relaxed)
}

/// Marks a current-thread dump as running until dropped.
pub(super) struct InDump(());

pub(super) fn in_dump() -> InDump {
    IN_DUMP.fetch_add(1, Relaxed);
    InDump(())
}

impl Drop for InDump {
    fn drop(&mut self) {
        IN_DUMP.fetch_sub(1, Relaxed);
    }
}

/// `panics` tasks panicked inside tokio's current-thread dump of `rt`.
pub(super) fn tasks_panicked(rt: &Registered, panics: u64) -> DumpError {
    rt.harm.set(format!(
        "{panics} panic{} inside tokio's current-thread dump of runtime `{}` (\"already borrowed\", \
         tokio-rs/tokio#8391: a traced task woke a task while the dump held the scheduler); the tasks \
         that panicked were killed or lost",
        if panics == 1 { "" } else { "s" },
        rt.name
    ))
}
