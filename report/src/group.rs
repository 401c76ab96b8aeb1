//! Grouping tasks the way pprof's `goroutine?debug=1` does: tasks with the
//! same stack *and* the same spawn location are one line of the report.
//!
//! A leak shows up as one group whose count keeps growing; sorting by count
//! (then by longest parked) puts it first. The spawn location is part of the
//! key because the same await reached from two spawn sites is two problems.
//! When no stacks were captured (dump timed out), every task has stack id 0
//! and groups fall back to spawn location alone, which is still the
//! lifecycle answer the user needs.
//!
//! What the tasks wait on ([`crate::wait`]) is part of the key as well, and
//! the order puts leak suspects first ([`crate::suspect`]), then the rest by
//! count; [`Sort::Count`] keeps pprof's order.
//!
//! Where the stack came from (the safe capture or tokio's dump) and why a
//! task has none are part of the key too, so that the one source or reason
//! a group's block states is true of every task in it: tasks at one spawn
//! location that lack a stack for different reasons (one not parked, one
//! not polled in time) are separate groups.

use std::collections::{BTreeSet, HashMap};

use taskscope_proto::{DumpedTask, StackSource, Task, TaskState};

use crate::dump::{self, Dump};
use crate::filter::Filter;
use crate::provenance::{self, Standing};
use crate::suspect::{self, Rules, Sort, Suspicion};
use crate::wait::{self, Wait};

/// One group of tasks.
#[derive(Debug, Clone)]
pub struct Group<'a> {
    /// Shared `Stack.id` (0 when none was captured).
    pub stack_id: u32,
    /// Where the tasks' stack came from, as the agent said.
    pub source: StackSource,
    /// The stack's source, or why the tasks have none (true of each).
    pub standing: Standing,
    /// Shared spawn location (`file:line:column`), if known.
    pub location: Option<String>,
    /// The tasks, by id.
    pub tasks: Vec<&'a Task>,
    /// How many tasks are in each state, in the order running, scheduled,
    /// idle, done, unknown; states with no task are left out.
    pub states: Vec<(TaskState, usize)>,
    /// How many of them are leaked.
    pub leaked: usize,
    /// Shortest and longest parked time of its idle tasks, if it has any.
    pub parked: Option<(u64, u64)>,
    /// Shortest and longest time its running tasks have been inside their
    /// current poll, if it has any.
    pub polling: Option<(u64, u64)>,
    /// Distinct task names, sorted; unnamed tasks add nothing.
    pub names: Vec<&'a str>,
    /// The tasks' kind (`task`, `local`, `blocking`, `block_on`) when they
    /// share one; `None` when they differ or it is unknown (the lean mode).
    pub kind: Option<&'a str>,
    /// What its parked tasks wait on, when that is known.
    pub wait: Option<Wait>,
    /// Why it is a leak suspect, if it is one.
    pub suspect: Option<Suspicion>,
}

impl Group<'_> {
    /// Number of tasks.
    pub fn count(&self) -> usize {
        self.tasks.len()
    }

    /// A key that names this group the same way in every dump of the
    /// program (stack ids are per dump): its spawn location, what it waits
    /// on, where its stack came from or why it has none, and its stack's
    /// frames. `attach` follows a group across dumps by it.
    pub fn identity(&self, dump: &Dump) -> String {
        use std::fmt::Write as _;
        let mut key = format!(
            "{}|{:?}|{}",
            self.location.as_deref().unwrap_or(""),
            self.standing,
            self.wait.as_ref().map_or("", |w| w.phrase.as_str())
        );
        if let Some(stack) = dump.stacks.get(&self.stack_id).filter(|_| self.stack_id != 0) {
            for backtrace in &stack.backtraces {
                key.push('|');
                for frame in &backtrace.frames {
                    let _ = write!(key, "{}:{};", frame.function, frame.line);
                }
            }
        }
        key
    }
}

/// The tasks of `dump` that pass `filter`, by task id (the `--all` view).
pub fn select<'a>(dump: &'a Dump, filter: &Filter) -> Vec<&'a DumpedTask> {
    let mut kept: Vec<&DumpedTask> =
        dump.tasks.iter().filter(|t| filter.keep(t, dump.stack_of(t), dump.now_ns())).collect();
    kept.sort_by_key(|t| t.task.as_ref().map_or(0, |r| r.id));
    kept
}

/// Groups the tasks of `dump` that pass `filter`, suspects first, then the
/// largest group first (see [`ranked`]).
pub fn group<'a>(dump: &'a Dump, filter: &Filter) -> Vec<Group<'a>> {
    ranked(dump, filter, Sort::Suspects, &Rules::default())
}

/// The key of a group: stack, spawn location, stack source, standing, wait.
type Key = (u32, Option<String>, StackSource, Standing, Option<Wait>);

