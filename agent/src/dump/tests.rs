//! Tests of the dump module, several against real runtimes: the point of the
//! module is how it copes with tokio's actual behaviour.

use std::time::{Duration, Instant};

use tokio::runtime::Builder;

use super::*;

#[test]
fn parses_debug_of_unresolved_traces() {
    let debug = "Trace { inner: Trace { backtraces: [[BacktraceFrame { ip: 0x55d1a0, symbol_address: 0x55d190 }, \
                 BacktraceFrame { ip: 0xABCDEF, symbol_address: 0x0 }], [], \
                 [BacktraceFrame { ip: 0x10, symbol_address: 0x1 }]] } }";
    assert_eq!(parse_ips(debug), Some(vec![vec![0x55d1a0, 0xabcdef], vec![], vec![0x10]]));
    assert_eq!(parse_ips("Trace { inner: Trace { backtraces: [] } }"), Some(vec![]));
    assert_eq!(parse_ips("Trace { something else }"), None);
    assert_eq!(parse_ips("Trace { inner: Trace { backtraces: [[BacktraceFrame { ip: 0x1"), None);
    assert_eq!(parse_ips("backtraces: ]"), None);
}

#[test]
fn registering_twice_is_a_no_op() {
    let rt = Builder::new_current_thread().build().expect("runtime");
    register_runtime("twice-a", rt.handle());
    register_runtime("twice-b", rt.handle());
    let all = runtimes();
    assert!(!all.iter().any(|r| r.name == "twice-b"));
    let info = all.into_iter().find(|r| r.name == "twice-a").expect("registered");
    assert_eq!(info.flavor, "current_thread");
    assert_eq!(info.workers, 1);
    assert!(dumps_supported().is_ok() || platform_support().is_err());
}

/// Dumps only the runtime registered as `name`: tests run concurrently and
/// must not wait for each other's runtimes.
async fn capture(name: &str, timeout: Duration) -> Capture {
    capture_of(vec![registered_named(name)], timeout).await
}

fn registered_named(name: &str) -> Arc<Registered> {
    registered().into_iter().find(|rt| rt.name == name).expect("registered")
}

/// tokio's own dump, whose mechanics these tests are about, is opt-in on a
/// tokio without the taskdump fixes.
fn opt_in() {
    super::policy::configure(Some(true));
}

fn agent() -> tokio::runtime::Runtime {
    Builder::new_current_thread().enable_all().build().expect("agent runtime")
}

fn task_id(handle: &tokio::task::JoinHandle<()>) -> u64 {
    handle.id().to_string().parse().expect("task ids are numbers")
}

fn status_of<'a>(capture: &'a Capture, runtime: &str) -> &'a proto::RuntimeDump {
    capture.runtimes.iter().find(|r| r.runtime == runtime).expect("runtime is in the capture")
}

fn names_function(capture: &Capture, task: u64, function: &str) -> bool {
    capture.traces.get(&task).is_some_and(|stack| stack.iter().flatten().any(|f| f.function.contains(function)))
}

