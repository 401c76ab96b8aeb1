//! The HTTP endpoint answers while the program's only runtime is wedged: a
//! current-thread runtime built through the agent (lean mode, with
//! `TASKSCOPE_HTTP`'s builder setting) whose one thread sleeps inside
//! `block_on`. `/metrics` comes from the agent's task table and answers at
//! once; the profile's dump waits its timeout for the wrapped task that
//! cannot be polled, then answers with the task counted by spawn location,
//! saying why it has no stack.
//!
//! One test function: the agent is started once per process.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// How long the runtime's thread is blocked.
const WEDGED: Duration = Duration::from_secs(6);

/// `GET path` on a fresh connection: the status and the body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else { return (0, String::new()) };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
    let _ = stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes());
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, answer.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default())
}

async fn parked_wrapped() {
    std::future::pending::<()>().await;
}

#[test]
fn metrics_and_profile_answer_while_the_runtime_is_wedged() {
    let addr: SocketAddr = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port");
    let dir = std::env::temp_dir().join(format!("taskscope-http-wedged-{}", std::process::id()));
    // Set before the agent (or any other thread) reads the environment.
    std::env::set_var("TASKSCOPE_DUMP_TIMEOUT", "1s");
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_all();
    let runtime = taskscope_agent::Builder::from_env()
        .socket_dir(&dir)
        .http(addr)
        .build_runtime(&mut builder)
        .expect("the runtime");

    let checker = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(5);
        while get(addr, "/").0 != 200 {
            assert!(Instant::now() < deadline, "the endpoint never answered");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The runtime is blocked from about 200 ms after it starts.
        std::thread::sleep(Duration::from_millis(500));
        let asked = Instant::now();
        let (status, metrics) = get(addr, "/metrics");
        let metrics_took = asked.elapsed();
        let asked = Instant::now();
        let (profile_status, profile) = get(addr, "/debug/pprof/tasks?debug=1");
        let profile_took = asked.elapsed();
        (status, metrics, metrics_took, profile_status, profile, profile_took, Instant::now())
    });
    let unblocked = runtime.block_on(async {
        taskscope_agent::spawn(parked_wrapped());
        tokio::time::sleep(Duration::from_millis(200)).await;
        // The runtime's one thread, stuck: nothing on this runtime runs.
        std::thread::sleep(WEDGED);
        Instant::now()
    });
    let (status, metrics, metrics_took, profile_status, profile, profile_took, answered) =
        checker.join().expect("checker");
    let _ = std::fs::remove_dir_all(&dir);

    assert_eq!(status, 200, "{metrics}");
    assert!(metrics_took < Duration::from_secs(1), "/metrics took {metrics_took:?} on a wedged runtime");
    let parked = metrics
        .lines()
        .find(|l| {
            l.starts_with("taskscope_tasks{location=\"agent/tests/http_wedged.rs:") && l.contains("state=\"idle\"")
        })
        .unwrap_or_else(|| panic!("the parked task's series: {metrics}"));
    assert!(parked.ends_with(" 1"), "{parked}");
    assert!(!metrics.contains("taskscope_tasks_leaked"), "the lean mode gives no verdict: {metrics}");

    assert_eq!(profile_status, 200, "{profile}");
    assert!(profile_took < Duration::from_secs(4), "the profile took {profile_took:?} (dump timeout 1s)");
    assert!(profile.contains("1 task [idle] parked"), "{profile}");
    assert!(
        profile.contains("not polled within 1s"),
        "the wedged task is counted, saying why it has no stack: {profile}"
    );
    assert!(answered < unblocked, "both answered while the runtime was still blocked");
}
