//! Rendering tests from constructed protocol messages: the exact shapes
//! other tests and users' scripts match on.

use super::*;
use crate::group::tests::{dump_of, dumped};
use taskscope_proto::{Backtrace, DumpHeader, DumpStatus, Frame, RuntimeDump, TaskCounts};

const SEC: u64 = 1_000_000_000;
const FILE: &str = "examples/src/bin/done_signal.rs";

fn frame(function: &str, file: &str, line: u32, internal: bool) -> Frame {
    Frame { function: function.into(), file: file.into(), line, column: 9, internal }
}

fn waiter_stack() -> Stack {
    Stack {
        id: 1,
        backtraces: vec![Backtrace {
            frames: vec![
                frame("done_signal::waiter::{{closure}}", FILE, 14, false),
                frame(
                    "tokio::sync::notify::Notified::poll",
                    "/h/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.54.1/src/sync/notify.rs",
                    1130,
                    true,
                ),
                frame("tokio::sync::notify::Notified::poll_notified", "/x/notify.rs", 1000, true),
                frame("tokio::runtime::task::trace::trace_leaf", "/x/trace.rs", 10, true),
            ],
        }],
    }
}

fn info() -> ProcessInfo {
    ProcessInfo { pid: 4242, process_name: "done_signal".into(), tokio_version: "1.54.1".into(), ..Default::default() }
}

/// 1000 leaked waiters parked 2.1s..1m2s, one running task, one named task.
fn leak_dump() -> Dump {
    let now = 1000 * SEC;
    let mut tasks: Vec<DumpedTask> = (0..1000)
        .map(|i| {
            let parked = 2 * SEC + 100_000_000 + i * (60 * SEC / 999);
            dumped(i + 10, TaskState::Idle, true, now - parked, FILE, 1)
        })
        .collect();
    tasks.push(dumped(1, TaskState::Running, false, 0, "src/main.rs", 0));
    let mut named = dumped(42, TaskState::Idle, true, now - (5 * 60 + 12) * SEC, "src/main.rs", 1);
    named.task.as_mut().unwrap().name = "worker".into();
    tasks.push(named);
    let mut dump = dump_of(tasks, &[], now);
    dump.stacks.insert(1, waiter_stack());
    dump.header = DumpHeader {
        now_ns: now,
        counts: Some(TaskCounts { running: 1, idle: 1001, leaked: 1001, ..Default::default() }),
        runtimes: vec![RuntimeDump { runtime: "main".into(), status: DumpStatus::Ok as i32, ..Default::default() }],
        dropped_events: 0,
        // An agent older than the safe capture: no `SafeCapture`, no `StackSource`.
        safe_capture: None,
    };
    dump
}

fn view() -> View {
    View { all: false, full: false, timeout: Duration::from_secs(5), ..View::default() }
}

#[test]
fn grouped_report_shape() {
    let out = report(&info(), &leak_dump(), &Filter::default(), view());
    let expected_head = "\
done_signal (pid 4242), tokio 1.54.1: 1 running, 0 scheduled, 1001 idle, 1001 leaked, 0 done; 0 dropped events

1000 tasks [idle, 1000 leaked, Notify] parked 2.1s..1m2s  spawned at examples/src/bin/done_signal.rs:25:5
  suspect: leaked: nothing can wake them, they will never run again
    ... 2 runtime frames
    tokio::sync::notify::Notified::poll
        tokio-1.54.1/src/sync/notify.rs:1130:9
    done_signal::waiter::{{closure}}
        examples/src/bin/done_signal.rs:14:9

1 task [idle, leaked, Notify] parked 5m12s  spawned at src/main.rs:25:5
  suspect: leaked: nothing can wake them, they will never run again
  name: worker
";
    assert!(out.starts_with(expected_head), "{out}");
    assert!(
        out.contains("\n1 task [running]  spawned at src/main.rs:25:5\n    (no stack captured: not parked; only tasks that wait are traced)\n"),
        "{out}"
    );
}

