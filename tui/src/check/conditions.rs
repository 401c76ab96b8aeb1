//! The conditions `taskscope check` fails on, as pure functions over one
//! dump (and, for growth, two samples of live counts), so that each is
//! unit-tested on hand-made dumps and the command only wires them up.
//!
//! Every condition first drops the allowed tasks (`--allow`: known long
//! waits such as accept loops, signal handlers, tickers), matched like
//! `stack --match` against the stack's functions and files, the name and the
//! spawn location.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use taskscope_proto::{DumpStatus, DumpedTask, StackSource};
use taskscope_report::dump::{self, Dump};
use taskscope_report::filter;

/// What to check.
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    /// Fail on any task the agent calls leaked.
    pub leaked: bool,
    /// Fail on tasks parked longer than this.
    pub max_parked: Option<Duration>,
    /// Fail when more than `.1` tasks mention `.0`.
    pub matching: Option<(String, usize)>,
    /// Fail when a spawn location's live count grows by more than this.
    pub max_growth: Option<usize>,
    /// Tasks no condition counts.
    pub allow: Vec<String>,
}

/// One condition that failed, with the tasks that made it fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The option, as typed (`--leaked`, `--max-parked 30s`, ...).
    pub condition: String,
    /// What is wrong, in one line.
    pub what: String,
    /// The tasks, by id (empty for growth, which is about counts).
    pub tasks: BTreeSet<u64>,
    /// For growth: the spawn location that grew.
    pub location: Option<String>,
}

/// Why a condition could not be decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undecidable(pub String);

impl Conditions {
    /// The conditions that fail on `dump`. `Err` when `--match` cannot be
    /// decided: stacks that should have come did not (a runtime's dump timed
    /// out or failed, a wrapped task was not polled in time) and the tasks
    /// that do have theirs are not already too many.
    pub fn check(&self, dump: &Dump) -> Result<Vec<Violation>, Undecidable> {
        let now = dump.now_ns();
        let counted: Vec<&DumpedTask> = dump
            .tasks
            .iter()
            .filter(|t| t.task.as_ref().is_some_and(|r| !r.runtime_internal))
            .filter(|t| !self.allowed(t, dump))
            .collect();
        let mut out = Vec::new();
        if self.leaked {
            let tasks = ids(counted.iter().copied().filter(|t| t.task.as_ref().is_some_and(|r| r.leaked)));
            if !tasks.is_empty() {
                out.push(Violation {
                    condition: "--leaked".into(),
                    what: format!("{} leaked (idle, and nothing can wake {})", plural(tasks.len()), them(tasks.len())),
                    tasks,
                    location: None,
                });
            }
        }
        if let Some(max) = self.max_parked {
            let max_ns = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
            let tasks = ids(counted.iter().copied().filter(|t| {
                t.task.as_ref().and_then(|r| dump::parked_ns(r, now)).is_some_and(|parked| parked > max_ns)
            }));
            if !tasks.is_empty() {
                let max = taskscope_proto::duration::format(max);
                out.push(Violation {
                    condition: format!("--max-parked {max}"),
                    what: format!("{} parked longer than {max}", plural(tasks.len())),
                    tasks,
                    location: None,
                });
            }
        }
        if let Some((pattern, most)) = &self.matching {
            let tasks = ids(counted.iter().copied().filter(|t| filter::mentions(t, dump.stack_of(t), pattern)));
            if tasks.len() > *most {
                out.push(Violation {
                    condition: format!("--match {pattern:?} --max-matching {most}"),
                    what: format!("{} mention {pattern:?}, more than {most}", plural(tasks.len())),
                    tasks,
                    location: None,
                });
            } else if let Some(why) = unsure(dump, &counted, pattern) {
                return Err(Undecidable(format!("cannot decide --match {pattern:?}: {why}")));
            }
        }
        Ok(out)
    }

    /// Whether `--allow` exempts `task`.
    fn allowed(&self, task: &DumpedTask, dump: &Dump) -> bool {
        self.allow.iter().any(|pattern| filter::mentions(task, dump.stack_of(task), pattern))
    }

    /// The locations whose live count grew by more than `--max-growth`
    /// between two samples (location → live count), taken `over` apart.
    pub fn growth(
        &self,
        before: &BTreeMap<String, usize>,
        after: &BTreeMap<String, usize>,
        over: Duration,
    ) -> Vec<Violation> {
        let Some(most) = self.max_growth else { return Vec::new() };
        let mut grown: Vec<(usize, &String, usize, usize)> = after
            .iter()
            .filter(|(location, _)| !self.allow.iter().any(|p| location.contains(p.as_str())))
            .filter_map(|(location, &now)| {
                let then = before.get(location).copied().unwrap_or(0);
                (now > then && now - then > most).then_some((now - then, location, then, now))
            })
            .collect();
        grown.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        grown
            .into_iter()
            .map(|(by, location, then, now)| Violation {
                condition: format!("--max-growth {most} --over {}", taskscope_proto::duration::format(over)),
                what: format!(
                    "tasks spawned at {location} grew by {by} in {} ({then} → {now}), more than {most}",
                    taskscope_proto::duration::format(over)
                ),
                tasks: BTreeSet::new(),
                location: Some(location.clone()),
            })
            .collect()
    }
}

