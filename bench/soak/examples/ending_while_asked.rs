//! A wrapped task that ends (completes, or is aborted) after a capture has
//! asked it, but before a poll of it sees the request: the capture must not
//! wait for it. The soak found this once in 3,000 captures at 22ea18e, where
//! such a task never answered and the capture waited out its whole timeout,
//! its header saying a task "was not polled within 2s (inside a long poll,
//! or on a blocked runtime)" though the runtime was free and the task gone;
//! c645530 (a future that ends while asked answers as it leaves the board)
//! fixed it. Both scenarios exit 1 when a capture waits for an ended task.
//!
//! ```text
//! cargo run --release -p taskscope-soak --example ending_while_asked -- abort
//! cargo run --release -p taskscope-soak --example ending_while_asked -- churn
//! ```
//!
//! `abort` (deterministic): one worker; a wrapped task blocks it for 300 ms
//! inside a poll; a Dump (timeout 2 s) starts, so the agent wakes a parked
//! wrapped task, which cannot run yet; the main thread aborts that task;
//! when the worker is free the task is cancelled (dropped, never polled).
//! The capture must end with the block, about 300 ms in (at 22ea18e: 2 s,
//! three runs of three).
//!
//! `churn` (the soak's case, made frequent): 2 workers, short wrapped tasks
//! spawned all the time, each of which sleeps 1 ms and then works 1 ms in
//! its last poll before it returns (a request handler's shape), 100 Dumps
//! with a 1 s timeout; counts the captures that used up their timeout (at
//! 22ea18e: 79 of 100).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use taskscope_proto as proto;
use taskscope_proto::inspector_client::InspectorClient;
use tonic::transport::{Channel, Endpoint, Uri};

fn main() {
    let scenario = std::env::args().nth(1).unwrap_or_else(|| "abort".to_string());
    let dir = std::env::temp_dir().join(format!("taskscope-ending-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("socket dir");
    let waited = match scenario.as_str() {
        "abort" => abort(&dir),
        "churn" => churn(&dir),
        other => {
            eprintln!("unknown scenario {other:?}: abort or churn");
            std::process::exit(2);
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    std::process::exit(if waited { 1 } else { 0 });
}

async fn parked(rx: tokio::sync::oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn blocker(go: tokio::sync::oneshot::Receiver<()>) {
    let _ = go.await;
    std::thread::sleep(Duration::from_millis(300));
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

/// Whether the capture waited out its timeout for the aborted task.
fn abort(dir: &std::path::Path) -> bool {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (_keep, rx) = tokio::sync::oneshot::channel();
    let (go, go_rx) = tokio::sync::oneshot::channel();
    let victim = runtime.block_on(async {
        taskscope_agent::Builder::from_env().socket_dir(dir).tokio_dumps(false).init();
        taskscope_agent::spawn(blocker(go_rx));
        let victim = taskscope_agent::spawn(parked(rx));
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Only its abort handle: the main thread aborts it, nothing awaits it.
        victim.abort_handle()
    });
    let client_rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut client = client_rt.block_on(connect(dir.join(format!("{}.sock", std::process::id()))));
    // One capture first, so that symbols are loaded and the next one is quick.
    let (warm, _) = client_rt.block_on(dump(&mut client, 2000));
    println!("warm-up capture: {warm:?}");
    go.send(()).unwrap();
    std::thread::sleep(Duration::from_millis(50)); // the worker is now blocked
    let aborter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100)); // the Dump has woken the victim by now
        victim.abort();
    });
    let (safe, rpc) = client_rt.block_on(dump(&mut client, 2000));
    aborter.join().unwrap();
    println!("capture while the worker is blocked for 300 ms and the woken task is aborted:");
    println!("  Dump RPC {:.0} ms, {safe:?}", rpc.as_secs_f64() * 1e3);
    let waited = rpc >= Duration::from_millis(1900);
    println!("  => {}", if waited { "waited out the timeout for the aborted task" } else { "ended with the block" });
    runtime.shutdown_timeout(Duration::from_secs(1));
    waited
}

/// A request handler's shape: waits, then works 1 ms after its last await
/// and returns, so a worker is often inside such a final poll.
async fn short() {
    tokio::time::sleep(Duration::from_millis(1)).await;
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(1) {
        std::hint::spin_loop();
    }
}

/// Whether any capture waited out its timeout for an ended task.
fn churn(dir: &std::path::Path) -> bool {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        taskscope_agent::Builder::from_env().socket_dir(dir).tokio_dumps(false).init();
        taskscope_agent::spawn(async {
            loop {
                let batch: Vec<_> = (0..50).map(|_| taskscope_agent::spawn(short())).collect();
                for task in batch {
                    let _ = task.await;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
    });
    let client_rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut client = client_rt.block_on(connect(dir.join(format!("{}.sock", std::process::id()))));
    let timeout_ms = 1000;
    let (mut full, mut captures) = (0, 0);
    let started = Instant::now();
    for _ in 0..100 {
        let (safe, rpc) = client_rt.block_on(dump(&mut client, timeout_ms));
        captures += 1;
        if safe.answered < safe.wanted {
            full += 1;
            if full <= 3 {
                println!("  Dump RPC {:.0} ms: {safe:?}", rpc.as_secs_f64() * 1e3);
            }
        }
    }
    println!(
        "churn: {full} of {captures} captures waited out their {timeout_ms} ms timeout for a task that had ended ({:.1} s in all)",
        started.elapsed().as_secs_f64()
    );
    runtime.shutdown_timeout(Duration::from_secs(1));
    full > 0
}

async fn connect(socket: PathBuf) -> InspectorClient<Channel> {
    for _ in 0..500 {
        let path = socket.clone();
        let channel = Endpoint::from_static("http://localhost")
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                }
            }))
            .await;
        if let Ok(channel) = channel {
            return InspectorClient::new(channel).max_decoding_message_size(64 << 20);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the agent never listened on {}", socket.display());
}

/// One Dump: its header's SafeCapture and the RPC's wall time.
async fn dump(client: &mut InspectorClient<Channel>, timeout_ms: u32) -> (proto::SafeCapture, Duration) {
    let started = Instant::now();
    let mut stream = client.dump(proto::DumpRequest { task_ids: vec![], timeout_ms }).await.expect("Dump").into_inner();
    let mut safe = None;
    while let Some(chunk) = stream.message().await.expect("a well-formed stream") {
        if let Some(header) = chunk.header {
            safe = header.safe_capture;
        }
    }
    (safe.expect("a header with safe_capture"), started.elapsed())
}
