//! `taskscope stack` end to end against a fake agent (a real tonic server on
//! a real socket with canned dumps): grouping, `--all`, `--json`, filters,
//! a runtime that timed out, and a dump that fails; then where each stack
//! came from (the safe capture with tokio's dump off, tokio's dump) and a
//! runtime tokio's dump harmed.

mod common;

use common::*;
use taskscope_proto::*;

const SEC: u64 = 1_000_000_000;
const NOW: u64 = 1000 * SEC;
const SITE: &str = "examples/src/bin/done_signal.rs";

fn task(id: u64, state: TaskState, leaked: bool, parked_s: u64, name: &str, line: u32) -> Task {
    Task {
        id,
        name: name.into(),
        kind: "task".into(),
        state: state as i32,
        leaked,
        location: Some(Location { file: SITE.into(), line, column: 5 }),
        spawned_at_ns: SEC,
        last_poll_ended_ns: NOW - parked_s * SEC,
        polls: 1,
        ..Task::default()
    }
}

fn stack() -> Stack {
    let frame = |function: &str, file: &str, internal| Frame {
        function: function.into(),
        file: file.into(),
        line: 14,
        column: 9,
        internal,
    };
    Stack {
        id: 1,
        backtraces: vec![Backtrace {
            frames: vec![
                frame("done_signal::wait_for_done::{{closure}}", SITE, false),
                frame("tokio::sync::notify::Notified::poll", "/r/tokio/src/sync/notify.rs", true),
                frame("tokio::runtime::task::trace::trace_leaf", "/r/tokio/src/trace.rs", true),
            ],
        }],
    }
}

/// 10 leaked waiters parked 3..12s at line 25, one busy worker at line 40,
/// none of them wrapped: with `status` OK their stacks come from tokio's
/// dump; otherwise there are none.
fn chunks(status: DumpStatus) -> Vec<DumpChunk> {
    let with_stacks = status == DumpStatus::Ok;
    let source = if with_stacks { StackSource::TokioDump } else { StackSource::NotWrapped } as i32;
    let header = DumpHeader {
        now_ns: NOW,
        runtimes: vec![RuntimeDump {
            runtime: "main".into(),
            status: status as i32,
            detail: String::new(),
            elapsed_ns: 2 * SEC,
        }],
        counts: Some(TaskCounts { running: 1, idle: 10, leaked: 10, ..Default::default() }),
        dropped_events: 0,
        safe_capture: Some(SafeCapture { wanted: 0, answered: 0, elapsed_ns: 0, detail: String::new() }),
    };
    let waiters: Vec<DumpedTask> = (0..10)
        .map(|i| DumpedTask {
            task: Some(task(100 + i, TaskState::Idle, true, 3 + i, "", 25)),
            stack_id: if with_stacks { 1 } else { 0 },
            stack_source: source,
        })
        .collect();
    vec![
        DumpChunk { header: Some(header), ..Default::default() },
        DumpChunk { stacks: if with_stacks { vec![stack()] } else { vec![] }, tasks: waiters, header: None },
        DumpChunk {
            tasks: vec![DumpedTask {
                task: Some(task(7, TaskState::Running, false, 0, "worker", 40)),
                stack_id: 0,
                stack_source: source,
            }],
            ..Default::default()
        },
    ]
}

/// The agent's default on a stock tokio: tokio's dump declined, the ten
/// waiters wrapped (`taskscope_agent::spawn`) and captured safely, the busy
/// worker wrapped but inside a long poll, a plain `tokio::spawn` task at
/// line 50, and the main future of `#[taskscope_agent::main]` (a `block_on`
/// record with the agent's own id) parked on nothing tokio can trace.
fn safe_chunks(runtime: RuntimeDump) -> Vec<DumpChunk> {
    let mut chunks = chunks(DumpStatus::Ok);
    let header = chunks[0].header.as_mut().expect("header");
    header.runtimes = vec![runtime];
    header.safe_capture = Some(SafeCapture {
        wanted: 12,
        answered: 11,
        elapsed_ns: 2 * SEC,
        detail: "1 of 12 wrapped tasks were not polled within 2s (inside a long poll, or on a blocked runtime)".into(),
    });
    for t in &mut chunks[1].tasks {
        t.stack_source = StackSource::Captured as i32;
    }
    chunks[2].tasks[0].stack_source = StackSource::NotPolled as i32;
    let mut main = task(u64::MAX, TaskState::Idle, false, 20, "", 8);
    main.kind = "block_on".into();
    chunks[2].tasks.push(DumpedTask { task: Some(main), stack_id: 0, stack_source: StackSource::Captured as i32 });
    chunks[2].tasks.push(DumpedTask {
        task: Some(task(8, TaskState::Idle, false, 30, "", 50)),
        stack_id: 0,
        stack_source: StackSource::NotWrapped as i32,
    });
    chunks
}

