//! The agent's profile endpoint read by a real pprof: `go tool pprof`
//! (Debian's golang-go; `.ci/run` installs it) pulls
//! `/debug/pprof/goroutine` over HTTP as it pulls a Go service's, and must
//! find the tasks' functions, counts and labels, and comments saying where
//! the stacks came from. `/debug/pprof/tasks` is the same profile that
//! `taskscope stack --pprof` writes, sample for sample.

mod common;
mod http_common;

use std::process::Command;
use std::time::Duration;

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

/// `go tool pprof args... source`, its profile copies kept in `dir`.
fn pprof(dir: &std::path::Path, args: &[&str], source: &str) -> String {
    let out = Command::new(go())
        .args(["tool", "pprof"])
        .args(args)
        .arg(source)
        .env("PPROF_TMPDIR", dir)
        .output()
        .expect("go tool pprof");
    assert!(out.status.success(), "go tool pprof {args:?} {source}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `-raw`'s samples and locations: what two profiles of the same tasks share
/// (their time and comments differ).
fn samples(raw: &str) -> &str {
    raw.split("Samples:\n").nth(1).and_then(|s| s.split("Mappings").next()).unwrap_or_default()
}

#[test]
fn go_tool_pprof_pulls_the_task_profile_over_http() {
    let dir = temp_dir();
    let served = http_common::start(dir.path(), "log_follow", &["--self-clients", "3"], &[]);
    std::thread::sleep(Duration::from_millis(2500));

    let url = format!("http://{}/debug/pprof/goroutine", served.addr);
    let raw = pprof(dir.path(), &["-raw"], &url);
    assert!(raw.contains("PeriodType: goroutine count"), "{raw}");
    assert!(raw.contains("Comment: taskscope task profile of "), "{raw}");
    assert!(
        raw.contains("Comment: stacks: 3 wrapped tasks captured safely; tokio's dump of runtime main is off"),
        "{raw}"
    );
    assert!(
        raw.contains("Comment: 1 task without a stack, counted by spawn location under \"[no stack] spawned at"),
        "{raw}"
    );
    let lines: Vec<&str> = samples(&raw).lines().collect();
    let handlers = lines.iter().position(|l| l.trim_start().starts_with("3: ")).unwrap_or_else(|| panic!("{raw}"));
    let labels = lines.get(handlers + 1).copied().unwrap_or_default();
    for label in
        ["name:[logs handler]", "state:[idle]", "leaked:[false]", "spawned_at:[examples/src/bin/log_follow.rs:132:72]"]
    {
        assert!(labels.contains(label), "{label} in {labels:?}: {raw}");
    }
    let accept = lines.iter().position(|l| l.trim_start().starts_with("1: ")).unwrap_or_else(|| panic!("{raw}"));
    assert!(
        lines
            .get(accept + 1)
            .is_some_and(|l| l.contains("spawned_at:[examples/src/bin/log_follow.rs:") && !l.contains("name:")),
        "{raw}"
    );
    assert!(raw.contains("log_follow::follow_logs::{{closure}} examples/src/bin/log_follow.rs:"), "{raw}");
    assert!(raw.contains("[no stack] spawned at examples/src/bin/log_follow.rs:"), "the unwrapped accept loop: {raw}");

    // The task path, and the file `stack --pprof` writes, hold the same samples.
    let answer = http_common::get(served.addr, "/debug/pprof/tasks");
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.header("content-type"), Some("application/octet-stream"));
    let pulled = dir.path().join("pulled.pb.gz");
    std::fs::write(&pulled, &answer.body).expect("write");
    let written = dir.path().join("written.pb.gz");
    let run = taskscope(dir.path(), &["stack", &served.example.pid(), "--pprof", &written.display().to_string()]);
    assert_eq!(run.code, 0, "{run:?}");
    let pulled = pprof(dir.path(), &["-raw"], &pulled.display().to_string());
    let written = pprof(dir.path(), &["-raw"], &written.display().to_string());
    assert!(!samples(&pulled).is_empty());
    assert_eq!(samples(&pulled), samples(&written), "the endpoint's profile is stack --pprof's");

    // `-traces`: leaf first, as pprof wants, with the program's own frames.
    let traces = pprof(dir.path(), &["-traces"], &url);
    let handler =
        traces.split("-----------+").find(|t| t.contains("logs handler")).unwrap_or_else(|| panic!("{traces}"));
    let own: Vec<&str> = handler.lines().map(str::trim).filter(|l| l.contains("log_follow::")).collect();
    assert_eq!(own.len(), 2, "{handler}");
    assert!(own[0].ends_with("log_follow::follow_logs::{{closure}}"), "{handler}");

    // Go's `?debug=1`: the grouped text `taskscope stack` prints.
    let text = http_common::get(served.addr, "/debug/pprof/goroutine?debug=1");
    assert_eq!(text.status, 200);
    assert_eq!(text.header("content-type"), Some("text/plain; charset=utf-8"));
    let text = text.text();
    assert!(text.contains("3 tasks [idle, broadcast receive]"), "{text}");
    assert!(text.contains("  name: logs handler"), "{text}");
    let all = http_common::get(served.addr, "/debug/pprof/tasks?debug=2").text();
    assert_eq!(all.matches("\ntask ").count(), 4, "every task on its own: {all}");
}
