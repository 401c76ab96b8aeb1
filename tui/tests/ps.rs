//! `taskscope ps` against a private socket directory: empty, stale sockets,
//! answering and silent agents.

mod common;

use common::*;
use taskscope_proto::ProcessInfo;

#[test]
fn empty_directory_lists_nothing_and_says_where_it_looked() {
    let dir = temp_dir();
    let run = taskscope(dir.path(), &["ps"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains("no process with a taskscope agent"), "{run:?}");
    assert!(run.stderr.contains(&dir.path().display().to_string()), "{run:?}");
}

#[test]
fn missing_directory_is_the_same_as_empty() {
    let dir = temp_dir();
    let run = taskscope(&dir.path().join("never-created"), &["ps"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "");
}

#[test]
fn no_subcommand_means_ps() {
    let dir = temp_dir();
    let run = taskscope(dir.path(), &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("no process with a taskscope agent"), "{run:?}");
}

#[test]
fn stale_socket_is_removed_and_reported() {
    let dir = temp_dir();
    let pid = dead_pid();
    let socket = socket_in(dir.path(), pid);
    dead_socket(&socket);
    let run = taskscope(dir.path(), &["ps"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "", "a dead process is not listed: {run:?}");
    assert!(
        run.stderr.contains(&format!("process {pid} is not running; removed its stale socket {}", socket.display())),
        "{run:?}"
    );
    assert!(!socket.exists());
}

#[test]
fn answering_and_failing_agents_are_all_listed() {
    let dir = temp_dir();
    let me = std::process::id();
    let _agent = serve_agent(&socket_in(dir.path(), me), FakeAgent { info: info(1), dump: DumpAnswer::Chunks(vec![]) });
    let sleeper = Sleeper::start();
    let _silent = serve_silent(&socket_in(dir.path(), sleeper.pid()));
    let start = std::time::Instant::now();
    let run = taskscope(dir.path(), &["ps", "--timeout", "500ms"]);
    assert!(start.elapsed() < std::time::Duration::from_secs(5), "took {:?}", start.elapsed());
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{run:?}");
    assert!(lines[0].contains("PID") && lines[0].contains("LEAKED") && lines[0].contains("ADDRESS"));
    // The fake reports 1 running + 2 scheduled + 30 idle, 20 leaked, up 5m12s.
    let agent_line = lines.iter().find(|l| l.contains("fakeprog")).expect("agent listed");
    let cols: Vec<&str> = agent_line.split_whitespace().collect();
    assert_eq!(cols[1..6], ["fakeprog", "33", "30", "20", "5m12s"], "{agent_line}");
    let silent_line = lines.iter().find(|l| l.contains(&sleeper.pid().to_string())).expect("silent listed");
    assert!(silent_line.contains("error: no answer from process"), "{silent_line}");
    assert!(silent_line.contains("within 500ms"), "{silent_line}");
}

#[test]
fn json_listing_parses() {
    let dir = temp_dir();
    let me = std::process::id();
    let _agent = serve_agent(&socket_in(dir.path(), me), FakeAgent { info: info(1), dump: DumpAnswer::Chunks(vec![]) });
    let run = taskscope(dir.path(), &["ps", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let rows: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(rows[0]["pid"], me);
    assert_eq!(rows[0]["name"], "fakeprog");
    assert_eq!(rows[0]["leaked"], 20);
    assert_eq!(rows[0]["error"], serde_json::Value::Null);
}

#[test]
fn an_agent_of_another_pid_namespace_is_starred() {
    let dir = temp_dir();
    let ours = taskscope_proto::discovery::pid_namespace(None).expect("/proc/self/ns/pid is readable");
    let me = std::process::id();
    let other = Sleeper::start();
    let _here = serve_agent(
        &socket_in(dir.path(), me),
        FakeAgent { info: ProcessInfo { pid_namespace: ours, ..info(1) }, dump: DumpAnswer::Chunks(vec![]) },
    );
    let _container = serve_agent(
        &socket_in(dir.path(), other.pid()),
        FakeAgent {
            info: ProcessInfo { pid_namespace: ours + 1, process_name: "incontainer".into(), ..info(1) },
            dump: DumpAnswer::Chunks(vec![]),
        },
    );
    let run = taskscope(dir.path(), &["ps"]);
    assert_eq!(run.code, 0, "{run:?}");
    let line = |name: &str| run.stdout.lines().find(|l| l.contains(name)).map(str::to_owned);
    let starred = line("incontainer").expect("listed");
    assert!(starred.trim_start().starts_with(&format!("{}*", other.pid())), "{run:?}");
    let plain = line("fakeprog").expect("listed");
    assert!(plain.trim_start().starts_with(&format!("{me} ")), "{run:?}");
    assert!(run.stdout.contains("\n* in another PID namespace"), "{run:?}");

    let run = taskscope(dir.path(), &["ps", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    let rows = rows.as_array().expect("array");
    let flag = |pid: u32| rows.iter().find(|r| r["pid"] == pid).map(|r| r["other_pid_namespace"].clone());
    assert_eq!(flag(other.pid()), Some(serde_json::Value::Bool(true)));
    assert_eq!(flag(me), Some(serde_json::Value::Bool(false)));
}