#[test]
fn full_shows_every_frame_with_full_paths() {
    let out = report(&info(), &leak_dump(), &Filter::default(), View { full: true, ..view() });
    assert!(out.contains("tokio::runtime::task::trace::trace_leaf\n        /x/trace.rs:10:9"), "{out}");
    assert!(out.contains("/h/.cargo/registry/src/"), "{out}");
    assert!(!out.contains("runtime frame"), "{out}");
}

#[test]
fn all_lists_each_task() {
    let out = report(&info(), &leak_dump(), &Filter::default(), View { all: true, ..view() });
    assert!(out.contains("\ntask 1 [running] spawned at src/main.rs:25:5\n    (no stack captured: "), "{out}");
    assert!(out.contains("\ntask 42 [idle 5m12s, leaked, Notify] name=worker spawned at src/main.rs:25:5\n    ... 2 runtime frames\n"), "{out}");
    assert!(
        out.contains("\ntask 10 [idle 2.1s, leaked, Notify] spawned at examples/src/bin/done_signal.rs:25:5\n"),
        "{out}"
    );
    assert_eq!(out.matches("\ntask ").count(), 1002);
}

#[test]
fn filters_say_what_is_shown() {
    let filter = Filter { min_idle: Some(Duration::from_secs(300)), ..Filter::default() };
    let out = report(&info(), &leak_dump(), &filter, view());
    assert!(out.contains("showing 1 of 1002 tasks (--min-idle 5m)\n"), "{out}");
    assert!(out.contains("1 task [idle, leaked, Notify] parked 5m12s"), "{out}");
    let nothing = Filter { pattern: Some("no-such-thing".into()), ..Filter::default() };
    assert!(report(&info(), &leak_dump(), &nothing, view()).ends_with("\nno task matches\n"));
}

#[test]
fn timed_out_runtime_warns_and_still_groups_by_location() {
    let mut dump = leak_dump();
    dump.stacks.clear();
    for t in &mut dump.tasks {
        t.stack_id = 0;
    }
    dump.header.runtimes[0].status = DumpStatus::TimedOut as i32;
    let out = report(&info(), &dump, &Filter::default(), View { timeout: Duration::from_secs(2), ..view() });
    assert!(
        out.contains("\nwarning: no stacks: runtime main did not answer within 2s: a task may be blocking a worker thread; tasks are shown by spawn location only\n"),
        "{out}"
    );
    dump.header.runtimes[0].detail =
        "runtime `main` did not answer within 2s: a task is probably blocking a worker thread".into();
    assert_eq!(
        warnings(&info(), &dump, Duration::from_secs(2)),
        vec!["warning: no stacks: runtime main did not answer within 2s: a task is probably blocking a worker thread; tasks are shown by spawn location only"]
    );
    assert!(out.contains("1000 tasks [idle, 1000 leaked] parked 2.1s..1m2s  spawned at examples/src/bin/done_signal.rs:25:5\n  suspect: leaked: nothing can wake them, they will never run again\n    (no stack captured)\n"), "{out}");
}

#[test]
fn other_statuses_say_their_detail() {
    let mut dump = leak_dump();
    dump.header.runtimes = vec![
        RuntimeDump {
            runtime: "main".into(),
            status: DumpStatus::Unsupported as i32,
            detail: "not Linux".into(),
            elapsed_ns: 0,
        },
        RuntimeDump { runtime: "io".into(), status: DumpStatus::Failed as i32, detail: "boom".into(), elapsed_ns: 0 },
    ];
    // Some tasks still came with stacks: no warning, one line for both runtimes.
    assert_eq!(
        header_lines(&info(), &dump, Duration::from_secs(5)),
        vec!["stacks: task dumps are not supported for runtime main (not Linux); dump of runtime io failed (boom)"]
    );
    assert!(warnings(&info(), &dump, Duration::from_secs(5)).is_empty());
    dump.stacks.clear();
    assert_eq!(
        warnings(&info(), &dump, Duration::from_secs(5)),
        vec![
            "warning: no stacks: task dumps are not supported for runtime main (not Linux); dump of runtime io \
             failed (boom); its tasks are shown by spawn location only"
        ]
    );
}

