//! The connection task: keeps a `Watch` stream open to the agent, forwards
//! what arrives to the UI as [`DataEvent`]s, runs the dumps the UI asks for,
//! and reconnects with exponential backoff when the link drops.
//!
//! States, as the header shows them: connecting → live → lost (retry in N s)
//! → connecting → …. An address (a socket path, `host:port`) is retried for
//! as long as the UI runs, as tokio-console does: whatever agent answers
//! there next is followed. A PID cannot come back once its process is gone
//! (a restarted program gets a new PID), so then the state is "exited", and
//! when following the program (see [`super::follow`]) the task looks for its
//! next process and goes on with that one; otherwise it stops trying.

use std::time::{Duration, SystemTime};

use taskscope_proto as proto;
use tokio::sync::mpsc;

use super::event::{Command, DataEvent, LinkEvent};
use super::follow::{self, Gone, SEEK_EVERY};
use super::state::{DumpOutcome, DUMP_TIMEOUT};
use crate::client::{self, Connected};
use crate::process::{liveness, Liveness};
use crate::target::Target;

/// First wait after a failure; doubles up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(8);

/// Added to three intervals before a silent stream counts as dead.
const STALL_GRACE: Duration = Duration::from_secs(5);

/// A dump taking longer than this is reported as failed (the agent's own
/// timeout, [`DUMP_TIMEOUT`], normally answers first).
const DUMP_DEADLINE: Duration = Duration::from_secs(30);

/// What the connection task keeps connected to.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The agent to reach; `None` while looking for a process of `follow`.
    pub target: Option<Target>,
    /// The program to follow from process to process when a PID target's
    /// process exits, by the name its agent reports.
    pub follow: Option<String>,
}

/// Runs until the UI goes away (`events` closed). `first` is the connection
/// made before the UI started, if one was.
pub async fn run(
    mut plan: Plan,
    interval: Duration,
    first: Option<Connected>,
    events: mpsc::Sender<DataEvent>,
    mut commands: mpsc::Receiver<Command>,
) {
    let mut backoff = BACKOFF_MIN;
    let mut attempt = 0u32;
    let mut next = first;
    // When the process connected to last started, and the one that exited.
    let mut started = None;
    let mut gone: Option<Gone> = None;
    loop {
        let Some(target) = plan.target.clone() else {
            let Some(name) = plan.follow.clone() else { return };
            match follow::find(&name, gone).await {
                Some(conn) => {
                    let pid = conn.target.pid().unwrap_or(conn.info.pid);
                    let previous = gone.take().map(|g| g.pid);
                    if !send(&events, DataEvent::Link(LinkEvent::Followed { pid, previous })).await {
                        return;
                    }
                    plan.target = Some(conn.target.clone());
                    next = Some(conn);
                }
                None => {
                    if gone.is_none() && !send(&events, DataEvent::Link(LinkEvent::Seeking { name })).await {
                        return;
                    }
                    if !wait(SEEK_EVERY, &events, &mut commands).await {
                        return;
                    }
                }
            }
            continue;
        };
        let connected = match next.take() {
            Some(c) => Ok(c),
            None => {
                attempt += 1;
                if !send(&events, DataEvent::Link(LinkEvent::Connecting { attempt })).await {
                    return;
                }
                client::connect(&target).await.map_err(|e| e.to_string())
            }
        };
        let reason = match connected {
            Ok(conn) => {
                attempt = 0;
                backoff = BACKOFF_MIN;
                started = Some(follow::started(&conn.info, SystemTime::now()));
                match watch(conn, interval, &events, &mut commands).await {
                    Some(reason) => reason,
                    None => return,
                }
            }
            Err(reason) => reason,
        };
        if let Target::Pid { pid, .. } = target {
            if liveness(pid) == Liveness::Dead {
                if !send(&events, DataEvent::Link(LinkEvent::Exited { pid, retry_in: SEEK_EVERY })).await {
                    return;
                }
                if plan.follow.is_none() {
                    // Nothing will ever answer for this PID again.
                    while wait(Duration::from_secs(3600), &events, &mut commands).await {}
                    return;
                }
                gone = Some(Gone { pid, started: started.take().unwrap_or(SystemTime::UNIX_EPOCH) });
                plan.target = None;
                backoff = BACKOFF_MIN;
                continue;
            }
        }
        let retry_in = backoff;
        backoff = (backoff * 2).min(BACKOFF_MAX);
        if !send(&events, DataEvent::Link(LinkEvent::Lost { reason, retry_in })).await {
            return;
        }
        if !wait(retry_in, &events, &mut commands).await {
            return;
        }
    }
}

