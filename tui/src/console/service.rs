//! taskscope's own `Inspector` service, answered from a console-subscriber's
//! stream: the one place where console's protocol becomes taskscope's.
//!
//! A [`Feed`] owns the [`Table`]; one task ([`follow`]) applies the stream
//! from console-subscriber to it, and the service reads it: `GetInfo` from
//! the table and the process found listening, `Watch` as a snapshot and then
//! one batch of changed records per interval (empty or not, as the agent
//! sends them, so a live view can tell a silent link from a quiet program),
//! `Dump` as the records with no stacks and a header that says why.
//!
//! The follower holds the feed weakly: once every client of the service is
//! gone, it stops at the next update and the stream to console-subscriber
//! is closed with it.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use console_api as api;
use futures::Stream;
use taskscope_proto as proto;
use taskscope_proto::inspector_server::Inspector;
use tokio::sync::{mpsc, watch};
use tonic::{Request, Response, Status};

use super::owner::Owner;
use super::table::Table;
use super::{MODE, NO_STACKS, OLD_TOKIO};

/// console-subscriber sends an update every publish interval (1 s by
/// default) even when nothing changed; this long without one, the link is
/// taken for dead.
pub const STALL: Duration = Duration::from_secs(20);

/// Records per message of a snapshot or a dump, well under tonic's 4 MiB.
const CHUNK: usize = 1000;

/// The table of one console-subscriber, shared by the follower and the service.
#[derive(Debug)]
pub struct Feed {
    table: Mutex<Table>,
    /// Updates applied so far; waited on by dumps.
    updates: watch::Sender<u64>,
    /// Why the stream from console-subscriber ended, once it has.
    ended: Mutex<Option<String>>,
    /// The local process that listens at the address, when one was found.
    owner: Option<Owner>,
}

impl Feed {
    /// A feed whose table starts with `first`, console-subscriber's full state.
    pub fn new(first: api::instrument::Update, owner: Option<Owner>) -> Feed {
        let mut table = Table::default();
        table.apply(first, Instant::now());
        let (updates, _) = watch::channel(table.updates());
        Feed { table: Mutex::new(table), updates, ended: Mutex::new(None), owner }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // A panic while holding it cannot leave the table half-written in a
        // way that matters to a viewer; go on with it.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn apply(&self, update: api::instrument::Update) {
        let n = {
            let mut table = self.table();
            table.apply(update, Instant::now());
            table.updates()
        };
        self.updates.send_replace(n);
    }

    fn end(&self, why: String) {
        *self.ended.lock().unwrap_or_else(PoisonError::into_inner) = Some(why);
        self.updates.send_modify(|_| {});
    }

