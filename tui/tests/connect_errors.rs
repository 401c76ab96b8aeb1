//! Every way of failing to reach an agent ends in one precise
//! `taskscope: ...` line and exit status 1. Real binary, real sockets, real
//! tonic servers; no agent needed.

mod common;

use common::*;

#[test]
fn malformed_address_says_what_was_expected() {
    let dir = temp_dir();
    let run = taskscope(dir.path(), &["stack", "not-a-target"]);
    assert_one_line_error(&run, "invalid target `not-a-target`: expected a PID");
    let run = taskscope(dir.path(), &["stack", "localhost:99999"]);
    assert_one_line_error(&run, "`99999` is not a TCP port");
}

#[test]
fn usage_errors_exit_2() {
    let dir = temp_dir();
    let run = taskscope(dir.path(), &["stack"]);
    assert_eq!(run.code, 2, "{run:?}");
    let run = taskscope(dir.path(), &["stack", "1", "--min-idle", "soon"]);
    assert_eq!(run.code, 2, "{run:?}");
    for args in [&["stack"][..], &["stack", "1", "--bogus"], &["stack", "1", "--timeout", "0s"], &["bogus"]] {
        let run = taskscope(dir.path(), args);
        assert_eq!(run.code, 2, "{run:?}");
        assert!(run.stderr.starts_with("taskscope: ") && run.stderr.lines().count() == 1, "{run:?}");
    }
}

#[test]
fn a_path_that_is_not_a_socket() {
    let dir = temp_dir();
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "x").unwrap();
    let run = taskscope(dir.path(), &["stack", file.to_str().unwrap()]);
    assert_one_line_error(&run, &format!("{} is not a socket", file.display()));
}

#[test]
fn a_thread_id_names_its_process() {
    let dir = temp_dir();
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        tx.send(unsafe { libc::gettid() }).unwrap();
        let _ = stop_rx.recv();
    });
    let tid = rx.recv().unwrap();
    let pid = std::process::id();
    let run = taskscope(dir.path(), &["stack", &tid.to_string()]);
    drop(stop_tx);
    thread.join().unwrap();
    assert_one_line_error(&run, &format!("{tid} is a thread of process {pid} ("));
    assert!(run.stderr.contains(&format!("use its PID, {pid}")), "{run:?}");
}

#[test]
fn an_agent_whose_socket_is_elsewhere_is_told_apart_from_none() {
    // This test process stands in for a program whose agent listens in
    // another directory: it has the agent's thread, and no socket in `dir`.
    let dir = temp_dir();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let agent = std::thread::Builder::new()
        .name(taskscope_proto::discovery::AGENT_THREAD.into())
        .spawn(move || {
            ready_tx.send(()).unwrap();
            let _ = stop_rx.recv();
        })
        .unwrap();
    ready_rx.recv().unwrap();
    let pid = std::process::id();
    let run = taskscope(dir.path(), &["stack", &pid.to_string()]);
    drop(stop_tx);
    agent.join().unwrap();
    assert_one_line_error(&run, &format!("process {pid} ("));
    assert!(run.stderr.contains("has a taskscope agent but no socket at"), "{run:?}");
    assert!(run.stderr.contains("TASKSCOPE_DIR"), "{run:?}");
}

#[test]
fn a_stopped_process_is_named_as_the_reason_for_silence() {
    let dir = temp_dir();
    let sleeper = Sleeper::start();
    let pid = sleeper.pid();
    let _silent = serve_silent(&socket_in(dir.path(), pid));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
    let run = taskscope(dir.path(), &["stack", &pid.to_string(), "--timeout", "1s"]);
    // SAFETY: as above.
    unsafe { libc::kill(pid as i32, libc::SIGCONT) };
    assert_one_line_error(&run, &format!("(the process is stopped: resume it with `kill -CONT {pid}`)"));
}

#[test]
fn pid_not_running() {
    let dir = temp_dir();
    let pid = dead_pid();
    let run = taskscope(dir.path(), &["stack", &pid.to_string()]);
    assert_one_line_error(&run, &format!("process {pid} is not running"));
    assert_eq!(run.stderr, format!("taskscope: process {pid} is not running\n"));
}

#[test]
fn pid_without_agent() {
    let dir = temp_dir();
    let sleeper = Sleeper::start();
    let pid = sleeper.pid();
    // `comm` is set at exec; give the child a moment to get there.
    std::thread::sleep(std::time::Duration::from_millis(100));
    let run = taskscope(dir.path(), &["stack", &pid.to_string()]);
    assert_one_line_error(
        &run,
        &format!("process {pid} (sleep) is running but has no taskscope agent: add `taskscope_agent::init()`"),
    );
}

