//! The metrics model on hand-made snapshots (the cut to the top locations,
//! the names kept), its encoding by prometheus-client in both formats, and
//! the server on a real loopback socket: status codes, the connection cap,
//! a client that never reads.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use taskscope_proto as proto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::metrics::{encode, exposition, Format, Names, OTHER};
use super::profile::Debug;
use super::routes::Route;
use super::*;
use crate::state::Snapshot;

fn task(id: u64, file: &str, state: proto::TaskState, name: &str) -> proto::Task {
    proto::Task {
        id,
        name: name.into(),
        state: state as i32,
        location: Some(proto::Location { file: file.into(), line: 1, column: 2 }),
        last_poll_ended_ns: 1_000,
        polls: 1,
        ..proto::Task::default()
    }
}

fn totals(file: &str, spawned: u64, completed: u64) -> proto::LocationTotals {
    proto::LocationTotals {
        location: Some(proto::Location { file: file.into(), line: 1, column: 2 }),
        spawned,
        completed,
    }
}

/// Three locations: `a.rs` 3 idle (one leaked), `b.rs` 2, `c.rs` 1 running
/// and 5 completed, plus a runtime task and a completed one.
fn snapshot() -> (Snapshot, Vec<proto::LocationTotals>) {
    use proto::TaskState::*;
    let mut tasks = vec![
        task(1, "a.rs", Idle, "worker"),
        task(2, "a.rs", Idle, "worker"),
        task(3, "a.rs", Idle, ""),
        task(4, "b.rs", Idle, "x"),
        task(5, "b.rs", Scheduled, "y"),
        task(6, "c.rs", Running, ""),
        task(7, "c.rs", Done, "done one"),
    ];
    tasks[0].leaked = true;
    tasks[0].last_poll_ended_ns = 500;
    let mut internal = task(8, "tokio/src/runtime/x.rs", Running, "");
    internal.runtime_internal = true;
    tasks.push(internal);
    let snapshot = Snapshot { now_ns: 3_000_000_500, tasks, ..Snapshot::default() };
    let totals =
        vec![totals("a.rs", 3, 0), totals("b.rs", 2, 0), totals("c.rs", 6, 5), totals("tokio/src/runtime/x.rs", 1, 0)];
    (snapshot, totals)
}

#[test]
fn locations_by_live_count_with_states_leaks_totals_and_parked_time() {
    let (snapshot, totals) = snapshot();
    let e = exposition(&snapshot, &totals, &mut Names::default(), 10);
    let names: Vec<&str> = e.locations.iter().map(|l| l.location.as_str()).collect();
    assert_eq!(names, ["a.rs:1:2", "b.rs:1:2", "c.rs:1:2"], "the runtime's own task is left out");
    let a = &e.locations[0];
    assert_eq!((a.idle, a.leaked, a.spawned, a.completed), (3, 1, 3, 0));
    assert_eq!(a.longest_parked_ns, 3_000_000_000);
    assert_eq!(a.name, "worker", "the one name its tasks have");
    let b = &e.locations[1];
    assert_eq!((b.idle, b.scheduled, b.name.as_str()), (1, 1, ""), "two names: none");
    let c = &e.locations[2];
    assert_eq!((c.running, c.spawned, c.completed, c.name.as_str()), (1, 6, 5, "done one"));
    assert_eq!(e.known_locations, 3);
}

#[test]
fn past_the_top_locations_the_rest_are_summed_under_other() {
    let (snapshot, totals) = snapshot();
    let e = exposition(&snapshot, &totals, &mut Names::default(), 1);
    assert_eq!(e.locations.len(), 2);
    assert_eq!(e.locations[0].location, "a.rs:1:2");
    let other = &e.locations[1];
    assert_eq!(other.location, OTHER);
    assert_eq!((other.idle, other.scheduled, other.running, other.spawned, other.completed), (1, 1, 1, 8, 5));
    assert_eq!(e.known_locations, 3, "how many there were before the cut");
    let none = exposition(&snapshot, &totals, &mut Names::default(), 0);
    assert_eq!(none.locations.len(), 1, "N = 0: everything under other");
}

#[test]
fn a_location_keeps_its_name_once_its_tasks_are_gone() {
    let (snapshot, totals) = snapshot();
    let mut names = Names::default();
    exposition(&snapshot, &totals, &mut names, 10);
    let later = Snapshot { now_ns: snapshot.now_ns, ..Snapshot::default() };
    let e = exposition(&later, &totals, &mut names, 10);
    let a = e.locations.iter().find(|l| l.location == "a.rs:1:2").expect("a.rs by its totals");
    assert_eq!((a.name.as_str(), a.idle, a.spawned), ("worker", 0, 3));
}

