//! taskscope against a program that runs console-subscriber (tokio-console's
//! agent) and no taskscope agent: the real `console_leaks` example, the real
//! binary, a real TCP port or Unix socket, and `attach` in a real terminal
//! (tmux). It leaves three tasks on `pending()` (leaked), five job waiters on
//! a oneshot whose sender is kept (parked, not leaked), and a ticker.

mod common;
mod console_target {
    pub mod program;
    pub mod tmux;
}

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{taskscope, taskscope_until, temp_dir, Run};
use console_target::program::{self, forgotten_at, ticker_at, waiters_at, Listen, Program};
use console_target::tmux::Tmux;

/// The blank-line separated blocks of a report.
fn blocks(out: &str) -> Vec<&str> {
    out.split("\n\n").map(str::trim_end).filter(|b| !b.is_empty()).collect()
}

/// Runs `stack target` until console's records have reached the verdict on
/// the program's three forgotten tasks (console-subscriber sends waker
/// counts with its periodic updates, so a loaded machine may see a first
/// update without them), up to 20 s; returns the last run.
fn stack_once_settled(dir: &std::path::Path, target: &str) -> Run {
    let verdict = |run: &Run| run.stdout.lines().next().is_some_and(|head| head.contains(" 3 leaked"));
    let run = taskscope_until(dir, &["stack", target], |run| run.code != 0 || verdict(run));
    if run.code == 0 && !verdict(&run) {
        // Seen once in CI, under load: two of the three for 40 s. What
        // console-subscriber said of every task, to tell why next time.
        let records = taskscope(dir, &["stack", target, "--json"]);
        panic!(
            "no verdict on the 3 forgotten tasks within 20 s:\n{}\nconsole's records:\n{}",
            run.stdout, records.stdout
        );
    }
    run
}

/// The one group spawned at `at`.
fn group<'a>(out: &'a str, at: &str) -> &'a str {
    let found: Vec<&str> =
        blocks(out).into_iter().filter(|b| b.lines().next().is_some_and(|l| l.contains(at))).collect();
    assert_eq!(found.len(), 1, "one group spawned at {at} in:\n{out}");
    found[0]
}

#[test]
fn stack_groups_by_spawn_location_and_calls_only_the_pending_tasks_leaked() {
    let dir = temp_dir();
    let program = Program::start(&[]);
    let run = stack_once_settled(dir.path(), &program.addr());
    assert_eq!(run.code, 0, "{run:?}");
    let out = &run.stdout;
    let head = out.lines().next().unwrap_or_default();
    assert!(head.starts_with(&format!("console_leaks (pid {}) via console-api: ", program.pid())), "{out}");
    assert!(head.contains(" 3 leaked"), "{out}");
    // What console cannot give is said once, and not under every group.
    assert_eq!(out.matches("no async stacks").count(), 1, "{out}");
    assert!(
        out.contains("warning: no stacks: task dumps are not supported (console-subscriber serves task records only"),
        "{out}"
    );
    assert!(!out.contains("no stack captured"), "{out}");

    let forgotten = group(out, &forgotten_at());
    assert!(forgotten.starts_with("3 tasks [idle, 3 leaked] parked "), "{forgotten}");
    assert!(forgotten.contains("suspect: leaked"), "{forgotten}");
    let waiters = group(out, &waiters_at());
    assert!(waiters.starts_with("5 tasks [idle] parked "), "{waiters}");
    assert!(waiters.contains("  name: job waiter"), "{waiters}");
    let ticker = group(out, &ticker_at());
    assert!(ticker.starts_with("1 task ["), "{ticker}");
    // Nothing else is leaked: the leaked group comes first, alone.
    let leaked: Vec<&str> = blocks(out).into_iter().filter(|b| b.contains("leaked]")).collect();
    assert_eq!(leaked, vec![forgotten], "{out}");
    assert!(blocks(out)[1] == forgotten, "suspects first:\n{out}");
}