/// Live tasks per spawn location, the program's own only, for growth.
pub fn live_by_location<'a>(tasks: impl IntoIterator<Item = &'a taskscope_proto::Task>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for task in tasks {
        if task.runtime_internal || dump::state(task) == taskscope_proto::TaskState::Done {
            continue;
        }
        let location = dump::location(task).unwrap_or_else(|| "an unknown location".to_string());
        *counts.entry(location).or_insert(0) += 1;
    }
    counts
}

/// Why a `--match` count below the limit may be wrong, if it may.
fn unsure(dump: &Dump, counted: &[&DumpedTask], pattern: &str) -> Option<String> {
    let broken: Vec<&str> = dump
        .header
        .runtimes
        .iter()
        .filter(|rt| matches!(DumpStatus::try_from(rt.status), Ok(DumpStatus::TimedOut | DumpStatus::Failed)))
        .map(|rt| rt.runtime.as_str())
        .collect();
    let missing = counted
        .iter()
        .filter(|t| dump.stack_of(t).is_none() && !filter::mentions(t, None, pattern))
        .filter(|t| !broken.is_empty() || StackSource::try_from(t.stack_source) == Ok(StackSource::NotPolled))
        .count();
    if missing == 0 {
        return None;
    }
    Some(if broken.is_empty() {
        format!(
            "{} wrapped {} not polled in time for {} stack, so {} stack may mention it",
            missing,
            if missing == 1 { "task was" } else { "tasks were" },
            if missing == 1 { "its" } else { "their" },
            if missing == 1 { "its" } else { "their" },
        )
    } else {
        format!(
            "the dump of runtime {} did not complete, so {} {} no stack that could mention it (try a longer --timeout)",
            broken.join(", "),
            plural(missing),
            if missing == 1 { "has" } else { "have" }
        )
    })
}

fn ids<'a>(tasks: impl Iterator<Item = &'a DumpedTask>) -> BTreeSet<u64> {
    tasks.filter_map(|t| t.task.as_ref().map(|r| r.id)).collect()
}

fn plural(n: usize) -> String {
    format!("{n} {}", if n == 1 { "task" } else { "tasks" })
}