#[test]
fn both_text_formats_carry_the_series_and_escape_names() {
    let (mut snapshot, totals) = snapshot();
    snapshot.tasks.retain(|t| t.id != 2 && t.id != 3);
    snapshot.tasks[0].name = "say \"hi\"\n".into();
    let mut e = exposition(&snapshot, &totals, &mut Names::default(), 10);
    e.mode = "tracing".into();
    let open = encode(e.clone(), Format::OpenMetrics).expect("encode");
    assert!(open.ends_with("# EOF\n"), "{open}");
    assert!(open.contains(r#"taskscope_tasks{location="a.rs:1:2",name="say \"hi\"\n",state="idle"} 1"#), "{open}");
    assert!(open.contains(r#"taskscope_tasks_leaked{location="a.rs:1:2",name="say \"hi\"\n"} 1"#), "{open}");
    assert!(open.contains(r#"taskscope_tasks_spawned_total{location="c.rs:1:2",name="done one"} 6"#), "{open}");
    assert!(open.contains("taskscope_task_longest_parked_seconds{location=\"a.rs:1:2\""), "{open}");
    assert!(open.contains("taskscope_dump_duration_seconds_count "), "{open}");
    let text = encode(e.clone(), Format::Prometheus).expect("encode");
    assert!(!text.contains("# EOF"), "{text}");
    assert!(text.contains("# TYPE taskscope_tasks_completed_total counter"), "{text}");
    e.mode = "hooks".into();
    let lean = encode(e, Format::Prometheus).expect("encode");
    assert!(!lean.contains("taskscope_tasks_leaked"), "no verdict in the lean mode, not a 0: {lean}");
}

#[test]
fn accept_headers_pick_the_format() {
    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    assert_eq!(Format::from_accept(Some(prometheus)), Format::OpenMetrics);
    assert_eq!(Format::from_accept(Some("*/*")), Format::Prometheus);
    assert_eq!(Format::from_accept(None), Format::Prometheus);
}

#[test]
fn gzip_when_asked_and_not_refused() {
    use super::routes::accepts_gzip;
    assert!(accepts_gzip(Some("gzip")));
    assert!(accepts_gzip(Some("deflate, GZIP;q=0.5")));
    assert!(accepts_gzip(Some("*")));
    assert!(!accepts_gzip(Some("gzip;q=0")));
    assert!(!accepts_gzip(Some("identity")));
    assert!(!accepts_gzip(None));
}

#[test]
fn paths_and_debug_levels() {
    assert_eq!(Route::of("/metrics"), Some(Route::Metrics));
    assert_eq!(Route::of("/debug/pprof/goroutine"), Some(Route::Profile));
    assert_eq!(Route::of("/debug/pprof/tasks"), Some(Route::Profile));
    assert_eq!(Route::of("/debug/pprof/heap"), None);
    assert_eq!(Route::of("/metrics/"), None);
    assert_eq!(Debug::from_query(None), Some(Debug::Proto));
    assert_eq!(Debug::from_query(Some("seconds=30")), Some(Debug::Proto));
    assert_eq!(Debug::from_query(Some("debug=1")), Some(Debug::Groups));
    assert_eq!(Debug::from_query(Some("x=1&debug=2")), Some(Debug::Tasks));
    assert_eq!(Debug::from_query(Some("debug=9")), None);
}

/// A server on a loopback port with a real state owner (no tasks recorded).
async fn server(max: usize) -> SocketAddr {
    crate::clock::start();
    let _ = crate::files::FILES.set(crate::files::Files::new());
    let recorder: &'static crate::recorder::Recorder =
        Box::leak(Box::new(crate::recorder::Recorder::new(Config::default().retention())));
    let (owner, state) = crate::state::StateOwner::new(recorder);
    tokio::spawn(owner.run());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = Arc::new(routes::App::new(Arc::new(Config::default()), state));
    tokio::spawn(serve_on(listener, app, max));
    addr
}

/// One request on a fresh connection; the status line and the whole answer.
async fn get(addr: SocketAddr, request: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await.expect("answered");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    (answer.lines().next().unwrap_or_default().to_string(), answer)
}

#[tokio::test]
async fn statuses_for_paths_methods_and_queries() {
    let addr = server(8).await;
    let close = "Connection: close\r\n\r\n";
    let (status, body) = get(addr, &format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{close}")).await;
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert!(body.contains("taskscope_spawn_locations 0"), "{body}");
    let (status, body) = get(addr, &format!("GET /nope HTTP/1.1\r\nHost: x\r\n{close}")).await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    assert!(body.contains("/debug/pprof/tasks"), "a 404 lists what is served: {body}");
    let (status, body) = get(addr, &format!("DELETE /metrics HTTP/1.1\r\nHost: x\r\n{close}")).await;
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    assert!(body.to_ascii_lowercase().contains("allow: get, head"), "{body}");
    let (status, _) = get(addr, &format!("GET /debug/pprof/tasks?debug=7 HTTP/1.1\r\nHost: x\r\n{close}")).await;
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    let (status, answer) =
        get(addr, &format!("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n{close}")).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(answer.to_ascii_lowercase().contains("content-encoding: gzip"), "{answer}");
    let (status, _) = get(addr, "NOT HTTP AT ALL\r\n\r\n").await;
    assert!(status.starts_with("HTTP/1.1 400"), "{status}");
    let huge = format!("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n{close}", "a".repeat(64 * 1024));
    let (status, _) = get(addr, &huge).await;
    assert!(status.starts_with("HTTP/1.1 431") || status.starts_with("HTTP/1.1 400") || status.is_empty(), "{status}");
}

#[tokio::test]
async fn past_the_cap_a_connection_gets_503_and_a_silent_client_is_dropped() {
    let addr = server(1).await;
    // Holds the only slot: connected, sends nothing.
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, body) = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 503 Service Unavailable", "{body}");
    assert!(body.to_ascii_lowercase().contains("retry-after: 1"), "{body}");
    // hyper closes a connection whose head does not come in time.
    let started = Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(HEAD_TIMEOUT + Duration::from_secs(5), silent.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the silent connection was never closed");
    assert!(started.elapsed() >= HEAD_TIMEOUT - Duration::from_secs(1), "{:?}", started.elapsed());
    let (status, _) = get(addr, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 200 OK", "its slot is free again");
}