/// Groups the tasks of `dump` that pass `filter`, in `sort`'s order, with
/// suspicion judged by `rules`.
pub fn ranked<'a>(dump: &'a Dump, filter: &Filter, sort: Sort, rules: &Rules) -> Vec<Group<'a>> {
    let now = dump.now_ns();
    let mut by_key: HashMap<Key, Vec<&'a Task>> = HashMap::new();
    for dumped in select(dump, filter) {
        let Some(task) = &dumped.task else { continue };
        let stack = dump.stack_of(dumped);
        // A stack id the agent never sent counts as no stack.
        let stack_id = if stack.is_some() { dumped.stack_id } else { 0 };
        let source = provenance::source(dumped.stack_source);
        let standing = dump.standing(dumped);
        let wait = wait::of_task(task, standing, stack);
        by_key.entry((stack_id, dump::location(task), source, standing, wait)).or_default().push(task);
    }
    let mut groups: Vec<Group<'a>> = by_key.into_iter().map(|(key, tasks)| summarize(key, tasks, now, rules)).collect();
    groups.sort_by(|a, b| {
        let rank = match sort {
            // `None` (no suspicion) sorts after every suspicion.
            Sort::Suspects => suspect::rank(a.suspect).cmp(&suspect::rank(b.suspect)),
            Sort::Count => std::cmp::Ordering::Equal,
        };
        rank.then_with(|| b.count().cmp(&a.count()))
            .then_with(|| b.parked.map(|p| p.1).cmp(&a.parked.map(|p| p.1)))
            .then_with(|| a.location.cmp(&b.location))
            .then_with(|| a.stack_id.cmp(&b.stack_id))
            .then_with(|| a.standing.cmp(&b.standing))
            .then_with(|| a.source.cmp(&b.source))
            .then_with(|| a.wait.as_ref().map(|w| &w.phrase).cmp(&b.wait.as_ref().map(|w| &w.phrase)))
    });
    groups
}

fn summarize<'a>(
    (stack_id, location, source, standing, wait): Key,
    tasks: Vec<&'a Task>,
    now: u64,
    rules: &Rules,
) -> Group<'a> {
    const ORDER: [TaskState; 5] =
        [TaskState::Running, TaskState::Scheduled, TaskState::Idle, TaskState::Done, TaskState::Unspecified];
    let states = ORDER
        .iter()
        .map(|&s| (s, tasks.iter().filter(|t| dump::state(t) == s).count()))
        .filter(|&(_, n)| n > 0)
        .collect();
    let parked = span(tasks.iter().filter_map(|t| dump::parked_ns(t, now)));
    let polling = span(tasks.iter().filter_map(|t| dump::polling_ns(t, now)));
    let names: BTreeSet<&str> = tasks.iter().map(|t| t.name.as_str()).filter(|n| !n.is_empty()).collect();
    let kind = tasks.first().map(|t| t.kind.as_str()).filter(|k| !k.is_empty() && tasks.iter().all(|t| t.kind == *k));
    let leaked = tasks.iter().filter(|t| t.leaked).count();
    let suspect = rules.judge(leaked, wait.as_ref(), parked.map(|p| p.1), None);
    Group {
        kind,
        stack_id,
        source,
        standing,
        location,
        leaked,
        states,
        parked,
        polling,
        names: names.into_iter().collect(),
        tasks,
        wait,
        suspect,
    }
}

