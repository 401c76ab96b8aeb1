//! The model, fed with protocol messages.

use std::collections::HashSet;

use taskscope_proto as proto;

use crate::attach::state::{
    Capture, Connection, DumpOutcome, Severity, SortColumn, State, TaskStack, TaskState, Thresholds,
};
use crate::fixtures::*;
use taskscope_report::provenance::Origin;

fn fed(seconds: u64) -> State {
    let mut s = State::new(Thresholds::default(), false);
    s.set_info(info());
    for u in watch_stream(seconds) {
        s.apply(u);
    }
    s
}

/// [`fed`], then surveyed (every task dumped), so tasks know what they wait on.
fn fed_surveyed(seconds: u64) -> State {
    let mut s = fed(seconds);
    let ids: Vec<u64> = (0..s.task_count()).filter_map(|i| s.shown_task(i).map(|t| t.id)).collect();
    s.set_survey(DumpOutcome::from_chunks(dump_chunks(&ids)));
    s
}

fn shown_ids(s: &State) -> Vec<u64> {
    (0..s.shown_count()).map(|i| s.shown_task(i).unwrap().id).collect()
}

#[test]
fn snapshot_then_deltas_build_the_table() {
    let s = fed(30);
    assert!(s.has_data());
    // 7 steady tasks, one of which (500) the agent dropped, plus 30 leaked.
    assert_eq!(s.task_count(), 6 + 30);
    assert_eq!(s.now_ns, 130 * SEC);
    assert_eq!(s.counts.leaked, 30);
    assert_eq!(s.dropped_events, 3);
    assert_eq!(s.uptime_ns(), Some(130 * SEC + 20 * MS));
    assert!(s.task(500).is_none(), "removed ids leave the table");
    assert_eq!(s.totals("examples/src/bin/done_signal.rs:31:5").spawned, 30);
}

#[test]
fn tasks_of_tokios_runtime_are_not_listed() {
    let mut s = fed(30);
    let before = s.task_count();
    let worker_loc = ("/x/tokio-1.54.1/src/runtime/scheduler/multi_thread/worker.rs", 515, 13);
    let mut worker = running(task(900, "", worker_loc, SEC), 2 * SEC, 1);
    worker.kind = "blocking".into();
    worker.runtime_internal = true;
    s.apply(proto::WatchUpdate {
        now_ns: s.now_ns + SEC,
        complete: true,
        tasks: vec![worker, idle(task(901, "mine", ("src/main.rs", 1, 1), SEC), 2 * SEC, 1, 1)],
        ..Default::default()
    });
    assert!(s.task(900).is_none(), "a worker thread of the runtime is not a task of the program");
    assert!(s.task(901).is_some());
    assert_eq!(s.task_count(), before + 1);
}

#[test]
fn parked_time_age_and_severity_are_derived_from_the_agent_clock() {
    let s = fed(30);
    let now = s.now_ns;
    let w10 = s.task(10).unwrap();
    assert_eq!(w10.parked_ns(now), Some(120 * SEC));
    assert_eq!(w10.age_ns(now), 128 * SEC);
    assert_eq!(w10.severity(now, &s.thresholds), Severity::Long);
    assert_eq!(s.task(9).unwrap().severity(now, &s.thresholds), Severity::Warn);
    assert_eq!(s.task(1).unwrap().severity(now, &s.thresholds), Severity::Normal);
    assert_eq!(s.task(1001).unwrap().severity(now, &s.thresholds), Severity::Leaked);
    // Only idle tasks are parked.
    assert_eq!(s.task(7).unwrap().parked_ns(now), None);
    assert_eq!(s.task(8).unwrap().parked_ns(now), None);
    // A done task's age is its lifetime.
    assert_eq!(s.task(501).unwrap().age_ns(now), SEC);
    assert_eq!(s.longest_parked_ns(), Some(120 * SEC));
}

#[test]
fn never_polled_idle_task_is_parked_since_spawn() {
    let mut s = State::new(Thresholds::default(), false);
    let mut t = task(3, "", WORKER_LOC, 5 * SEC);
    t.state = proto::TaskState::Idle as i32;
    s.apply(proto::WatchUpdate { now_ns: 20 * SEC, reset: true, complete: true, tasks: vec![t], ..Default::default() });
    assert_eq!(s.task(3).unwrap().parked_ns(s.now_ns), Some(15 * SEC));
}

