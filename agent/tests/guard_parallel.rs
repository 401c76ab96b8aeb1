//! Tests running in parallel in one test binary do not see each other's
//! tasks: the proof that goleak cannot give (it refuses `t.Parallel()`).
//!
//! The `child_*` tests are the test binary under test: eight that leak a
//! task and eight clean ones, all under `#[taskscope_agent::test]`, each on
//! its own runtime, whose tasks overlap in time. They are ignored in a plain
//! run; `only_the_leaking_tests_fail_every_time` runs this executable again
//! with `--ignored --test-threads 16`, five times, and reads libtest's
//! verdicts: every leaking test fails with a report of its own one task,
//! every clean test passes.

use std::time::Duration;

async fn waits_forever() {
    std::future::pending::<()>().await;
}

/// Tasks that live a while and are joined: alive while the other tests
/// check, gone before this one does.
async fn busy_and_joined() {
    let tasks: Vec<_> = (0..20).map(|i| tokio::spawn(tokio::time::sleep(Duration::from_millis(5 * i)))).collect();
    for task in tasks {
        task.await.expect("joined");
    }
}

macro_rules! children {
    ($($leaky:ident, $clean:ident;)*) => {$(
        #[taskscope_agent::test(retry = "300ms")]
        #[ignore = "a child of only_the_leaking_tests_fail_every_time, which runs it"]
        async fn $leaky() {
            busy_and_joined().await;
            tokio::spawn(waits_forever());
            busy_and_joined().await;
        }

        #[taskscope_agent::test(flavor = "multi_thread", worker_threads = 2, retry = "300ms")]
        #[ignore = "a child of only_the_leaking_tests_fail_every_time, which runs it"]
        async fn $clean() {
            busy_and_joined().await;
            busy_and_joined().await;
        }
    )*};
}

children! {
    child_leaky_1, child_clean_1;
    child_leaky_2, child_clean_2;
    child_leaky_3, child_clean_3;
    child_leaky_4, child_clean_4;
    child_leaky_5, child_clean_5;
    child_leaky_6, child_clean_6;
    child_leaky_7, child_clean_7;
    child_leaky_8, child_clean_8;
}

#[test]
fn only_the_leaking_tests_fail_every_time() {
    let exe = std::env::current_exe().expect("this test's executable");
    for run in 1..=5 {
        let out = std::process::Command::new(&exe)
            .args(["--ignored", "--test-threads", "16", "child_"])
            .output()
            .expect("the children ran");
        let stdout = String::from_utf8_lossy(&out.stdout);
        for n in 1..=8 {
            assert!(stdout.contains(&format!("test child_clean_{n} ... ok")), "run {run}: clean {n}:\n{stdout}");
            assert!(stdout.contains(&format!("test child_leaky_{n} ... FAILED")), "run {run}: leaky {n}:\n{stdout}");
            let section = stdout
                .split(&format!("---- child_leaky_{n} stdout ----"))
                .nth(1)
                .and_then(|rest| rest.split("\n---- ").next())
                .unwrap_or_else(|| panic!("run {run}: no failure output for leaky {n}:\n{stdout}"));
            assert!(section.contains("taskscope: 1 task spawned since the guard"), "run {run}: leaky {n}:\n{section}");
            assert!(section.contains("1 task [idle, leaked]"), "run {run}: leaky {n}:\n{section}");
        }
        assert!(stdout.contains("test result: FAILED. 8 passed; 8 failed"), "run {run}:\n{stdout}");
    }
}
