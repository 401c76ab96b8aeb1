//! What a tokio dump did to a runtime, once it harmed it.
//!
//! Only reached where tokio's dump was opted into on a tokio without the
//! taskdump fixes (see [`super::policy`]). There a multi-thread dump can
//! leave a worker stuck for good: in the dump itself (it never returns), or
//! at the workers' barrier after it (it returns, but a worker never comes
//! back). The first shows as a dump that tokio was asked for and that has
//! not returned within the request's timeout (`flight`); the second as a
//! worker that, for [`WATCH_FOR`] after the dump, neither parks, unparks nor
//! finishes a batch of polls ([`watch_workers`]). A current-thread dump can
//! panic inside the scheduler (tokio-rs/tokio#8391). Any of these marks the
//! runtime as harmed: every later tokio dump of it is refused, and every
//! surface says so, with the advice to restart the program. A worker that a
//! task blocks for that long right after a dump is taken for a lost one too:
//! refusing later dumps is the safe side of that doubt.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use taskscope_proto as proto;
use taskscope_proto::duration;

use super::{DumpError, Registered};

/// How long workers are watched after a dump.
const WATCH_FOR: Duration = Duration::from_secs(3);

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
        let detail = harm.get_or_insert(what).clone();
        eprintln!("taskscope-agent: {detail}; tokio's task dump of this runtime is refused from now on");
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
/// the runtime harmed if one of them never moved.
pub(super) async fn watch_workers(rt: Arc<Registered>) {
    let metrics = rt.handle.metrics();
    let sample = || -> Vec<(u64, u64)> {
        (0..metrics.num_workers())
            .map(|worker| (metrics.worker_park_unpark_count(worker), metrics.worker_poll_count(worker)))
            .collect()
    };
    let started = Instant::now();
    let first = sample();
    let mut moved: Vec<bool> = first.iter().map(|(parks, _)| parks % 2 == 1).collect();
    while started.elapsed() < WATCH_FOR {
        tokio::time::sleep(super::take::SAMPLE_EVERY).await;
        for (worker, now) in sample().iter().enumerate() {
            // An odd park/unpark count: parked, i.e. idle, not lost.
            if Some(now) != first.get(worker) || now.0 % 2 == 1 {
                moved[worker] = true;
            }
        }
        if moved.iter().all(|&m| m) {
            return;
        }
    }
    if let Some(worker) = moved.iter().position(|&m| !m) {
        rt.harm.set(format!(
            "worker {worker} of runtime `{}` has made no progress for {} since tokio's dump of it: it was \
             lost to the dump (tokio-rs/tokio#8370) or a task blocks it",
            rt.name,
            duration::format(WATCH_FOR)
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
