//! `taskscope stack` on an optimised program (`src/main.rs`): its async
//! functions, inlined into the task's poll, are named from the source, not
//! left as `{async_fn#0}`.

#[path = "../../tests/common/process.rs"]
#[allow(dead_code)] // the harm tests use the rest
mod process;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use process::{run_with_timeout, taskscope_cli, TempDir};

#[test]
fn inlined_async_functions_are_named_from_the_source() {
    let dir = TempDir::new("inlined");
    let mut child = Command::new(env!("CARGO_BIN_EXE_inlined"))
        .env("TASKSCOPE_DIR", &dir.0)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the inlined example");
    let stdout = child.stdout.take().expect("piped stdout");
    let ready = BufReader::new(stdout).lines().next().and_then(Result::ok);
    assert_eq!(ready.as_deref(), Some("ready"));
    let pid = child.id().to_string();
    // Until the task has parked and been captured (its first poll may still
    // be on its way when `ready` is printed).
    let mut out = String::new();
    for _ in 0..50 {
        let run = run_with_timeout(
            Command::new(taskscope_cli()).args(["stack", &pid]).env("TASKSCOPE_DIR", &dir.0),
            Duration::from_secs(30),
        );
        out = run.stdout;
        if out.contains("wait_for_reply") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(out.contains("stack (captured safely):"), "{out}");
    // Named from the source: both functions, each as an async body.
    assert!(out.contains("handle_request::{async_fn#0}"), "{out}");
    assert!(out.contains("wait_for_reply::{async_fn#0}"), "{out}");
    // And really inlined: no frame carries the crate's path, which the
    // symbol table would have given a function of its own.
    assert!(!out.contains("inlined::wait_for_reply"), "not inlined, so this test shows nothing: {out}");
}