    fn ended(&self) -> Option<String> {
        self.ended.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// What `GetInfo` answers. What console-subscriber does not say (the
    /// PID, unless a local process was found listening; tokio's version;
    /// the runtimes) is left unset, never guessed.
    pub fn info(&self) -> proto::ProcessInfo {
        let table = self.table();
        let records = table.records();
        let owner = self.owner.as_ref();
        proto::ProcessInfo {
            protocol_version: proto::PROTOCOL_VERSION,
            pid: owner.map_or(0, |o| o.pid),
            process_name: owner.map(|o| o.name.clone()).unwrap_or_default(),
            mode: MODE.to_string(),
            dumps_supported: false,
            dumps_unsupported_reason: NO_STACKS.to_string(),
            now_ns: table.now_ns(),
            uptime_ns: owner.and_then(Owner::uptime_ns).unwrap_or(0),
            counts: Some(table.counts(&records)),
            dropped_events: table.dropped_events(),
            cmdline: owner.map(|o| o.cmdline.clone()).unwrap_or_default(),
            ..Default::default()
        }
    }

    /// Waits, at most `limit`, until the leak verdict can be given on every
    /// task: each that looks leaked was read in two updates (console's
    /// first one may lack tasks its aggregator had not taken in yet, which
    /// come with the next).
    async fn settled(&self, limit: Duration) {
        let mut updates = self.updates.subscribe();
        let settled = |&n: &u64| self.ended().is_some() || (n >= 2 && self.table().unsettled() == 0);
        let _ = tokio::time::timeout(limit, updates.wait_for(settled)).await;
    }

    /// A dump: the header, then the records (those of `ids`, or all).
    fn dump(&self, ids: &[u64], waited: Duration) -> Vec<proto::DumpChunk> {
        let table = self.table();
        let records = table.records();
        let mut detail = NO_STACKS.to_string();
        if table.old_tokio() {
            detail = format!("{detail}; {OLD_TOKIO}");
        }
        let unsettled = table.unsettled();
        if table.updates() < 2 || unsettled > 0 {
            detail = format!(
                "{detail}; no second update from console-subscriber within {}, so {} not judged leaked yet",
                crate::duration::format(waited),
                match unsettled {
                    0 => "tasks are".to_string(),
                    1 => "1 task with no live waker is".to_string(),
                    n => format!("{n} tasks with no live waker are"),
                }
            );
        }
        let header = proto::DumpHeader {
            now_ns: table.now_ns(),
            runtimes: vec![proto::RuntimeDump {
                // No runtime is known by name: console does not say.
                runtime: String::new(),
                status: proto::DumpStatus::Unsupported as i32,
                detail,
                elapsed_ns: 0,
            }],
            counts: Some(table.counts(&records)),
            dropped_events: table.dropped_events(),
            safe_capture: None,
        };
        let mut tasks: Vec<proto::DumpedTask> = records
            .into_iter()
            .filter(|t| ids.is_empty() || ids.contains(&t.id))
            .map(|t| proto::DumpedTask {
                task: Some(t),
                stack_id: 0,
                stack_source: proto::StackSource::Unspecified as i32,
            })
            .collect();
        tasks.sort_by_key(|t| t.task.as_ref().map_or(0, |t| t.id));
        let mut chunks = vec![proto::DumpChunk { header: Some(header), ..Default::default() }];
        while !tasks.is_empty() {
            let rest = tasks.split_off(tasks.len().min(CHUNK));
            chunks.push(proto::DumpChunk { tasks, ..Default::default() });
            tasks = rest;
        }
        chunks
    }
}

/// Applies console-subscriber's stream to the feed until it ends, goes
/// silent for [`STALL`], or nobody holds the feed any more.
pub async fn follow(feed: Weak<Feed>, mut upstream: tonic::Streaming<api::instrument::Update>) {
    loop {
        let next = tokio::time::timeout(STALL, upstream.message()).await;
        let Some(feed) = feed.upgrade() else { return };
        let why = match next {
            Ok(Ok(Some(update))) => {
                feed.apply(update);
                continue;
            }
            Ok(Ok(None)) => "console-subscriber ended the stream (the program may be exiting)".to_string(),
            Ok(Err(status)) => format!("connection to console-subscriber dropped: {}", super::status_text(&status)),
            Err(_) => format!("no update from console-subscriber for {}", crate::duration::format(STALL)),
        };
        return feed.end(why);
    }
}

/// What a watcher sent last, to send only changes.
#[derive(Default)]
struct Sent {
    tasks: HashMap<u64, proto::Task>,
    totals: HashMap<(String, u32, u32), (u64, u64)>,
}

impl Feed {
    /// The messages of one `Watch` batch: every record that changed since
    /// `sent` (everything for a snapshot), the removed ids, counts last.
    fn batch(&self, sent: &mut Sent, snapshot: bool) -> Vec<proto::WatchUpdate> {
        let table = self.table();
        let records = table.records();
        let counts = table.counts(&records);
        let now_ns = table.now_ns();
        let mut live: HashMap<u64, proto::Task> = records.into_iter().map(|t| (t.id, t)).collect();
        let removed: Vec<u64> = sent.tasks.keys().filter(|id| !live.contains_key(id)).copied().collect();
        let mut changed: Vec<proto::Task> =
            live.values().filter(|t| sent.tasks.get(&t.id) != Some(t)).cloned().collect();
        changed.sort_by_key(|t| t.id);
        let mut location_totals = Vec::new();
        for t in table.totals() {
            let loc = t.location.clone().unwrap_or_default();
            let key = (loc.file, loc.line, loc.column);
            if sent.totals.insert(key, (t.spawned, t.completed)) != Some((t.spawned, t.completed)) {
                location_totals.push(t);
            }
        }
        sent.tasks = std::mem::take(&mut live);
        let mut out = Vec::new();
        loop {
            let rest = changed.split_off(changed.len().min(CHUNK));
            out.push(proto::WatchUpdate {
                now_ns,
                reset: snapshot && out.is_empty(),
                tasks: changed,
                ..Default::default()
            });
            changed = rest;
            if changed.is_empty() {
                break;
            }
        }
        if let Some(last) = out.last_mut() {
            last.complete = true;
            last.removed = removed;
            last.counts = Some(counts);
            last.dropped_events = table.dropped_events();
            last.location_totals = location_totals;
        }
        out
    }
}

/// The service over one feed.
#[derive(Debug, Clone)]
pub struct Adapter {
    /// The table it answers from.
    pub feed: Arc<Feed>,
}

type Answer<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Inspector for Adapter {
    async fn get_info(&self, _: Request<proto::InfoRequest>) -> Result<Response<proto::ProcessInfo>, Status> {
        Ok(Response::new(self.feed.info()))
    }

    type WatchStream = Answer<proto::WatchUpdate>;

    async fn watch(&self, request: Request<proto::WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let interval = match request.into_inner().interval_ms {
            0 => Duration::from_secs(1),
            ms => Duration::from_millis(u64::from(ms.max(50))),
        };
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(watcher(self.feed.clone(), interval, tx));
        let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
        Ok(Response::new(Box::pin(stream)))
    }

    type DumpStream = Answer<proto::DumpChunk>;

    async fn dump(&self, request: Request<proto::DumpRequest>) -> Result<Response<Self::DumpStream>, Status> {
        let request = request.into_inner();
        let limit = match request.timeout_ms {
            0 => Duration::from_secs(5),
            ms => Duration::from_millis(u64::from(ms)),
        };
        self.feed.settled(limit).await;
        if let Some(why) = self.feed.ended() {
            return Err(Status::unavailable(why));
        }
        let chunks = self.feed.dump(&request.task_ids, limit);
        Ok(Response::new(Box::pin(futures::stream::iter(chunks.into_iter().map(Ok)))))
    }
}

/// One `Watch` stream: a snapshot at once, then a batch every `interval`,
/// until the client goes or console-subscriber's stream ends (then an
/// UNAVAILABLE status saying why, which a live view reports as a lost link).
async fn watcher(feed: Arc<Feed>, interval: Duration, tx: mpsc::Sender<Result<proto::WatchUpdate, Status>>) {
    let mut sent = Sent::default();
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut snapshot = true;
    loop {
        ticks.tick().await;
        if let Some(why) = feed.ended() {
            let _ = tx.send(Err(Status::unavailable(why))).await;
            return;
        }
        for message in feed.batch(&mut sent, snapshot) {
            if tx.send(Ok(message)).await.is_err() {
                return;
            }
        }
        snapshot = false;
    }
}
