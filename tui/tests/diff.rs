//! `taskscope diff` around a real program that leaks while it runs: a
//! baseline taken with `stack --json`, then the live process, then a second
//! report file; and the baselines it must refuse, with exit status 2.

mod common;

use std::time::Duration;

use common::example::Example;
use common::*;

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.display().to_string()
}

#[test]
fn the_group_that_grew_since_the_baseline_comes_first_with_its_new_tasks() {
    let dir = temp_dir();
    let ex = Example::start(dir.path(), "done_signal", &["--calls", "100000", "--interval", "10ms"]);
    let pid = ex.pid();
    std::thread::sleep(Duration::from_millis(500));
    let before = taskscope(dir.path(), &["stack", &pid, "--json"]);
    assert_eq!(before.code, 0, "{before:?}");
    let baseline = write(dir.path(), "before.json", &before.stdout);
    std::thread::sleep(Duration::from_millis(1500));

    let run = taskscope(dir.path(), &["diff", &baseline, &pid]);
    assert_eq!(run.code, 1, "{run:?}");
    let out = &run.stdout;
    let first = out.lines().next().unwrap_or_default();
    assert!(first.starts_with(&format!("taskscope diff: done_signal (pid {pid}), ")), "{out}");
    assert!(first.contains(" after the baseline "), "{out}");
    let grown = out.lines().find(|l| l.starts_with('+')).unwrap_or_else(|| panic!("{out}"));
    assert!(grown.contains("spawned after the baseline)"), "{grown}");
    assert!(grown.contains("spawned at examples/src/bin/done_signal.rs:"), "{grown}");
    let growth: u64 = grown[1..].split(' ').next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{grown}"));
    let new: u64 = grown
        .split("; ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{grown}"));
    assert!(growth >= 50, "about 100 helpers a second are left: {grown}");
    assert!(new >= growth, "every task of the growth is new: {grown}");
    assert!(out.contains("\n    done_signal::"), "the group's stack: {out}");
    assert!(out.contains("\n        examples/src/bin/done_signal.rs:"), "paths as `stack` shows them: {out}");

    let after = taskscope(dir.path(), &["stack", &pid, "--json", "--all"]);
    let after = write(dir.path(), "after.json", &after.stdout);
    let files = taskscope(dir.path(), &["diff", &baseline, &after, "--min-growth", "1000000"]);
    assert_eq!(files.code, 0, "grew, but not by a million: {files:?}");
    assert!(files.stdout.lines().any(|l| l.starts_with('+')), "{files:?}");
    // The same comparisons as JSON, for a CI step to read.
    let json = taskscope(dir.path(), &["diff", &baseline, &pid, "--json"]);
    assert_eq!(json.code, 1, "{json:?}");
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap_or_else(|e| panic!("{e}: {json:?}"));
    assert_eq!(report["format"], "taskscope.diff.v1", "{report:#}");
    assert_eq!(report["failed"], true, "{report:#}");
    assert_eq!(report["process"]["pid"].to_string(), pid, "{report:#}");
    assert_eq!(report["baseline"]["same_process"], true, "{report:#}");
    assert!(report["baseline"]["after_ns"].as_u64().is_some_and(|ns| ns >= 1_500_000_000), "{report:#}");
    let top = &report["grew"][0];
    let (growth, before_n, after_n) = (top["growth"].as_i64(), top["before"].as_i64(), top["after"].as_i64());
    assert!(growth.is_some_and(|g| g >= 50), "about 100 helpers a second are left: {top:#}");
    assert_eq!(after_n.zip(before_n).map(|(a, b)| a - b), growth, "{top:#}");
    assert!(top["new_tasks"].as_i64() >= growth, "every task of the growth is new: {top:#}");
    assert!(top["location"].as_str().is_some_and(|l| l.starts_with("examples/src/bin/done_signal.rs:")), "{top:#}");
    let functions: Vec<&str> =
        top["stack"][0].as_array().into_iter().flatten().filter_map(|f| f["function"].as_str()).collect();
    assert!(functions.iter().any(|f| f.starts_with("done_signal::")), "the group's stack: {top:#}");
    let passed = taskscope(dir.path(), &["diff", &baseline, &after, "--min-growth", "1000000", "--json"]);
    assert_eq!(passed.code, 0, "{passed:?}");
    let passed: serde_json::Value = serde_json::from_str(&passed.stdout).expect("JSON");
    assert_eq!(passed["failed"], false, "{passed:#}");
    assert_eq!(passed["baseline"]["same_process"], true, "{passed:#}");
    assert!(passed["grew"].as_array().is_some_and(|g| !g.is_empty()), "{passed:#}");

    let same = taskscope(dir.path(), &["diff", &baseline, &baseline]);
    assert_eq!(same.code, 0, "{same:?}");
    assert!(same.stdout.contains(": 0 groups grew, 0 shrank or vanished"), "{same:?}");
}

#[test]
fn baselines_that_cannot_be_compared_are_one_line_and_exit_2() {
    let dir = temp_dir();
    let ex = Example::start(dir.path(), "orphan_receiver", &[]);
    let pid = ex.pid();
    let other = taskscope(dir.path(), &["stack", &pid, "--json"]);
    let other = write(dir.path(), "other.json", &other.stdout);
    let same_other = other.clone();
    let renamed = std::fs::read_to_string(&other).expect("read").replace("\"orphan_receiver\"", "\"someone_else\"");
    let renamed = write(dir.path(), "renamed.json", &renamed);
    let newer = std::fs::read_to_string(&other).expect("read").replace("taskscope.stack.v1", "taskscope.stack.v2");
    let newer = write(dir.path(), "newer.json", &newer);
    let older =
        std::fs::read_to_string(&other).expect("read").replace("\"protocol_version\": 1,", "\"protocol_version\": 0,");
    assert_ne!(older, std::fs::read_to_string(&other).expect("read"), "the report names its protocol version");
    let older = write(dir.path(), "older.json", &older);
    let garbage = write(dir.path(), "garbage.json", "{\"process\": 3");
    let missing = dir.path().join("missing.json").display().to_string();
    for (args, needle) in [
        (vec!["diff", &renamed, &pid], "a baseline compares one program with itself"),
        (vec!["diff", &newer, &same_other], "format \"taskscope.stack.v2\""),
        (vec!["diff", &garbage, &pid], "not a `taskscope stack --json` report"),
        (vec!["diff", &older, &pid], "protocol version 0, the target's is 1"),
        (vec!["diff", &other, &pid, "--bogus"], "--bogus"),
        (vec!["diff", &missing, &pid], "cannot read"),
        (vec!["diff", &pid, &pid], "a baseline is a file: save one with `taskscope stack <pid> --json"),
        (vec!["diff", &other, "no-such-host:notaport"], ""),
        (vec!["diff", &other, &pid, "--min-growth", "0"], ""),
    ] {
        let run = taskscope(dir.path(), &args);
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(run.stderr.starts_with("taskscope: ") && run.stderr.lines().count() == 1, "{args:?}: {run:?}");
        assert!(run.stderr.contains(needle), "{args:?}: {run:?}");
    }
}
