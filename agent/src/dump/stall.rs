//! Why a multi-thread runtime has not been dumped yet, in words that tell a
//! task blocking a worker from a worker that tokio itself wedged.
//!
//! Why: both look the same from tokio's metrics (a worker whose counters
//! stopped moving), and both make a dump wait, but they call for opposite
//! actions: a task inside a long poll is the program's bug, to be found by
//! its id and spawn location; a worker stuck with no task inside a poll is
//! tokio's own (its dump machinery on a tokio without the fixes of
//! `patches/tokio`, see `super::policy`), and nothing in the program blocks
//! it. The agent knows which tasks are inside a poll (their slots'
//! `running` flag and poll start), so the timeout's detail says which case
//! it is instead of guessing "a task is probably blocking a worker".
//!
//! [`describe`] decides from plain data, so it is tested alone; [`polling`]
//! reads the task table, on the agent's thread (the only place names are
//! read safely, see `Slot::name`).

use std::time::Duration;

use taskscope_proto::duration;

use crate::slots::{kind_name, HOOKED, LIVE};

/// What a dump waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stall {
    /// Too many tasks are queued on the workers (`take::MAX_QUEUED`).
    Queued { queued: usize, most: usize },
    /// A worker's counters have not moved for `still_for`.
    Worker { worker: usize, still_for: Duration },
    /// tokio was asked for the dump `ago` and has not returned.
    Asked { ago: Duration },
}

/// A program task inside a poll now, as the agent recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Polling {
    pub id: u64,
    pub name: String,
    /// `file:line:col`, or empty when unknown.
    pub location: String,
    /// How long its current poll has lasted.
    pub polling_for: Duration,
}

/// Polls shorter than a worker's stillness by more than this are another
/// worker's: the counters stop at their last publication (every 61 polls
/// or at park), up to one sample before the long poll starts, and the
/// agent's clock ticks every 10 ms (both modes, unless times are exact).
const SLACK: Duration = Duration::from_millis(250);

/// Why the dump waits, given what it waits for and the program's tasks
/// inside a poll now (`None` when the agent records no task of the runtime,
/// so it cannot tell).
pub(crate) fn describe(stall: &Stall, polling: Option<&[Polling]>, fixed_tokio: bool) -> String {
    let longest = |at_least: Duration| {
        polling?.iter().filter(|p| p.polling_for + SLACK >= at_least).max_by_key(|p| p.polling_for)
    };
    match stall {
        Stall::Queued { queued, most } => {
            format!("{queued} tasks are queued on the workers; the dump waits until fewer than {most} are")
        }
        Stall::Worker { worker, still_for } => {
            let still = format!(
                "worker {worker} has not come back to the scheduler for at least {}",
                duration::format(*still_for)
            );
            match (polling, longest(*still_for)) {
                (_, Some(task)) => format!(
                    "{still}: {} has been inside one poll for {}, blocking it (a blocking call inside async \
                     code?); the dump waits for it to return",
                    task_words(task),
                    duration::format(task.polling_for)
                ),
                (Some(_), None) => format!("{still}, yet no task is inside a poll: {}", wedged(fixed_tokio)),
                (None, None) => format!(
                    "{still}: a task is probably inside one long poll there (the agent records no task of \
                     this runtime, so it cannot tell which); the dump waits for it to return"
                ),
            }
        }
        Stall::Asked { ago } => {
            let asked = format!("tokio was asked for the dump {} ago and has not returned", duration::format(*ago));
            // A poll that began before tokio was asked, and still goes on.
            match (polling, longest(*ago)) {
                (_, Some(task)) => format!(
                    "{asked}: {} has been inside one poll for {}, which holds a worker away from the dump",
                    task_words(task),
                    duration::format(task.polling_for)
                ),
                (Some(_), None) => format!("{asked}, and no task is inside a poll: {}", wedged(fixed_tokio)),
                (None, None) => format!("{asked}: a task is probably blocking a worker thread"),
            }
        }
    }
}

/// A worker stuck while no task is inside a poll.
fn wedged(fixed_tokio: bool) -> String {
    let cause = if fixed_tokio {
        "which should not happen with the fixes of patches/tokio: please report it"
    } else {
        "a tokio 1.54 bug that earlier dumps trigger: tokio-rs/tokio#8370 and the others patches/tokio fixes"
    };
    format!(
        "the worker is stuck inside tokio's own task-dump machinery, not blocked by a task ({cause}); \
         restart the program to get the worker back"
    )
}

/// `task 42 ("name") spawned at src/x.rs:3:5`.
fn task_words(task: &Polling) -> String {
    let mut words = format!("task {}", task.id);
    if !task.name.is_empty() {
        words.push_str(&format!(" ({:?})", task.name));
    }
    if !task.location.is_empty() {
        words.push_str(&format!(" spawned at {}", task.location));
    }
    words
}

