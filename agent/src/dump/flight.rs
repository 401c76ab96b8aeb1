//! Single-flight dumps: at most one tokio dump per runtime is in progress,
//! every request arriving meanwhile shares its answer, and a request's
//! timeout only bounds its own wait.
//!
//! Once tokio has been asked for the dump, it runs to completion in a task
//! of the agent's runtime whatever happens to the requests, so that a
//! runtime that answers late is dumped once, not once per request. (Dropping
//! tokio 1.54's dump future midway would make no difference to the runtime:
//! the dump runs on its own thread; what wedges it is in `super::policy`.)
//! Before that point, while the dump still waits for the runtime to be safe
//! to dump (see `take`), it is abandoned as soon as no request waits for it
//! any more, so that a runtime blocked for an hour is not dumped an hour
//! later for nobody.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use taskscope_proto as proto;
use taskscope_proto::duration;
use tokio::runtime::Handle;
use tokio::sync::watch;

use super::stall::{self, Stall};
use super::{runtime_dump, Answer, Registered};

/// The dump in flight for one runtime, if any.
#[derive(Default)]
pub(super) struct Slot(Mutex<Option<Flight>>);

impl Registered {
    /// True when no dump of this runtime is in flight.
    #[cfg(test)]
    pub(super) fn flight_is_idle(&self) -> bool {
        self.flight.0.lock().unwrap_or_else(PoisonError::into_inner).is_none()
    }
}

/// A dump in progress, as seen by a request waiting for it.
#[derive(Clone)]
struct Flight {
    generation: u64,
    started: Instant,
    answer: watch::Receiver<Option<Arc<Answer>>>,
    /// What the dump is still waiting for, when it knows.
    stalled: Arc<Mutex<Option<Stall>>>,
    /// When tokio was asked for the dump, once it was.
    asked: Arc<Mutex<Option<Instant>>>,
}

/// The dump's side of a flight.
pub(super) struct Progress {
    rt: Arc<Registered>,
    generation: u64,
    sender: watch::Sender<Option<Arc<Answer>>>,
    stalled: Arc<Mutex<Option<Stall>>>,
    asked: Arc<Mutex<Option<Instant>>>,
}

impl Progress {
    /// Records what the dump is still waiting for (`None`: it no longer
    /// is), for the requests that time out meanwhile.
    pub(super) fn stalled(&self, why: Option<Stall>) {
        *self.stalled.lock().unwrap_or_else(PoisonError::into_inner) = why;
    }

    /// Records that tokio is being asked for the dump now.
    pub(super) fn asked(&self) {
        *self.asked.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }

    /// True, and the flight is withdrawn, when no request waits for it any
    /// more. Only to be used before tokio has been asked for the dump.
    pub(super) fn unwanted(&self) -> bool {
        let mut slot = self.rt.flight.0.lock().unwrap_or_else(PoisonError::into_inner);
        // Requests join under this lock, so none can join between the check
        // and the withdrawal. The slot's own copy is one receiver.
        let ours = slot.as_ref().is_some_and(|f| f.generation == self.generation);
        if ours && self.sender.receiver_count() <= 1 {
            *slot = None;
            return true;
        }
        !ours
    }

    fn finish(self, answer: Answer) {
        let _ = self.sender.send(Some(Arc::new(answer)));
        let mut slot = self.rt.flight.0.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().is_some_and(|f| f.generation == self.generation) {
            *slot = None;
        }
    }
}

/// Waits at most `timeout` for the answer of the dump in flight for `rt`,
/// starting one if none is.
pub(super) async fn answer(rt: &Arc<Registered>, timeout: Duration) -> Result<Arc<Answer>, proto::RuntimeDump> {
    let requested = Instant::now();
    let failed = |status, detail: &str| runtime_dump(rt, status, detail, requested.elapsed());
    let mut flight = join_or_start(rt).map_err(|why| failed(proto::DumpStatus::Failed, &why))?;
    let waited = tokio::time::timeout(timeout, flight.answer.wait_for(Option::is_some)).await;
    match waited {
        Ok(Ok(answer)) => answer
            .as_ref()
            .map(Arc::clone)
            .ok_or_else(|| failed(proto::DumpStatus::Failed, &format!("runtime `{}` sent an empty answer", rt.name))),
        Ok(Err(_)) => Err(failed(
            proto::DumpStatus::Failed,
            &format!("the dump of runtime `{}` was abandoned (is the agent shutting down?)", rt.name),
        )),
        Err(_) => {
            let late = format!("runtime `{}` did not answer within {}", rt.name, duration::format(timeout));
            let stalled = flight.stalled.lock().unwrap_or_else(PoisonError::into_inner).clone();
            let asked = *flight.asked.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(asked) = asked {
                // tokio itself does not return: on a tokio without the
                // fixes, that is a worker lost inside its dump.
                if !rt.current_thread() && !super::policy::fixed(false) {
                    super::harm::dump_did_not_return(rt, asked.elapsed());
                }
            }
            let waiting_for = flight.started.elapsed();
            let detail = match stalled.or(asked.map(|at| Stall::Asked { ago: at.elapsed() })) {
                // Which task holds a worker, or that none does (tokio
                // wedged it), from the tasks inside a poll right now.
                Some(stall) => {
                    let polling = stall::polling(crate::tags::runtime_u64(&rt.handle));
                    let fixed = super::policy::fixed(rt.current_thread());
                    format!("{late}: {}", stall::describe(&stall, polling.as_deref(), fixed))
                }
                None if waiting_for > timeout + Duration::from_millis(100) => format!(
                    "{late}: a task is probably blocking a worker thread (a dump requested {} ago is still waiting)",
                    duration::format(waiting_for)
                ),
                None => format!("{late}: a task is probably blocking a worker thread"),
            };
            Err(failed(proto::DumpStatus::TimedOut, &detail))
        }
    }
}

/// The dump in flight for `rt`, or a new one started in a task of the
/// current (agent) runtime.
fn join_or_start(rt: &Arc<Registered>) -> Result<Flight, String> {
    static GENERATION: AtomicU64 = AtomicU64::new(0);
    let agent = Handle::try_current().map_err(|_| "a dump must be requested from inside a tokio runtime".to_owned())?;
    let mut slot = rt.flight.0.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(flight) = slot.as_ref() {
        // A flight whose task vanished without answering (the agent's
        // runtime is shutting down) is replaced; any other one is joined.
        let vanished = flight.answer.has_changed().is_err() && flight.answer.borrow().is_none();
        if !vanished {
            return Ok(flight.clone());
        }
    }
    let (sender, receiver) = watch::channel(None);
    let generation = GENERATION.fetch_add(1, Ordering::Relaxed);
    let stalled = Arc::new(Mutex::new(None));
    let asked = Arc::new(Mutex::new(None));
    let flight = Flight {
        generation,
        started: Instant::now(),
        answer: receiver,
        stalled: Arc::clone(&stalled),
        asked: Arc::clone(&asked),
    };
    *slot = Some(flight.clone());
    drop(slot);

    let progress = Progress { rt: Arc::clone(rt), generation, sender, stalled, asked };
    agent.spawn(async move {
        let started = Instant::now();
        // `None`: withdrawn before tokio was asked, nobody to answer.
        if let Some(outcome) = super::take_dump(&progress.rt, &progress).await {
            progress.finish(Answer { elapsed: started.elapsed(), outcome, stacks: Default::default() });
        }
    });
    Ok(flight)
}