/// The header says how precise the agent's times are, and nothing when
/// they are exact (or, from a console-subscriber, not told).
#[test]
fn header_says_the_agents_time_resolution() {
    let dump = leak_dump();
    let coarse = ProcessInfo { time_resolution_ns: 10_000_000, ..info() };
    let line = header(&coarse, &dump);
    assert!(line.ends_with("0 done; 0 dropped events; times to 10ms"), "{line}");
    let exact = header(&info(), &dump);
    assert!(!exact.contains("times to"), "{exact}");
}

#[test]
fn mixed_states_are_counted_and_dropped_events_flagged() {
    let tasks = vec![
        dumped(1, TaskState::Idle, false, SEC, "a.rs", 0),
        dumped(2, TaskState::Idle, true, SEC, "a.rs", 0),
        dumped(3, TaskState::Scheduled, false, 0, "a.rs", 0),
    ];
    let mut dump = dump_of(tasks, &[], 3 * SEC);
    dump.header.dropped_events = 7;
    let out = report(&info(), &dump, &Filter::default(), view());
    assert!(out.contains("0 done; 7 dropped events (some task records may be missing)\n"), "{out}");
    // The leaked task waits on nothing at all, the others on something
    // unknown: two groups, the leaked one (a suspect) first.
    let leaked = out.find("1 task [idle, leaked] parked 2s  spawned at a.rs:25:5\n").expect(&out);
    let rest = out.find("2 tasks [1 scheduled, 1 idle] parked 2s  spawned at a.rs:25:5\n").expect(&out);
    assert!(leaked < rest, "{out}");
}

#[test]
fn several_backtraces_are_numbered() {
    let stack = Stack {
        id: 1,
        backtraces: vec![
            Backtrace { frames: vec![frame("app::a", "src/a.rs", 1, false)] },
            Backtrace { frames: vec![frame("app::b", "src/b.rs", 2, false)] },
        ],
    };
    let out = stack_lines(&stack, &Paths::new(&leak_dump(), false));
    assert_eq!(
        out,
        "  awaiting 1 of 2:\n    app::a\n        src/a.rs:1:9\n  awaiting 2 of 2:\n    app::b\n        src/b.rs:2:9\n"
    );
}

#[test]
fn json_report_parses_and_has_the_documented_fields() {
    let dump = leak_dump();
    let text = crate::json::report(&info(), &dump, &Filter::default(), false).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["process"]["pid"], 4242);
    assert_eq!(v["counts"]["leaked"], 1001);
    assert_eq!(v["runtimes"][0]["status"], "ok");
    let g = &v["groups"][0];
    assert_eq!(g["count"], 1000);
    assert_eq!(g["states"]["idle"], 1000);
    assert_eq!(g["leaked"], 1000);
    assert_eq!(g["location"], "examples/src/bin/done_signal.rs:25:5");
    assert_eq!(g["parked_min_ns"], 2 * SEC + 100_000_000);
    assert_eq!(g["task_ids"].as_array().unwrap().len(), 1000);
    // Leaf first, as the text report prints it.
    assert_eq!(g["stack"][0][0]["function"], "tokio::runtime::task::trace::trace_leaf");
    assert_eq!(g["stack"][0][0]["internal"], true);
    assert_eq!(g["stack"][0][3]["function"], "done_signal::waiter::{{closure}}");
    assert!(v.get("tasks").is_none());

    let all = crate::json::report(&info(), &dump, &Filter::default(), true).unwrap();
    let v: serde_json::Value = serde_json::from_str(&all).unwrap();
    assert!(v.get("groups").is_none());
    let tasks = v["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 1002);
    assert_eq!(tasks[0]["id"], 1);
    assert_eq!(tasks[0]["state"], "running");
    assert_eq!(tasks[0]["stack"], serde_json::Value::Null);
    let worker = tasks.iter().find(|t| t["name"] == "worker").unwrap();
    assert_eq!(worker["parked_ns"], (5 * 60 + 12) * SEC);
    assert_eq!(worker["leaked"], true);
}