/// The tasks of the runtime `runtime` (as `tags::runtime_u64`) inside a poll
/// now; `None` when the agent records no task lifecycle of that runtime.
/// Tasks of tokio's runtime itself, blocking tasks and `block_on` futures
/// run on no worker and are left out. A task still in its first poll is
/// counted whatever its tag, which until then may be its spawner's runtime.
pub(crate) fn polling(runtime: u64) -> Option<Vec<Polling>> {
    let recorder = crate::recorder_if_started()?;
    let recorded = match crate::recorder::mode() {
        "none" => false,
        "hooks" => !crate::tags::tags_of(runtime).is_empty(),
        _ => true,
    };
    if !recorded {
        return None;
    }
    let files = crate::files::FILES.get().map(|f| f.all()).unwrap_or_default();
    let now = crate::clock::raw();
    let mut found = Vec::new();
    for index in 0..recorder.table.len() {
        let Some((key, slot)) = recorder.table.held(index) else { continue };
        use std::sync::atomic::Ordering::Acquire;
        if slot.phase.load(Acquire) != LIVE || slot.running.load(Acquire) == 0 || slot.spawned_at.load(Acquire) == 0 {
            continue;
        }
        let kind = slot.kind.load(Acquire);
        let file = slot.file.load(Acquire);
        let off_worker = kind & HOOKED == 0 && matches!(kind_name(kind), "blocking" | "block_on");
        let elsewhere =
            slot.polls.load(Acquire) > 0 && crate::tags::runtime_of(kind).is_some_and(|other| other != runtime);
        if off_worker || elsewhere || files.in_runtime(file) {
            continue;
        }
        let started = slot.poll_started.load(Acquire);
        let line_col = slot.line_col.load(Acquire);
        let location =
            files.name(file).map(|f| format!("{f}:{}:{}", line_col >> 32, line_col as u32)).unwrap_or_default();
        let task = Polling {
            id: slot.task_id.load(Acquire),
            name: slot.name(),
            location,
            polling_for: Duration::from_nanos(crate::clock::ticks_to_ns(now.saturating_sub(started))),
        };
        if recorder.table.still(key, slot) {
            found.push(task);
        }
    }
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: u64, polling_ms: u64) -> Polling {
        Polling {
            id,
            name: String::new(),
            location: "examples/src/bin/blocker.rs:96:5".into(),
            polling_for: Duration::from_millis(polling_ms),
        }
    }

    const STILL: Stall = Stall::Worker { worker: 0, still_for: Duration::from_secs(2) };

    #[test]
    fn a_task_inside_a_long_poll_is_named() {
        let polling = [task(7, 300), task(42, 2100)];
        let why = describe(&STILL, Some(&polling), false);
        assert_eq!(
            why,
            "worker 0 has not come back to the scheduler for at least 2s: task 42 spawned at \
             examples/src/bin/blocker.rs:96:5 has been inside one poll for 2.1s, blocking it (a blocking \
             call inside async code?); the dump waits for it to return"
        );
    }

    #[test]
    fn no_task_inside_a_poll_is_tokio_wedged() {
        // Inside a poll, but for far less time than the worker has been
        // still: another worker's poll, not what holds this one.
        let why = describe(&STILL, Some(&[task(7, 300)]), false);
        assert!(
            why.starts_with(
                "worker 0 has not come back to the scheduler for at least 2s, yet no task is inside a poll: "
            ),
            "{why}"
        );
        assert!(why.contains("stuck inside tokio's own task-dump machinery, not blocked by a task"), "{why}");
        assert!(why.contains("tokio-rs/tokio#8370"), "{why}");
        assert!(!why.contains("task 7"), "{why}");
        let fixed = describe(&STILL, Some(&[]), true);
        assert!(fixed.contains("should not happen with the fixes of patches/tokio"), "{fixed}");
    }

    #[test]
    fn without_records_it_cannot_tell() {
        let why = describe(&STILL, None, false);
        assert!(why.contains("the agent records no task of this runtime"), "{why}");
        assert!(!why.contains("tokio's own"), "{why}");
    }

    #[test]
    fn a_dump_that_tokio_does_not_return() {
        let asked = Stall::Asked { ago: Duration::from_secs(3) };
        let why = describe(&asked, Some(&[]), false);
        assert!(
            why.starts_with("tokio was asked for the dump 3s ago and has not returned, and no task is inside a poll: "),
            "{why}"
        );
        let why = describe(&asked, Some(&[Polling { name: "logs".into(), ..task(9, 5000) }]), false);
        assert!(
            why.contains(
                ": task 9 (\"logs\") spawned at examples/src/bin/blocker.rs:96:5 has been inside one poll for 5s"
            ),
            "{why}"
        );
    }

    #[test]
    fn queued_tasks() {
        let why = describe(&Stall::Queued { queued: 300, most: 64 }, None, false);
        assert_eq!(why, "300 tasks are queued on the workers; the dump waits until fewer than 64 are");
    }
}
