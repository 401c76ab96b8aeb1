//! `taskscope stack --pprof` read back by a real pprof: Go's own
//! `go tool pprof` (Debian's golang-go; `.ci/run` installs it), which is what
//! Pyroscope and Grafana speak too. The samples, their counts, the function
//! names and the labels must come out as the program has them.

mod common;

use std::process::Command;
use std::time::Duration;

use common::example::Example;
use common::*;

/// `go`, or a panic saying how to get it: this test does not pass by skipping.
fn go() -> String {
    for candidate in ["go", "/usr/lib/go/bin/go"] {
        if Command::new(candidate).arg("version").output().is_ok_and(|o| o.status.success()) {
            return candidate.to_string();
        }
    }
    panic!("`go` is needed to read the profile with `go tool pprof`: install Debian's golang-go (.ci/run does)");
}

fn pprof(args: &[&str], file: &str) -> String {
    let out = Command::new(go()).args(["tool", "pprof"]).args(args).arg(file).output().expect("go tool pprof");
    assert!(out.status.success(), "go tool pprof {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn go_tool_pprof_reads_the_tasks_as_goroutines() {
    let dir = temp_dir();
    let ex = Example::start(dir.path(), "log_follow", &["--self-clients", "3"]);
    std::thread::sleep(Duration::from_millis(2500));
    let file = dir.path().join("tasks.pb.gz").display().to_string();
    let run = taskscope(dir.path(), &["stack", &ex.pid(), "--pprof", &file]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.starts_with(&format!("wrote {file}: 4 tasks in 2 samples, ")), "{run:?}");

    let raw = pprof(&["-raw"], &file);
    assert!(raw.contains("PeriodType: goroutine count"), "{raw}");
    let samples: Vec<&str> =
        raw.split("Samples:\n").nth(1).and_then(|s| s.split("Locations").next()).unwrap_or_default().lines().collect();
    // `   3: 1 2 3 4 5` then its labels on the next line.
    let handlers = samples.iter().position(|l| l.trim_start().starts_with("3: ")).unwrap_or_else(|| panic!("{raw}"));
    let labels = samples.get(handlers + 1).copied().unwrap_or_default();
    for label in
        ["name:[logs handler]", "state:[idle]", "leaked:[false]", "spawned_at:[examples/src/bin/log_follow.rs:"]
    {
        assert!(labels.contains(label), "{label} in {labels:?}: {raw}");
    }
    let accept = samples.iter().position(|l| l.trim_start().starts_with("1: ")).unwrap_or_else(|| panic!("{raw}"));
    assert!(!samples.get(accept + 1).copied().unwrap_or_default().contains("name:"), "{raw}");
    assert!(raw.contains("log_follow::follow_logs::{{closure}} examples/src/bin/log_follow.rs:"), "{raw}");
    assert!(raw.contains("[no stack] spawned at examples/src/bin/log_follow.rs:"), "the unwrapped accept loop: {raw}");
    // The same comments as the agent's profile endpoint: where the stacks
    // came from, and what the tasks without one are counted under.
    assert!(raw.contains("stacks: 3 wrapped tasks captured safely"), "{raw}");
    assert!(raw.contains("1 task without a stack, counted by spawn location"), "{raw}");

    let traces = pprof(&["-traces"], &file);
    let handler =
        traces.split("-----------+").find(|t| t.contains("logs handler")).unwrap_or_else(|| panic!("{traces}"));
    let lines: Vec<&str> = handler.lines().map(str::trim).collect();
    let own: Vec<&&str> = lines.iter().filter(|l| l.contains("log_follow::")).collect();
    assert_eq!(own.len(), 2, "{handler}");
    assert!(own[0].ends_with("log_follow::follow_logs::{{closure}}"), "leaf first, as pprof wants: {handler}");
    assert!(own[1].ends_with("log_follow::handle_connection::{{closure}}"), "{handler}");
}

#[test]
fn the_filters_apply_and_bad_files_are_one_line() {
    let dir = temp_dir();
    let ex = Example::start(dir.path(), "log_follow", &["--self-clients", "2"]);
    std::thread::sleep(Duration::from_millis(2500));
    let file = dir.path().join("handlers.pb.gz").display().to_string();
    let run = taskscope(dir.path(), &["stack", &ex.pid(), "--pprof", &file, "--match", "logs handler"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.starts_with(&format!("wrote {file}: 2 tasks in 1 samples, ")), "{run:?}");
    assert!(!pprof(&["-raw"], &file).contains("[no stack]"), "the accept loop is filtered out");

    let nowhere = dir.path().join("no/such/dir/x.pb.gz").display().to_string();
    let run = taskscope(dir.path(), &["stack", &ex.pid(), "--pprof", &nowhere]);
    assert_one_line_error(&run, "cannot write");
    let run = taskscope(dir.path(), &["stack", &ex.pid(), "--pprof", &file, "--json"]);
    assert_eq!(run.code, 2, "{run:?}");
}