#[test]
fn json_has_the_same_groups_verdicts_and_records() {
    let dir = temp_dir();
    let program = Program::start(&[]);
    // As `stack_once_settled` does for the text: console's first updates
    // may come before the verdict on the forgotten tasks can be reached.
    let run = taskscope_until(dir.path(), &["stack", &program.addr(), "--json"], |run| {
        run.code != 0
            || serde_json::from_str::<serde_json::Value>(&run.stdout).is_ok_and(|r| r["counts"]["leaked"] == 3)
    });
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("no async stacks"), "the no-stacks warning goes to stderr once: {run:?}");
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(report["process"]["mode"], "console-api");
    assert_eq!(report["process"]["pid"], program.pid());
    assert_eq!(report["process"]["name"], "console_leaks");
    assert_eq!(report["counts"]["leaked"], 3);
    assert_eq!(report["runtimes"][0]["status"], "unsupported");
    let groups = report["groups"].as_array().expect("groups");
    let at = |loc: &str| -> &serde_json::Value {
        let found: Vec<&serde_json::Value> =
            groups.iter().filter(|g| g["location"].as_str().is_some_and(|l| l.starts_with(loc))).collect();
        assert_eq!(found.len(), 1, "one group at {loc}: {groups:?}");
        found[0]
    };
    let forgotten = at(&forgotten_at());
    assert_eq!((forgotten["count"].as_u64(), forgotten["leaked"].as_u64()), (Some(3), Some(3)));
    assert_eq!(forgotten["suspect"], "leaked");
    assert!(forgotten["parked_min_ns"].as_u64().is_some_and(|ns| ns > 0), "{forgotten}");
    let waiters = at(&waiters_at());
    assert_eq!((waiters["count"].as_u64(), waiters["leaked"].as_u64()), (Some(5), Some(0)));
    assert_eq!(waiters["names"], serde_json::json!(["job waiter"]));
    let leaked_groups = groups.iter().filter(|g| g["leaked"].as_u64() != Some(0)).count();
    assert_eq!(leaked_groups, 1, "{groups:?}");

    // Every task, with console's counters: no live waker on the leaked ones.
    let run = taskscope(dir.path(), &["stack", &program.addr(), "--json", "--all"]);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    let tasks = report["tasks"].as_array().expect("tasks");
    for t in tasks {
        let leaked = t["leaked"].as_bool() == Some(true);
        let forgotten = t["location"].as_str().is_some_and(|l| l.starts_with(&forgotten_at()));
        assert_eq!(leaked, forgotten, "{t}");
        if forgotten {
            assert_eq!(
                (t["live_wakers"].as_i64(), t["polls"].as_u64(), t["state"].as_str()),
                (Some(0), Some(1), Some("idle")),
                "{t}"
            );
        }
    }
    assert!(tasks.iter().any(|t| t["wakes"].as_u64().is_some_and(|w| w > 0)), "the ticker is woken: {tasks:?}");
}

#[test]
fn unix_sockets_console_scheme_and_check() {
    let dir = temp_dir();
    let socket = program::socket(dir.path());
    let program = Program::start_at(Listen::Unix(socket.clone()), &[]);
    let path = socket.display().to_string();
    for target in [path.clone(), format!("unix:{path}"), format!("console://{path}")] {
        let run = taskscope(dir.path(), &["stack", &target]);
        assert_eq!(run.code, 0, "{target}: {run:?}");
        assert!(run.stdout.starts_with(&format!("console_leaks (pid {}) via console-api", program.pid())), "{run:?}");
    }
    let settled = stack_once_settled(dir.path(), &path);
    assert!(settled.stdout.lines().next().is_some_and(|h| h.contains(" 3 leaked")), "{settled:?}");
    let run = taskscope(dir.path(), &["check", &format!("console://{path}"), "--leaked"]);
    assert_eq!(run.code, 1, "a leak was found: {run:?}");
    assert!(run.stdout.contains("3 tasks leaked"), "{run:?}");
    assert!(run.stdout.contains(&forgotten_at()), "{run:?}");

    let fixed = Program::start(&["--fixed"]);
    let run = taskscope(dir.path(), &["check", &fixed.addr(), "--leaked"]);
    assert_eq!(run.code, 0, "the fixed program leaks nothing: {run:?}");
}

#[test]
fn diff_names_the_growing_group_by_its_new_tasks() {
    let dir = temp_dir();
    let program = Program::start(&["--grow-every", "200ms"]);
    let run = taskscope(dir.path(), &["stack", &program.addr(), "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let baseline = dir.path().join("before.json");
    std::fs::write(&baseline, &run.stdout).expect("write the baseline");
    std::thread::sleep(Duration::from_millis(1500));
    let run = taskscope(dir.path(), &["diff", baseline.to_str().expect("utf-8 path"), &program.addr()]);
    assert_eq!(run.code, 1, "a group grew: {run:?}");
    let grown = group(&run.stdout, &waiters_at());
    assert!(grown.starts_with('+') && grown.contains("spawned after the baseline"), "{}", run.stdout);
    assert!(grown.contains("name: job waiter"), "{grown}");
    assert!(!run.stdout.contains("no stack"), "said once, by stack, not per group: {}", run.stdout);
}

/// A server that echoes every byte back.
fn echo_server() -> u16 {
    serve(|mut conn| {
        let mut buf = [0u8; 4096];
        while let Ok(n) = conn.read(&mut buf) {
            if n == 0 || conn.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    })
}

/// An HTTP/1.1 server that answers everything with 400.
fn http1_server() -> u16 {
    serve(|mut conn| {
        let mut buf = [0u8; 4096];
        let _ = conn.read(&mut buf);
        let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    })
}

fn serve(handle: fn(std::net::TcpStream)) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || handle(conn));
        }
    });
    port
}