#[test]
fn the_programs_text_is_escaped_in_both_views() {
    let mut dump = leak_dump();
    let evil = "\x1b[2J\x1b[31mred\nfake: taskscope: error";
    for t in dump.tasks.iter_mut().filter_map(|d| d.task.as_mut()).filter(|t| t.id == 42) {
        t.name = evil.into();
    }
    let info = ProcessInfo { process_name: "evil\r\x1b]0;title\x07".into(), ..info() };
    for all in [false, true] {
        let out = report(&info, &dump, &Filter::default(), View { all, ..view() });
        assert!(!out.contains('\x1b') && !out.contains('\r') && !out.contains('\x07'), "{out}");
        assert!(!out.lines().any(|l| l.starts_with("fake:")), "{out}");
        assert!(out.contains("\\u{1b}[2J\\u{1b}[31mred\\nfake: taskscope: error"), "{out}");
    }
}

#[test]
fn a_running_task_shows_how_long_it_has_been_in_its_poll() {
    let mut dump = leak_dump();
    let now = dump.now_ns();
    for t in dump.tasks.iter_mut().filter_map(|d| d.task.as_mut()).filter(|t| t.id == 1) {
        t.last_poll_started_ns = now - 30 * SEC;
    }
    let grouped = report(&info(), &dump, &Filter::default(), view());
    assert!(grouped.contains("1 task [running] polling 30s  spawned at src/main.rs"), "{grouped}");
    assert!(grouped.contains("(no stack captured: not parked; only tasks that wait are traced)"), "{grouped}");
    assert!(!grouped.contains("e.g. `std::future::pending()`"), "only parked tasks get the pending() hint: {grouped}");
    let all = report(&info(), &dump, &Filter::default(), View { all: true, ..view() });
    assert!(all.contains("task 1 [running 30s] spawned at src/main.rs"), "{all}");
}

/// The leak dump plus two worker threads of tokio's runtime and a
/// `block_on` future.
fn dump_with_runtime_tasks() -> Dump {
    let mut dump = leak_dump();
    const WORKER: &str = "/h/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.54.1/src/runtime/scheduler/multi_thread/worker.rs";
    for id in [2, 3] {
        let mut worker = dumped(id, TaskState::Running, false, 0, WORKER, 0);
        if let Some(t) = worker.task.as_mut() {
            t.kind = "blocking".into();
            t.runtime_internal = true;
            t.last_poll_started_ns = dump.now_ns() - 7 * SEC;
        }
        dump.tasks.push(worker);
    }
    let mut block_on = dumped(4, TaskState::Idle, false, dump.now_ns() - 3 * SEC, "src/lib.rs", 0);
    if let Some(t) = block_on.task.as_mut() {
        t.kind = "block_on".into();
    }
    dump.tasks.push(block_on);
    dump
}

