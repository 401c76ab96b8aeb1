//! console-subscriber's task table, kept from its `WatchUpdates` stream, and
//! read as taskscope records.
//!
//! The stream starts with everything console-subscriber keeps (live tasks,
//! and finished ones for its retention, an hour by default), then sends, once
//! per publish interval (a second by default), the tasks spawned since and
//! the full stats of every task that changed. It never says that it forgot a
//! task, so the table forgets finished ones itself, as the agent does: after
//! [`RETAIN_FOR`], and beyond the newest [`RETAIN_DONE`].
//!
//! The clock: `now_ns` is console's timestamp of its latest update plus the
//! time since it arrived here (read on this machine's monotonic clock), so it
//! is the program's clock too, whichever machine's clock is off.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use console_api as api;
use taskscope_proto as proto;

use super::record::{self, FieldNames, Spawned};

/// How long a finished task stays listed (the agent's `TASKSCOPE_RETAIN_FOR` default).
pub const RETAIN_FOR: Duration = Duration::from_secs(10);

/// At most this many finished tasks stay listed (the agent's `TASKSCOPE_RETAIN_DONE` default).
pub const RETAIN_DONE: usize = 256;

/// One task as console-subscriber sent it.
#[derive(Debug)]
struct Entry {
    spawned: Spawned,
    stats: Option<api::tasks::Stats>,
    /// The update in which its stats last changed.
    changed_in: u64,
}

/// Everything read from one console-subscriber so far.
#[derive(Debug, Default)]
pub struct Table {
    names: FieldNames,
    /// By console's id (a span id).
    tasks: HashMap<u64, Entry>,
    /// Updates applied; 1 after the first (the full state).
    updates: u64,
    /// Console's clock at its latest update, and when that arrived.
    latest: Option<(u64, Instant)>,
    dropped_events: u64,
    spawned_total: u64,
    completed_total: u64,
    /// Spawned and completed per spawn location, since the first update.
    totals: HashMap<LocationKey, (u64, u64)>,
    /// Some spawn span lacked `size.bytes` (a tokio older than 1.41).
    unsized_seen: bool,
}

type LocationKey = (String, u32, u32);

fn key(l: &Option<proto::Location>) -> LocationKey {
    l.as_ref().map_or_else(Default::default, |l| (l.file.clone(), l.line, l.column))
}

impl Table {
    /// Applies one update from the stream, received at `at`.
    pub fn apply(&mut self, update: api::instrument::Update, at: Instant) {
        self.updates += 1;
        let now = record::ns(update.now.as_ref());
        if now != 0 {
            self.latest = Some((now, at));
        }
        for meta in update.new_metadata.into_iter().flat_map(|m| m.metadata) {
            if let (Some(id), Some(m)) = (meta.id, meta.metadata) {
                self.names.insert(id.id, m.field_names);
            }
        }
        let Some(tasks) = update.task_update else { return };
        self.dropped_events = self.dropped_events.saturating_add(tasks.dropped_events);
        for task in tasks.new_tasks {
            let Some(console_id) = task.id.as_ref().map(|id| id.id) else { continue };
            let spawned = Spawned::read(&task, &self.names);
            if self.tasks.get(&console_id).is_some_and(|e| e.spawned == spawned) {
                // Sent again: console-subscriber marks a task as sent only
                // by its periodic updates, so the first one after the full
                // state repeats every task spawned before anyone watched.
                continue;
            }
            self.unsized_seen |= !spawned.sized;
            self.spawned_total += 1;
            let k = key(&spawned.location);
            self.totals.entry(k).or_default().0 += 1;
            // A span id is reused once its span closed: the new task replaces the old.
            self.tasks.insert(console_id, Entry { spawned, stats: None, changed_in: self.updates });
        }
        for (console_id, stats) in tasks.stats_update {
            let Some(entry) = self.tasks.get_mut(&console_id) else { continue };
            let was_done = entry.stats.as_ref().is_some_and(|s| s.dropped_at.is_some());
            if stats.dropped_at.is_some() && !was_done {
                self.completed_total += 1;
                let k = key(&entry.spawned.location);
                self.totals.entry(k).or_default().1 += 1;
            }
            if entry.stats.as_ref() != Some(&stats) {
                entry.changed_in = self.updates;
            }
            entry.stats = Some(stats);
        }
        self.forget_finished();
    }

