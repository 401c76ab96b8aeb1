//! Whether the agent takes tokio's own task dump of a runtime.
//!
//! Why a policy: measured on tokio 1.54.1, that dump harms the program it
//! dumps, on both flavours.
//!
//! - Multi-thread: the leader's `steal_all` spins forever once more than
//!   about 129 tasks sit in the workers' queues (a worker's `steal_into`
//!   refuses once its destination holds half of its 256 slots, and the
//!   dump's own deferred wakes queue every traced task); a timed-out arrival
//!   at the workers' barrier stays counted (tokio-rs/tokio#8370); and the
//!   "trace requested" flag outlives the dump, so a worker that runs its
//!   maintenance meanwhile enters the trace alone, times out after 250 ms
//!   and leaves the barrier off by one, which is what wedges most runs (no
//!   blocked worker is needed). A worker is then lost for good and the
//!   program cannot shut down: 7 of 20 runs of a reproducer (2 workers, 300
//!   parked tasks, 3 dumps). Dropping the dump future makes no difference:
//!   it runs on a thread of its own.
//! - Current-thread: the dump keeps the scheduler's core borrowed while it
//!   re-polls the traced tasks, so a traced poll that wakes a task panics
//!   ("already borrowed", tokio-rs/tokio#8391): the task is lost or killed,
//!   and under `panic = "abort"` the process aborts. Even a program that
//!   unwinds can abort: the panic unwinds through whatever the traced poll
//!   holds, and a flume channel's lock then panics again in a destructor.
//!   Measured with the harm corpus (`examples/src/bin/harm/main.rs`, 20 dumps
//!   each, tokio's dump forced on): on current-thread, 5 of 7 shapes lost or
//!   killed tasks (all but the tokio mpsc ping-pong and the
//!   `FuturesUnordered` of sleeps) and the flume pipeline aborted the
//!   process; on 2 workers, the `futures::channel` ping-pong lost both its
//!   tasks, the tokio mpsc ping-pong froze and a `notify_one` counter
//!   stalled. With the default settings, none of the 35 configurations was
//!   harmed.
//!
//! The fixes in `patches/tokio` remove these; a tokio built with them
//! announces them at build time (`build.rs`), and then the dump is on by
//! default. Elsewhere it is off unless the program opted in
//! (`TASKSCOPE_TOKIO_DUMPS=1`), never on a current-thread runtime under
//! `panic = "abort"`, and never again on a runtime a dump has harmed.
//! Wrapped futures are captured safely either way ([`crate::capture`]).

use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

/// The fixes a multi-thread runtime's dump needs.
const MULTI_THREAD_FIXES: &[&str] = &["steal-all", "barrier-timeout", "trace-flag", "trace-wake"];
/// The fixes a current-thread runtime's dump needs.
const CURRENT_THREAD_FIXES: &[&str] = &["current-thread-wake"];

/// The taskdump fixes the program's tokio announced at build time.
pub(crate) const TOKIO_FIXES: &str = env!("TASKSCOPE_TOKIO_FIXES");

/// `TASKSCOPE_TOKIO_DUMPS`: 0 unset, 1 on, 2 off.
static CHOICE: AtomicU8 = AtomicU8::new(0);

/// Records the program's choice (`None`: the default for its tokio).
pub(crate) fn configure(choice: Option<bool>) {
    CHOICE.store(
        match choice {
            None => 0,
            Some(true) => 1,
            Some(false) => 2,
        },
        Relaxed,
    );
}

fn choice() -> Option<bool> {
    match CHOICE.load(Relaxed) {
        1 => Some(true),
        2 => Some(false),
        _ => None,
    }
}

/// Whether the program's tokio carries every fix a dump of a runtime of
/// that flavour needs.
pub(crate) fn fixed(current_thread: bool) -> bool {
    has_fixes(TOKIO_FIXES, if current_thread { CURRENT_THREAD_FIXES } else { MULTI_THREAD_FIXES })
}

fn has_fixes(announced: &str, needed: &[&str]) -> bool {
    needed.iter().all(|fix| announced.split(',').any(|have| have.trim() == *fix))
}

