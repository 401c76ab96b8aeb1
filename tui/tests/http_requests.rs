//! Bad and greedy clients of the agent's HTTP endpoint, on a real example
//! over real sockets: an unknown path, a wrong method, a client that
//! pipelines requests and never reads the answers, and 100 scrapes at once.
//! Each gets a clear status; the program's resident memory stays bounded
//! and its own work (a call every 10 ms, each spawning a task) goes on at
//! the same pace.

mod common;
mod http_common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::temp_dir;
use http_common::{get, request, rss_kib, sample, Served};

const LEAKING: &str = "examples/src/bin/done_signal.rs:165:5";

/// Tasks the program has spawned at its leaking location so far (asked
/// again after a `503`, as a scraper would).
fn spawned(served: &Served) -> f64 {
    let mut answer = get(served.addr, "/metrics");
    for _ in 0..20 {
        if answer.status != 503 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        answer = get(served.addr, "/metrics");
    }
    let text = answer.text();
    sample(&text, &format!("taskscope_tasks_spawned_total{{location=\"{LEAKING}\",name=\"\"}}"))
        .unwrap_or_else(|| panic!("no spawned total: {text}"))
}

/// The program's calls per second over `window`.
fn pace(served: &Served, window: Duration) -> f64 {
    let before = spawned(served);
    std::thread::sleep(window);
    (spawned(served) - before) / window.as_secs_f64()
}

#[test]
fn bad_requests_get_clear_statuses_and_the_program_works_on() {
    let dir = temp_dir();
    let served = http_common::start(dir.path(), "done_signal", &["--calls", "0", "--interval", "10ms"], &[]);
    let pid = served.example.child.id();

    let unknown = get(served.addr, "/debug/pprof/heap");
    assert_eq!(unknown.status, 404, "{unknown:?}");
    assert!(unknown.text().contains("/debug/pprof/tasks"), "a 404 says what is served: {}", unknown.text());
    let post = request(served.addr, "POST", "/metrics", &["Content-Length: 0"]);
    assert_eq!(post.status, 405, "{post:?}");
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    let head = request(served.addr, "HEAD", "/metrics", &[]);
    assert_eq!((head.status, head.body.len()), (200, 0), "{head:?}");
    assert_eq!(request(served.addr, "GET", "/debug/pprof/tasks?debug=x", &[]).status, 400);

    // Warm up (the first profile reads the program's debuginfo), then the baseline.
    assert_eq!(get(served.addr, "/debug/pprof/tasks").status, 200);
    let rss_before = rss_kib(pid);
    let calm = pace(&served, Duration::from_secs(2));
    assert!(calm > 30.0, "the program makes calls: {calm}/s");

    // A client that pipelines a flood of requests and reads nothing: its
    // answers pile up in the socket until the agent gives up on it.
    let mut greedy = TcpStream::connect(served.addr).expect("connect");
    let flood = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(20_000);
    let _ = greedy.set_write_timeout(Some(Duration::from_secs(2)));
    let _ = greedy.write_all(flood.as_bytes());

    // 100 scrapes at once, while the greedy client holds its connection.
    let started = Instant::now();
    let scrapers: Vec<_> = (0..100)
        .map(|i| {
            let addr = served.addr;
            std::thread::spawn(move || {
                let path = if i % 10 == 0 { "/debug/pprof/tasks" } else { "/metrics" };
                get(addr, path)
            })
        })
        .collect();
    let during = pace(&served, Duration::from_secs(2));
    let answers: Vec<_> = scrapers.into_iter().map(|s| s.join().expect("scraper")).collect();
    let took = started.elapsed();
    let ok = answers.iter().filter(|a| a.status == 200).count();
    let busy: Vec<_> = answers.iter().filter(|a| a.status == 503).collect();
    assert_eq!(
        ok + busy.len(),
        100,
        "every answer is 200 or 503: {:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    assert!(ok >= 50, "{ok} of 100 answered");
    assert!(busy.iter().all(|a| a.header("retry-after") == Some("1")), "a 503 says when to retry");
    assert!(answers.iter().filter(|a| a.status == 200).all(|a| !a.body.is_empty()));
    assert!(took < Duration::from_secs(15), "100 scrapes took {took:?}");
    assert!(during >= calm * 0.75, "the program's pace: {calm:.0}/s calm, {during:.0}/s under the scrapes");

    // The greedy client is dropped once it has not read for a while.
    let deadline = Instant::now() + Duration::from_secs(20);
    let dropped = loop {
        let _ = greedy.set_write_timeout(Some(Duration::from_millis(200)));
        if greedy
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .is_err_and(|e| e.kind() != std::io::ErrorKind::WouldBlock && e.kind() != std::io::ErrorKind::TimedOut)
        {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(dropped, "the agent never closed a client that does not read");
    let rss_after = rss_kib(pid);
    eprintln!(
        "{ok} of 100 scrapes answered 200, {} 503, in {took:?}; pace {calm:.0}/s then {during:.0}/s; \
         resident {rss_before} KiB then {rss_after} KiB",
        busy.len()
    );
    assert!(rss_after < rss_before + 32 * 1024, "resident memory {rss_before} KiB, then {rss_after} KiB");
    assert_eq!(get(served.addr, "/metrics").status, 200, "still answering");
}