/// The shortest and longest of `times`, if there are any.
fn span(times: impl Iterator<Item = u64>) -> Option<(u64, u64)> {
    times.fold(None, |acc, t| match acc {
        None => Some((t, t)),
        Some((lo, hi)) => Some((lo.min(t), hi.max(t))),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use taskscope_proto::{Backtrace, DumpHeader, Location, Stack};

    /// A dumped task for tests: `(id, state, leaked, last_poll_ended_ns, file, stack_id)`.
    pub fn dumped(id: u64, state: TaskState, leaked: bool, ended: u64, file: &str, stack_id: u32) -> DumpedTask {
        DumpedTask {
            task: Some(Task {
                id,
                state: state as i32,
                leaked,
                spawned_at_ns: 1,
                last_poll_ended_ns: ended,
                location: Some(Location { file: file.into(), line: 25, column: 5 }),
                ..Task::default()
            }),
            stack_id,
            ..DumpedTask::default()
        }
    }

    /// A dump of `tasks` at `now_ns` holding a one-frame stack for each of `stack_ids`.
    pub fn dump_of(tasks: Vec<DumpedTask>, stack_ids: &[u32], now_ns: u64) -> Dump {
        Dump {
            header: DumpHeader { now_ns, ..DumpHeader::default() },
            stacks: stack_ids.iter().map(|&id| (id, Stack { id, backtraces: vec![Backtrace::default()] })).collect(),
            tasks,
        }
    }

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn same_stack_and_location_group_together_biggest_first() {
        let now = 100 * SEC;
        let mut tasks: Vec<DumpedTask> =
            (1..=3).map(|i| dumped(i, TaskState::Idle, true, now - i * SEC, "a.rs", 1)).collect();
        tasks.push(dumped(10, TaskState::Idle, false, now - SEC, "b.rs", 1)); // other location
        tasks.push(dumped(11, TaskState::Running, false, 0, "a.rs", 2)); // other stack
        tasks.push(dumped(12, TaskState::Scheduled, false, 0, "a.rs", 2));
        let dump = dump_of(tasks, &[1, 2], now);
        let groups = group(&dump, &Filter::default());
        assert_eq!(groups.len(), 3);
        let g = &groups[0];
        assert_eq!((g.count(), g.leaked, g.stack_id), (3, 3, 1));
        assert_eq!(g.location.as_deref(), Some("a.rs:25:5"));
        assert_eq!(g.states, vec![(TaskState::Idle, 3)]);
        assert_eq!(g.parked, Some((SEC, 3 * SEC)));
        assert_eq!(g.tasks.iter().map(|t| t.id).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(groups[1].states, vec![(TaskState::Running, 1), (TaskState::Scheduled, 1)]);
        assert_eq!(groups[1].parked, None);
        assert_eq!(groups[2].location.as_deref(), Some("b.rs:25:5"));
    }

    #[test]
    fn equal_counts_sort_by_longest_parked() {
        let now = 100 * SEC;
        let tasks = vec![
            dumped(1, TaskState::Idle, false, now - SEC, "short.rs", 1),
            dumped(2, TaskState::Idle, false, now - 50 * SEC, "long.rs", 1),
        ];
        let dump = dump_of(tasks, &[1], now);
        let groups = group(&dump, &Filter::default());
        assert_eq!(groups[0].location.as_deref(), Some("long.rs:25:5"));
    }

    #[test]
    fn without_stacks_groups_fall_back_to_location() {
        let tasks = vec![
            dumped(1, TaskState::Idle, false, 1, "a.rs", 0),
            dumped(2, TaskState::Idle, false, 1, "a.rs", 7), // unknown stack id
        ];
        let dump = dump_of(tasks, &[], 10);
        let groups = group(&dump, &Filter::default());
        assert_eq!(groups.len(), 1);
        assert_eq!((groups[0].count(), groups[0].stack_id), (2, 0));
    }

    #[test]
    fn suspects_come_first_unless_sorted_by_count() {
        let now = 100 * SEC;
        let mut tasks: Vec<DumpedTask> =
            (1..=3).map(|i| dumped(i, TaskState::Idle, false, now - SEC, "healthy.rs", 1)).collect();
        tasks.push(dumped(9, TaskState::Idle, true, now - SEC, "leak.rs", 1));
        let dump = dump_of(tasks, &[1], now);
        let by_suspicion = ranked(&dump, &Filter::default(), Sort::Suspects, &Rules::default());
        assert_eq!(by_suspicion[0].location.as_deref(), Some("leak.rs:25:5"));
        assert_eq!(by_suspicion[0].suspect, Some(Suspicion::Leaked));
        assert_eq!(by_suspicion[1].suspect, None);
        let by_count = ranked(&dump, &Filter::default(), Sort::Count, &Rules::default());
        assert_eq!(by_count[0].location.as_deref(), Some("healthy.rs:25:5"));
    }

    #[test]
    fn names_are_distinct_and_sorted() {
        let mut a = dumped(1, TaskState::Idle, false, 1, "a.rs", 1);
        let mut b = dumped(2, TaskState::Idle, false, 1, "a.rs", 1);
        let c = dumped(3, TaskState::Idle, false, 1, "a.rs", 1);
        a.task.as_mut().unwrap().name = "w".into();
        b.task.as_mut().unwrap().name = "v".into();
        let dump = dump_of(vec![a, b, c], &[1], 10);
        assert_eq!(group(&dump, &Filter::default())[0].names, vec!["v", "w"]);
    }

    #[test]
    fn select_sorts_by_id_and_filters() {
        let tasks =
            vec![dumped(9, TaskState::Idle, false, 1, "a.rs", 1), dumped(4, TaskState::Running, false, 1, "a.rs", 1)];
        let dump = dump_of(tasks, &[1], 10 * SEC);
        let all = select(&dump, &Filter::default());
        assert_eq!(all.iter().map(|t| t.task.as_ref().unwrap().id).collect::<Vec<_>>(), vec![4, 9]);
        let idle = select(&dump, &Filter { min_idle: Some(std::time::Duration::from_secs(1)), ..Filter::default() });
        assert_eq!(idle.len(), 1);
    }
}