#[test]
fn stale_socket_is_removed() {
    let dir = temp_dir();
    let pid = dead_pid();
    let socket = socket_in(dir.path(), pid);
    dead_socket(&socket);
    let run = taskscope(dir.path(), &["stack", &pid.to_string()]);
    assert_one_line_error(
        &run,
        &format!("process {pid} is not running; removed its stale socket {}", socket.display()),
    );
    assert!(!socket.exists(), "stale socket left behind");
}

#[test]
fn live_pid_with_dead_socket_is_an_agent_not_answering() {
    let dir = temp_dir();
    let sleeper = Sleeper::start();
    let socket = socket_in(dir.path(), sleeper.pid());
    dead_socket(&socket);
    let run = taskscope(dir.path(), &["stack", &sleeper.pid().to_string()]);
    assert_one_line_error(&run, "agent not answering (connection refused on");
    assert!(socket.exists(), "a live process's socket must not be removed");
}

#[test]
fn other_protocol_version_is_refused() {
    let dir = temp_dir();
    let pid = std::process::id();
    let _agent =
        serve_agent(&socket_in(dir.path(), pid), FakeAgent { info: info(2), dump: DumpAnswer::Chunks(vec![]) });
    let run = taskscope(dir.path(), &["stack", &pid.to_string()]);
    assert_one_line_error(&run, "agent speaks protocol v2, this taskscope speaks v1");
}

#[test]
fn unimplemented_get_info_is_another_protocol() {
    let dir = temp_dir();
    let pid = std::process::id();
    let _router = serve_empty_router(&socket_in(dir.path(), pid));
    let run = taskscope(dir.path(), &["stack", &pid.to_string()]);
    assert_one_line_error(&run, "speaks neither taskscope.v1 nor console-subscriber's protocol");
}

#[test]
fn agent_closing_the_connection_is_reported() {
    let dir = temp_dir();
    let socket = dir.path().join("agent.sock");
    let _closer = serve_closer(&socket);
    let run = taskscope(dir.path(), &["stack", socket.to_str().unwrap()]);
    assert_one_line_error(&run, "agent closed the connection");
}

#[test]
fn explicit_socket_path_that_does_not_exist() {
    let dir = temp_dir();
    let socket = dir.path().join("nothing.sock");
    let run = taskscope(dir.path(), &["stack", &format!("unix:{}", socket.display())]);
    assert_one_line_error(&run, &format!("no socket at {}", socket.display()));
}

#[test]
fn tcp_connection_refused() {
    let dir = temp_dir();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let run = taskscope(dir.path(), &["stack", &format!("127.0.0.1:{port}")]);
    assert_one_line_error(&run, &format!("connection refused by 127.0.0.1:{port}"));
}

#[test]
fn silent_agent_times_out() {
    let dir = temp_dir();
    let socket = dir.path().join("silent.sock");
    let _silent = serve_silent(&socket);
    let start = std::time::Instant::now();
    let run = taskscope(dir.path(), &["stack", socket.to_str().unwrap()]);
    assert_one_line_error(&run, &format!("no answer from {} within 5s", socket.display()));
    assert!(start.elapsed() < std::time::Duration::from_secs(15), "took {:?}", start.elapsed());
}

#[test]
fn agent_of_another_user_is_permission_refused() {
    // The agent drops connections from other users. Reproduce that with a
    // server that closes every connection, on a socket owned by `nobody`
    // (changing a file's owner needs root) or, for a user who cannot, on the
    // socket of a process another user runs (pid 1, usually root's): the
    // CLI blames either owner. Nothing is skipped.
    let dir = temp_dir();
    let me = std::process::id();
    let uid_of = |path: &str| std::fs::metadata(path).map(|m| std::os::unix::fs::MetadataExt::uid(&m));
    let ours = uid_of("/proc/self").expect("our own uid");
    let other = if ours == 65534 { 0 } else { 65534 };
    let socket = socket_in(dir.path(), me);
    let closer = serve_closer(&socket);
    let (pid, owner) = match std::os::unix::fs::chown(&socket, Some(other), None) {
        Ok(()) => (me, other),
        Err(e) => {
            drop(closer);
            let init = uid_of("/proc/1");
            let owner = match init {
                Ok(init) if init != ours => init,
                _ => panic!(
                    "cannot give the socket to another user ({e}) and no process of another user to \
                     blame instead (pid 1: {init:?}); run this test as root, as .ci/run does"
                ),
            };
            (1, owner)
        }
    };
    let _closer = (pid != me).then(|| serve_closer(&socket_in(dir.path(), pid)));
    let run = taskscope(dir.path(), &["stack", &pid.to_string()]);
    assert_one_line_error(&run, &format!("permission refused: process {pid} ("));
    assert!(run.stderr.contains(&format!("belongs to another user (uid {owner})")), "{run:?}");
}
