//! One console-subscriber task as one taskscope task record.
//!
//! console-subscriber sends a task in two parts: once, at spawn, its static
//! data (`tasks::Task`: the fields of tokio's `runtime.spawn` span and its
//! spawn location), and then, whenever it changed, a full snapshot of its
//! counters (`tasks::Stats`). [`Spawned`] is the first part read once;
//! [`record`] joins it with the latest stats into the `taskscope.v1` record
//! every view reads, deriving the state and the leak verdict the way the
//! taskscope agent's full mode does.
//!
//! Times: console's are wall-clock timestamps of the inspected program's
//! machine; a record's are nanoseconds since the Unix epoch on that same
//! clock, and the adapter's `now_ns` is too (see [`super::table`]), so every
//! age is a difference of two of the program's own readings.

use std::collections::HashMap;

use console_api as api;
use taskscope_proto as proto;

/// The static part of a task, read from its spawn span once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spawned {
    /// tokio's task id (the span's `task.id` field), which the program
    /// itself logs and which is unique for the process's life; console's
    /// own id (a span id, reused once the span closes) when absent.
    pub id: u64,
    /// `task.name`, empty when unnamed.
    pub name: String,
    /// `kind`: "task", "local", "blocking", "block_on".
    pub kind: String,
    /// Where it was spawned.
    pub location: Option<proto::Location>,
    /// Spawned by tokio's runtime for itself (a file in tokio's `src/runtime/`).
    pub runtime_internal: bool,
    /// The span carries `size.bytes`, which tokio's spawn spans have since
    /// 1.41: such a tokio makes every task span a root (since 1.35,
    /// tokio-rs/tokio#6158), so a finished task's span is not held open by
    /// the tasks it spawned (the cause of tokio-rs/console#345 and #380).
    pub sized: bool,
}

/// The names of a span's fields, by metadata id: console sends a field's
/// name either as text or as an index into its metadata's list.
pub type FieldNames = HashMap<u64, Vec<String>>;

impl Spawned {
    /// Reads a task's spawn span; `console_id` is console's id of it.
    pub fn read(task: &api::tasks::Task, names: &FieldNames) -> Spawned {
        let console_id = task.id.as_ref().map_or(0, |id| id.id);
        let meta = task.metadata.as_ref().map(|m| m.id);
        let mut spawned = Spawned {
            id: console_id,
            name: String::new(),
            kind: String::new(),
            location: task.location.as_ref().and_then(location),
            runtime_internal: false,
            sized: false,
        };
        for field in &task.fields {
            let Some(name) = field_name(field, meta, names) else { continue };
            match (name, field.value.as_ref()) {
                ("task.id", Some(value)) => {
                    if let Some(id) = number(value).filter(|&id| id != 0) {
                        spawned.id = id;
                    }
                }
                ("task.name", Some(value)) => spawned.name = text(value),
                ("kind", Some(value)) => spawned.kind = text(value),
                ("size.bytes", Some(_)) => spawned.sized = true,
                _ => {}
            }
        }
        if spawned.kind.is_empty() {
            // Older tokio spans without `kind`: console's own coarse kind.
            let blocking = task.kind == api::tasks::task::Kind::Blocking as i32;
            spawned.kind = if blocking { "blocking" } else { "task" }.to_string();
        }
        spawned.runtime_internal = spawned.location.as_ref().is_some_and(|l| in_tokio_runtime(&l.file));
        spawned
    }
}

/// A field's name, resolved through its metadata when sent as an index.
fn field_name<'a>(field: &'a api::Field, meta: Option<u64>, names: &'a FieldNames) -> Option<&'a str> {
    match field.name.as_ref()? {
        api::field::Name::StrName(name) => Some(name),
        api::field::Name::NameIdx(i) => {
            let meta = field.metadata_id.as_ref().map(|m| m.id).or(meta)?;
            names.get(&meta)?.get(usize::try_from(*i).ok()?).map(String::as_str)
        }
    }
}

fn number(value: &api::field::Value) -> Option<u64> {
    match value {
        api::field::Value::U64Val(n) => Some(*n),
        api::field::Value::I64Val(n) => u64::try_from(*n).ok(),
        api::field::Value::StrVal(s) | api::field::Value::DebugVal(s) => s.parse().ok(),
        api::field::Value::BoolVal(_) => None,
    }
}

