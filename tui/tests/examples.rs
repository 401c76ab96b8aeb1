//! `taskscope` against the real example programs with the real agent: the
//! leaks they are written to show must come out of `stack` and `ps` as their
//! docs promise.
//!
//! The example binaries are started through `common::example`.

mod common;

use std::time::{Duration, Instant};

use common::example::Example;
use common::*;

/// Runs `stack` until `ready` accepts its output (the program is still
/// setting up its leak), up to 20s; returns the last run.
fn stack_until(dir: &std::path::Path, args: &[&str], ready: impl Fn(&str) -> bool) -> Run {
    let start = Instant::now();
    loop {
        let run = taskscope(dir, args);
        if (run.code == 0 && ready(&run.stdout)) || start.elapsed() > Duration::from_secs(20) {
            return run;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The group starting at `header` in `stack`'s output: its lines up to the
/// blank line after it.
fn group_of(out: &str, header: &str) -> Vec<String> {
    out.lines().skip_while(|l| *l != header).take_while(|l| !l.is_empty()).map(str::to_string).collect()
}

/// The line under the totals says the stacks were captured safely, and why
/// tokio's dump was not taken (off by default on this tokio).
fn assert_safe_capture_header(out: &str) {
    let sources = out.lines().find(|l| l.starts_with("stacks: ")).unwrap_or_else(|| panic!("no stacks line: {out}"));
    assert!(sources.contains(" wrapped tasks captured safely; "), "{sources}");
    assert!(sources.contains("tokio's dump of runtime main is off: "), "{sources}");
    assert!(!out.contains("warning: no stacks"), "{out}");
}

#[test]
fn done_signal_shows_one_growing_group_of_parked_helpers() {
    let dir = temp_dir();
    let ex = Example::start(dir.path(), "done_signal", &["--calls", "50", "--interval", "1ms"]);
    let pid = ex.pid();
    let site = "spawned at examples/src/bin/done_signal.rs:";

    let run =
        stack_until(dir.path(), &["stack", &pid], |out| out.contains("\n50 tasks [idle, CancellationToken] parked "));
    assert_eq!(run.code, 0, "{run:?}");
    let out = &run.stdout;
    assert!(out.starts_with(&format!("done_signal (pid {pid}), tokio ")), "{out}");
    let header = out.lines().find(|l| l.starts_with("50 tasks [idle, CancellationToken] parked ")).expect("group line");
    assert!(header.contains(site), "{header}");
    let location = header.split("spawned at ").nth(1).expect("location");
    // `parked 1.2s..1.3s` or `parked 1.3s`: a range of compact durations.
    let parked = header.split("parked ").nth(1).and_then(|r| r.split("  ").next()).expect("parked");
    assert!(parked.chars().next().is_some_and(|c| c.is_ascii_digit()), "{header}");
    assert!(out.contains("done_signal::to_done_channel"), "the program's own frame: {out}");
    assert!(out.contains("runtime frame"), "internal frames collapsed: {out}");
    assert!(!header.contains("leaked"), "the root token holds their wakers: parked, not leaked: {header}");
    // A default `#[tokio::main]` program with no variable set: tokio's dump
    // is off, and the helpers, spawned with `taskscope_agent::spawn`, come
    // with stacks captured safely.
    assert_safe_capture_header(out);
    let group = group_of(out, header);
    assert_eq!(group.get(1).map(String::as_str), Some("  stack (captured safely):"), "{out}");

    // The helpers' group, from its header line to the blank line after it.
    let helper_block = |out: &str| -> Vec<String> {
        out.lines()
            .skip_while(|l| !l.starts_with("50 tasks "))
            .take_while(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    };
    let full = taskscope(dir.path(), &["stack", &pid, "--full"]);
    assert!(!full.stdout.contains("runtime frame"), "{}", full.stdout);
    assert!(helper_block(&full.stdout).len() > helper_block(out).len(), "--full shows more frames: {}", full.stdout);

    // Right after a capture, the leaves a traced poll cut short are polled
    // again for real, so a helper can show as scheduled for a moment; wait
    // for all 50 to be idle.
    let idle_helpers = |out: &str| {
        out.lines()
            .filter(|l| {
                l.starts_with("task ") && l.contains("[idle ") && l.ends_with(&format!("spawned at {location}"))
            })
            .count()
    };
    let all = stack_until(dir.path(), &["stack", &pid, "--all"], |out| idle_helpers(out) == 50);
    assert_eq!(idle_helpers(&all.stdout), 50, "{}", all.stdout);

    let json = taskscope(dir.path(), &["stack", &pid, "--json"]);
    assert_eq!(json.code, 0, "{json:?}");
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(v["process"]["pid"].to_string(), pid);
    // tokio's dump is not taken on this tokio unless the program opts in;
    // the safe capture answered for every wrapped task.
    assert_eq!(v["runtimes"][0]["status"], "disabled", "{}", v["runtimes"]);
    let safe = &v["safe_capture"];
    assert!(safe["wanted"].as_u64().is_some_and(|n| n >= 50), "{safe}");
    assert_eq!(safe["answered"], safe["wanted"], "{safe}");
    let g = &v["groups"][0];
    assert_eq!(g["stack_source"], "captured", "{g}");
    assert_eq!(g["count"], 50);
    assert_eq!(g["states"]["idle"], 50);
    assert_eq!(g["leaked"], 0);
    assert!(g["location"].as_str().is_some_and(|l| l.starts_with("examples/src/bin/done_signal.rs:")), "{g}");
    let (min, max) = (g["parked_min_ns"].as_u64().unwrap(), g["parked_max_ns"].as_u64().unwrap());
    assert!(0 < min && min <= max, "{g}");
    assert_eq!(g["task_ids"].as_array().map(Vec::len), Some(50));
    let frames = g["stack"][0].as_array().expect("frames");
    assert!(frames.iter().any(|f| f["function"].as_str().is_some_and(|s| s.contains("to_done_channel"))), "{g}");
    assert!(frames.iter().any(|f| f["internal"] == true), "{g}");

    let matched = taskscope(dir.path(), &["stack", &pid, "--match", "to_done_channel"]);
    assert!(matched.stdout.contains("showing 50 of "), "{}", matched.stdout);
    let none = taskscope(dir.path(), &["stack", &pid, "--match", "no_such_function_anywhere"]);
    assert!(none.stdout.ends_with("\nno task matches\n"), "{}", none.stdout);
    let old = taskscope(dir.path(), &["stack", &pid, "--min-idle", "1h"]);
    assert!(old.stdout.ends_with("\nno task matches\n"), "{}", old.stdout);
    let young = taskscope(dir.path(), &["stack", &pid, "--min-idle", "1ms"]);
    assert!(young.stdout.contains("\n50 tasks [idle, CancellationToken] parked "), "{}", young.stdout);

    let ps = taskscope(dir.path(), &["ps"]);
    let row = ps.stdout.lines().find(|l| l.split_whitespace().next() == Some(pid.as_str())).expect("ps row");
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[1], "done_signal", "{row}");
    assert!(cols[2].parse::<u64>().unwrap() >= 50, "{row}");
    assert_eq!(cols[6], ex.socket.display().to_string(), "{row}");
}

#[test]
fn done_signal_in_lean_mode_shows_the_same_group_without_leak_verdicts() {
    let dir = temp_dir();
    let ex = Example::start(dir.path(), "done_signal", &["--lean", "--calls", "50", "--interval", "1ms"]);
    let pid = ex.pid();
    let run =
        stack_until(dir.path(), &["stack", &pid], |out| out.contains("\n50 tasks [idle, CancellationToken] parked "));
    assert_eq!(run.code, 0, "{run:?}");
    let out = &run.stdout;
    assert!(out.contains("\nnote: lean mode (runtime hooks)"), "{out}");
    let header = out.lines().find(|l| l.starts_with("50 tasks [idle, CancellationToken] parked ")).expect("group line");
    assert!(header.contains("spawned at examples/src/bin/done_signal.rs:"), "{header}");
    assert!(out.contains("done_signal::to_done_channel"), "the program's own frame: {out}");
    assert_safe_capture_header(out);
    assert_eq!(group_of(out, header).get(1).map(String::as_str), Some("  stack (captured safely):"), "{out}");

    // Taking stacks polls every task once more; those polls are not the
    // program's, so parked times keep growing across dumps.
    let parked_min = |out: &str| -> u64 {
        let json: serde_json::Value = serde_json::from_str(out).expect("json");
        json["groups"][0]["parked_min_ns"].as_u64().expect("parked_min_ns")
    };
    let first = taskscope(dir.path(), &["stack", &pid, "--json"]);
    std::thread::sleep(Duration::from_millis(300));
    let second = taskscope(dir.path(), &["stack", &pid, "--json"]);
    let (a, b) = (parked_min(&first.stdout), parked_min(&second.stdout));
    assert!(b >= a + 250_000_000, "parked time reset by a dump: {a} then {b}");
    let v: serde_json::Value = serde_json::from_str(&second.stdout).expect("json");
    assert_eq!(v["process"]["mode"], "hooks", "{v}");
    assert_eq!(v["groups"][0]["count"], 50, "{v}");
    assert_eq!(v["groups"][0]["leaked"], 0, "{v}");
}

#[test]
fn orphan_receiver_shows_a_leaked_task_and_a_parked_receiver() {
    let dir = temp_dir();
    let ex = Example::start(dir.path(), "orphan_receiver", &[]);
    let pid = ex.pid();
    let run = stack_until(dir.path(), &["stack", &pid], |out| out.contains("leaked]"));
    assert_eq!(run.code, 0, "{run:?}");
    let out = &run.stdout;
    let leaked = out.lines().find(|l| l.contains("[idle, leaked]")).expect("leaked group");
    assert!(leaked.starts_with("1 task [idle, leaked] parked "), "{leaked}");
    assert!(leaked.contains("spawned at examples/src/bin/orphan_receiver.rs:"), "{leaked}");
    // Both wrapped: the worker's stack is captured safely; the task on
    // `pending()` answers with none, and says why.
    assert_safe_capture_header(out);
    let leaked_group = group_of(out, leaked);
    assert!(
        leaked_group.get(1).is_some_and(|l| l == "  suspect: leaked: nothing can wake them, they will never run again")
            && leaked_group
                .get(2)
                .is_some_and(|l| l.contains("(no stack captured: it awaits nothing a task dump can trace")),
        "{out}"
    );
    let worker =
        out.lines().find(|l| l.starts_with("1 task [idle, mpsc receive] parked ")).expect("the worker's group");
    let worker = group_of(out, worker);
    assert_eq!(worker.get(1).map(String::as_str), Some("  stack (captured safely):"), "{out}");
    assert!(worker.iter().any(|l| l.contains("orphan_receiver::job_worker")), "{out}");

    let all = taskscope(dir.path(), &["stack", &pid, "--all"]);
    assert!(
        all.stdout
            .lines()
            .any(|l| l.starts_with("task ") && l.contains(", leaked] spawned at examples/src/bin/orphan_receiver.rs:")),
        "{}",
        all.stdout
    );
    let json = taskscope(dir.path(), &["stack", &pid, "--json", "--all"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    let tasks = v["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.iter().filter(|t| t["leaked"] == true).count(), 1, "{v}");
}

#[test]
fn a_blocked_worker_leaves_the_other_tasks_stacks_to_the_safe_capture() {
    let dir = temp_dir();
    let ex = Example::start(dir.path(), "blocker", &["--after", "100ms", "--for", "20s"]);
    let pid = ex.pid();
    std::thread::sleep(Duration::from_millis(500));
    let start = Instant::now();
    let run = taskscope(dir.path(), &["stack", &pid, "--timeout", "1s"]);
    assert!(start.elapsed() < Duration::from_secs(8), "took {:?}", start.elapsed());
    assert_eq!(run.code, 0, "a partial answer is a valid answer: {run:?}");
    let out = &run.stdout;
    assert!(!out.contains("warning: no stacks"), "{out}");
    let sources = out.lines().find(|l| l.starts_with("stacks: ")).unwrap_or_else(|| panic!("no stacks line: {out}"));
    assert!(
        sources.starts_with("stacks: 1 of 2 wrapped tasks captured safely (1 not polled within 1s); tokio's dump of runtime main is off: "),
        "{sources}"
    );

    // The blocking task: inside one poll since 100ms after start, so it
    // cannot be asked for its stack.
    let running = out
        .lines()
        .find(|l| l.starts_with("1 task [running]") && l.contains("examples/src/bin/blocker.rs:"))
        .unwrap_or_else(|| panic!("no running group: {out}"));
    // The records are read when the stack is asked for, 500ms after start.
    let polling = running.split(" polling ").nth(1).and_then(|rest| rest.split_whitespace().next());
    let seconds = polling.and_then(|t| match t.strip_suffix("ms") {
        Some(ms) => ms.parse::<f64>().ok().map(|ms| ms / 1000.0),
        None => t.strip_suffix('s').and_then(|s| s.parse::<f64>().ok()),
    });
    assert!(seconds.is_some_and(|s| (0.3..20.0).contains(&s)), "{running}");
    assert_eq!(
        group_of(out, running).get(1).map(String::as_str),
        Some("    (no stack captured: wrapped, but not polled within 1s: it is inside a long poll, or its runtime is blocked)"),
        "{out}"
    );

    // The tick counter runs on the other worker, and answers.
    let ticks = out
        .lines()
        .find(|l| l.starts_with("1 task [") && !l.starts_with("1 task [running]"))
        .unwrap_or_else(|| panic!("no tick counter group: {out}"));
    let ticks = group_of(out, ticks);
    assert_eq!(ticks.get(1).map(String::as_str), Some("  stack (captured safely):"), "{out}");
    assert!(ticks.iter().any(|l| l.contains("blocker::count_ticks")), "{out}");

    let ps = taskscope(dir.path(), &["ps"]);
    assert!(ps.stdout.contains("blocker"), "GetInfo answers while a worker is blocked: {ps:?}");
}

/// With tokio's dump opted into, a dump of `blocker` waits for the blocked
/// worker and times out; the reason names the task inside the long poll
/// (its id, spawn location and how long), not "a task is probably
/// blocking", and not tokio's dump machinery, which a worker held by no
/// task would be blamed on.
#[test]
fn a_dump_that_waits_on_a_blocked_worker_names_the_blocking_task() {
    let dir = temp_dir();
    let ex = Example::start_with(
        dir.path(),
        "blocker",
        &["--after", "100ms", "--for", "20s"],
        &[("TASKSCOPE_TOKIO_DUMPS", "1")],
    );
    let pid = ex.pid();
    std::thread::sleep(Duration::from_millis(1500));
    let run = taskscope(dir.path(), &["stack", &pid, "--json", "--timeout", "1s"]);
    assert_eq!(run.code, 0, "a partial answer is a valid answer: {run:?}");
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    let main = v["runtimes"].as_array().and_then(|r| r.iter().find(|r| r["name"] == "main")).expect("runtime main");
    assert_eq!(main["status"], "timed_out", "{main}");
    let blocking = v["groups"]
        .as_array()
        .and_then(|groups| groups.iter().find(|g| g["states"].to_string().contains("running")))
        .unwrap_or_else(|| panic!("a running group: {v}"));
    let id = blocking["task_ids"][0].as_u64().expect("the running task's id");
    let detail = main["detail"].as_str().expect("detail");
    let named = format!("task {id} spawned at examples/src/bin/blocker.rs:");
    assert!(detail.starts_with("runtime `main` did not answer within 1s: worker "), "{detail}");
    assert!(detail.contains(&named), "the blocking task is named: {detail}");
    let polling = detail.split(" has been inside one poll for ").nth(1).and_then(|rest| rest.split(',').next());
    let seconds = polling.and_then(|t| t.strip_suffix('s')).and_then(|s| s.parse::<f64>().ok());
    assert!(seconds.is_some_and(|s| (1.0..20.0).contains(&s)), "{detail}");
    assert!(!detail.contains("probably") && !detail.contains("dump machinery"), "{detail}");
}

#[test]
fn log_follow_shows_the_handlers_stacks_and_says_the_plain_spawned_loop_is_not_wrapped() {
    let dir = temp_dir();
    let ex = Example::start(dir.path(), "log_follow", &["--self-clients", "3"]);
    let pid = ex.pid();
    let is_handlers = |l: &str| {
        l.starts_with("3 tasks [idle, broadcast receive] parked ")
            && l.contains("spawned at examples/src/bin/log_follow.rs:")
    };
    let run = stack_until(dir.path(), &["stack", &pid], |out| {
        out.lines().any(is_handlers) && out.contains("  name: logs handler")
    });
    assert_eq!(run.code, 0, "{run:?}");
    let out = &run.stdout;
    assert_safe_capture_header(out);
    let handlers = out
        .lines()
        .find(|l| is_handlers(l) && group_of(out, l).get(1).is_some_and(|n| n == "  name: logs handler"))
        .unwrap_or_else(|| panic!("no group of 3 handlers: {out}"));
    let handlers = group_of(out, handlers);
    assert_eq!(handlers.get(2).map(String::as_str), Some("  stack (captured safely):"), "{out}");
    assert!(handlers.iter().any(|l| l.contains("log_follow::handle_connection")), "{out}");

    // The accept loop, spawned with plain `tokio::spawn` on purpose.
    let accept = out
        .lines()
        .find(|l| l.starts_with("1 task [idle]") && group_of(out, l).iter().any(|g| g.contains("not wrapped")))
        .unwrap_or_else(|| panic!("no unwrapped group: {out}"));
    assert!(accept.contains("spawned at examples/src/bin/log_follow.rs:"), "{accept}");
    assert_eq!(
        group_of(out, accept).get(1).map(String::as_str),
        Some(
            "    (no stack captured: not wrapped, and tokio's dump of its runtime was not taken (see above); \
             spawn it with `taskscope_agent::spawn` to capture its stack safely)"
        ),
        "{out}"
    );
    let json = taskscope(dir.path(), &["stack", &pid, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    let groups = v["groups"].as_array().expect("groups");
    assert_eq!(groups.iter().filter(|g| g["no_stack"] == "not_wrapped").count(), 1, "{v}");
}

#[test]
fn killed_program_leaves_a_socket_that_ps_and_stack_clean_up() {
    let dir = temp_dir();
    let mut ex = Example::start(dir.path(), "done_signal", &["--calls", "1"]);
    let pid = ex.child.id();
    ex.child.kill().expect("kill -9");
    ex.child.wait().expect("reap");
    assert!(ex.socket.exists(), "SIGKILL leaves the socket behind");
    let run = taskscope(dir.path(), &["stack", &pid.to_string()]);
    assert_one_line_error(&run, &format!("process {pid} is not running; removed its stale socket"));
    assert!(!ex.socket.exists());
    let run = taskscope(dir.path(), &["stack", &pid.to_string()]);
    assert_one_line_error(&run, &format!("process {pid} is not running"));
}

#[test]
fn tcp_address_reaches_the_same_agent() {
    let dir = temp_dir();
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let addr = format!("127.0.0.1:{port}");
    let ex = Example::start_with(dir.path(), "orphan_receiver", &[], &[("TASKSCOPE_TCP", &addr)]);
    let over_tcp = stack_until(dir.path(), &["stack", &format!("http://{addr}")], |out| out.contains("leaked]"));
    assert_eq!(over_tcp.code, 0, "{over_tcp:?}");
    assert!(over_tcp.stdout.starts_with(&format!("orphan_receiver (pid {}), ", ex.pid())), "{}", over_tcp.stdout);
    assert!(over_tcp.stdout.contains("1 task [idle, leaked]"), "{}", over_tcp.stdout);
}
