//! The inspector's side: a gRPC client over the child's Unix socket, one
//! `Dump` at a time, each read to its last chunk and checked task by task.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use taskscope_proto as proto;
use taskscope_proto::inspector_client::InspectorClient;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::load::Kind;

/// Dump chunks are about 2 MiB; 10k tasks fit in a few.
const MAX_MESSAGE: usize = 64 * 1024 * 1024;
/// A `Dump` that has not ended this long after its own timeout is wedged.
pub const WEDGED_AFTER: Duration = Duration::from_secs(5);

pub type Client = InspectorClient<Channel>;

/// Connects to the agent's socket, retrying while it is not there yet.
pub async fn connect(socket: &Path) -> Result<Client, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let path: PathBuf = socket.to_path_buf();
        let channel = Endpoint::from_static("http://localhost")
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                }
            }))
            .await;
        match channel {
            Ok(channel) => return Ok(InspectorClient::new(channel).max_decoding_message_size(MAX_MESSAGE)),
            Err(e) if Instant::now() >= deadline => {
                return Err(format!("connect to the agent at {}: {e}", socket.display()))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// How one `Dump` went.
pub enum Outcome {
    Answered(Capture),
    /// An error status or a malformed answer.
    Failed(String),
    /// No end of stream by `timeout + WEDGED_AFTER`.
    Wedged,
    /// Dropped by the client on purpose before it ended.
    Cancelled,
}

/// What a kind's tasks were in one dump.
#[derive(Debug, Default, Clone, Copy)]
pub struct Seen {
    pub tasks: u32,
    pub captured: u32,
    pub not_polled: u32,
    /// A source other than CAPTURED or NOT_POLLED: every task of the load
    /// is wrapped, so none should have one.
    pub other_source: u32,
    /// CAPTURED with no stack, though the task awaits a tokio leaf.
    pub empty_stack: u32,
    /// CAPTURED with a stack that lacks the task's own `async fn`.
    pub wrong_stack: u32,
}

/// One answered `Dump`.
#[derive(Debug)]
pub struct Capture {
    /// From the request to the last chunk.
    pub rpc: Duration,
    pub safe: proto::SafeCapture,
    pub kinds: BTreeMap<Kind, Seen>,
}

impl Capture {
    /// Tasks the header says were asked and did not answer.
    pub fn unanswered(&self) -> u32 {
        self.safe.wanted.saturating_sub(self.safe.answered)
    }
}

/// One `Dump` of every task, with `timeout_ms` for the capture; dropped
/// after `cancel_after` when given (as a killed `taskscope stack` would).
pub async fn dump(client: &mut Client, timeout_ms: u32, cancel_after: Option<Duration>) -> Outcome {
    let started = Instant::now();
    let wedged_at = Duration::from_millis(u64::from(timeout_ms)) + WEDGED_AFTER;
    let limit = cancel_after.map_or(wedged_at, |c| c.min(wedged_at));
    let request = proto::DumpRequest { task_ids: vec![], timeout_ms };
    let answer = tokio::time::timeout(limit, async {
        let mut stream = client.dump(request).await?.into_inner();
        let mut chunks = Vec::new();
        while let Some(chunk) = stream.message().await? {
            chunks.push(chunk);
        }
        Ok::<_, tonic::Status>(chunks)
    })
    .await;
    match answer {
        Err(_) if limit < wedged_at => Outcome::Cancelled,
        Err(_) => Outcome::Wedged,
        Ok(Err(status)) => Outcome::Failed(format!("Dump failed: {status}")),
        Ok(Ok(chunks)) => match read(&chunks, started.elapsed()) {
            Ok(capture) => Outcome::Answered(capture),
            Err(why) => Outcome::Failed(why),
        },
    }
}

/// Sorts the dump's tasks by kind and checks each captured stack.
fn read(chunks: &[proto::DumpChunk], rpc: Duration) -> Result<Capture, String> {
    let header = chunks.first().and_then(|c| c.header.as_ref()).ok_or("the first chunk has no header")?;
    let safe = header.safe_capture.clone().ok_or("the header has no safe_capture")?;
    let stacks: HashMap<u32, &proto::Stack> = chunks.iter().flat_map(|c| &c.stacks).map(|s| (s.id, s)).collect();
    // Whether stack `id` shows `function`, memoised: tasks share stacks.
    let mut shows: HashMap<(u32, Kind), bool> = HashMap::new();
    let mut kinds: BTreeMap<Kind, Seen> = BTreeMap::new();
    for dumped in chunks.iter().flat_map(|c| &c.tasks) {
        let Some(kind) = dumped.task.as_ref().and_then(|t| Kind::of_name(&t.name)) else {
            continue;
        };
        let seen = kinds.entry(kind).or_default();
        seen.tasks += 1;
        match dumped.stack_source() {
            proto::StackSource::Captured => {
                seen.captured += 1;
                if dumped.stack_id == 0 {
                    seen.empty_stack += 1;
                } else {
                    let right = *shows.entry((dumped.stack_id, kind)).or_insert_with(|| {
                        stacks.get(&dumped.stack_id).is_some_and(|s| {
                            s.backtraces.iter().flat_map(|b| &b.frames).any(|f| f.function.contains(kind.function()))
                        })
                    });
                    if !right {
                        seen.wrong_stack += 1;
                    }
                }
            }
            proto::StackSource::NotPolled => seen.not_polled += 1,
            _ => seen.other_source += 1,
        }
    }
    Ok(Capture { rpc, safe, kinds })
}