#[test]
fn something_else_listening_is_one_clear_line() {
    let dir = temp_dir();
    let echo = "it sent our own bytes back, as an echo server does; it speaks no HTTP/2";
    let http = "it answered in HTTP/1, not in HTTP/2 as gRPC does: `HTTP/1.1 400 Bad Request`";
    for (port, what) in [(echo_server(), echo), (http1_server(), http)] {
        let addr = format!("127.0.0.1:{port}");
        for args in
            [vec!["stack", addr.as_str()], vec!["attach", addr.as_str()], vec!["check", addr.as_str(), "--leaked"]]
        {
            let start = Instant::now();
            let run: Run = taskscope(dir.path(), &args);
            assert!(start.elapsed() < Duration::from_secs(10), "{args:?} took {:?}", start.elapsed());
            let status = if args[0] == "check" { 2 } else { 1 };
            assert_eq!(run.code, status, "{args:?}: {run:?}");
            assert_eq!(
                run.stderr.lines().collect::<Vec<_>>(),
                vec![format!("taskscope: {addr}: neither a taskscope agent nor a console-subscriber ({what})")],
                "{args:?}: {run:?}"
            );
        }
        let run = taskscope(dir.path(), &["stack", &format!("console://{addr}")]);
        assert_eq!(run.code, 1, "{run:?}");
        assert!(run.stderr.contains("neither a taskscope agent nor a console-subscriber"), "{run:?}");
    }
    // Nothing at all listening: the refusal names both agents' variables.
    let port = program::free_port();
    let run = taskscope(dir.path(), &["stack", &format!("console://127.0.0.1:{port}")]);
    assert_eq!(
        run.stderr,
        format!(
            "taskscope: connection refused by 127.0.0.1:{port}: is the program running with console-subscriber \
             listening there (its default 127.0.0.1:6669, or TOKIO_CONSOLE_BIND)?\n"
        )
    );
}

#[test]
fn attach_shows_the_groups_and_follows_a_restart() {
    let mut program = Program::start(&[]);
    let Listen::Tcp(port) = program.listen else { unreachable!("started on TCP") };
    let tmux = Tmux::start(&format!("{} attach 127.0.0.1:{port}", env!("CARGO_BIN_EXE_taskscope")));
    let pid = program.pid();
    let screen = tmux.wait_for("the live header", |s| s.contains("live") && s.contains(&format!("pid {pid}")));
    assert!(screen.contains("mode console-api"), "{screen}");
    tmux.wait_for("the verdict", |s| s.contains("✗ 3 leaked"));
    tmux.key("Tab");
    let screen = tmux.wait_for("the groups view", |s| s.contains("LIVE") && s.contains(&waiters_at()));
    let line = |at: &str| screen.lines().find(|l| l.contains(at)).unwrap_or_default().to_string();
    let forgotten = line(&forgotten_at());
    assert!(forgotten.starts_with("3 ") && forgotten.contains("nothing can wake it"), "{screen}");
    let waiters = line(&waiters_at());
    assert!(waiters.starts_with("5 ") && waiters.contains("job waiter"), "{screen}");

    // Killed: the link is lost and said to be; restarted on the same port,
    // the new process is followed.
    program.kill();
    tmux.wait_for("the lost link", |s| s.contains("lost") || s.contains("connecting"));
    let restarted = Program::start_at(Listen::Tcp(port), &[]);
    let screen = tmux.wait_for("the restarted program", |s| {
        s.contains(&format!("pid {}", restarted.pid())) && s.lines().next().is_some_and(|l| l.contains("live"))
    });
    assert!(screen.contains("mode console-api"), "{screen}");
    tmux.wait_for("its verdict", |s| s.contains("✗ 3 leaked"));
    tmux.key("q");
}