async fn parked_in_multi_thread_test() {
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

async fn parked_in_current_thread_test() {
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

#[cfg(all(tokio_unstable, target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
#[test]
fn dumps_a_multi_thread_runtime() {
    opt_in();
    let program = Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    register_runtime("test-multi", program.handle());
    let ids: Vec<u64> = (0..3).map(|_| task_id(&program.spawn(parked_in_multi_thread_test()))).collect();
    std::thread::sleep(Duration::from_millis(50));

    let capture = agent().block_on(capture("test-multi", Duration::from_secs(30)));
    let status = status_of(&capture, "test-multi");
    assert_eq!(status.status, proto::DumpStatus::Ok as i32, "{status:?}");
    for id in &ids {
        assert!(names_function(&capture, *id, "parked_in_multi_thread_test"), "{:#?}", capture.traces.get(id));
    }
    // Identical stacks are shared, not copied.
    assert!(Arc::ptr_eq(&capture.traces[&ids[0]], &capture.traces[&ids[1]]));
    let frames = &capture.traces[&ids[0]][0];
    assert!(frames.iter().any(|f| f.internal), "tokio's sleep frames are internal: {frames:#?}");
    assert!(!frames.iter().any(|f| f.function.contains("trace_leaf") || f.function.contains("trace::Root")));
    program.shutdown_background();
}

#[cfg(all(tokio_unstable, target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
#[test]
fn dumps_a_current_thread_runtime_from_another_thread() {
    opt_in();
    let program = Builder::new_current_thread().enable_all().build().expect("runtime");
    register_runtime("test-current", program.handle());
    let id = task_id(&program.spawn(parked_in_current_thread_test()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let driver = std::thread::spawn(move || {
        program.block_on(async {
            let _ = stopped.await;
        });
    });

    let capture = agent().block_on(capture("test-current", Duration::from_secs(30)));
    let status = status_of(&capture, "test-current");
    assert_eq!(status.status, proto::DumpStatus::Ok as i32, "{status:?}");
    assert!(names_function(&capture, id, "parked_in_current_thread_test"), "{:#?}", capture.traces.get(&id));
    let _ = stop.send(());
    let _ = driver.join();
}

#[cfg(all(tokio_unstable, target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
#[test]
fn a_blocked_worker_is_waited_for_never_dumped() {
    opt_in();
    // Two workers: the case where tokio's dump barrier misbehaves.
    let program = Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    register_runtime("test-blocked", program.handle());
    let parked = task_id(&program.spawn(parked_in_multi_thread_test()));
    let (started, blocked) = std::sync::mpsc::channel();
    program.spawn(async move {
        let _ = started.send(());
        std::thread::sleep(Duration::from_secs(2));
    });
    blocked.recv().expect("the blocking task started");
    let agent = agent();

    let first = agent.block_on(capture("test-blocked", Duration::from_millis(400)));
    let status = status_of(&first, "test-blocked");
    assert_eq!(status.status, proto::DumpStatus::TimedOut as i32, "{status:?}");
    assert!(status.detail.contains("runtime `test-blocked` did not answer within 400ms"), "{}", status.detail);
    assert!(
        status.detail.contains("worker") && status.detail.contains("has not come back to the scheduler"),
        "{}",
        status.detail
    );

    let asked = Instant::now();
    let second = agent.block_on(capture("test-blocked", Duration::from_millis(300)));
    assert_eq!(status_of(&second, "test-blocked").status, proto::DumpStatus::TimedOut as i32);
    assert!(asked.elapsed() < Duration::from_secs(1), "second request took {:?}", asked.elapsed());

    // Nobody waits any more: the pending dump is withdrawn, not taken later.
    agent.block_on(async { tokio::time::sleep(Duration::from_millis(300)).await });
    assert!(registered_named("test-blocked").flight_is_idle());

    // Once the worker is free, dumps work again and the runtime is intact.
    std::thread::sleep(Duration::from_secs(2));
    let third = agent.block_on(capture("test-blocked", Duration::from_secs(30)));
    let status = status_of(&third, "test-blocked");
    assert_eq!(status.status, proto::DumpStatus::Ok as i32, "{status:?}");
    assert!(names_function(&third, parked, "parked_in_multi_thread_test"));
    let ran = program.block_on(async { tokio::spawn(async { 7 }).await });
    assert_eq!(ran.ok(), Some(7));
    program.shutdown_timeout(Duration::from_secs(5));
}

#[test]
fn a_shut_down_runtime_fails_fast() {
    let program = Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    register_runtime("test-gone", program.handle());
    program.shutdown_background();
    let asked = Instant::now();
    let capture = agent().block_on(capture("test-gone", Duration::from_secs(30)));
    let status = status_of(&capture, "test-gone");
    assert_ne!(status.status, proto::DumpStatus::Ok as i32);
    assert_ne!(status.status, proto::DumpStatus::TimedOut as i32, "{status:?}");
    assert!(asked.elapsed() < Duration::from_secs(25), "{:#?}", capture.runtimes);
}

#[cfg(all(tokio_unstable, target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
#[test]
fn a_panic_inside_a_current_thread_dump_harms_the_runtime_for_good() {
    // The workspace builds against the tokio from crates.io, without the fixes.
    assert!(!super::policy::fixed(true), "this test needs a tokio without the taskdump fixes");
    opt_in();
    let program = Builder::new_current_thread().enable_all().build().expect("runtime");
    register_runtime("test-harmed", program.handle());
    let polls = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = Arc::clone(&polls);
    // Wakes itself in every poll: what tokio#8391's traced poll cannot take.
    program.spawn(std::future::poll_fn(move |cx| {
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        cx.waker().wake_by_ref();
        std::task::Poll::<()>::Pending
    }));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let driver = std::thread::spawn(move || {
        program.block_on(async {
            let _ = stopped.await;
        });
    });
    let agent = agent();

    let first = agent.block_on(capture("test-harmed", Duration::from_secs(30)));
    let status = status_of(&first, "test-harmed");
    assert_eq!(status.status, proto::DumpStatus::Harmed as i32, "{status:?}");
    assert!(status.detail.contains("tokio-rs/tokio#8391") && status.detail.contains("already borrowed"), "{status:?}");
    assert!(!status.detail.contains("shut down"), "{status:?}");

    // Refused from now on, opt-in or not, and every surface says so.
    let second = agent.block_on(capture("test-harmed", Duration::from_secs(30)));
    let status = status_of(&second, "test-harmed");
    assert_eq!(status.status, proto::DumpStatus::Harmed as i32, "{status:?}");
    assert!(status.detail.contains("refused for good") && status.detail.contains("restart"), "{status:?}");
    let info = runtimes().into_iter().find(|r| r.name == "test-harmed").expect("listed");
    assert!(!info.tokio_dumps && info.harmed.contains("#8391"), "{info:?}");
    let _ = stop.send(());
    let _ = driver.join();
}

#[cfg(all(tokio_unstable, target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
#[test]
fn a_worker_that_never_moves_after_a_dump_harms_the_runtime_for_good() {
    assert!(!super::policy::fixed(false), "this test needs a tokio without the taskdump fixes");
    opt_in();
    let program = Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    register_runtime("test-lost-worker", program.handle());
    program.spawn(parked_in_multi_thread_test());
    std::thread::sleep(Duration::from_millis(50));
    let agent = agent();
    let first = agent.block_on(async {
        let capture = capture("test-lost-worker", Duration::from_secs(30)).await;
        // Right after the dump a worker stops moving, as a worker lost at
        // tokio's barrier does (here: a task blocks it for longer than the
        // agent watches).
        program.spawn(async { std::thread::sleep(Duration::from_secs(5)) });
        tokio::time::sleep(Duration::from_secs(4)).await;
        capture
    });
    assert_eq!(status_of(&first, "test-lost-worker").status, proto::DumpStatus::Ok as i32);
    let info = runtimes().into_iter().find(|r| r.name == "test-lost-worker").expect("listed");
    assert!(info.harmed.contains("has made no progress") && info.harmed.contains("tokio-rs/tokio#8370"), "{info:?}");
    let second = agent.block_on(capture("test-lost-worker", Duration::from_secs(30)));
    let status = status_of(&second, "test-lost-worker");
    assert_eq!(status.status, proto::DumpStatus::Harmed as i32, "{status:?}");
    program.shutdown_background();
}
