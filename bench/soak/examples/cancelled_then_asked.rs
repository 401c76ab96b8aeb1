//! A Dump that the client cancels (a `taskscope stack` killed mid-way, a
//! client timeout) and the Dump right after it, against an idle program
//! (2 workers) whose wrapped tasks are all parked on oneshots (10,000, or
//! the first argument): nothing is blocked, so every task must answer the
//! second Dump, which has 2 s for it. Found by the soak's `--cancel-every 2`
//! at 053ca1f.
//!
//! ```text
//! cargo run --release -p taskscope-soak --example cancelled_then_asked [-- TASKS]
//! ```
//!
//! Prints, for each cancel delay, how the following full Dump went; exits 1
//! when any of them left a parked task unanswered, or waited out its whole
//! timeout though every task answered.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use taskscope_proto as proto;
use taskscope_proto::inspector_client::InspectorClient;
use tonic::transport::{Channel, Endpoint, Uri};

const ROUNDS: usize = 10;

async fn parked(rx: tokio::sync::oneshot::Receiver<()>) {
    let _ = rx.await;
}

fn main() {
    let parked_tasks: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let dir = std::env::temp_dir().join(format!("taskscope-cancelled-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("socket dir");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let senders = runtime.block_on(async {
        taskscope_agent::Builder::from_env().socket_dir(&dir).tokio_dumps(false).init();
        let mut senders = Vec::new();
        for _ in 0..parked_tasks {
            let (tx, rx) = tokio::sync::oneshot::channel();
            senders.push(tx);
            taskscope_agent::spawn(parked(rx));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        senders
    });
    let client_rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut client = client_rt.block_on(connect(dir.join(format!("{}.sock", std::process::id()))));
    let (warm, _) = client_rt.block_on(dump(&mut client, 2000, None)).expect("warm-up");
    println!("warm-up (no cancel): {}", line(&warm));
    let (mut unanswered, mut waited) = (0, 0);
    for cancel_ms in [1, 2, 5, 10] {
        for round in 0..ROUNDS {
            let cancelled = client_rt.block_on(dump(&mut client, 2000, Some(Duration::from_millis(cancel_ms))));
            let (next, rpc) = client_rt.block_on(dump(&mut client, 2000, None)).expect("the next Dump");
            let left_out = next.answered < next.wanted;
            let waited_out = !left_out && next.elapsed_ns >= 1_900_000_000;
            unanswered += usize::from(left_out);
            waited += usize::from(waited_out);
            if round < 2 || left_out || waited_out {
                let first = if cancelled.is_none() { "cancelled" } else { "ended before the cancel" };
                println!(
                    "cancel at {cancel_ms:>2} ms ({first}), then: RPC {:>6.1} ms, {}",
                    rpc.as_secs_f64() * 1e3,
                    line(&next)
                );
            }
        }
    }
    // And once nothing is cancelled any more, every task answers again.
    std::thread::sleep(Duration::from_millis(100));
    let (after, _) = client_rt.block_on(dump(&mut client, 2000, None)).expect("the last Dump");
    println!("100 ms later, no cancel: {}", line(&after));
    println!(
        "of {} Dumps right after a cancelled one: {unanswered} left parked tasks unanswered, \
         {waited} waited out their 2 s timeout though every task answered",
        4 * ROUNDS
    );
    drop(senders);
    runtime.shutdown_timeout(Duration::from_secs(1));
    let _ = std::fs::remove_dir_all(&dir);
    std::process::exit(if unanswered + waited > 0 { 1 } else { 0 });
}

fn line(safe: &proto::SafeCapture) -> String {
    format!(
        "{} of {} answered in {:.1} ms{}",
        safe.answered,
        safe.wanted,
        safe.elapsed_ns as f64 / 1e6,
        if safe.detail.is_empty() { String::new() } else { format!(" ({})", safe.detail) }
    )
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

/// One Dump, dropped after `cancel` if given: its header's SafeCapture and
/// the RPC's wall time, or `None` when it was cancelled.
async fn dump(
    client: &mut InspectorClient<Channel>,
    timeout_ms: u32,
    cancel: Option<Duration>,
) -> Option<(proto::SafeCapture, Duration)> {
    let started = Instant::now();
    let run = async {
        let request = proto::DumpRequest { task_ids: vec![], timeout_ms };
        let mut stream = client.dump(request).await.expect("Dump").into_inner();
        let mut safe = None;
        while let Some(chunk) = stream.message().await.expect("a well-formed stream") {
            if let Some(header) = chunk.header {
                safe = header.safe_capture;
            }
        }
        safe.expect("a header with safe_capture")
    };
    match cancel {
        Some(after) => tokio::time::timeout(after, run).await.ok().map(|safe| (safe, started.elapsed())),
        None => Some((run.await, started.elapsed())),
    }
}