/// What a program with this build's settings gets for a runtime (of the
/// current-thread flavour or not): `Ok(why)` when tokio's dump is taken, `Err(why)` when not;
/// `why` is one line, saying how to change it. `harmed` is the harm an
/// earlier dump did to the runtime, if any.
pub(crate) fn decide(name: &str, current_thread: bool, harmed: Option<&str>) -> Result<String, String> {
    rule(name, current_thread, harmed, fixed(current_thread), choice(), cfg!(panic = "abort"))
}

/// [`decide`] on plain inputs.
pub(super) fn rule(
    name: &str,
    current: bool,
    harmed: Option<&str>,
    fixed: bool,
    choice: Option<bool>,
    aborts: bool,
) -> Result<String, String> {
    let var = taskscope_proto::env::TOKIO_DUMPS.name;
    if let Some(harm) = harmed {
        return Err(format!(
            "tokio's dump of runtime `{name}` is refused for good: an earlier one harmed it ({harm}); \
             restart the program to dump it again"
        ));
    }
    if choice == Some(false) {
        return Err(format!("tokio's dump is off ({var}=0)"));
    }
    if fixed {
        return Ok("the program's tokio carries taskscope's taskdump fixes".to_owned());
    }
    let version = env!("TASKSCOPE_TOKIO_VERSION");
    if current && aborts {
        return Err(format!(
            "tokio {version}'s current-thread dump panics when a traced task wakes another \
             (tokio-rs/tokio#8391), which aborts a program built with panic = \"abort\"; build against \
             the patched tokio (patches/tokio) to dump it"
        ));
    }
    if choice == Some(true) {
        return Ok(format!("{var}=1, at the program's risk (tokio {version} without the taskdump fixes)"));
    }
    let harm = if current {
        "can lose or kill a task that wakes another during the dump (tokio-rs/tokio#8391)"
    } else {
        "can leave a worker stuck for good (tokio-rs/tokio#8370)"
    };
    Err(format!(
        "tokio {version}'s task dump {harm}, so runtime `{name}` gets stacks only for tasks spawned \
         with taskscope_agent::spawn; for every task, build against the patched tokio \
         (patches/tokio), or start the program with {var}=1 for a debugging session"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MT: bool = false;
    const CT: bool = true;

    #[test]
    fn off_by_default_without_the_fixes_on_both_flavours() {
        for flavor in [MT, CT] {
            let why = rule("main", flavor, None, false, None, false).expect_err("off");
            assert!(why.contains("TASKSCOPE_TOKIO_DUMPS=1") && why.contains("patches/tokio"), "{why}");
            assert!(why.contains("taskscope_agent::spawn"), "{why}");
        }
        assert!(rule("main", MT, None, false, None, false).unwrap_err().contains("#8370"));
        assert!(rule("main", CT, None, false, None, false).unwrap_err().contains("#8391"));
    }

    #[test]
    fn on_with_the_fixes_unless_turned_off() {
        assert!(rule("main", MT, None, true, None, false).is_ok());
        assert!(rule("main", CT, None, true, None, true).is_ok(), "fixed: no panic to abort on");
        assert!(rule("main", MT, None, true, Some(false), false).is_err());
    }

    #[test]
    fn the_opt_in_never_covers_an_aborting_current_thread_runtime_nor_a_harmed_one() {
        assert!(rule("main", MT, None, false, Some(true), true).is_ok());
        assert!(rule("main", CT, None, false, Some(true), false).is_ok());
        let why = rule("main", CT, None, false, Some(true), true).expect_err("abort");
        assert!(why.contains("panic = \"abort\""), "{why}");
        let why = rule("main", MT, Some("worker 1 lost"), true, Some(true), false).expect_err("harmed");
        assert!(why.contains("worker 1 lost") && why.contains("restart"), "{why}");
    }

    #[test]
    fn fixes_are_matched_by_name() {
        // As the patched tokio of `patches/tokio` announces them.
        let all = "steal-all,barrier-timeout,trace-flag,trace-wake,current-thread-wake";
        assert!(has_fixes(all, MULTI_THREAD_FIXES) && has_fixes(all, CURRENT_THREAD_FIXES));
        assert!(has_fixes(" trace-wake, trace-flag , steal-all,barrier-timeout", MULTI_THREAD_FIXES));
        assert!(!has_fixes("steal-all,barrier-timeout,trace-flag", MULTI_THREAD_FIXES));
        assert!(!has_fixes("", CURRENT_THREAD_FIXES));
    }
}
