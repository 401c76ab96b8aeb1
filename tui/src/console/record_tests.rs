//! console's task data as taskscope records: fields, states, the verdict,
//! and the table kept from a stream of updates.

use std::time::Instant;

use console_api as api;
use taskscope_proto::{Task, TaskState};

use super::*;
use crate::console::table::Table;

fn field(name: &str, value: api::field::Value) -> api::Field {
    api::Field { name: Some(name.into()), value: Some(value), metadata_id: None }
}

fn at(secs: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds: secs, nanos: 0 })
}

/// A spawn span as tokio 1.54 emits it.
fn spawn(console_id: u64, tokio_id: u64, kind: &str, line: u32) -> api::tasks::Task {
    api::tasks::Task {
        id: Some(api::Id { id: console_id }),
        metadata: Some(api::MetaId { id: 7 }),
        kind: 0,
        fields: vec![
            field("kind", api::field::Value::DebugVal(kind.into())),
            field("task.name", api::field::Value::DebugVal(String::new())),
            field("task.id", api::field::Value::U64Val(tokio_id)),
            field("size.bytes", api::field::Value::U64Val(64)),
        ],
        parents: vec![],
        location: Some(api::Location {
            file: Some("src/main.rs".into()),
            module_path: None,
            line: Some(line),
            column: Some(5),
        }),
    }
}

/// Stats of a task polled `polls` times, last between `started` and `ended`.
fn stats(polls: u64, started: i64, ended: i64, clones: u64, drops: u64) -> api::tasks::Stats {
    api::tasks::Stats {
        created_at: at(1),
        poll_stats: Some(api::PollStats {
            polls,
            first_poll: at(started),
            last_poll_started: at(started),
            last_poll_ended: at(ended),
            busy_time: Some(prost_types::Duration { seconds: 0, nanos: 5_000 }),
        }),
        waker_clones: clones,
        waker_drops: drops,
        wakes: drops,
        ..Default::default()
    }
}

fn spawned(kind: &str) -> Spawned {
    Spawned::read(&spawn(1, 42, kind, 10), &FieldNames::new())
}

#[test]
fn spawn_fields_are_read_by_name_or_index() {
    let s = spawned("task");
    assert_eq!((s.id, s.kind.as_str(), s.name.as_str(), s.sized), (42, "task", "", true));
    assert_eq!(s.location.as_ref().map(|l| (l.file.as_str(), l.line, l.column)), Some(("src/main.rs", 10, 5)));
    // Names sent as indices into the span's metadata.
    let mut task = spawn(1, 42, "local", 10);
    task.fields = vec![
        api::Field {
            name: Some(api::field::Name::NameIdx(1)),
            value: Some(api::field::Value::StrVal("worker".into())),
            metadata_id: None,
        },
        api::Field {
            name: Some(api::field::Name::NameIdx(2)),
            value: Some(api::field::Value::U64Val(9)),
            metadata_id: None,
        },
    ];
    let names = FieldNames::from([(7, vec!["kind".to_string(), "task.name".to_string(), "task.id".to_string()])]);
    let s = Spawned::read(&task, &names);
    assert_eq!((s.id, s.name.as_str(), s.kind.as_str(), s.sized), (9, "worker", "task", false));
    // tokio's runtime spawning its own workers.
    let mut task = spawn(1, 42, "blocking", 10);
    task.location.as_mut().unwrap().file =
        Some("/home/u/.cargo/registry/src/x/tokio-1.54.1/src/runtime/blocking/pool.rs".into());
    assert!(Spawned::read(&task, &names).runtime_internal);
}

