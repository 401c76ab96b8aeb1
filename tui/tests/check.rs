//! `taskscope check` against the real example programs, leaky and fixed:
//! each condition fails on the leak it is for, with the offending tasks'
//! report, and passes on the fixed program; the exit status tells a failed
//! check (1) from one that could not be made (2).

mod common;

use std::time::Duration;

use common::example::Example;
use common::*;

#[test]
fn a_leaked_task_fails_the_default_check_and_an_allowed_one_does_not() {
    let dir = temp_dir();
    let ex = Example::start(dir.path(), "orphan_receiver", &[]);
    let pid = ex.pid();
    let run = taskscope_until(dir.path(), &["check", &pid], |run| run.code == 1);
    assert_eq!(run.code, 1, "{run:?}");
    let out = &run.stdout;
    let first = out.lines().next().unwrap_or_default();
    assert_eq!(first, format!("taskscope check: process {pid} (orphan_receiver): 1 condition failed"), "{out}");
    assert!(out.contains("  1 task leaked (idle, and nothing can wake it) (--leaked)\n"), "{out}");
    let group = out.lines().find(|l| l.starts_with("1 task [idle, leaked] parked ")).unwrap_or_else(|| panic!("{out}"));
    assert!(group.contains("spawned at examples/src/bin/orphan_receiver.rs:"), "{group}");
    assert!(!out.contains("1 task [idle] parked"), "only the offending task is listed: {out}");

    let json = taskscope(dir.path(), &["check", &pid, "--json"]);
    assert_eq!(json.code, 1, "{json:?}");
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(v["clean"], false, "{v}");
    assert_eq!(v["violations"][0]["condition"], "--leaked", "{v}");
    assert_eq!(v["violations"][0]["task_ids"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["report"]["groups"].as_array().map(Vec::len), Some(1), "{v}");

    let allowed = taskscope(dir.path(), &["check", &pid, "--allow", "orphan_receiver.rs:"]);
    assert_eq!(allowed.code, 0, "{allowed:?}");
    assert_eq!(allowed.stdout, format!("taskscope check: process {pid} (orphan_receiver): clean\n"));
    // Parked, but not for an hour: this condition alone passes.
    let parked = taskscope(dir.path(), &["check", &pid, "--max-parked", "1h"]);
    assert_eq!(parked.code, 0, "{parked:?}");
    // Parked longer than a moment: both, the worker with its stack.
    let parked = taskscope(dir.path(), &["check", &pid, "--max-parked", "100ms"]);
    assert_eq!(parked.code, 1, "{parked:?}");
    assert!(parked.stdout.contains("  2 tasks parked longer than 100ms (--max-parked 100ms)\n"), "{parked:?}");
    assert!(parked.stdout.contains("orphan_receiver::job_worker"), "{parked:?}");
}

#[test]
fn a_target_that_exits_during_the_check_is_exit_2() {
    let dir = temp_dir();
    let ex = Example::start(dir.path(), "orphan_receiver", &["--exit-after", "1s"]);
    let run = taskscope(dir.path(), &["check", &ex.pid(), "--max-growth", "1", "--over", "3s"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.starts_with("taskscope: ") && run.stderr.lines().count() == 1, "{run:?}");
}

#[test]
fn the_fixed_program_passes() {
    let dir = temp_dir();
    let ex = Example::start(dir.path(), "orphan_receiver", &["--fixed"]);
    std::thread::sleep(Duration::from_millis(500));
    let run = taskscope(dir.path(), &["check", &ex.pid(), "--retry", "3s"]);
    assert_eq!(run.code, 0, "{run:?}");
}

#[test]
fn the_pouch_check_finds_handlers_of_clients_that_left() {
    let dir = temp_dir();
    let leaky = Example::start(dir.path(), "log_follow", &["--self-clients", "3"]);
    // The self-clients hang up after 1 s; their handlers stay.
    std::thread::sleep(Duration::from_millis(2500));
    let run = taskscope_until(dir.path(), &["check", &leaky.pid(), "--match", "logs handler"], |run| run.code == 1);
    assert_eq!(run.code, 1, "{run:?}");
    let out = &run.stdout;
    assert!(
        out.contains("  3 tasks mention \"logs handler\", more than 0 (--match \"logs handler\" --max-matching 0)\n"),
        "{out}"
    );
    assert!(out.contains("  name: logs handler"), "{out}");
    assert!(out.contains("log_follow::handle_connection"), "the handlers' stacks are in the report: {out}");
    let within = taskscope(dir.path(), &["check", &leaky.pid(), "--match", "logs handler", "--max-matching", "3"]);
    assert_eq!(within.code, 0, "{within:?}");

    let fixed = Example::start(dir.path(), "log_follow", &["--self-clients", "3", "--fixed"]);
    std::thread::sleep(Duration::from_millis(1500));
    let run = taskscope(dir.path(), &["check", &fixed.pid(), "--match", "logs handler", "--retry", "5s"]);
    assert_eq!(run.code, 0, "the fixed handlers return when the client leaves: {run:?}");
}

#[test]
fn growth_of_a_spawn_location_over_a_window() {
    let dir = temp_dir();
    let leaky = Example::start(dir.path(), "done_signal", &["--calls", "100000", "--interval", "10ms"]);
    let run = taskscope(dir.path(), &["check", &leaky.pid(), "--max-growth", "20", "--over", "2s"]);
    assert_eq!(run.code, 1, "{run:?}");
    let line = run.stdout.lines().find(|l| l.contains("grew by")).unwrap_or_else(|| panic!("{run:?}"));
    assert!(line.starts_with("  tasks spawned at examples/src/bin/done_signal.rs:"), "{line}");
    assert!(line.ends_with("more than 20 (--max-growth 20 --over 2s)"), "{line}");
    assert!(run.stdout.contains("done_signal::to_done_channel::{{closure}}"), "the group's stack: {run:?}");

    let fixed = Example::start(dir.path(), "done_signal", &["--calls", "100000", "--interval", "10ms", "--fixed"]);
    let run = taskscope(dir.path(), &["check", &fixed.pid(), "--max-growth", "20", "--over", "2s"]);
    assert_eq!(run.code, 0, "{run:?}");
}

#[test]
fn a_check_that_cannot_be_made_exits_2_with_one_line() {
    let dir = temp_dir();
    let dead = dead_pid().to_string();
    for args in [
        &["check", &dead][..],
        &["check", "no-such-host:notaport"],
        &["check", "1", "--max-growth", "3"],
        &["check", "1", "--max-matching", "3"],
        &["check", "1", "--retry", "soon"],
        &["check", "1", "--bogus"],
        // An empty pattern would mention every task (`--allow "$UNSET"`).
        &["check", "1", "--allow", ""],
        &["check", "1", "--match", " "],
    ] {
        let run = taskscope(dir.path(), args);
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(run.stderr.starts_with("taskscope: ") && run.stderr.lines().count() == 1, "{args:?}: {run:?}");
        assert!(run.stdout.is_empty(), "{args:?}: {run:?}");
    }
}

#[test]
fn an_undecidable_match_is_exit_2_and_retried_until_it_can_be_decided() {
    let dir = temp_dir();
    // One of the two workers blocked for 8 s from 200 ms after the start:
    // the blocking task is inside its poll, so a capture cannot have its
    // stack, and nothing can say whether that stack mentions the pattern.
    let ex = Example::start(dir.path(), "blocker", &["--after", "200ms", "--for", "8s"]);
    std::thread::sleep(Duration::from_secs(1));
    let pattern = "no_function_is_called_this";
    let once = taskscope(dir.path(), &["check", &ex.pid(), "--match", pattern, "--timeout", "300ms"]);
    assert_eq!(once.code, 2, "{once:?}");
    assert!(once.stderr.starts_with("taskscope: ") && once.stderr.lines().count() == 1, "{once:?}");
    assert!(once.stderr.contains("cannot decide --match") && once.stderr.contains("not polled in time"), "{once:?}");

    // With --retry the check looks again until the block ends and the
    // stack is there: then it decides (nothing mentions the pattern).
    let retried =
        taskscope(dir.path(), &["check", &ex.pid(), "--match", pattern, "--timeout", "300ms", "--retry", "30s"]);
    assert_eq!(retried.code, 0, "{retried:?}");
    assert!(retried.stdout.contains("clean"), "{retried:?}");
}