fn disabled() -> RuntimeDump {
    RuntimeDump {
        runtime: "main".into(),
        status: DumpStatus::Disabled as i32,
        detail: TOKIO_DUMP_OFF.into(),
        elapsed_ns: 0,
    }
}

fn serve(dir: &std::path::Path, dump: DumpAnswer) -> (Served, String) {
    let pid = std::process::id();
    let served = serve_agent(&socket_in(dir, pid), FakeAgent { info: info(1), dump });
    (served, pid.to_string())
}

#[test]
fn grouped_report() {
    let dir = temp_dir();
    let (_agent, pid) = serve(dir.path(), DumpAnswer::Chunks(chunks(DumpStatus::Ok)));
    let run = taskscope(dir.path(), &["stack", &pid]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.starts_with(
        "fakeprog (pid 4242), tokio 1.54.1: 1 running, 0 scheduled, 10 idle, 10 leaked, 0 done; 0 dropped events; times to 10ms\n"
    ), "{}", run.stdout);
    assert!(run.stdout.contains("\nstacks: tokio dumped runtime main\n"), "{}", run.stdout);
    assert!(run.stdout.contains(&format!(
        "\n10 tasks [idle, 10 leaked, Notify] parked 3s..12s  spawned at {SITE}:25:5\n  suspect: leaked: nothing can wake them, they will never run again\n  stack (tokio's dump):\n    tokio::runtime::task::trace::trace_leaf\n        /r/tokio/src/trace.rs:14:9\n    tokio::sync::notify::Notified::poll\n"
    )), "{}", run.stdout);
    assert!(
        run.stdout.contains(&format!("    done_signal::wait_for_done::{{{{closure}}}}\n        {SITE}:14:9\n")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains(&format!(
        "\n1 task [running]  spawned at {SITE}:40:5\n  name: worker\n    (no stack captured: not parked; only tasks that wait are traced)\n"
    )), "{}", run.stdout);
    assert_eq!(run.stderr, "");
}

#[test]
fn all_and_filters() {
    let dir = temp_dir();
    let (_agent, pid) = serve(dir.path(), DumpAnswer::Chunks(chunks(DumpStatus::Ok)));
    let run = taskscope(dir.path(), &["stack", &pid, "--all"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains(&format!("\ntask 7 [running] name=worker spawned at {SITE}:40:5\n")), "{}", run.stdout);
    assert!(
        run.stdout.contains(&format!("\ntask 109 [idle 12s, leaked, Notify] spawned at {SITE}:25:5\n")),
        "{}",
        run.stdout
    );

    let run = taskscope(dir.path(), &["stack", &pid, "--all", "--min-idle", "10s"]);
    assert_eq!(run.stdout.matches("\ntask ").count(), 3, "{}", run.stdout);
    assert!(run.stdout.contains("showing 3 of 11 tasks (--min-idle 10s)"), "{}", run.stdout);

    let run = taskscope(dir.path(), &["stack", &pid, "--match", "wait_for_done"]);
    assert!(run.stdout.contains("10 tasks [idle, 10 leaked, Notify]"), "{}", run.stdout);
    assert!(!run.stdout.contains("[running]"), "{}", run.stdout);

    let run = taskscope(dir.path(), &["stack", &pid, "--match", "worker"]);
    assert!(run.stdout.contains("1 task [running]"), "{}", run.stdout);
    assert!(!run.stdout.contains("10 tasks"), "{}", run.stdout);
}

#[test]
fn json_report() {
    let dir = temp_dir();
    let (_agent, pid) = serve(dir.path(), DumpAnswer::Chunks(chunks(DumpStatus::Ok)));
    let run = taskscope(dir.path(), &["stack", &pid, "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(v["process"]["name"], "fakeprog");
    assert_eq!(v["runtimes"][0]["status"], "ok");
    assert_eq!(v["groups"][0]["count"], 10);
    assert_eq!(v["groups"][0]["leaked"], 10);
    assert_eq!(v["groups"][0]["parked_max_ns"], 12 * SEC);
    assert_eq!(v["groups"][0]["location"], format!("{SITE}:25:5"));
    // Leaf first, as the text report prints it.
    assert_eq!(v["groups"][0]["stack"][0][0]["function"], "tokio::runtime::task::trace::trace_leaf");
    assert_eq!(v["groups"][0]["stack"][0][2]["function"], "done_signal::wait_for_done::{{closure}}");

    let run = taskscope(dir.path(), &["stack", &pid, "--json", "--all"]);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(v["tasks"].as_array().map(Vec::len), Some(11));
    assert_eq!(v["tasks"][0]["id"], 7);
    assert_eq!(v["tasks"][0]["name"], "worker");
}

#[test]
fn timed_out_runtime_warns_but_succeeds() {
    let dir = temp_dir();
    let (_agent, pid) = serve(dir.path(), DumpAnswer::Chunks(chunks(DumpStatus::TimedOut)));
    let run = taskscope(dir.path(), &["stack", &pid, "--timeout", "2s"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains(
        "\nwarning: no stacks: no wrapped tasks to capture safely; runtime main did not answer within 2s: a task may be \
         blocking a worker thread; tasks are shown by spawn location only\n"
    ), "{}", run.stdout);
    assert!(run.stdout.contains(&format!(
        "10 tasks [idle, 10 leaked] parked 3s..12s  spawned at {SITE}:25:5\n  suspect: leaked: nothing can wake them, they will never run again\n    (no stack captured: not wrapped, and tokio's \
         dump of its runtime was not taken (see above); spawn it with `taskscope_agent::spawn` to capture its stack safely)\n"
    )), "{}", run.stdout);

    let run = taskscope(dir.path(), &["stack", &pid, "--timeout", "2s", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr
            .contains("warning: no stacks: no wrapped tasks to capture safely; runtime main did not answer within 2s"),
        "{run:?}"
    );
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(v["runtimes"][0]["status"], "timed_out");
    assert_eq!(v["groups"][0]["stack"], serde_json::Value::Null);
    assert_eq!(v["groups"][0]["stack_source"], "not_wrapped");
}

#[test]
fn failing_dump_is_one_error_line() {
    let dir = temp_dir();
    let (_agent, pid) = serve(dir.path(), DumpAnswer::Error(tonic::Status::internal("symbolizer crashed")));
    let run = taskscope(dir.path(), &["stack", &pid]);
    assert_one_line_error(&run, "process 4242 (fakeprog): dump failed: Internal: symbolizer crashed");
}

#[test]
fn dump_without_header_is_refused() {
    let dir = temp_dir();
    let mut bad = chunks(DumpStatus::Ok);
    bad.remove(0);
    let (_agent, pid) = serve(dir.path(), DumpAnswer::Chunks(bad));
    let run = taskscope(dir.path(), &["stack", &pid]);
    assert_one_line_error(&run, "bad dump: the agent's dump did not start with a header");
}

#[test]
fn with_tokios_dump_off_wrapped_tasks_still_have_their_stacks() {
    let dir = temp_dir();
    let (_agent, pid) = serve(dir.path(), DumpAnswer::Chunks(safe_chunks(disabled())));
    let run = taskscope(dir.path(), &["stack", &pid, "--timeout", "2s"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stderr, "", "stacks came: nothing to warn about");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[1],
        format!(
            "stacks: 11 of 12 wrapped tasks captured safely (1 not polled within 2s); tokio's dump of runtime main is off: \
             {TOKIO_DUMP_OFF}"
        ),
        "{}",
        run.stdout
    );
    assert_eq!(run.stdout.matches(TOKIO_DUMP_OFF).count(), 1, "the agent's reason, once: {}", run.stdout);
    for block in [
        format!("\n10 tasks [idle, 10 leaked, Notify] parked 3s..12s  spawned at {SITE}:25:5\n  suspect: leaked: nothing can wake them, they will never run again\n  stack (captured safely):\n    tokio::runtime::"),
        format!(
            "\n1 task [running]  spawned at {SITE}:40:5\n  name: worker\n    (no stack captured: wrapped, but not polled within 2s: \
             it is inside a long poll, or its runtime is blocked)\n"
        ),
        format!(
            "\n1 task [idle] parked 30s  spawned at {SITE}:50:5\n    (no stack captured: not wrapped, and tokio's dump of its \
             runtime was not taken (see above); spawn it with `taskscope_agent::spawn` to capture its stack safely)\n"
        ),
        format!(
            "\n1 block_on task [idle, nothing tokio can trace] parked 20s  spawned at {SITE}:8:5\n    (no stack captured: it awaits nothing a task dump can \
             trace, e.g. `std::future::pending()`, a hand-written future, or `TcpListener::accept`)\n"
        ),
    ] {
        assert!(run.stdout.contains(&block), "{block:?} in:\n{}", run.stdout);
    }

    let all = taskscope(dir.path(), &["stack", &pid, "--all"]);
    assert!(
        all.stdout.contains(&format!(
            "\ntask 100 [idle 3s, leaked, Notify] spawned at {SITE}:25:5\n  stack (captured safely):\n"
        )),
        "{}",
        all.stdout
    );
    assert!(
        all.stdout.contains(&format!(
            "\ntask 18446744073709551615 [idle 20s, nothing tokio can trace] kind=block_on spawned at {SITE}:8:5\n"
        )),
        "{}",
        all.stdout
    );

    let json = taskscope(dir.path(), &["stack", &pid, "--json", "--all"]);
    assert_eq!((json.code, json.stderr.as_str()), (0, ""), "{json:?}");
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(v["runtimes"][0]["status"], "disabled");
    assert_eq!(v["runtimes"][0]["detail"], TOKIO_DUMP_OFF);
    assert_eq!(v["safe_capture"]["wanted"], 12);
    assert_eq!(v["safe_capture"]["answered"], 11);
    assert_eq!(v["process"]["wrapped_tasks"], 10);
    assert_eq!(v["process"]["tokio_fixes"], "");
    assert_eq!(v["process"]["time_resolution_ns"], 10_000_000, "the agent's time resolution is passed on");
    let source = |id: u64| {
        let t = v["tasks"].as_array().expect("tasks").iter().find(|t| t["id"] == id).expect("task").clone();
        (t["stack_source"].as_str().map(str::to_string), t["no_stack"].as_str().map(str::to_string))
    };
    let s = |a: &str, b: Option<&str>| (Some(a.to_string()), b.map(str::to_string));
    assert_eq!(source(100), s("captured", None));
    assert_eq!(source(7), s("not_polled", Some("not_polled")));
    assert_eq!(source(8), s("not_wrapped", Some("not_wrapped")));
    assert_eq!(source(u64::MAX), s("captured", Some("untraceable")));
}

#[test]
fn no_stack_from_either_source_is_a_warning_on_both_outputs() {
    let dir = temp_dir();
    let mut chunks = chunks(DumpStatus::Disabled);
    chunks[0].header.as_mut().expect("header").runtimes = vec![disabled()];
    let (_agent, pid) = serve(dir.path(), DumpAnswer::Chunks(chunks));
    let run = taskscope(dir.path(), &["stack", &pid]);
    assert_eq!(run.code, 0, "{run:?}");
    let warning = format!(
        "warning: no stacks: no wrapped tasks to capture safely; tokio's dump of runtime main is off: {TOKIO_DUMP_OFF}; \
         tasks are shown by spawn location only"
    );
    assert_eq!(run.stdout.lines().nth(1), Some(warning.as_str()), "{}", run.stdout);
    let json = taskscope(dir.path(), &["stack", &pid, "--json"]);
    assert_eq!(json.stderr, format!("taskscope: {warning}\n"), "{json:?}");
}

#[test]
fn a_harmed_runtime_is_a_warning_everywhere_and_marked_in_ps() {
    let dir = temp_dir();
    let harm =
        "worker 1 of runtime `main` has made no progress for 3s since tokio's dump of it: it was lost to the dump \
                (tokio-rs/tokio#8370) or a task blocks it";
    let mut info = info(1);
    info.runtimes[0].harmed = harm.into();
    info.runtimes[0].tokio_dumps_reason = format!(
        "tokio's dump of runtime `main` is refused for good: an earlier one harmed it ({harm}); restart the program to dump it again"
    );
    let refused = RuntimeDump {
        runtime: "main".into(),
        status: DumpStatus::Harmed as i32,
        detail: info.runtimes[0].tokio_dumps_reason.clone(),
        elapsed_ns: 0,
    };
    let pid = std::process::id();
    let _agent =
        serve_agent(&socket_in(dir.path(), pid), FakeAgent { info, dump: DumpAnswer::Chunks(safe_chunks(refused)) });
    let pid = pid.to_string();

    let run = taskscope(dir.path(), &["stack", &pid, "--timeout", "2s"]);
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[1],
        format!("warning: tokio's dump harmed runtime main ({harm}); the program should be restarted")
    );
    assert_eq!(
        lines[2],
        "stacks: 11 of 12 wrapped tasks captured safely (1 not polled within 2s); tokio's dump of runtime main is refused: it harmed the runtime"
    );

    let json = taskscope(dir.path(), &["stack", &pid, "--json"]);
    assert_eq!(
        json.stderr,
        format!("taskscope: warning: tokio's dump harmed runtime main ({harm}); the program should be restarted\n")
    );
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(v["runtimes"][0]["status"], "harmed");
    assert_eq!(v["runtimes"][0]["harmed"], harm);

    let ps = taskscope(dir.path(), &["ps"]);
    assert_eq!(ps.code, 0, "{ps:?}");
    let row = ps.stdout.lines().find(|l| l.contains("fakeprog")).expect("row");
    assert!(row.starts_with(&format!("{pid}!  fakeprog")), "{}", ps.stdout);
    assert!(ps.stdout.ends_with("\n! tokio's dump harmed a runtime of this program: restart it (`taskscope stack <pid>` says what happened)\n"), "{}", ps.stdout);
    let ps = taskscope(dir.path(), &["ps", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&ps.stdout).expect("json");
    assert_eq!(v[0]["harmed"][0]["runtime"], "main");
    assert_eq!(v[0]["harmed"][0]["what"], harm);
}