#[test]
fn runtime_tasks_are_hidden_unless_full() {
    let dump = dump_with_runtime_tasks();
    let out = report(&info(), &dump, &Filter::default(), view());
    assert!(
        out.contains("\nnote: 2 tasks of tokio's runtime (its worker threads) not shown; --full shows them\n"),
        "{out}"
    );
    assert!(!out.contains("worker.rs"), "{out}");
    assert!(
        out.contains("\n1 block_on task [idle, nothing tokio can trace] parked 3s  spawned at src/lib.rs:25:5\n"),
        "{out}"
    );
    let filter = Filter { pattern: Some("main.rs".into()), ..Filter::default() };
    assert!(report(&info(), &dump, &filter, view()).contains("showing 2 of 1003 tasks (--match \"main.rs\")\n"));

    let full = Filter { runtime_tasks: true, ..Filter::default() };
    let out = report(&info(), &dump, &full, View { all: true, full: true, ..view() });
    assert!(
        out.contains("\nnote: 2 tasks are tokio's runtime's own (its worker threads), not counted above\n"),
        "{out}"
    );
    assert!(out.contains("\ntask 2 [running 7s] kind=blocking spawned at /h/.cargo/"), "{out}");
    assert!(
        out.contains("\ntask 4 [idle 3s, nothing tokio can trace] kind=block_on spawned at src/lib.rs:25:5\n"),
        "{out}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&crate::json::report(&info(), &dump, &Filter::default(), true).expect("json"))
            .expect("parses");
    let tasks = json["tasks"].as_array().expect("tasks");
    assert!(tasks.iter().all(|t| t["runtime_internal"] == false), "hidden without --full");
    assert_eq!(tasks.len(), 1003);
    let json: serde_json::Value =
        serde_json::from_str(&crate::json::report(&info(), &dump, &full, true).expect("json")).expect("parses");
    assert_eq!(json["tasks"].as_array().map(|t| t.iter().filter(|t| t["runtime_internal"] == true).count()), Some(2));
}

#[test]
fn an_older_agents_disabled_dump_reads_as_off_with_its_reason() {
    let mut dump = leak_dump();
    dump.stacks.clear();
    dump.header.runtimes[0] = RuntimeDump {
        runtime: "main".into(),
        status: DumpStatus::Disabled as i32,
        detail: "not dumped: runtime `main` is a multi-thread runtime and it has 2 workers; ... started with TASKSCOPE_MT_DUMPS=1".into(),
        elapsed_ns: 0,
    };
    assert_eq!(
        warnings(&info(), &dump, Duration::from_secs(5)),
        vec![
            "warning: no stacks: tokio's dump of runtime main is off: runtime `main` is a multi-thread runtime and it has 2 \
             workers; ... started with TASKSCOPE_MT_DUMPS=1; tasks are shown by spawn location only"
        ]
    );
    let out = report(&info(), &dump, &Filter::default(), view());
    assert!(out.contains("spawned at examples/src/bin/done_signal.rs:25:5\n  suspect: leaked: nothing can wake them, they will never run again\n    (no stack captured)\n"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&crate::json::report(&info(), &dump, &Filter::default(), false).expect("json"))
            .expect("parses");
    assert_eq!(json["runtimes"][0]["status"], "disabled");
    assert_eq!(json["safe_capture"], serde_json::Value::Null, "an older agent sends none");
    assert_eq!(json["groups"][0]["stack_source"], serde_json::Value::Null, "an older agent does not say");
    assert_eq!(json["groups"][0]["no_stack"], "not_dumped");
}

#[test]
fn lean_mode_json_leaves_what_it_cannot_see_null() {
    let mut dump = leak_dump();
    for t in dump.tasks.iter_mut().filter_map(|t| t.task.as_mut()) {
        t.kind = String::new();
        t.leaked = false;
    }
    let lean = ProcessInfo { mode: "hooks".into(), ..info() };
    let json: serde_json::Value =
        serde_json::from_str(&crate::json::report(&lean, &dump, &Filter::default(), true).expect("json"))
            .expect("parses");
    let task = &json["tasks"][0];
    assert_eq!(task["kind"], serde_json::Value::Null, "{task}");
    assert_eq!(task["wakes"], serde_json::Value::Null, "{task}");
    assert_eq!(task["live_wakers"], serde_json::Value::Null, "{task}");
    let full: serde_json::Value =
        serde_json::from_str(&crate::json::report(&info(), &leak_dump(), &Filter::default(), true).expect("json"))
            .expect("parses");
    assert_eq!(full["tasks"][0]["live_wakers"], 0, "the full mode counts wakers");
    let grouped: serde_json::Value =
        serde_json::from_str(&crate::json::report(&lean, &dump, &Filter::default(), false).expect("json"))
            .expect("parses");
    assert_eq!(grouped["groups"][0]["kind"], serde_json::Value::Null);
    let out = report(&lean, &dump, &Filter::default(), View { all: true, ..view() });
    assert!(out.contains("\ntask 42 [idle 5m12s, Notify] name=worker spawned at"), "no kind word when unknown: {out}");
}

#[path = "render_sources_tests.rs"]
mod sources;