#[test]
fn states_are_derived_as_console_and_the_agent_do() {
    let s = spawned("task");
    let state = |st: api::tasks::Stats| TaskState::try_from(record(&s, &st, true).state).unwrap();
    assert_eq!(state(stats(0, 0, 0, 0, 0)), TaskState::Scheduled, "never polled");
    assert_eq!(state(stats(3, 5, 4, 1, 0)), TaskState::Running, "inside a poll");
    assert_eq!(state(stats(3, 5, 6, 1, 0)), TaskState::Idle);
    let mut woken = stats(3, 5, 6, 1, 1);
    woken.last_wake = at(7);
    assert_eq!(state(woken), TaskState::Scheduled, "woken since its poll began");
    let mut done = stats(3, 5, 6, 1, 1);
    done.dropped_at = at(8);
    assert_eq!(state(done), TaskState::Done);
    let t = record(&s, &stats(3, 5, 6, 4, 1), true);
    assert_eq!((t.live_wakers, t.wakes, t.busy_ns, t.spawned_at_ns), (3, 1, 5_000, 1_000_000_000));
    assert_eq!((t.last_poll_started_ns, t.last_poll_ended_ns, t.completed_at_ns), (5_000_000_000, 6_000_000_000, 0));
}

#[test]
fn leaked_means_idle_polled_settled_spawned_and_no_live_waker() {
    let verdict = |kind: &str, st: api::tasks::Stats, settled: bool| record(&spawned(kind), &st, settled).leaked;
    assert!(verdict("task", stats(1, 5, 6, 0, 0), true));
    assert!(verdict("local", stats(2, 5, 6, 2, 2), true));
    assert!(!verdict("task", stats(1, 5, 6, 1, 0), true), "a live waker");
    assert!(!verdict("task", stats(1, 5, 6, 0, 0), false), "seen once only");
    assert!(!verdict("task", stats(0, 0, 0, 0, 0), true), "never polled");
    assert!(!verdict("blocking", stats(1, 5, 6, 0, 0), true), "no waker wakes a blocking task");
    assert!(!verdict("task", stats(1, 5, 4, 0, 0), true), "running");
    let idle =
        Task { state: TaskState::Idle as i32, kind: "task".into(), polls: 1, live_wakers: -1, ..Task::default() };
    assert!(leaked(&idle, true), "more drops than clones still means none live");
}

fn update(now: i64, new: Vec<api::tasks::Task>, stats: Vec<(u64, api::tasks::Stats)>) -> api::instrument::Update {
    api::instrument::Update {
        now: at(now),
        task_update: Some(api::tasks::TaskUpdate {
            new_tasks: new,
            stats_update: stats.into_iter().collect(),
            dropped_events: 1,
        }),
        ..Default::default()
    }
}

#[test]
fn the_table_settles_verdicts_on_the_second_update_and_forgets_finished_tasks() {
    let mut table = Table::default();
    let parked = stats(1, 5, 6, 0, 0);
    let mut finished = stats(1, 5, 6, 0, 0);
    finished.dropped_at = at(9);
    table.apply(
        update(10, vec![spawn(1, 101, "task", 10), spawn(2, 102, "task", 20)], vec![(1, parked), (2, finished)]),
        Instant::now(),
    );
    let records = table.records();
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|t| !t.leaked), "one reading is not enough");
    assert_eq!(table.unsettled(), 1, "task 1 waits for a second reading");
    let counts = table.counts(&records);
    assert_eq!((counts.idle, counts.done, counts.spawned_total, counts.completed_total), (1, 1, 2, 1));

    // A second update that repeats task 1 as it was (console-subscriber
    // does, after the full state): now it is leaked, and counted once. The
    // finished one is forgotten once older than RETAIN_FOR.
    table.apply(update(25, vec![spawn(1, 101, "task", 10)], vec![(1, parked)]), Instant::now());
    let records = table.records();
    assert_eq!(records.iter().map(|t| (t.id, t.leaked)).collect::<Vec<_>>(), vec![(101, true)]);
    assert_eq!(table.counts(&records).leaked, 1);
    assert_eq!(table.unsettled(), 0);
    assert_eq!(table.dropped_events(), 2);
    assert!(table.now_ns() >= 25_000_000_000);
    let totals = table.totals();
    assert_eq!(totals.iter().map(|t| t.spawned).sum::<u64>(), 2);

    // News about it (a waker cloned): no verdict until read again.
    table.apply(update(26, vec![], vec![(1, stats(1, 5, 6, 1, 0))]), Instant::now());
    assert!(!table.records()[0].leaked);
}