/// Follows the watch stream of one connection. Returns why it ended, or
/// `None` when the UI is gone.
async fn watch(
    conn: Connected,
    interval: Duration,
    events: &mpsc::Sender<DataEvent>,
    commands: &mut mpsc::Receiver<Command>,
) -> Option<String> {
    let Connected { mut client, info, .. } = conn;
    if !send(events, DataEvent::Info(Box::new(info))).await {
        return None;
    }
    let request = proto::WatchRequest { interval_ms: interval.as_millis().clamp(50, u32::MAX as u128) as u32 };
    let mut stream = match client.watch(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => return Some(format!("the agent refused the watch: {}", status_text(&status))),
    };
    if !send(events, DataEvent::Link(LinkEvent::Live)).await {
        return None;
    }
    // The agent sends a batch every interval, empty or not: silence for much
    // longer means the link is dead even if no error says so (a half-open
    // TCP connection, a suspended process).
    let stall = interval.saturating_mul(3).saturating_add(STALL_GRACE);
    loop {
        tokio::select! {
            msg = tokio::time::timeout(stall, stream.message()) => match msg {
                Err(_) => return Some(format!("no update for {}", crate::duration::format(stall))),
                Ok(Ok(Some(update))) => {
                    if !send(events, DataEvent::Update(Box::new(update))).await {
                        return None;
                    }
                }
                Ok(Ok(None)) => return Some("the agent ended the stream (the program may be exiting)".to_string()),
                Ok(Err(status)) => return Some(format!("connection dropped: {}", status_text(&status))),
            },
            cmd = commands.recv() => match cmd {
                Some(Command::Dump { seq, task_ids }) => {
                    let (client, events) = (client.clone(), events.clone());
                    // Dumps run beside the stream, which keeps flowing meanwhile.
                    tokio::spawn(async move {
                        let result = dump(client, task_ids).await;
                        let _ = events.send(DataEvent::Dump { seq, result }).await;
                    });
                }
                None => return None,
            },
        }
    }
}

/// One `Dump` call, reassembled.
async fn dump(
    mut client: proto::inspector_client::InspectorClient<tonic::transport::Channel>,
    task_ids: Vec<u64>,
) -> Result<DumpOutcome, String> {
    let call = async {
        let mut stream = client
            .dump(proto::DumpRequest { task_ids, timeout_ms: DUMP_TIMEOUT.as_millis() as u32 })
            .await
            .map_err(|s| format!("the agent refused the dump: {}", status_text(&s)))?
            .into_inner();
        let mut chunks = Vec::new();
        while let Some(chunk) =
            stream.message().await.map_err(|s| format!("the dump broke off: {}", status_text(&s)))?
        {
            chunks.push(chunk);
        }
        Ok(DumpOutcome::from_chunks(chunks))
    };
    match tokio::time::timeout(DUMP_DEADLINE, call).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {}", crate::duration::format(DUMP_DEADLINE))),
    }
}

/// Sleeps `d`, answering dump requests with "not connected" meanwhile.
/// False when the UI is gone.
async fn wait(d: Duration, events: &mpsc::Sender<DataEvent>, commands: &mut mpsc::Receiver<Command>) -> bool {
    let sleep = tokio::time::sleep(d);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            _ = &mut sleep => return true,
            cmd = commands.recv() => match cmd {
                Some(Command::Dump { seq, .. }) => {
                    let result = Err("not connected to the agent".to_string());
                    if !send(events, DataEvent::Dump { seq, result }).await {
                        return false;
                    }
                }
                None => return false,
            },
        }
    }
}

async fn send(events: &mpsc::Sender<DataEvent>, ev: DataEvent) -> bool {
    events.send(ev).await.is_ok()
}

fn status_text(status: &tonic::Status) -> String {
    if status.message().is_empty() {
        format!("{:?}", status.code())
    } else {
        status.message().to_string()
    }
}
