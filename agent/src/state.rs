//! The one reader of the task table.
//!
//! The hot path writes counters into slots ([`crate::recorder`]); the thread
//! a task finishes on counts it and keeps its slot for display until
//! retention lets it go ([`crate::slots`]). This task, on the agent's thread,
//! answers the server's snapshot, summary and watch requests by scanning the
//! slots: live tasks, and the newest completed ones within the retention age
//! and count. Spawn totals per location are the threads' completion counts
//! plus the live tasks found, never less than reported before (see
//! [`spawned_since`]). It owns its watchers alone, so none of this
//! needs a lock.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::*;
use std::time::Duration;

use taskscope_proto as proto;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::clock;
use crate::files::{FileList, FILES};
use crate::recorder::Recorder;
use crate::slots::{kind_name, Key, LocKey, Slot, DONE, HOOKED};
use crate::tags;

/// Tasks per message in streamed answers (well under tonic's 4 MiB limit).
pub(crate) const CHUNK: usize = 2000;
/// How long the owner sleeps when no watcher is due sooner: it then only
/// drops the names of freed slots. (An agent left on in an idle service
/// should not wake its thread a hundred times a second.)
const IDLE_WAKE: Duration = Duration::from_secs(1);
/// Shortest watch interval.
const MIN_INTERVAL: Duration = Duration::from_millis(50);
/// Messages a watcher may have queued before it is considered slow and resynced.
const WATCH_BUFFER: usize = 256;

/// The agent's state task has stopped (the host is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the taskscope agent's state task has stopped")]
pub(crate) struct StateGone;

/// The task table at one instant.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// Agent clock when it was read.
    pub now_ns: u64,
    /// Live tasks and retained completed ones.
    pub tasks: Vec<proto::Task>,
    /// Counts at `now_ns`.
    pub counts: proto::TaskCounts,
    /// Events lost so far.
    pub dropped_events: u64,
}

/// Counts without the table: for `GetInfo`.
#[derive(Debug, Default, Clone)]
pub(crate) struct Summary {
    pub now_ns: u64,
    pub counts: proto::TaskCounts,
    pub dropped_events: u64,
}

enum Command {
    Snapshot(oneshot::Sender<Snapshot>),
    /// A snapshot and each spawn location's totals, for `/metrics`.
    Totals(oneshot::Sender<(Snapshot, Vec<proto::LocationTotals>)>),
    Summary(oneshot::Sender<Summary>),
    Watch(Duration, oneshot::Sender<mpsc::Receiver<proto::WatchUpdate>>),
}

/// Cloneable handle used by the server to ask the state owner for data.
#[derive(Clone)]
pub(crate) struct StateHandle {
    tx: mpsc::Sender<Command>,
}

impl StateHandle {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, StateGone> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.map_err(|_| StateGone)?;
        rx.await.map_err(|_| StateGone)
    }

    /// The whole table now.
    pub(crate) async fn snapshot(&self) -> Result<Snapshot, StateGone> {
        self.ask(Command::Snapshot).await
    }

    /// The whole table now, and each spawn location's spawned and completed
    /// totals (as watchers get them).
    pub(crate) async fn snapshot_with_totals(&self) -> Result<(Snapshot, Vec<proto::LocationTotals>), StateGone> {
        self.ask(Command::Totals).await
    }

    /// Counts now.
    pub(crate) async fn summary(&self) -> Result<Summary, StateGone> {
        self.ask(Command::Summary).await
    }

    /// A stream of updates: a full snapshot (the first message with `reset`,
    /// the last with `complete`), then one batch of changes every `interval`.
    /// Ends when the receiver is dropped.
    pub(crate) async fn watch(&self, interval: Duration) -> Result<mpsc::Receiver<proto::WatchUpdate>, StateGone> {
        self.ask(|tx| Command::Watch(interval, tx)).await
    }
}

/// A watcher and what it has been sent.
struct Watcher {
    tx: mpsc::Sender<proto::WatchUpdate>,
    interval: Duration,
    next: Instant,
    /// Task id → fingerprint of the record last sent; empty = send a full snapshot.
    sent: FastMap<u64, u64>,
    needs_reset: bool,
    totals_sent: FastMap<LocKey, (u64, u64)>,
}

