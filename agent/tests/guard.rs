//! The test guard in the full mode, on real runtimes: tasks really left
//! behind fail it with their grouped report (location, state, leak verdict,
//! the stack of a wrapped task), tasks that finish within the retry pass,
//! and each option changes exactly what it says.
//!
//! The tests run in parallel in this one process, each on its own runtime,
//! which is itself part of what is tested: no test sees another's tasks.

use std::time::Duration;

use taskscope_agent::guard::{verify_none_with, Guard, Options};

async fn waits_forever() {
    std::future::pending::<()>().await;
}

async fn waits_for(rx: tokio::sync::oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn ticks_forever() {
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

#[test]
fn a_task_left_behind_fails_with_its_report() {
    current_thread().block_on(async {
        let guard = Guard::new().retry_for(Duration::from_millis(100));
        let line = line!() + 1;
        taskscope_agent::spawn(waits_forever());
        let (_tx, rx) = tokio::sync::oneshot::channel();
        taskscope_agent::spawn(waits_for(rx));
        let leaks = guard.check().await.expect_err("tasks were left");
        assert_eq!(leaks.count(), 2);
        let report = leaks.to_string();
        assert!(
            report.starts_with("taskscope: 2 tasks spawned since the guard taken at agent/tests/guard.rs:"),
            "{report}"
        );
        assert!(report.contains("are still alive after"), "{report}");
        assert!(report.contains("(1 leaked: nothing can wake it)"), "{report}");
        let leaked = "1 task [idle, leaked] parked";
        let leaked_at = report.find(leaked).unwrap_or_else(|| panic!("{report}"));
        assert!(report[leaked_at..].contains(&format!("spawned at agent/tests/guard.rs:{line}:9")), "{report}");
        assert!(report.contains("it awaits nothing a task dump can trace"), "{report}");
        let waiter = "1 task [idle, oneshot receive] parked";
        let waiter_at = report.find(waiter).unwrap_or_else(|| panic!("{report}"));
        let block = &report[waiter_at..];
        assert!(block.contains(&format!("spawned at agent/tests/guard.rs:{}:9", line + 2)), "{report}");
        assert!(block.contains("stack (captured safely):"), "{report}");
        assert!(block.contains("guard::waits_for"), "{report}");
    });
}

#[test]
fn a_clean_test_passes_and_tasks_that_are_finishing_get_the_retry() {
    current_thread().block_on(async {
        let guard = Guard::new();
        let tasks: Vec<_> = (0..100).map(|i| tokio::spawn(async move { i * 2 })).collect();
        for task in tasks {
            task.await.expect("joined");
        }
        guard.check().await.expect("every task joined");
        // Still running when the check starts, done well within 500 ms.
        tokio::spawn(tokio::time::sleep(Duration::from_millis(150)));
        guard.check().await.expect("finished within the retry");
    });
}

#[test]
fn without_retry_a_finishing_task_is_reported() {
    current_thread().block_on(async {
        let guard = Guard::new().retry_for(Duration::ZERO);
        tokio::spawn(tokio::time::sleep(Duration::from_millis(300)));
        let leaks = guard.check().await.expect_err("still sleeping");
        let report = leaks.to_string();
        assert!(report.contains("1 task spawned since the guard"), "{report}");
        assert!(!report.contains("after"), "no retry, no wait: {report}");
        assert!(!report.contains("leaked"), "a sleeping task has a waker: {report}");
    });
}

#[test]
fn tasks_alive_before_the_guard_are_ignored_unless_asked() {
    current_thread().block_on(async {
        let (_tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(waits_for(rx));
        tokio::task::yield_now().await;
        Guard::new().retry_for(Duration::ZERO).check().await.expect("it existed before");
        let leaks =
            Guard::new().include_existing().retry_for(Duration::ZERO).check().await.expect_err("counted when asked");
        assert_eq!(leaks.count(), 1, "{leaks}");
    });
}

#[test]
fn leaked_only_counts_the_tasks_nothing_can_wake() {
    current_thread().block_on(async {
        let guard = Guard::new().leaked_only().retry_for(Duration::from_millis(50));
        let (_tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(waits_for(rx));
        guard.check().await.expect("parked with a live sender: not leaked");
        tokio::spawn(waits_forever());
        let leaks = guard.check().await.expect_err("nothing can wake this one");
        assert_eq!(leaks.count(), 1, "{leaks}");
        assert!(leaks.to_string().contains("1 leaked"), "{leaks}");
    });
}

#[test]
fn ignoring_by_location_and_by_function() {
    current_thread().block_on(async {
        let options = Options::default().retry_for(Duration::from_millis(50));
        let by_location = Guard::with(options.clone().ignore_location(format!("agent/tests/guard.rs:{}", line!() + 1)));
        tokio::spawn(waits_forever());
        by_location.check().await.expect("its location is ignored");

        let by_function = Guard::with(options.clone().ignore_function("guard::ticks_forever"));
        taskscope_agent::spawn(ticks_forever());
        by_function.check().await.expect("its stack names an ignored function");

        let by_top = Guard::with(options.clone().ignore_top_function("guard::ticks_forever"));
        taskscope_agent::spawn(ticks_forever());
        let leaks = by_top.check().await.expect_err("the ticker is not the innermost frame: the sleep is");
        assert_eq!(leaks.count(), 1, "{leaks}");
        let by_sleep = Guard::with(options.clone().ignore_top_function("tokio::time::sleep::Sleep::poll_elapsed"));
        taskscope_agent::spawn(ticks_forever());
        by_sleep.check().await.expect("the innermost frame is the sleep's");

        let namesake = Guard::with(options.clone().ignore_function("guard::ticks"));
        taskscope_agent::spawn(ticks_forever());
        assert!(namesake.check().await.is_err(), "a prefix of a name is not that function");

        // Empty patterns (a variable that was not set) ignore nothing.
        let empty = Guard::with(options.ignore_location("").ignore_function("").ignore_top_function(" "));
        tokio::spawn(waits_forever());
        assert_eq!(empty.check().await.expect_err("nothing is ignored").count(), 1);
    });
}

#[test]
fn verify_none_checks_the_whole_runtime_but_the_caller() {
    current_thread().block_on(async {
        // Taken once, so that the full mode attributes this runtime's spawns.
        drop(Guard::new());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let waiter = tokio::spawn(waits_for(rx));
        let checker = tokio::spawn(async {
            let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(verify_none_with(
                Options::default().include_existing().retry_for(Duration::from_millis(50)),
            )))
            .await;
            outcome.err().and_then(|p| p.downcast::<String>().ok()).map(|s| *s)
        });
        let report = checker.await.expect("checker").expect("the waiter is left");
        assert!(report.contains("1 task of the runtime checked at"), "{report}");
        tx.send(()).expect("waiter");
        waiter.await.expect("waiter");
    });
}

#[test]
fn a_multi_thread_runtime_is_guarded_the_same() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        let guard = Guard::new().retry_for(Duration::from_millis(100));
        let joined: Vec<_> = (0..50).map(|_| tokio::spawn(tokio::task::yield_now())).collect();
        for task in joined {
            task.await.expect("joined");
        }
        guard.check().await.expect("clean");
        let (_tx, rx) = tokio::sync::oneshot::channel();
        taskscope_agent::task::Builder::new().name("left-waiter").spawn(waits_for(rx)).expect("spawned");
        let report = guard.check().await.expect_err("left").to_string();
        assert!(report.contains("1 task [idle, oneshot receive] parked"), "{report}");
        assert!(report.contains("left-waiter"), "{report}");
        assert!(report.contains("guard::waits_for"), "{report}");
    });
}

