//! Where each stack came from and why one is missing, from an agent that
//! says (`StackSource`, `SafeCapture`), in the text and JSON reports; and
//! a runtime tokio's dump harmed.

use super::*;
use taskscope_proto::{RuntimeInfo, SafeCapture, StackSource};

/// The policy's reason for not taking tokio's dump, as the agent words it.
const OFF: &str = "tokio 1.54.1's task dump can leave a worker stuck for good (tokio-rs/tokio#8370), so runtime \
                   `main` gets stacks only for tasks spawned with taskscope_agent::spawn; for every task, build \
                   against the patched tokio (patches/tokio), or start the program with TASKSCOPE_TOKIO_DUMPS=1 \
                   for a debugging session";

fn sourced(mut t: DumpedTask, source: StackSource) -> DumpedTask {
    t.stack_source = source as i32;
    t
}

/// tokio's dump off; the safe capture asked 5 wrapped futures, 4 answered:
/// 2 waiters with a stack, 1 on `pending()`, 1 main future (`block_on`,
/// recorded by the agent, id from u64::MAX) with a stack; 1 busy in a long
/// poll; 2 plain `tokio::spawn` tasks (one idle, one scheduled).
fn off_dump() -> Dump {
    let now = 100 * SEC;
    let mut main =
        sourced(dumped(u64::MAX, TaskState::Idle, false, now - 9 * SEC, "src/main.rs", 1), StackSource::Captured);
    main.task.as_mut().unwrap().kind = "block_on".into();
    let tasks = vec![
        sourced(dumped(10, TaskState::Idle, false, now - 3 * SEC, FILE, 1), StackSource::Captured),
        sourced(dumped(11, TaskState::Idle, false, now - 4 * SEC, FILE, 1), StackSource::Captured),
        sourced(dumped(12, TaskState::Idle, false, now - 5 * SEC, "src/pending.rs", 0), StackSource::Captured),
        sourced(dumped(13, TaskState::Running, false, 0, "src/busy.rs", 0), StackSource::NotPolled),
        sourced(dumped(20, TaskState::Idle, false, now - 6 * SEC, "src/plain.rs", 0), StackSource::NotWrapped),
        sourced(dumped(21, TaskState::Scheduled, false, 0, "src/plain.rs", 0), StackSource::NotWrapped),
        main,
    ];
    let mut dump = dump_of(tasks, &[], now);
    dump.stacks.insert(1, waiter_stack());
    dump.header = DumpHeader {
        now_ns: now,
        counts: Some(TaskCounts { running: 1, scheduled: 1, idle: 5, ..Default::default() }),
        runtimes: vec![RuntimeDump {
            runtime: "main".into(),
            status: DumpStatus::Disabled as i32,
            detail: OFF.into(),
            elapsed_ns: 0,
        }],
        dropped_events: 0,
        safe_capture: Some(SafeCapture {
            wanted: 5,
            answered: 4,
            elapsed_ns: 5 * SEC,
            detail: "1 of 5 wrapped tasks were not polled within 5s (inside a long poll, or on a blocked runtime)"
                .into(),
        }),
    };
    dump
}

#[test]
fn with_tokios_dump_off_the_header_says_so_once_and_each_group_its_source_or_reason() {
    let out = report(&info(), &off_dump(), &Filter::default(), view());
    let expected = format!(
        "\
done_signal (pid 4242), tokio 1.54.1: 1 running, 1 scheduled, 5 idle, 0 leaked, 0 done; 0 dropped events
stacks: 4 of 5 wrapped tasks captured safely (1 not polled within 5s); tokio's dump of runtime main is off: {OFF}

2 tasks [idle, Notify] parked 3s..4s  spawned at examples/src/bin/done_signal.rs:25:5
  stack (captured safely):
    ... 2 runtime frames
    tokio::sync::notify::Notified::poll
        tokio-1.54.1/src/sync/notify.rs:1130:9
    done_signal::waiter::{{{{closure}}}}
        examples/src/bin/done_signal.rs:14:9
"
    );
    assert!(out.starts_with(&expected), "{out}");
    assert!(out.contains(
        "\n1 block_on task [idle, Notify] parked 9s  spawned at src/main.rs:25:5\n  stack (captured safely):\n    ... 2 runtime frames\n"
    ), "{out}");
    // Not wrapped: the idle task is told why; the scheduled one is not parked.
    assert!(out.contains(
        "\n1 task [idle] parked 6s  spawned at src/plain.rs:25:5\n    (no stack captured: not wrapped, and tokio's dump of its \
         runtime was not taken (see above); spawn it with `taskscope_agent::spawn` to capture its stack safely)\n"
    ), "{out}");
    assert!(out.contains(
        "\n1 task [scheduled]  spawned at src/plain.rs:25:5\n    (no stack captured: not parked; only tasks that wait are traced)\n"
    ), "{out}");
    assert_eq!(out.matches(OFF).count(), 1, "the agent's long reason is shown once: {out}");
    assert!(out.contains(
        "\n1 task [idle, nothing tokio can trace] parked 5s  spawned at src/pending.rs:25:5\n    (no stack captured: it awaits nothing a task dump can trace, \
         e.g. `std::future::pending()`, a hand-written future, or `TcpListener::accept`)\n"
    ), "{out}");
    assert!(out.contains(
        "\n1 task [running]  spawned at src/busy.rs:25:5\n    (no stack captured: wrapped, but not polled within 5s: \
         it is inside a long poll, or its runtime is blocked)\n"
    ), "{out}");
    assert!(!out.contains("warning"), "stacks came: no warning: {out}");
    let timeout = report(&info(), &off_dump(), &Filter::default(), View { timeout: Duration::from_secs(2), ..view() });
    assert!(
        timeout.contains("(1 not polled within 2s)") && timeout.contains("not polled within 2s: it is inside"),
        "{timeout}"
    );
}