/// A fast hasher for the owner's small integer keys (task ids, locations):
/// SipHash's DoS resistance buys nothing here and costs the agent's thread.
#[derive(Default, Clone, Copy)]
struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(*b as u64);
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(v as u64);
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FastHasher>>;
type FastSet<K> = HashSet<K, std::hash::BuildHasherDefault<FastHasher>>;

/// The state owner. Build with [`StateOwner::new`], run with [`StateOwner::run`].
pub(crate) struct StateOwner {
    recorder: &'static Recorder,
    rx: mpsc::Receiver<Command>,
    /// Completed tasks per spawn location (spawned = completed + live), as
    /// of the latest [`Self::count_completions`].
    completed: FastMap<LocKey, u64>,
    completed_total: u64,
    /// The spawn totals reported last, in all and per location: see
    /// [`spawned_since`].
    spawned_total: std::cell::Cell<u64>,
    spawned: FastMap<LocKey, std::cell::Cell<u64>>,
    watchers: Vec<Watcher>,
}

impl StateOwner {
    pub(crate) fn new(recorder: &'static Recorder) -> (StateOwner, StateHandle) {
        let (tx, rx) = mpsc::channel(64);
        // From now on freed names wait for this owner (see `Table::bury_names`).
        recorder.table.bury_names();
        let owner = StateOwner {
            recorder,
            rx,
            completed: FastMap::default(),
            completed_total: 0,
            spawned_total: std::cell::Cell::new(0),
            spawned: FastMap::default(),
            watchers: Vec::new(),
        };
        (owner, StateHandle { tx })
    }