fn text(value: &api::field::Value) -> String {
    match value {
        api::field::Value::StrVal(s) | api::field::Value::DebugVal(s) => s.clone(),
        api::field::Value::U64Val(n) => n.to_string(),
        api::field::Value::I64Val(n) => n.to_string(),
        api::field::Value::BoolVal(b) => b.to_string(),
    }
}

fn location(l: &api::Location) -> Option<proto::Location> {
    let file = l.file.clone().filter(|f| !f.is_empty())?;
    Some(proto::Location { file, line: l.line.unwrap_or(0), column: l.column.unwrap_or(0) })
}

/// Whether `file` is in tokio's own `src/runtime/` (where a multi-thread
/// runtime spawns its workers), as the agent decides it.
fn in_tokio_runtime(file: &str) -> bool {
    let Some((root, _)) = file.split_once("/src/runtime/") else { return false };
    let package = root.rsplit('/').next().unwrap_or(root);
    package == "tokio" || package.strip_prefix("tokio-").is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()))
}

/// Nanoseconds since the Unix epoch of a console timestamp; 0 when absent.
pub fn ns(at: Option<&prost_types::Timestamp>) -> u64 {
    at.map_or(0, |t| {
        let ns = i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos);
        u64::try_from(ns.max(0)).unwrap_or(u64::MAX)
    })
}

fn duration_ns(d: Option<&prost_types::Duration>) -> u64 {
    d.map_or(0, |d| {
        let ns = i128::from(d.seconds) * 1_000_000_000 + i128::from(d.nanos);
        u64::try_from(ns.max(0)).unwrap_or(u64::MAX)
    })
}

/// The record of a task from its spawn data and latest stats. `settled`:
/// these stats were read again in a later update unchanged (see
/// [`leaked`]).
pub fn record(spawned: &Spawned, stats: &api::tasks::Stats, settled: bool) -> proto::Task {
    let polls = stats.poll_stats.as_ref();
    let started = ns(polls.and_then(|p| p.last_poll_started.as_ref()));
    let ended = ns(polls.and_then(|p| p.last_poll_ended.as_ref()));
    let polled = polls.map_or(0, |p| p.polls);
    let last_wake = ns(stats.last_wake.as_ref());
    let completed = ns(stats.dropped_at.as_ref());
    // As tokio-console derives it, and as the agent does: inside a poll,
    // woken since the last poll began (or never polled), else parked.
    let state = if completed != 0 {
        proto::TaskState::Done
    } else if started > ended {
        proto::TaskState::Running
    } else if polled == 0 || last_wake > started {
        proto::TaskState::Scheduled
    } else {
        proto::TaskState::Idle
    };
    let live_wakers =
        i64::try_from(stats.waker_clones).unwrap_or(i64::MAX) - i64::try_from(stats.waker_drops).unwrap_or(i64::MAX);
    let mut task = proto::Task {
        id: spawned.id,
        name: spawned.name.clone(),
        kind: spawned.kind.clone(),
        location: spawned.location.clone(),
        state: state as i32,
        leaked: false,
        spawned_at_ns: ns(stats.created_at.as_ref()),
        last_poll_started_ns: started,
        last_poll_ended_ns: ended,
        completed_at_ns: completed,
        polls: polled,
        busy_ns: duration_ns(polls.and_then(|p| p.busy_time.as_ref())),
        wakes: stats.wakes,
        waker_clones: stats.waker_clones,
        waker_drops: stats.waker_drops,
        live_wakers,
        self_wakes: stats.self_wakes,
        // The program's runtimes are not known: console does not say.
        runtime: u32::MAX,
        runtime_internal: spawned.runtime_internal,
    };
    task.leaked = leaked(&task, settled);
    task
}

/// The verdict of the agent's full mode: an idle spawned task with no live
/// waker can never run again. Two conditions more than tokio-console's
/// lost-waker lint, which fires on a single snapshot:
///
/// - it must have been polled: before its first poll a task waits for the
///   runtime, not for a waker (console's lint has this too, since
///   tokio-rs/console#160);
/// - `settled`: console-subscriber reads a task's counters and its poll
///   times separately, while the task runs on, so one snapshot can show a
///   wake's waker drop without the wake (tokio-rs/console#149's flicker);
///   the verdict waits until a later update brought no change.
///
/// `blocking` and `block_on` tasks are never judged: no waker wakes them.
pub fn leaked(task: &proto::Task, settled: bool) -> bool {
    settled
        && task.state == proto::TaskState::Idle as i32
        && matches!(task.kind.as_str(), "task" | "local")
        && task.polls > 0
        && task.live_wakers <= 0
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