    /// Drops finished tasks past [`RETAIN_FOR`], and the oldest beyond [`RETAIN_DONE`].
    fn forget_finished(&mut self) {
        let now = self.now_ns();
        let keep_for = RETAIN_FOR.as_nanos() as u64;
        let dropped_at = |e: &Entry| e.stats.as_ref().map_or(0, |s| record::ns(s.dropped_at.as_ref()));
        self.tasks.retain(|_, e| {
            let done = dropped_at(e);
            done == 0 || now.saturating_sub(done) < keep_for
        });
        let mut done: Vec<(u64, u64)> =
            self.tasks.iter().map(|(id, e)| (dropped_at(e), *id)).filter(|(at, _)| *at != 0).collect();
        if done.len() > RETAIN_DONE {
            done.sort_unstable_by(|a, b| b.cmp(a));
            for (_, id) in &done[RETAIN_DONE..] {
                self.tasks.remove(id);
            }
        }
    }

    /// Updates applied so far.
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// The program's clock now, in nanoseconds since the Unix epoch.
    pub fn now_ns(&self) -> u64 {
        match self.latest {
            Some((ns, at)) => ns.saturating_add(at.elapsed().as_nanos() as u64),
            None => 0,
        }
    }

    /// Events console-subscriber could not record (its buffer was full), in total.
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events
    }

    /// Whether a spawn span without `size.bytes` was seen: the program's
    /// tokio is older than 1.41, and may be older than 1.35, whose task
    /// spans can outlive their tasks (tokio-rs/console#345, #380).
    pub fn old_tokio(&self) -> bool {
        self.unsized_seen
    }

    /// Tasks that would be called leaked but were read only once so far
    /// (see [`record::leaked`]): a verdict on them needs another update.
    pub fn unsettled(&self) -> usize {
        self.tasks
            .values()
            .filter(|e| e.changed_in == self.updates)
            .filter_map(|e| e.stats.as_ref().map(|stats| record::record(&e.spawned, stats, true)))
            .filter(|t| t.leaked)
            .count()
    }

    /// Every task's record, in no particular order. A task whose stats
    /// have not arrived yet is left out.
    pub fn records(&self) -> Vec<proto::Task> {
        self.tasks
            .values()
            .filter_map(|e| {
                let stats = e.stats.as_ref()?;
                Some(record::record(&e.spawned, stats, e.changed_in < self.updates))
            })
            .collect()
    }

    /// The counts of a set of records, with the lifetime totals.
    pub fn counts(&self, records: &[proto::Task]) -> proto::TaskCounts {
        let mut c = proto::TaskCounts {
            spawned_total: self.spawned_total,
            completed_total: self.completed_total,
            ..Default::default()
        };
        for t in records {
            if t.runtime_internal && t.state != proto::TaskState::Done as i32 {
                c.runtime_internal += 1;
                continue;
            }
            match proto::TaskState::try_from(t.state) {
                Ok(proto::TaskState::Running) => c.running += 1,
                Ok(proto::TaskState::Scheduled) => c.scheduled += 1,
                Ok(proto::TaskState::Idle) => c.idle += 1,
                Ok(proto::TaskState::Done) => c.done += 1,
                _ => {}
            }
            c.leaked += u64::from(t.leaked);
        }
        c
    }

    /// Spawn and completion totals of every location seen.
    pub fn totals(&self) -> Vec<proto::LocationTotals> {
        self.totals.iter().map(|(k, v)| totals(k, *v)).collect()
    }
}

fn totals((file, line, column): &LocationKey, (spawned, completed): (u64, u64)) -> proto::LocationTotals {
    let location =
        Some(proto::Location { file: file.clone(), line: *line, column: *column }).filter(|l| !l.file.is_empty());
    proto::LocationTotals { location, spawned, completed }
}