    /// Serves until every handle is gone.
    pub(crate) async fn run(mut self) {
        loop {
            // Wake for the first watcher due, or after IDLE_WAKE.
            let idle = Instant::now() + IDLE_WAKE;
            let wake = self.watchers.iter().map(|w| w.next).min().map_or(idle, |due| due.min(idle));
            tokio::select! {
                cmd = self.rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    self.recorder.table.bury_names();
                    self.handle(cmd);
                }
                _ = tokio::time::sleep_until(wake) => {
                    self.recorder.table.bury_names();
                    crate::recorder::settle_dump_flags(&self.recorder.table);
                    self.feed_watchers();
                }
            }
        }
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Snapshot(reply) => {
                let scan = self.scan();
                let _ = reply.send(Snapshot {
                    now_ns: scan.now_ns,
                    counts: self.counts(&scan.tasks),
                    tasks: scan.tasks.into_iter().map(|(t, _)| t).collect(),
                    dropped_events: self.dropped(),
                });
            }
            Command::Totals(reply) => {
                let scan = self.scan();
                let files = FILES.get().map(|f| f.all()).unwrap_or_default();
                let totals = self.location_totals(&files, &scan).into_iter().map(|(_, t)| t).collect();
                let snapshot = Snapshot {
                    now_ns: scan.now_ns,
                    counts: self.counts(&scan.tasks),
                    tasks: scan.tasks.into_iter().map(|(t, _)| t).collect(),
                    dropped_events: self.dropped(),
                };
                let _ = reply.send((snapshot, totals));
            }
            Command::Summary(reply) => {
                // Counts only: no per-task record is built (no name or path copies).
                self.count_completions();
                let now_ns = clock::now_ns();
                let files = FILES.get().map(|f| f.all()).unwrap_or_default();
                let counts = self.tally(self.slots().map(|(_, slot)| {
                    let (state, leaked) = verdict(slot);
                    (state, leaked, files.in_runtime(slot.file.load(Relaxed)))
                }));
                let _ = reply.send(Summary { now_ns, counts, dropped_events: self.dropped() });
            }
            Command::Watch(interval, reply) => {
                let (tx, rx) = mpsc::channel(WATCH_BUFFER);
                self.watchers.push(Watcher {
                    tx,
                    interval: interval.max(MIN_INTERVAL),
                    next: Instant::now(),
                    sent: FastMap::default(),
                    needs_reset: true,
                    totals_sent: FastMap::default(),
                });
                let _ = reply.send(rx);
                self.feed_watchers();
            }
        }
    }

    fn dropped(&self) -> u64 {
        self.recorder.dropped.load(Relaxed)
    }

    /// Reads the threads' completion counts.
    pub(crate) fn count_completions(&mut self) {
        let (total, by_location) = self.recorder.table.completions();
        self.completed_total = total;
        self.completed = by_location.into_iter().collect();
    }

    /// The slots of live tasks, then of the completed ones to show: the
    /// newest `retain_done` that completed within `retain_for`. (Threads keep
    /// up to that many each, and free theirs only when they finish another.)
    fn slots(&self) -> impl Iterator<Item = (Key, &'static Slot)> + '_ {
        let table: &'static crate::slots::Table = &self.recorder.table;
        let mut done = Vec::new();
        let live: Vec<(Key, &'static Slot)> = (0..table.len())
            .filter_map(|index| {
                let (key, slot) = table.held(index)?;
                // A zero spawn time: still being filled in by its spawner.
                if slot.spawned_at.load(Acquire) == 0 {
                    return None;
                }
                if slot.phase.load(Acquire) == DONE {
                    done.push((slot.completed_at.load(Relaxed), key, slot));
                    return None;
                }
                Some((key, slot))
            })
            .collect();
        let retention = table.retention();
        let now = clock::raw();
        done.retain(|(at, _, _)| clock::ticks_to_ns(now.saturating_sub(*at)) < retention.for_ns);
        done.sort_unstable_by_key(|d| std::cmp::Reverse(d.0));
        done.truncate(retention.done);
        live.into_iter().chain(done.into_iter().map(|(_, key, slot)| (key, slot)))
    }

    fn scan(&mut self) -> Scan {
        self.count_completions();
        let files = FILES.get().map(|f| f.all()).unwrap_or_default();
        let runtimes = tags::Index::registered();
        let now_ns = clock::now_ns();
        let mut tasks = Vec::new();
        let mut live_by_loc: FastMap<LocKey, u64> = FastMap::default();
        for (key, slot) in self.slots() {
            let (task, fp) = task_of(slot, &files, &runtimes);
            if !self.recorder.table.still(key, slot) {
                // It finished and its slot went to another task while read.
                continue;
            }
            if task.state != proto::TaskState::Done as i32 {
                *live_by_loc.entry(loc_key(slot)).or_default() += 1;
            }
            tasks.push((task, fp));
        }
        Scan { now_ns, tasks, live_by_loc }
    }

    fn counts(&self, tasks: &[(proto::Task, u64)]) -> proto::TaskCounts {
        self.tally(tasks.iter().map(|(t, _)| {
            let state = proto::TaskState::try_from(t.state).unwrap_or(proto::TaskState::Done);
            (state, t.leaked, t.runtime_internal)
        }))
    }

    /// Counts by state from `(state, leaked, runtime_internal)` verdicts, plus
    /// the lifetime totals. The runtime's own live tasks are counted apart.
    fn tally(&self, verdicts: impl Iterator<Item = (proto::TaskState, bool, bool)>) -> proto::TaskCounts {
        let mut c = proto::TaskCounts { completed_total: self.completed_total, ..Default::default() };
        for (state, leaked, internal) in verdicts {
            if internal && state != proto::TaskState::Done {
                c.runtime_internal += 1;
                continue;
            }
            match state {
                proto::TaskState::Running => c.running += 1,
                proto::TaskState::Scheduled => c.scheduled += 1,
                proto::TaskState::Idle => c.idle += 1,
                _ => c.done += 1,
            }
            c.leaked += leaked as u64;
        }
        let found = self.completed_total + c.running + c.scheduled + c.idle + c.runtime_internal;
        c.spawned_total = spawned_since(&self.spawned_total, found);
        c
    }

    fn location_totals(&mut self, files: &FileList, scan: &Scan) -> Vec<(LocKey, proto::LocationTotals)> {
        let keys: FastSet<LocKey> = self.completed.keys().chain(scan.live_by_loc.keys()).copied().collect();
        keys.into_iter()
            .map(|k| {
                let completed = self.completed.get(&k).copied().unwrap_or(0);
                let live = scan.live_by_loc.get(&k).copied().unwrap_or(0);
                let totals = proto::LocationTotals {
                    location: Some(location(files, k.0, k.1)),
                    spawned: spawned_since(self.spawned.entry(k).or_default(), completed + live),
                    completed,
                };
                (k, totals)
            })
            .collect()
    }

    /// Sends each due watcher what changed since its last batch.
    fn feed_watchers(&mut self) {
        self.watchers.retain(|w| !w.tx.is_closed());
        let now = Instant::now();
        if !self.watchers.iter().any(|w| w.next <= now) {
            return;
        }
        let scan = self.scan();
        let counts = self.counts(&scan.tasks);
        let files = FILES.get().map(|f| f.all()).unwrap_or_default();
        let totals = self.location_totals(&files, &scan);
        let dropped = self.dropped();
        for w in self.watchers.iter_mut().filter(|w| w.next <= now) {
            w.next = now + w.interval;
            let batch = w.batch(&scan, &counts, &totals, dropped);
            for msg in batch {
                if w.tx.try_send(msg).is_err() {
                    // Too slow (or gone): start over with a full snapshot next time.
                    w.needs_reset = true;
                    break;
                }
            }
        }
    }
}

/// A spawn total that never goes back: the larger of `found` (completions
/// plus the live tasks a scan found) and the total reported last.
///
/// Why: completions are counted before the slots are scanned, so a task
/// that completes in between is in neither, and `found` is one short for
/// that scan. It is never more than the truth (a task counted completed is
/// no longer live when scanned), so the larger of the two is the better
/// count; and a total that dips reads as a restart to Prometheus, whose
/// `rate()` then counts the whole total again.
fn spawned_since(last: &std::cell::Cell<u64>, found: u64) -> u64 {
    let total = last.get().max(found);
    last.set(total);
    total
}

struct Scan {
    now_ns: u64,
    /// Live (not done) tasks per spawn location.
    live_by_loc: FastMap<LocKey, u64>,
    /// Each task with the fingerprint of its record.
    tasks: Vec<(proto::Task, u64)>,
}

impl Watcher {
    fn batch(
        &mut self,
        scan: &Scan,
        counts: &proto::TaskCounts,
        totals: &[(LocKey, proto::LocationTotals)],
        dropped: u64,
    ) -> Vec<proto::WatchUpdate> {
        let reset = std::mem::take(&mut self.needs_reset);
        if reset {
            self.sent.clear();
            self.totals_sent.clear();
        }
        let mut changed = Vec::new();
        let mut seen = FastSet::with_capacity_and_hasher(scan.tasks.len(), Default::default());
        for (task, fp) in &scan.tasks {
            seen.insert(task.id);
            if self.sent.insert(task.id, *fp) != Some(*fp) {
                changed.push(task.clone());
            }
        }
        let removed: Vec<u64> = self.sent.keys().filter(|id| !seen.contains(id)).copied().collect();
        for id in &removed {
            self.sent.remove(id);
        }
        let location_totals: Vec<proto::LocationTotals> = totals
            .iter()
            .filter(|(k, t)| self.totals_sent.insert(*k, (t.spawned, t.completed)) != Some((t.spawned, t.completed)))
            .map(|(_, t)| t.clone())
            .collect();
        let mut chunks: Vec<Vec<proto::Task>> = changed.chunks(CHUNK).map(<[_]>::to_vec).collect();
        if chunks.is_empty() {
            chunks.push(Vec::new());
        }
        let last = chunks.len() - 1;
        chunks
            .into_iter()
            .enumerate()
            .map(|(i, tasks)| proto::WatchUpdate {
                now_ns: scan.now_ns,
                reset: reset && i == 0,
                complete: i == last,
                tasks,
                removed: if i == last { removed.clone() } else { Vec::new() },
                counts: (i == last).then_some(*counts),
                dropped_events: dropped,
                location_totals: if i == last { location_totals.clone() } else { Vec::new() },
            })
            .collect()
    }
}

fn loc_key(slot: &Slot) -> LocKey {
    (slot.file.load(Relaxed), slot.line_col.load(Relaxed))
}

fn location(files: &FileList, file: u32, line_col: u64) -> proto::Location {
    let file = files.name(file).map(|f| f.to_string());
    proto::Location { file: file.unwrap_or_default(), line: (line_col >> 32) as u32, column: line_col as u32 }
}

/// A task's derived state, and whether it is leaked (idle with no live waker).
fn verdict(slot: &Slot) -> (proto::TaskState, bool) {
    let raw = |c: &std::sync::atomic::AtomicU64| c.load(Acquire);
    let state = if raw(&slot.completed_at) != 0 || slot.phase.load(Acquire) == DONE {
        proto::TaskState::Done
    } else if slot.running.load(Acquire) != 0 {
        proto::TaskState::Running
    } else if raw(&slot.polls) == 0 || slot.woken.load(Acquire) != 0 {
        proto::TaskState::Scheduled
    } else {
        proto::TaskState::Idle
    };
    let live_wakers = raw(&slot.waker_clones) as i64 - slot.waker_drops() as i64;
    // Hooks see no wakers: a hooked task is never called leaked. Nor is a
    // `block_on` future (the thread blocking on it polls it with a waker of its
    // own, which tokio does not report) or a blocking task (never parked).
    let kind = slot.kind.load(Relaxed);
    let wakers_seen = kind & HOOKED == 0 && matches!(kind_name(kind), "task" | "local");
    (state, wakers_seen && state == proto::TaskState::Idle && live_wakers <= 0)
}

/// Reads a slot into a protocol record, with a fingerprint of what can change.
fn task_of(slot: &Slot, files: &FileList, runtimes: &tags::Index) -> (proto::Task, u64) {
    let raw = |c: &std::sync::atomic::AtomicU64| c.load(Acquire);
    let poll_started = raw(&slot.poll_started);
    let poll_ended = raw(&slot.poll_ended);
    let completed = raw(&slot.completed_at);
    let polls = raw(&slot.polls);
    let clones = raw(&slot.waker_clones);
    let drops = slot.waker_drops();
    let wakes = slot.wakes();
    let live_wakers = clones as i64 - drops as i64;
    let (state, leaked) = verdict(slot);
    // Acquire: the tag's runtime was stored before the tag (`tags::tag_with`).
    let runtime = runtimes.of(slot.kind.load(Acquire));
    let fingerprint = [polls, wakes, clones, drops, completed, poll_started, poll_ended, state as u64, runtime as u64]
        .iter()
        .fold(0xcbf29ce484222325u64, |h, v| (h ^ v).wrapping_mul(0x100000001b3));
    let task = proto::Task {
        id: raw(&slot.task_id),
        name: slot.name(),
        // Hooks are not told the kind: say nothing rather than "task".
        kind: match slot.kind.load(Relaxed) {
            kind if kind & HOOKED != 0 => String::new(),
            kind => kind_name(kind).to_owned(),
        },
        location: Some(location(files, slot.file.load(Relaxed), slot.line_col.load(Relaxed))),
        runtime_internal: files.in_runtime(slot.file.load(Relaxed)),
        state: state as i32,
        leaked,
        spawned_at_ns: clock::to_ns(raw(&slot.spawned_at)),
        last_poll_started_ns: clock::to_ns(poll_started),
        last_poll_ended_ns: clock::to_ns(poll_ended),
        completed_at_ns: clock::to_ns(completed),
        polls,
        busy_ns: clock::ticks_to_ns(raw(&slot.busy)),
        wakes,
        waker_clones: clones,
        waker_drops: drops,
        live_wakers,
        self_wakes: u64::from(slot.self_wakes.load(Acquire)),
        runtime,
    };
    (task, fingerprint)
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
