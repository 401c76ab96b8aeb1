//! The whole agent, as a program embeds it: `init` on a real runtime, then
//! `GetInfo` and `Dump` over the real per-process socket, including a dump
//! of a runtime whose worker is blocked.
//!
//! One test function: `init` installs a process-wide subscriber and agent.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use taskscope_proto as proto;
use taskscope_proto::inspector_client::InspectorClient;
use tonic::transport::{Channel, Endpoint, Uri};

async fn connect(socket: PathBuf) -> InspectorClient<Channel> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
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
            return InspectorClient::new(channel);
        }
        assert!(Instant::now() < deadline, "the agent never listened on {}", socket.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn dump(client: &mut InspectorClient<Channel>, timeout_ms: u32) -> Vec<proto::DumpChunk> {
    let request = proto::DumpRequest { task_ids: vec![], timeout_ms };
    let mut stream = client.dump(request).await.expect("Dump answers").into_inner();
    let mut chunks = Vec::new();
    while let Some(chunk) = stream.message().await.expect("a well-formed stream") {
        chunks.push(chunk);
    }
    chunks
}

fn header(chunks: &[proto::DumpChunk]) -> &proto::DumpHeader {
    chunks.first().and_then(|c| c.header.as_ref()).expect("the first chunk is the header")
}

fn main_status(chunks: &[proto::DumpChunk]) -> &proto::RuntimeDump {
    header(chunks).runtimes.iter().find(|r| r.runtime == "main").expect("runtime main is dumped")
}

async fn waits_for_a_message() {
    std::future::pending::<()>().await;
}

async fn sleeps_in_rpc_dump_test() {
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

fn socket_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("taskscope-rpc-dump-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn socket_in(dir: &Path) -> PathBuf {
    dir.join(format!("{}.sock", std::process::id()))
}

#[test]
fn info_and_dumps_over_the_socket() {
    // The program's runtime, and a separate one for the client, so that
    // blocking the program's worker cannot hold up the client's connection.
    let program = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let tool = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let dir = socket_dir();
    let sleeper_id: u64 = program.block_on(async {
        // Two workers: multi-thread dumps are opt-in (see TASKSCOPE_MT_DUMPS).
        taskscope_agent::Builder::from_env().socket_dir(&dir).multi_thread_dumps(true).init();
        tokio::spawn(waits_for_a_message());
        let sleeper = tokio::spawn(sleeps_in_rpc_dump_test());
        sleeper.id().to_string().parse().expect("numeric id")
    });

    tool.block_on(async {
        let mut client = connect(socket_in(&dir)).await;

        let info = client.get_info(proto::InfoRequest {}).await.expect("GetInfo answers").into_inner();
        assert_eq!(info.protocol_version, proto::PROTOCOL_VERSION);
        assert_eq!(info.pid, std::process::id());
        assert!(!info.process_name.is_empty() && !info.cmdline.is_empty());
        assert!(info.tokio_version.starts_with("1."), "{}", info.tokio_version);
        assert!(info.runtimes.iter().any(|r| r.name == "main" && r.flavor == "multi_thread" && r.workers == 2));
        assert!(info.dumps_supported, "{}", info.dumps_unsupported_reason);
        assert!(info.uptime_ns > 0);

        // A normal dump: our parked task, its lifecycle record and its stack.
        let chunks = dump(&mut client, 10_000).await;
        assert_eq!(main_status(&chunks).status, proto::DumpStatus::Ok as i32, "{:?}", main_status(&chunks));
        let stacks: Vec<&proto::Stack> = chunks.iter().flat_map(|c| &c.stacks).collect();
        let sleeper = chunks
            .iter()
            .flat_map(|c| &c.tasks)
            .find(|t| t.task.as_ref().is_some_and(|t| t.id == sleeper_id))
            .expect("the sleeping task is in the dump");
        let stack = stacks.iter().find(|s| s.id == sleeper.stack_id).expect("its stack was sent");
        let frames: Vec<&proto::Frame> = stack.backtraces.iter().flat_map(|b| &b.frames).collect();
        assert!(frames.iter().any(|f| f.function.contains("sleeps_in_rpc_dump_test")), "{frames:#?}");
        assert!(frames.iter().any(|f| f.internal), "tokio's frames are internal: {frames:#?}");
        // Nothing of the agent's own shows up as the program's.
        let all_frames = stacks.iter().flat_map(|s| &s.backtraces).flat_map(|b| &b.frames);
        assert!(!all_frames.clone().any(|f| f.function.starts_with("taskscope_agent::")), "{stacks:#?}");

        // Block one worker: the dump times out, the lifecycle records still come.
        let (started, blocked) = tokio::sync::oneshot::channel();
        program.spawn(async move {
            let _ = started.send(());
            std::thread::sleep(Duration::from_secs(2));
        });
        blocked.await.expect("the blocking task started");
        let asked = Instant::now();
        let chunks = dump(&mut client, 300).await;
        assert!(asked.elapsed() < Duration::from_millis(1500), "took {:?}", asked.elapsed());
        let status = main_status(&chunks);
        assert_eq!(status.status, proto::DumpStatus::TimedOut as i32, "{status:?}");
        assert!(status.detail.contains("did not answer within 300ms"), "{}", status.detail);
        assert!(chunks.iter().flat_map(|c| &c.tasks).any(|t| t.task.as_ref().is_some_and(|t| t.id == sleeper_id)));
        assert!(chunks.iter().all(|c| c.stacks.is_empty()));
        // GetInfo does not touch the program's runtime, so it still answers.
        client.get_info(proto::InfoRequest {}).await.expect("GetInfo answers while blocked");

        // Once the worker is free, dumps work again.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let chunks = dump(&mut client, 10_000).await;
        assert_eq!(main_status(&chunks).status, proto::DumpStatus::Ok as i32, "{:?}", main_status(&chunks));
    });
    program.shutdown_background();
    let _ = std::fs::remove_dir_all(&dir);
}