fn them(n: usize) -> &'static str {
    if n == 1 {
        "it"
    } else {
        "them"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskscope_proto::{Backtrace, DumpHeader, Frame, Location, RuntimeDump, Stack, Task, TaskState};

    const NOW: u64 = 100_000_000_000;

    fn task(id: u64, state: TaskState, leaked: bool, parked_s: u64, file: &str, name: &str) -> DumpedTask {
        DumpedTask {
            task: Some(Task {
                id,
                state: state as i32,
                leaked,
                name: name.into(),
                spawned_at_ns: 1,
                polls: 1,
                last_poll_ended_ns: NOW - parked_s * 1_000_000_000,
                location: Some(Location { file: file.into(), line: 1, column: 1 }),
                ..Task::default()
            }),
            ..DumpedTask::default()
        }
    }

    fn dump(tasks: Vec<DumpedTask>) -> Dump {
        Dump { header: DumpHeader { now_ns: NOW, ..DumpHeader::default() }, tasks, ..Dump::default() }
    }

    fn with_stack(mut t: DumpedTask, dump: &mut Dump, function: &str) -> DumpedTask {
        let id = dump.stacks.len() as u32 + 1;
        let frame = Frame { function: function.into(), ..Frame::default() };
        dump.stacks.insert(id, Stack { id, backtraces: vec![Backtrace { frames: vec![frame] }] });
        t.stack_id = id;
        t
    }

    #[test]
    fn leaked_and_parked_count_only_what_they_say() {
        let d = dump(vec![
            task(1, TaskState::Idle, true, 1, "src/a.rs", ""),
            task(2, TaskState::Idle, false, 40, "src/b.rs", ""),
            task(3, TaskState::Running, false, 0, "src/c.rs", ""),
        ]);
        let c = Conditions { leaked: true, max_parked: Some(Duration::from_secs(30)), ..Conditions::default() };
        let v = c.check(&d).expect("decidable");
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].condition, "--leaked");
        assert_eq!(v[0].tasks, BTreeSet::from([1]));
        assert_eq!(v[0].what, "1 task leaked (idle, and nothing can wake it)");
        assert_eq!(v[1].condition, "--max-parked 30s");
        assert_eq!(v[1].tasks, BTreeSet::from([2]));
        let clean = Conditions { max_parked: Some(Duration::from_secs(60)), ..Conditions::default() };
        assert!(clean.check(&d).expect("decidable").is_empty());
    }

    #[test]
    fn allowed_tasks_count_for_nothing() {
        let mut d = dump(vec![]);
        let accept = with_stack(task(1, TaskState::Idle, true, 90, "src/main.rs", ""), &mut d, "app::accept_loop");
        d.tasks = vec![accept, task(2, TaskState::Idle, true, 90, "src/signal.rs", "signals")];
        let c = Conditions {
            leaked: true,
            max_parked: Some(Duration::from_secs(1)),
            allow: vec!["accept_loop".into(), "signals".into()],
            ..Conditions::default()
        };
        assert!(c.check(&d).expect("decidable").is_empty());
        let c = Conditions { allow: vec!["accept_loop".into()], ..c };
        assert_eq!(c.check(&d).expect("decidable")[0].tasks, BTreeSet::from([2]));
    }

    #[test]
    fn matching_counts_stacks_names_and_locations() {
        let mut d = dump(vec![]);
        let by_stack = with_stack(task(1, TaskState::Idle, false, 1, "src/x.rs", ""), &mut d, "app::follow_logs");
        d.tasks = vec![by_stack, task(2, TaskState::Idle, false, 1, "src/y.rs", "logs handler")];
        let over = Conditions { matching: Some(("log".into(), 1)), ..Conditions::default() };
        let v = over.check(&d).expect("decidable");
        assert_eq!(v[0].tasks, BTreeSet::from([1, 2]));
        assert_eq!(v[0].what, "2 tasks mention \"log\", more than 1");
        let within = Conditions { matching: Some(("log".into(), 2)), ..Conditions::default() };
        assert!(within.check(&d).expect("decidable").is_empty());
    }

    #[test]
    fn a_match_that_stacks_could_change_is_undecidable() {
        let mut d = dump(vec![task(1, TaskState::Idle, false, 1, "src/x.rs", "")]);
        d.tasks[0].stack_source = StackSource::NotPolled as i32;
        let c = Conditions { matching: Some(("follow".into(), 0)), ..Conditions::default() };
        let why = c.check(&d).expect_err("its stack did not come").0;
        assert!(why.contains("1 wrapped task was not polled in time"), "{why}");
        // A task that already matches by name decides it.
        d.tasks[0].task.as_mut().expect("task").name = "follower".into();
        assert_eq!(c.check(&d).expect("decidable").len(), 1);
        // A dump that timed out leaves every stackless task in doubt.
        let mut d = dump(vec![task(1, TaskState::Idle, false, 1, "src/x.rs", "")]);
        d.header.runtimes =
            vec![RuntimeDump { runtime: "main".into(), status: DumpStatus::TimedOut as i32, ..RuntimeDump::default() }];
        let why = c.check(&d).expect_err("timed out").0;
        assert!(why.contains("the dump of runtime main did not complete"), "{why}");
        // A task not wrapped, with tokio's dump off, is simply not covered.
        let d = dump(vec![task(1, TaskState::Idle, false, 1, "src/x.rs", "")]);
        assert!(c.check(&d).expect("decidable").is_empty());
    }

    #[test]
    fn growth_is_per_location_beyond_the_limit_sorted_by_size() {
        let before = BTreeMap::from([("src/a.rs:1:1".to_string(), 10), ("src/b.rs:1:1".to_string(), 5)]);
        let after = BTreeMap::from([
            ("src/a.rs:1:1".to_string(), 13),
            ("src/b.rs:1:1".to_string(), 50),
            ("src/c.rs:1:1".to_string(), 20),
        ]);
        let c = Conditions { max_growth: Some(3), ..Conditions::default() };
        let v = c.growth(&before, &after, Duration::from_secs(10));
        let locations: Vec<_> = v.iter().filter_map(|v| v.location.as_deref()).collect();
        assert_eq!(locations, ["src/b.rs:1:1", "src/c.rs:1:1"], "a grew by exactly 3: not more than 3");
        assert_eq!(v[0].what, "tasks spawned at src/b.rs:1:1 grew by 45 in 10s (5 → 50), more than 3");
        let allowed = Conditions { allow: vec!["src/b.rs".into()], ..c };
        assert_eq!(allowed.growth(&before, &after, Duration::from_secs(10)).len(), 1);
    }
}
