//! What the agent's integration tests share: a client over the per-process
//! socket, and readers of a dump's chunks.

#![allow(dead_code)] // each test file uses its own part

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use taskscope_proto as proto;
use taskscope_proto::inspector_client::InspectorClient;
use tonic::transport::{Channel, Endpoint, Uri};

pub async fn connect(socket: PathBuf) -> InspectorClient<Channel> {
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

pub async fn dump(client: &mut InspectorClient<Channel>, timeout_ms: u32) -> Vec<proto::DumpChunk> {
    dump_of(client, vec![], timeout_ms).await
}

/// A dump of the tasks `task_ids` (all live tasks when empty).
pub async fn dump_of(
    client: &mut InspectorClient<Channel>,
    task_ids: Vec<u64>,
    timeout_ms: u32,
) -> Vec<proto::DumpChunk> {
    let request = proto::DumpRequest { task_ids, timeout_ms };
    let mut stream = client.dump(request).await.expect("Dump answers").into_inner();
    let mut chunks = Vec::new();
    while let Some(chunk) = stream.message().await.expect("a well-formed stream") {
        chunks.push(chunk);
    }
    chunks
}

/// The runtime a test's tool side (its client) runs on, apart from the
/// program's runtimes.
pub fn tool_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// A client of this process's agent, whose socket is in `dir`.
pub async fn client_in(dir: &Path) -> InspectorClient<Channel> {
    connect(socket_in(dir)).await
}

/// What `GetInfo` answers now.
pub async fn info(client: &mut InspectorClient<Channel>) -> proto::ProcessInfo {
    client.get_info(proto::InfoRequest {}).await.expect("GetInfo answers").into_inner()
}

/// The counts `GetInfo` answers now.
pub async fn counts(client: &mut InspectorClient<Channel>) -> proto::TaskCounts {
    info(client).await.counts.expect("GetInfo has counts")
}

pub fn header(chunks: &[proto::DumpChunk]) -> &proto::DumpHeader {
    chunks.first().and_then(|c| c.header.as_ref()).expect("the first chunk is the header")
}

pub fn main_status(chunks: &[proto::DumpChunk]) -> &proto::RuntimeDump {
    header(chunks).runtimes.iter().find(|r| r.runtime == "main").expect("runtime main is dumped")
}

/// A fresh socket directory for this test process, removed when dropped:
/// also when the test fails (a panic unwinds through it).
pub fn socket_dir(test: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("taskscope-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    TempDir(dir)
}

/// See [`socket_dir`].
pub struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// This process's socket in `dir`.
pub fn socket_in(dir: &Path) -> PathBuf {
    dir.join(format!("{}.sock", std::process::id()))
}

/// The record of task `id` in a dump.
pub fn task_in(chunks: &[proto::DumpChunk], id: u64) -> Option<&proto::DumpedTask> {
    chunks.iter().flat_map(|c| &c.tasks).find(|t| t.task.as_ref().is_some_and(|t| t.id == id))
}

/// Dumps until every task of `ids` is idle (each has had its first poll),
/// for at most 20 s; the last dump either way.
pub async fn dump_when_idle(
    client: &mut InspectorClient<Channel>,
    ids: impl Iterator<Item = u64> + Clone,
) -> Vec<proto::DumpChunk> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let chunks = dump(client, 10_000).await;
        let idle = |id: u64| {
            task_in(&chunks, id).and_then(|t| t.task.as_ref()).is_some_and(|t| t.state == proto::TaskState::Idle as i32)
        };
        if ids.clone().all(idle) || std::time::Instant::now() > deadline {
            return chunks;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The function names of a dumped task's stack.
pub fn functions_of(chunks: &[proto::DumpChunk], task: &proto::DumpedTask) -> Vec<String> {
    chunks
        .iter()
        .flat_map(|c| &c.stacks)
        .filter(|s| s.id == task.stack_id)
        .flat_map(|s| &s.backtraces)
        .flat_map(|b| &b.frames)
        .map(|f| f.function.clone())
        .collect()
}

/// What [`own_agent`] returns: the agent's info, the parked task's record
/// and stack's function names, and the same for the future the runtime
/// blocks on (the program's `main`).
pub type Seen = (proto::ProcessInfo, (proto::Task, Vec<String>), (proto::Task, Vec<String>));

/// Parks until `rx` fires: a frame the tests of `#[taskscope_agent::main]`
/// look for in the dump.
pub async fn parked_under_main_attr(rx: tokio::sync::oneshot::Receiver<()>) {
    let _ = rx.await;
}

/// What a program under `#[taskscope_agent::main]` sees of its own agent:
/// spawns a parked task with `taskscope_agent::spawn`, asks the agent over
/// the real socket in `dir` for its info and a dump (while this very future,
/// the one the runtime blocks on, waits for the answer), and returns the
/// info and what the dump says of the task and of the `block_on` future.
/// Both stacks must have been captured safely: no variable is set.
pub async fn own_agent(dir: PathBuf) -> Seen {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let parked = taskscope_agent::spawn(parked_under_main_attr(rx));
    let parked_id: u64 = parked.id().to_string().parse().expect("numeric id");
    let mut client = connect(socket_in(&dir)).await;
    let info = client.get_info(proto::InfoRequest {}).await.expect("GetInfo answers").into_inner();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let chunks = dump(&mut client, 10_000).await;
    let task = task_in(&chunks, parked_id).expect("the parked task is in the dump");
    assert_eq!(task.stack_source(), proto::StackSource::Captured, "{task:?}");
    let record = task.task.clone().expect("lifecycle record");
    let functions = functions_of(&chunks, task);
    let main = chunks
        .iter()
        .flat_map(|c| &c.tasks)
        .find(|t| t.task.as_ref().is_some_and(|t| t.kind == "block_on"))
        .expect("the future the runtime blocks on is listed");
    assert_eq!(main.stack_source(), proto::StackSource::Captured, "{main:?}");
    let main_seen = (main.task.clone().expect("lifecycle record"), functions_of(&chunks, main));
    drop(tx);
    (info, (record, functions), main_seen)
}
