//! `taskscope stack` end to end against a fake agent (a real tonic server on
//! a real socket with canned dumps): grouping, `--all`, `--json`, filters,
//! a runtime that timed out, and a dump that fails.

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

/// 10 leaked waiters parked 3..12s at line 25, one busy worker at line 40.
fn chunks(status: DumpStatus) -> Vec<DumpChunk> {
    let with_stacks = status == DumpStatus::Ok;
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
    };
    let waiters: Vec<DumpedTask> = (0..10)
        .map(|i| DumpedTask {
            task: Some(task(100 + i, TaskState::Idle, true, 3 + i, "", 25)),
            stack_id: if with_stacks { 1 } else { 0 },
        })
        .collect();
    vec![
        DumpChunk { header: Some(header), ..Default::default() },
        DumpChunk { stacks: if with_stacks { vec![stack()] } else { vec![] }, tasks: waiters, header: None },
        DumpChunk {
            tasks: vec![DumpedTask { task: Some(task(7, TaskState::Running, false, 0, "worker", 40)), stack_id: 0 }],
            ..Default::default()
        },
    ]
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
        "fakeprog (pid 4242), tokio 1.54.1: 1 running, 0 scheduled, 10 idle, 10 leaked, 0 done; 0 dropped events\n"
    ), "{}", run.stdout);
    assert!(run.stdout.contains(&format!(
        "\n10 tasks [idle, 10 leaked] parked 3s..12s  spawned at {SITE}:25:5\n    tokio::runtime::task::trace::trace_leaf\n        /r/tokio/src/trace.rs:14:9\n    tokio::sync::notify::Notified::poll\n"
    )), "{}", run.stdout);
    assert!(run.stdout.contains(&format!("    done_signal::wait_for_done::{{{{closure}}}}\n        {SITE}:14:9\n")), "{}", run.stdout);
    assert!(run.stdout.contains(&format!("\n1 task [running]  spawned at {SITE}:40:5\n  name: worker\n")), "{}", run.stdout);
    assert_eq!(run.stderr, "");
}

#[test]
fn all_and_filters() {
    let dir = temp_dir();
    let (_agent, pid) = serve(dir.path(), DumpAnswer::Chunks(chunks(DumpStatus::Ok)));
    let run = taskscope(dir.path(), &["stack", &pid, "--all"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains(&format!("\ntask 7 [running] name=worker spawned at {SITE}:40:5\n")), "{}", run.stdout);
    assert!(run.stdout.contains(&format!("\ntask 109 [idle 12s, leaked] spawned at {SITE}:25:5\n")), "{}", run.stdout);

    let run = taskscope(dir.path(), &["stack", &pid, "--all", "--min-idle", "10s"]);
    assert_eq!(run.stdout.matches("\ntask ").count(), 3, "{}", run.stdout);
    assert!(run.stdout.contains("showing 3 of 11 tasks (--min-idle 10s)"), "{}", run.stdout);

    let run = taskscope(dir.path(), &["stack", &pid, "--match", "wait_for_done"]);
    assert!(run.stdout.contains("10 tasks [idle, 10 leaked]"), "{}", run.stdout);
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
    assert!(run.stdout.contains("warning: no stacks: runtime main did not answer within 2s"), "{}", run.stdout);
    assert!(run.stdout.contains(&format!(
        "10 tasks [idle, 10 leaked] parked 3s..12s  spawned at {SITE}:25:5\n    (no stack captured)\n"
    )), "{}", run.stdout);

    let run = taskscope(dir.path(), &["stack", &pid, "--timeout", "2s", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("warning: no stacks: runtime main did not answer within 2s"), "{run:?}");
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(v["runtimes"][0]["status"], "timed_out");
    assert_eq!(v["groups"][0]["stack"], serde_json::Value::Null);
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