#[taskscope_agent::test]
async fn the_attribute_passes_a_clean_test() {
    let task = tokio::spawn(async { 7 });
    assert_eq!(task.await.expect("joined"), 7);
}

#[taskscope_agent::test(retry = "50ms")]
#[should_panic(expected = "1 task spawned since the guard taken at agent/tests/guard.rs:")]
async fn the_attribute_fails_a_test_that_leaks() {
    tokio::spawn(waits_forever());
}

#[taskscope_agent::test(flavor = "multi_thread", worker_threads = 2, ignore_location = "agent/tests/guard.rs")]
async fn the_attribute_takes_the_guards_options() {
    tokio::spawn(waits_forever());
}

// Paused time: the test's clock stands still until its runtime has nothing
// to do, then jumps to the next timer. The guard waits on the agent's own
// runtime and clock, so while it waits the test's runtime is idle and its
// tasks' timers fire at once.

#[taskscope_agent::test(start_paused = true)]
async fn with_paused_time_a_task_on_a_long_timer_finishes_within_the_retry() {
    let started = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(started.elapsed() < Duration::from_secs(60), "the attribute paused the test's clock");
    // Still asleep when the body returns: an hour of paused time, which
    // passes while the guard waits.
    tokio::spawn(tokio::time::sleep(Duration::from_secs(3600)));
}

#[taskscope_agent::test(start_paused = true, retry = "50ms")]
#[should_panic(expected = "1 task spawned since the guard taken at agent/tests/guard.rs:")]
async fn with_paused_time_a_task_left_behind_still_fails() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(waits_for(rx));
    // The sender outlives the check: the task is left behind, and no
    // amount of paused time passing finishes it.
    std::mem::forget(tx);
}