#[test]
fn all_names_each_tasks_source_or_reason() {
    let out = report(&info(), &off_dump(), &Filter::default(), View { all: true, ..view() });
    assert!(out.contains("\ntask 10 [idle 3s, Notify] spawned at examples/src/bin/done_signal.rs:25:5\n  stack (captured safely):\n    ... 2 runtime frames\n"), "{out}");
    assert!(out.contains("\ntask 13 [running] spawned at src/busy.rs:25:5\n    (no stack captured: wrapped, but not polled within 5s"), "{out}");
    assert!(
        out.contains(
            "\ntask 20 [idle 6s] spawned at src/plain.rs:25:5\n    (no stack captured: not wrapped, and tokio's dump"
        ),
        "{out}"
    );
    assert!(out.contains("\ntask 21 [scheduled] spawned at src/plain.rs:25:5\n    (no stack captured: not parked; only tasks that wait"), "{out}");
    assert!(out.contains("\ntask 18446744073709551615 [idle 9s, Notify] kind=block_on spawned at src/main.rs:25:5\n  stack (captured safely):\n"), "{out}");
}

#[test]
fn tokios_dump_labels_its_stacks_and_splits_groups_by_reason() {
    let now = 100 * SEC;
    let tasks = vec![
        sourced(dumped(1, TaskState::Idle, false, now - SEC, FILE, 1), StackSource::TokioDump),
        sourced(dumped(2, TaskState::Idle, false, now - SEC, "src/a.rs", 0), StackSource::TokioDump),
        sourced(dumped(3, TaskState::Running, false, 0, "src/a.rs", 0), StackSource::TokioDump),
        sourced(dumped(4, TaskState::Idle, false, now - 2 * SEC, "src/a.rs", 0), StackSource::Captured),
    ];
    let mut dump = dump_of(tasks, &[], now);
    dump.stacks.insert(1, waiter_stack());
    dump.header.runtimes =
        vec![RuntimeDump { runtime: "main".into(), status: DumpStatus::Ok as i32, ..Default::default() }];
    dump.header.safe_capture = Some(SafeCapture { wanted: 1, answered: 1, ..Default::default() });
    let out = report(&info(), &dump, &Filter::default(), view());
    assert!(out.contains("\nstacks: 1 wrapped task captured safely; tokio dumped runtime main\n"), "{out}");
    assert!(
        out.contains(
            "spawned at examples/src/bin/done_signal.rs:25:5\n  stack (tokio's dump):\n    ... 2 runtime frames\n"
        ),
        "{out}"
    );
    // Same location, no stack: the idle task tokio's dump traced awaits
    // nothing traceable, the running one was not parked: two groups, each
    // with a reason true of all its tasks (and a third for the task the
    // safe capture traced, each group having one source).
    assert!(out.contains(
        "\n1 task [idle, nothing tokio can trace] parked 1s  spawned at src/a.rs:25:5\n    (no stack captured: it awaits nothing a task dump can trace"
    ), "{out}");
    assert!(out.contains(
        "\n1 task [running]  spawned at src/a.rs:25:5\n    (no stack captured: not parked; only tasks that wait are traced)\n"
    ), "{out}");
    let groups = crate::group::group(&dump, &Filter::default());
    assert_eq!(groups.len(), 4, "the captured and the dumped idle tasks keep their own sources: {groups:?}");
}

#[test]
fn no_stacks_at_all_is_a_warning_and_each_task_says_spawn_it_wrapped() {
    let mut dump = off_dump();
    dump.tasks.retain(|t| t.stack_source == StackSource::NotWrapped as i32);
    dump.header.safe_capture = Some(SafeCapture::default());
    let out = report(&info(), &dump, &Filter::default(), view());
    assert!(
        out.contains(&format!(
            "\nwarning: no stacks: no wrapped tasks to capture safely; tokio's dump of runtime main is off: {OFF}; \
         tasks are shown by spawn location only\n"
        )),
        "{out}"
    );
    assert_eq!(
        out.matches("(no stack captured: not wrapped, and tokio's dump of its runtime was not taken").count(),
        1,
        "{out}"
    );
    let all = report(&info(), &dump, &Filter::default(), View { all: true, ..view() });
    // The idle one; the scheduled one is not parked (and its header line says the rest).
    assert_eq!(
        all.matches("(no stack captured: not wrapped, and tokio's dump of its runtime was not taken").count(),
        1,
        "{all}"
    );
    assert_eq!(all.matches("(no stack captured: not parked; only tasks that wait are traced)").count(), 1, "{all}");
    assert_eq!(warnings(&info(), &dump, view().timeout).len(), 1);
}