#[test]
fn default_order_is_longest_parked_first_and_reverses() {
    let mut s = fed(30);
    assert_eq!(s.sort_column(), SortColumn::Parked);
    let ids = shown_ids(&s);
    assert_eq!(&ids[..4], &[10, 9, 1001, 1002]);
    // Tasks that are not parked come after every parked one.
    let first_unparked = ids.iter().position(|id| s.task(*id).unwrap().parked_ns(s.now_ns).is_none()).unwrap();
    assert!(ids[first_unparked..].iter().all(|id| s.task(*id).unwrap().parked_ns(s.now_ns).is_none()));
    // ↑: the shortest parked first; the tasks that are not parked stay last.
    s.reverse_order();
    let reversed = shown_ids(&s);
    let mut want: Vec<u64> = ids[..first_unparked].iter().rev().copied().collect();
    want.extend(ids[first_unparked..].iter().rev());
    assert_eq!(reversed, want);
}

/// A task's value in `column`, as the screen shows it: (after, value). Tasks
/// with `after` set (no value: unnamed, not parked; finished, for the age)
/// come after the others whichever the direction.
fn value(t: &crate::attach::state::TaskRow, column: SortColumn, now: u64) -> (bool, Value) {
    use Value::{Num, Text};
    let state_rank = match (t.state, t.leaked) {
        (TaskState::Idle, true) => 4,
        (TaskState::Idle, false) => 3,
        (TaskState::Scheduled, _) => 2,
        (TaskState::Running, _) => 1,
        (TaskState::Done, _) => 0,
    };
    match column {
        SortColumn::Id => (false, Num(t.id.into())),
        SortColumn::State => (false, Num(state_rank)),
        SortColumn::Name => (t.name.is_empty(), Text(t.name.to_string())),
        SortColumn::Location => (false, Text(t.location.to_string())),
        SortColumn::Wait => (t.wait.is_none(), Text(t.wait.as_deref().unwrap_or_default().to_string())),
        SortColumn::Age => (t.completed_at_ns > 0, Num(t.age_ns(now).into())),
        SortColumn::Parked => (t.parked_ns(now).is_none(), Num(t.parked_ns(now).unwrap_or(0).into())),
        SortColumn::Polls => (false, Num(t.polls.into())),
        SortColumn::Busy => (false, Num(t.busy_ns.into())),
        SortColumn::Wakers => (false, Num(t.live_wakers.into())),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Value {
    Num(i128),
    Text(String),
}

/// Brute force, from displayed values: ↓ the largest first (ties by id),
/// ↑ the smallest first (ties by id, reversed); tasks without a value last.
fn expected(s: &State, column: SortColumn, descending: bool) -> Vec<u64> {
    let now = s.now_ns;
    let mut tasks: Vec<_> = (0..s.shown_count()).map(|i| s.shown_task(i).unwrap().clone()).collect();
    tasks.sort_by(|a, b| {
        let ((a_after, a_value), (b_after, b_value)) = (value(a, column, now), value(b, column, now));
        let by_value = if descending {
            b_value.cmp(&a_value).then(a.id.cmp(&b.id))
        } else {
            a_value.cmp(&b_value).then(b.id.cmp(&a.id))
        };
        a_after.cmp(&b_after).then(by_value)
    });
    tasks.iter().map(|t| t.id).collect()
}

#[test]
fn every_column_sorts_as_its_values_say_both_ways() {
    let mut s = fed_surveyed(30);
    for column in SortColumn::ALL {
        s.set_sort_column(column);
        assert_eq!(s.sort_descending(), column.starts_descending(), "{column:?} starts as it says");
        for _ in 0..2 {
            let descending = s.sort_descending();
            assert_eq!(shown_ids(&s), expected(&s, column, descending), "column {column:?}, descending {descending}");
            s.reverse_order();
        }
    }
}

/// One meaning for the arrow: in every column, ↓ puts the largest value on
/// top and ↑ the smallest (WAKERS ↓ used to put 0 first while POLLS ↓ put
/// the most polls first).
#[test]
fn down_puts_the_largest_value_first_in_every_column() {
    let mut s = fed_surveyed(30);
    let now = s.now_ns;
    for column in SortColumn::ALL {
        s.set_sort_column(column);
        if !s.sort_descending() {
            s.reverse_order();
        }
        let values: Vec<(bool, Value)> =
            (0..s.shown_count()).map(|i| value(s.shown_task(i).unwrap(), column, now)).collect();
        let largest = values.iter().filter(|(after, _)| !after).map(|(_, v)| v).max().expect("values");
        let smallest = values.iter().filter(|(after, _)| !after).map(|(_, v)| v).min().expect("values");
        assert_ne!(largest, smallest, "{column:?}: the fixture has distinct values");
        assert_eq!(&values[0].1, largest, "{column:?} ↓: the largest first");
        s.reverse_order();
        assert!(!s.sort_descending());
        let first = value(s.shown_task(0).unwrap(), column, now);
        assert_eq!(&first.1, smallest, "{column:?} ↑: the smallest first");
    }
    s.set_sort_column(SortColumn::Wakers);
    s.reverse_order();
    assert!(s.sort_descending());
    assert!(s.shown_task(0).unwrap().live_wakers > 0, "WAKERS ↓: not a task with none");
}

/// Deterministic pseudo-random numbers (no dependency needed).
struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn incremental_updates_keep_the_same_order_as_a_full_sort() {
    for column in SortColumn::ALL {
        let mut rng = Rng(0x9e3779b97f4a7c15 ^ column as u64);
        let mut s = State::new(Thresholds::default(), false);
        s.set_sort_column(column);
        let mut now = 10 * SEC;
        s.apply(proto::WatchUpdate { now_ns: now, reset: true, complete: true, ..Default::default() });
        let locs = [LEAK_LOC, ACCEPT_LOC, WORKER_LOC, REQUEST_LOC];
        for _ in 0..40 {
            now += SEC;
            let mut tasks = Vec::new();
            for _ in 0..rng.next(60) {
                let id = rng.next(400) + 1;
                let base =
                    task(id, ["", "a", "b"][rng.next(3) as usize], locs[(id % 4) as usize], rng.next(now / MS) * MS);
                let since = base.spawned_at_ns + rng.next((now - base.spawned_at_ns) / MS + 1) * MS;
                tasks.push(match rng.next(4) {
                    0 => idle(base, since.max(MS), rng.next(50) + 1, rng.next(3) as i64),
                    1 => running(base, now, rng.next(50) + 1),
                    2 => done(base, since.max(MS), rng.next(50) + 1),
                    _ => base,
                });
            }
            let removed = (0..rng.next(10)).map(|_| rng.next(400) + 1).collect();
            s.apply(proto::WatchUpdate { now_ns: now, complete: true, tasks, removed, ..Default::default() });
            let incremental = shown_ids(&s);
            assert_eq!(incremental, expected(&s, column, s.sort_descending()), "column {column:?}");
            assert_eq!(incremental.iter().collect::<HashSet<_>>().len(), s.task_count(), "no duplicates");
        }
    }
}

#[test]
fn text_filter_matches_name_location_and_id_in_any_case() {
    let mut s = fed(30);
    s.set_filter_text("worker");
    assert_eq!(s.shown_count(), 4);
    assert_eq!(s.shown_groups().len(), 1);
    s.set_filter_text("DONE_SIGNAL.RS");
    assert_eq!(s.shown_count(), 30);
    s.set_filter_text("1007");
    assert_eq!(shown_ids(&s), vec![1007]);
    s.set_filter_text("");
    assert_eq!(s.shown_count(), s.task_count());
}

#[test]
fn state_toggles_hide_and_show_states() {
    let mut s = fed(30);
    s.toggle_state(TaskState::Idle);
    assert!((0..s.shown_count()).all(|i| s.shown_task(i).unwrap().state != TaskState::Idle));
    assert_eq!(s.shown_count(), 3);
    s.toggle_state(TaskState::Done);
    assert_eq!(s.shown_count(), 2);
    s.toggle_state(TaskState::Idle);
    s.toggle_state(TaskState::Done);
    assert_eq!(s.shown_count(), s.task_count());
}

#[test]
fn keep_done_retains_tasks_the_agent_drops() {
    let mut s = State::new(Thresholds::default(), true);
    for u in watch_stream(3) {
        s.apply(u);
    }
    let kept = s.task(500).expect("kept after removal");
    assert_eq!(kept.state, TaskState::Done);
    assert!(kept.retained_here);
    s.toggle_keep_done();
    assert!(s.task(500).is_none(), "turning keep-done off forgets them");
}

#[test]
fn groups_put_the_growing_leak_first() {
    let s = fed(90);
    let (_, first) = s.shown_groups().next().unwrap();
    assert_eq!(&*first.location, "examples/src/bin/done_signal.rs:31:5");
    assert_eq!(first.live, 90);
    assert_eq!(first.leaked, 90);
    assert_eq!(first.growth, 60, "grew by one a second over the last minute");
    assert_eq!(first.severity(), Severity::Leaked);
    // The sparkline history holds one sample per second since it appeared.
    assert_eq!(first.history.len(), 90);
    let names: Vec<String> = s.shown_groups().map(|(_, g)| format!("{}|{}", g.location, g.name)).collect();
    assert_eq!(
        names,
        [
            "examples/src/bin/done_signal.rs:31:5|",
            "src/worker.rs:12:17|worker",
            "src/server.rs:40:5|accept-loop",
            "src/server.rs:77:13|request",
        ]
    );
}

#[test]
fn a_reset_starts_over() {
    let mut s = fed(10);
    s.apply(proto::WatchUpdate {
        now_ns: SEC,
        reset: true,
        complete: true,
        tasks: vec![task(1, "", WORKER_LOC, 0)],
        ..Default::default()
    });
    assert_eq!(s.task_count(), 1);
    assert_eq!(s.shown_count(), 1);
}

#[test]
fn a_batch_is_applied_when_complete() {
    let mut s = fed(0);
    s.apply(proto::WatchUpdate { now_ns: 101 * SEC, tasks: vec![leak_task(1)], ..Default::default() });
    assert_eq!(s.shown_count(), 7, "the list waits for the end of the batch");
    s.apply(proto::WatchUpdate { now_ns: 101 * SEC, complete: true, ..Default::default() });
    assert_eq!(s.shown_count(), 8);
}

#[test]
fn connection_states_read_well() {
    let now = std::time::Instant::now();
    let later = now + std::time::Duration::from_millis(2_100);
    assert_eq!(Connection::Live.describe(now), "live");
    assert_eq!(Connection::Connecting { attempt: 3 }.describe(now), "reconnecting (attempt 3)…");
    let lost = Connection::Lost { reason: "connection refused".into(), retry_at: later };
    // The reason is not squeezed onto the first line: the header wraps it.
    assert_eq!(lost.describe(now), "lost, retry in 3s");
    assert_eq!(lost.problem(), Some("connection refused"));
    assert_eq!(Connection::Live.problem(), None);
    // No countdown for an exited process: nothing is retried at its PID.
    assert_eq!(Connection::Exited { pid: 42 }.describe(now), "exited");
    assert_eq!(Connection::Seeking { name: "server".into() }.describe(now), "waiting for a server process");
}

/// A PID target's process exits: the model names it and says whether the
/// program's next process is awaited, then which one took its place.
#[test]
fn an_exited_process_is_named_and_its_successor_announced() {
    let mut s = fed(30);
    s.follow = Some("done_signal".into());
    assert_eq!(s.link_problem(), None);
    s.set_connection(Connection::Exited { pid: 4242 });
    assert_eq!(
        s.link_problem().as_deref(),
        Some("process 4242 (done_signal) exited; waiting for a new done_signal process to follow")
    );
    s.set_followed(5151, Some(4242));
    assert_eq!(s.follow_notice(), None, "not before the new process's Info");
    s.set_info(proto::ProcessInfo { pid: 5151, ..info() });
    s.set_connection(Connection::Live);
    assert_eq!(s.link_problem(), None);
    assert_eq!(
        s.follow_notice().as_deref(),
        Some("now following process 5151 (done_signal), after process 4242 (done_signal) exited")
    );
    // That one exits too: the notice gives way to the exit.
    s.set_connection(Connection::Exited { pid: 5151 });
    assert_eq!(s.follow_notice(), None);
    assert!(s.link_problem().is_some_and(|p| p.starts_with("process 5151 (done_signal) exited;")));

    // Not following (`--no-follow`, or an address): the exit, and no promise.
    let mut s = fed(30);
    s.set_connection(Connection::Exited { pid: 4242 });
    assert_eq!(s.link_problem().as_deref(), Some("process 4242 (done_signal) exited"));
}

#[test]
fn dumps_are_reassembled_and_explained() {
    let ok = DumpOutcome::from_chunks(older_agent_chunks(&[1001, 1002, 8, 10]));
    assert_eq!(ok.failure(), None);
    assert_eq!(ok.summary(), None, "an older agent whose runtime was dumped: nothing to say");
    match ok.stack_for(1001) {
        TaskStack::Found(stack, origin) => {
            assert!(stack.backtraces[0].frames.iter().any(|f| f.function.contains("to_done_channel")));
            assert_eq!(origin, Origin::Unknown, "an older agent does not say");
        }
        TaskStack::Missing(why) => panic!("no stack: {why}"),
    }
    assert!(
        matches!(ok.stack_for(8), TaskStack::Missing(why) if why.contains("not parked; only tasks that wait are traced"))
    );
    assert!(matches!(ok.stack_for(10), TaskStack::Missing(why) if why.contains("`std::future::pending()`")));
    assert!(matches!(ok.stack_for(99), TaskStack::Missing(why) if why.contains("not in the dump")));
    let shared = ok.shared();
    assert_eq!((shared[0].stack_id, shared[0].tasks), (1, 2));
    assert_eq!(shared.len(), 3, "one entry per reason for the tasks without a stack: {shared:?}");

    let late = DumpOutcome::from_chunks(timed_out_dump(&[1001]));
    let why = late.failure().unwrap();
    assert_eq!(
        why,
        "no stacks: runtime main did not answer within 5s: a task is probably blocking a worker thread \
         (a synchronous call inside async code); the lifecycle data is still current"
    );
    assert!(matches!(late.stack_for(1001), TaskStack::Missing(_)));
    let _ = Capture::Capturing;
}

#[test]
fn tokios_dump_declined_is_no_failure_while_wrapped_tasks_answered() {
    let off = DumpOutcome::from_chunks(dump_chunks(&[1001, 1, 7, 9]));
    assert_eq!(off.failure(), None, "DISABLED with safe captures is not 'no stacks'");
    let summary = off.summary().expect("a new agent says where stacks came from");
    assert!(!summary.none);
    assert_eq!(
        summary.short(),
        format!(
            "stacks: 31 of 32 wrapped tasks captured safely (1 not polled within 5s); tokio's dump of runtime main is off: {TOKIO_DUMP_OFF}"
        )
    );
    assert!(matches!(off.stack_for(1001), TaskStack::Found(_, Origin::Captured)));
    let missing = |id| match off.stack_for(id) {
        TaskStack::Missing(why) => why,
        TaskStack::Found(..) => panic!("task {id} has a stack"),
    };
    assert!(missing(1).contains("it awaits nothing a task dump can trace"), "{}", missing(1));
    assert_eq!(
        missing(7),
        "no stack captured: wrapped, but not polled within 5s: it is inside a long poll, or its runtime is blocked"
    );
    assert!(
        missing(9).starts_with("no stack captured: not wrapped, and tokio's dump of its runtime was not taken"),
        "{}",
        missing(9)
    );

    let tokio = DumpOutcome::from_chunks(tokio_dump_chunks(&[1001, 7]));
    assert!(matches!(tokio.stack_for(1001), TaskStack::Found(_, Origin::TokioDump)));
    assert!(matches!(tokio.stack_for(7), TaskStack::Missing(why) if why.contains("not parked")));

    let nothing = DumpOutcome::from_chunks(stackless_chunks(&[9, 10]));
    let why = nothing.failure().expect("no stack from either source");
    assert!(
        why.starts_with("no stacks: no wrapped tasks to capture safely; tokio's dump of runtime main is off: "),
        "{why}"
    );
}

#[test]
fn harm_comes_from_get_info_and_from_dumps_and_a_reconnect_starts_over() {
    let mut s = fed(5);
    assert!(s.harms().is_empty());
    s.note_dump(&DumpOutcome::from_chunks(harmed_chunks(&[1001])));
    assert_eq!(s.harms().len(), 1);
    assert_eq!(s.harms()[0].runtime, "main");
    assert!(s.harms()[0].what.contains("refused for good"), "from the dump's detail: {:?}", s.harms());
    let mut harmed = info();
    harmed.runtimes[0].harmed = HARM.into();
    s.set_info(harmed);
    assert_eq!(s.harms()[0].what, HARM, "GetInfo's account is the plain one");
    s.note_dump(&DumpOutcome::from_chunks(harmed_chunks(&[1001])));
    assert_eq!(s.harms().len(), 1, "each runtime once");
    s.set_info(info());
    assert!(s.harms().is_empty(), "a restarted program behind the same socket");
}
