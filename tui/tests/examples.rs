//! `taskscope` against the real example programs with the real agent: the
//! leaks they are written to show must come out of `stack` and `ps` as their
//! docs promise.
//!
//! The example binaries belong to another package, so cargo does not build
//! them for this one's tests. The first test to need them runs
//! `cargo build -p taskscope-examples --bins` into the same target directory
//! and profile (a no-op under `cargo test --workspace`, which already built
//! them).

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;

/// Directory of the binaries being tested (`target/debug`).
fn bin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_taskscope")).parent().expect("bin dir").to_path_buf()
}

/// Builds the examples once per test binary; the error is kept for every test.
fn examples_built() -> &'static Result<(), String> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = bin_dir();
        let profile = match dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev".to_string(),
            Some(other) => other.to_string(),
        };
        let target_dir = dir.parent().expect("target dir");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "taskscope-examples", "--bins", "--profile", &profile])
            .arg("--target-dir")
            .arg(target_dir)
            .status()
            .map_err(|e| format!("cannot run cargo to build the examples: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("building the examples failed: {status}"))
        }
    })
}

/// A running example, killed on drop.
struct Example {
    child: Child,
    socket: PathBuf,
}

impl Example {
    /// Starts `name args...` with `TASKSCOPE_DIR=dir` and waits for its socket.
    fn start(dir: &std::path::Path, name: &str, args: &[&str]) -> Example {
        Example::start_with(dir, name, args, &[])
    }

    /// Same, with extra environment variables.
    fn start_with(dir: &std::path::Path, name: &str, args: &[&str], env: &[(&str, &str)]) -> Example {
        if let Err(e) = examples_built() {
            panic!("{e}");
        }
        let child = Command::new(bin_dir().join(name))
            .args(args)
            .envs(env.iter().copied())
            .env("TASKSCOPE_DIR", dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start example {name}: {e}"));
        let socket = socket_in(dir, child.id());
        assert!(wait_for(&socket, Duration::from_secs(20)), "{name} never created {}", socket.display());
        Example { child, socket }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

#[test]
fn done_signal_shows_one_growing_group_of_parked_helpers() {
    let dir = temp_dir();
    let ex = Example::start(dir.path(), "done_signal", &["--calls", "50", "--interval", "1ms"]);
    let pid = ex.pid();
    let site = "spawned at examples/src/bin/done_signal.rs:";

    let run = stack_until(dir.path(), &["stack", &pid], |out| out.contains("\n50 tasks [idle] parked "));
    assert_eq!(run.code, 0, "{run:?}");
    let out = &run.stdout;
    assert!(out.starts_with(&format!("done_signal (pid {pid}), tokio ")), "{out}");
    let header = out.lines().find(|l| l.starts_with("50 tasks [idle] parked ")).expect("group line");
    assert!(header.contains(site), "{header}");
    let location = header.split("spawned at ").nth(1).expect("location");
    // `parked 1.2s..1.3s` or `parked 1.3s`: a range of compact durations.
    let parked = header.split("parked ").nth(1).and_then(|r| r.split("  ").next()).expect("parked");
    assert!(parked.chars().next().is_some_and(|c| c.is_ascii_digit()), "{header}");
    assert!(out.contains("done_signal::to_done_channel"), "the program's own frame: {out}");
    assert!(out.contains("runtime frame"), "internal frames collapsed: {out}");
    assert!(!header.contains("leaked"), "the root token holds their wakers: parked, not leaked: {header}");

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

    // Right after a dump, tokio may still be re-polling traced tasks, so a
    // helper can show as scheduled for a moment; wait for all 50 to be idle.
    let idle_helpers = |out: &str| {
        out.lines()
            .filter(|l| l.starts_with("task ") && l.contains("[idle ") && l.ends_with(&format!("spawned at {location}")))
            .count()
    };
    let all = stack_until(dir.path(), &["stack", &pid, "--all"], |out| idle_helpers(out) == 50);
    assert_eq!(idle_helpers(&all.stdout), 50, "{}", all.stdout);

    let json = taskscope(dir.path(), &["stack", &pid, "--json"]);
    assert_eq!(json.code, 0, "{json:?}");
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(v["process"]["pid"].to_string(), pid);
    assert_eq!(v["runtimes"][0]["status"], "ok");
    let g = &v["groups"][0];
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
    assert!(young.stdout.contains("\n50 tasks [idle] parked "), "{}", young.stdout);

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
    let run = stack_until(dir.path(), &["stack", &pid], |out| out.contains("\n50 tasks [idle] parked "));
    assert_eq!(run.code, 0, "{run:?}");
    let out = &run.stdout;
    assert!(out.contains("\nnote: lean mode (runtime hooks)"), "{out}");
    let header = out.lines().find(|l| l.starts_with("50 tasks [idle] parked ")).expect("group line");
    assert!(header.contains("spawned at examples/src/bin/done_signal.rs:"), "{header}");
    assert!(out.contains("done_signal::to_done_channel"), "the program's own frame: {out}");

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
    assert!(out.contains("orphan_receiver::job_worker"), "{out}");

    let all = taskscope(dir.path(), &["stack", &pid, "--all"]);
    assert!(
        all.stdout.lines().any(|l| l.starts_with("task ") && l.contains(", leaked] spawned at examples/src/bin/orphan_receiver.rs:")),
        "{}",
        all.stdout
    );
    let json = taskscope(dir.path(), &["stack", &pid, "--json", "--all"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    let tasks = v["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.iter().filter(|t| t["leaked"] == true).count(), 1, "{v}");
}

#[test]
fn blocked_runtime_still_gives_lifecycle_data() {
    let dir = temp_dir();
    let ex = Example::start(dir.path(), "blocker", &["--after", "100ms", "--for", "20s"]);
    let pid = ex.pid();
    std::thread::sleep(Duration::from_millis(500));
    let start = Instant::now();
    let run = taskscope(dir.path(), &["stack", &pid, "--timeout", "1s"]);
    assert!(start.elapsed() < Duration::from_secs(8), "took {:?}", start.elapsed());
    assert_eq!(run.code, 0, "lifecycle data is a valid answer: {run:?}");
    let warning = run.stdout.lines().find(|l| l.starts_with("warning: no stacks: ")).unwrap_or_default();
    assert!(warning.contains("runtime main did not answer within 1s"), "{}", run.stdout);
    let running = run
        .stdout
        .lines()
        .find(|l| l.starts_with("1 task [running]") && l.contains("examples/src/bin/blocker.rs:"))
        .unwrap_or_else(|| panic!("no running group: {}", run.stdout));
    // The blocking task has been inside its poll since 100ms after start;
    // the records are read when the dump is asked for, 500ms after start.
    let polling = running.split(" polling ").nth(1).and_then(|rest| rest.split_whitespace().next());
    let seconds = polling.and_then(|t| match t.strip_suffix("ms") {
        Some(ms) => ms.parse::<f64>().ok().map(|ms| ms / 1000.0),
        None => t.strip_suffix('s').and_then(|s| s.parse::<f64>().ok()),
    });
    assert!(seconds.is_some_and(|s| (0.3..20.0).contains(&s)), "{running}");
    let ps = taskscope(dir.path(), &["ps"]);
    assert!(ps.stdout.contains("blocker"), "GetInfo answers while the runtime is blocked: {ps:?}");
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