fn harmed_dump() -> (ProcessInfo, Dump) {
    let harm = "worker 1 of runtime `main` has made no progress for 3s since tokio's dump of it: it was lost to \
                the dump (tokio-rs/tokio#8370) or a task blocks it";
    let info = ProcessInfo {
        runtimes: vec![RuntimeInfo { name: "main".into(), harmed: harm.into(), ..Default::default() }],
        ..info()
    };
    let mut dump = off_dump();
    dump.header.runtimes[0].status = DumpStatus::Harmed as i32;
    dump.header.runtimes[0].detail = format!(
        "tokio's dump of runtime `main` is refused for good: an earlier one harmed it ({harm}); restart the program to dump it again"
    );
    (info, dump)
}

#[test]
fn a_harmed_runtime_is_a_warning_with_what_happened_and_the_advice_to_restart() {
    let (info, dump) = harmed_dump();
    let out = report(&info, &dump, &Filter::default(), view());
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[1],
        "warning: tokio's dump harmed runtime main (worker 1 of runtime `main` has made no progress for 3s since tokio's \
         dump of it: it was lost to the dump (tokio-rs/tokio#8370) or a task blocks it); the program should be restarted"
    );
    assert_eq!(
        lines[2],
        "stacks: 4 of 5 wrapped tasks captured safely (1 not polled within 5s); tokio's dump of runtime main is refused: it harmed the runtime"
    );
    assert!(warnings(&info, &dump, view().timeout)[0].starts_with("warning: tokio's dump harmed runtime main ("));
    // Harm that happened during this very dump: GetInfo did not know yet.
    let fresh = report(&super::info(), &dump, &Filter::default(), view());
    assert!(
        fresh.contains(
            "\nwarning: tokio's dump harmed runtime main (tokio's dump of runtime `main` is refused for good"
        ),
        "{fresh}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&crate::json::report(&info, &dump, &Filter::default(), false).expect("json"))
            .expect("parses");
    assert_eq!(json["runtimes"][0]["status"], "harmed");
    assert!(
        json["runtimes"][0]["harmed"].as_str().is_some_and(|h| h.starts_with("worker 1 of runtime `main`")),
        "{json}"
    );
}

#[test]
fn json_says_each_source_and_reason_and_the_safe_capture() {
    let dump = off_dump();
    let json: serde_json::Value =
        serde_json::from_str(&crate::json::report(&info(), &dump, &Filter::default(), true).expect("json"))
            .expect("parses");
    let sc = &json["safe_capture"];
    assert_eq!(
        (sc["wanted"].as_u64(), sc["answered"].as_u64(), sc["elapsed_ns"].as_u64()),
        (Some(5), Some(4), Some(5 * SEC))
    );
    assert!(sc["detail"].as_str().is_some_and(|d| d.starts_with("1 of 5 wrapped tasks")), "{sc}");
    assert_eq!(json["runtimes"][0]["status"], "disabled");
    assert_eq!(json["runtimes"][0]["detail"], OFF);
    assert_eq!(json["runtimes"][0]["harmed"], serde_json::Value::Null);
    let by_id = |id: u64| json["tasks"].as_array().unwrap().iter().find(|t| t["id"] == id).cloned().unwrap();
    let expect = [
        (10, "captured", None),
        (12, "captured", Some("untraceable")),
        (13, "not_polled", Some("not_polled")),
        (20, "not_wrapped", Some("not_wrapped")),
        (21, "not_wrapped", Some("not_parked")),
    ];
    for (id, source, no_stack) in expect {
        let t = by_id(id);
        assert_eq!(t["stack_source"], source, "{t}");
        assert_eq!(t["no_stack"].as_str(), no_stack, "{t}");
        assert_eq!(t["stack"].is_null(), no_stack.is_some(), "{t}");
    }
    assert_eq!(by_id(u64::MAX)["kind"], "block_on");

    let grouped: serde_json::Value =
        serde_json::from_str(&crate::json::report(&info(), &dump, &Filter::default(), false).expect("json"))
            .expect("parses");
    let g = &grouped["groups"][0];
    assert_eq!(
        (g["count"].as_u64(), g["stack_source"].as_str(), g["no_stack"].as_str()),
        (Some(2), Some("captured"), None),
        "{g}"
    );
    let plain: Vec<(Option<&str>, Option<&str>)> = grouped["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["location"] == "src/plain.rs:25:5")
        .map(|g| (g["stack_source"].as_str(), g["no_stack"].as_str()))
        .collect();
    assert_eq!(plain.len(), 2, "two reasons, two groups: {plain:?}");
    assert!(
        plain.contains(&(Some("not_wrapped"), Some("not_wrapped")))
            && plain.contains(&(Some("not_wrapped"), Some("not_parked"))),
        "{plain:?}"
    );
}
