//! What each parked task waits on, read from real tokio futures: the
//! `waits` example parks one task on each primitive (named `wait:<what>`),
//! and `taskscope stack --json --all` must give each the wait reason its
//! name announces. A tokio upgrade that moves a frame fails here instead of
//! printing "unknown leaf ...".
//!
//! Then the `service` example, healthy waits hiding three leaks: `stack`
//! shows one group per await point, each with its reason, the suspects
//! (full channel, oneshot, pending) first, and no healthy wait among them.

mod common;

use std::time::{Duration, Instant};

use common::example::Example;
use common::*;
use serde_json::Value;

/// Runs `stack --json` (with `extra` flags) until `ready` holds, up to 30 s.
fn json_until(dir: &std::path::Path, pid: &str, extra: &[&str], ready: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let mut args = vec!["stack", pid, "--json"];
        args.extend_from_slice(extra);
        let run = taskscope(dir, &args);
        assert_eq!(run.code, 0, "{run:?}");
        let json: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout));
        if ready(&json) || start.elapsed() > Duration::from_secs(30) {
            return json;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `(task name, phrase, class)` for each task of the `waits` example.
const EXPECTED: &[(&str, &str, &str)] = &[
    ("wait:mpsc receive", "mpsc receive", "sync"),
    ("wait:mpsc send (channel full)", "mpsc send (channel full)", "sync"),
    ("wait:oneshot receive", "oneshot receive", "sync"),
    ("wait:broadcast receive", "broadcast receive", "sync"),
    ("wait:watch changed", "watch changed", "sync"),
    ("wait:Notify", "Notify", "sync"),
    ("wait:Semaphore acquire", "Semaphore acquire", "sync"),
    ("wait:Mutex lock", "Mutex lock", "sync"),
    ("wait:RwLock read", "RwLock read", "sync"),
    ("wait:RwLock write", "RwLock write", "sync"),
    ("wait:Barrier wait", "Barrier wait", "sync"),
    ("wait:CancellationToken", "CancellationToken", "sync"),
    ("wait:JoinHandle", "JoinHandle", "sync"),
    ("wait:sleep", "sleep", "timer"),
    ("wait:interval", "interval", "timer"),
    ("wait:I/O read", "I/O read", "io"),
    ("wait:signal", "signal", "io"),
    ("wait:broadcast receive | oneshot receive", "broadcast receive | oneshot receive", "sync"),
    ("wait:mpsc receive | sleep", "mpsc receive | sleep", "timer"),
    // `accept` waits on I/O readiness, which tokio's trace does not reach;
    // the full mode still sees the waker the I/O driver holds.
    ("wait:accept", "something a dump cannot trace (I/O readiness or a non-tokio future)", "unknown"),
    ("wait:pending", "nothing can wake it", "none"),
];

#[test]
fn every_primitive_gets_its_wait_reason_from_a_real_stack() {
    let dir = temp_dir();
    let ex = Example::start(dir.path(), "waits", &[]);
    let pid = ex.pid();
    let named = |json: &Value| -> Vec<(String, Value)> {
        json["tasks"]
            .as_array()
            .map(|tasks| {
                tasks
                    .iter()
                    .filter_map(|t| Some((t["name"].as_str()?.to_string(), t["wait"].clone())))
                    .filter(|(name, _)| name.starts_with("wait:"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let expected_tasks = EXPECTED.len() + 1; // two tasks wait on `mpsc receive`
    let json = json_until(dir.path(), &pid, &["--all"], |json| {
        let tasks = named(json);
        tasks.len() == expected_tasks && tasks.iter().all(|(_, wait)| wait.is_object())
    });
    let tasks = named(&json);
    assert_eq!(tasks.len(), expected_tasks, "{json:#}");
    let mut wrong = Vec::new();
    for (name, wait) in &tasks {
        let Some(&(_, phrase, class)) = EXPECTED.iter().find(|(n, _, _)| n == name) else {
            wrong.push(format!("{name}: not in the table"));
            continue;
        };
        if wait["phrase"] != phrase || wait["class"] != class {
            wrong.push(format!("{name}: expected {phrase:?} ({class}), got {wait}"));
        }
    }
    assert!(wrong.is_empty(), "wrong wait reasons:\n{}", wrong.join("\n"));
}

#[test]
fn a_service_shows_one_group_per_await_point_with_the_suspects_first() {
    let dir = temp_dir();
    let ex = Example::start(dir.path(), "service", &[]);
    let pid = ex.pid();
    // Every task of the program is there: 30 handlers, accept loop, ticker,
    // housekeeping, 20 + 10 + 5 leaks.
    let json = json_until(dir.path(), &pid, &["--suspect-after", "1s"], |json| {
        let groups = json["groups"].as_array().cloned().unwrap_or_default();
        let counted: u64 = groups.iter().filter_map(|g| g["count"].as_u64()).sum();
        counted >= 68 && groups.iter().take(3).all(|g| !g["suspect"].is_null())
    });
    let groups = json["groups"].as_array().cloned().unwrap_or_default();
    let summary: Vec<(u64, String, String, String)> = groups
        .iter()
        .map(|g| {
            (
                g["count"].as_u64().unwrap_or(0),
                g["wait"]["phrase"].as_str().unwrap_or("-").to_string(),
                g["wait"]["class"].as_str().unwrap_or("-").to_string(),
                g["suspect"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect();
    let find = |phrase: &str| summary.iter().position(|(_, p, _, _)| p == phrase);
    // One group per await point: the 30 handlers (their select! polls its
    // branches in random order) are one group.
    let handlers = find("broadcast receive | I/O read").unwrap_or_else(|| panic!("{summary:#?}"));
    assert_eq!(summary[handlers].0, 30, "{summary:#?}");
    assert_eq!(summary[handlers].2, "io", "{summary:#?}");
    // The suspects first: leaked, then the sync waits.
    let heads: Vec<(u64, &str, &str)> =
        summary.iter().take(3).map(|(n, p, _, s)| (*n, p.as_str(), s.as_str())).collect();
    assert_eq!(heads[0], (5, "nothing can wake it", "leaked"), "{summary:#?}");
    let mut sync: Vec<(u64, &str, &str)> = heads[1..].to_vec();
    sync.sort();
    assert_eq!(
        sync,
        vec![(10, "oneshot receive", "long_sync_wait"), (20, "mpsc send (channel full)", "long_sync_wait")],
        "{summary:#?}"
    );
    // The healthy waits are not suspects.
    for healthy in [
        "broadcast receive | I/O read",
        "interval",
        "sleep",
        "something a dump cannot trace (I/O readiness or a non-tokio future)",
    ] {
        let at = find(healthy).unwrap_or_else(|| panic!("no {healthy:?} group: {summary:#?}"));
        assert_eq!(summary[at].3, "-", "{healthy} is no suspect: {summary:#?}");
        assert!(at >= 3, "{healthy} comes after the suspects: {summary:#?}");
    }
    assert_eq!(summary.len(), 7, "one group per await point: {summary:#?}");

    // The text report says the same, with the reason on screen.
    let run = taskscope(dir.path(), &["stack", &pid, "--suspect-after", "1s"]);
    assert_eq!(run.code, 0, "{run:?}");
    let out = &run.stdout;
    let first = out.lines().find(|l| l.contains(" tasks [")).unwrap_or_default();
    assert!(first.starts_with("5 tasks [idle, 5 leaked] parked "), "{out}");
    assert!(out.contains("20 tasks [idle, mpsc send (channel full)] parked "), "{out}");
    assert!(out.contains("  suspect: waiting on another task for over 1s, with no timer or I/O branch\n"), "{out}");
    assert!(out.contains("30 tasks [idle, broadcast receive | I/O read] parked "), "{out}");
    // `--sort count` is pprof's order: the biggest group first.
    let run = taskscope(dir.path(), &["stack", &pid, "--sort", "count"]);
    let first = run.stdout.lines().find(|l| l.contains(" tasks [")).unwrap_or_default().to_string();
    assert!(first.starts_with("30 tasks [idle, broadcast receive | I/O read]"), "{}", run.stdout);
}
