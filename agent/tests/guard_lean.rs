//! The test guard in the lean mode (runtime hooks, no wakers seen), which a
//! build without the `tracing` feature gets. This binary is built with it
//! (features unify in the workspace), so the process is put in the lean mode
//! first, by building a runtime through `taskscope_agent::build_runtime`,
//! as a lean program does; everything after runs in that mode.
//!
//! One test function: the mode is the process's, chosen once.

use std::time::Duration;

use taskscope_agent::guard::Guard;

async fn waits_for(rx: tokio::sync::oneshot::Receiver<()>) {
    let _ = rx.await;
}

#[taskscope_agent::test(retry = "100ms")]
#[ignore = "run by lean_mode_guards once the process is in the lean mode"]
async fn leaky() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(waits_for(rx));
    std::mem::forget(tx);
}

#[taskscope_agent::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by lean_mode_guards once the process is in the lean mode"]
async fn clean() {
    let tasks: Vec<_> = (0..100).map(|i| tokio::spawn(async move { i })).collect();
    for task in tasks {
        task.await.expect("joined");
    }
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(text) => *text,
        Err(payload) => payload.downcast::<&str>().map(|s| s.to_string()).unwrap_or_default(),
    }
}

#[test]
fn lean_mode_guards() {
    let first = taskscope_agent::build_runtime(tokio::runtime::Builder::new_current_thread().enable_all())
        .expect("a lean runtime");
    drop(first);

    clean();
    let report = panic_text(std::panic::catch_unwind(leaky).expect_err("the leak is caught"));
    assert!(report.starts_with("taskscope: 1 task spawned since the guard taken at"), "{report}");
    assert!(report.contains("note: lean mode (runtime hooks)"), "{report}");
    assert!(report.contains("1 task [idle] parked"), "{report}");
    assert!(report.contains("spawned at agent/tests/guard_lean.rs:21:5"), "{report}");
    assert!(
        !report.contains(", leaked") && !report.contains("leaked:"),
        "the lean mode calls nothing leaked: {report}"
    );

    let lean = taskscope_agent::build_runtime(tokio::runtime::Builder::new_current_thread().enable_all())
        .expect("a lean runtime");
    lean.block_on(async {
        let refused = Guard::new().leaked_only().check().await.expect_err("needs wakers");
        assert!(refused.to_string().contains("`leaked_only` needs the full mode"), "{refused}");
        assert_eq!(refused.count(), 0);
    });

    let unhooked = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a plain runtime");
    unhooked.block_on(async {
        let guard = Guard::new().retry_for(Duration::ZERO);
        let refused = guard.check().await.expect_err("cannot see this runtime");
        assert!(refused.to_string().contains("this runtime has no taskscope hooks"), "{refused}");
    });
}
