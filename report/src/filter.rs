//! Which tasks a `stack` report keeps: `--min-idle` and `--match`, and
//! whether tasks of tokio's runtime itself (a multi-thread runtime's worker
//! threads, which run as blocking tasks for its whole life) are shown: only
//! with `--full`, since they are no more the program's tasks than runtime
//! frames are its code.
//!
//! `--match` is the keyword check PouchContainer's tests run over goroutine
//! dumps ("is a `logsContainer` stack still there?"): a plain substring,
//! case-insensitive (as `attach`'s `/` filter), looked for in every frame's function and file, the task's
//! name and its spawn location, so a script can assert on any of them.

use std::time::Duration;

use taskscope_proto::{DumpedTask, Stack};

use crate::dump;

/// The filters of one report; the default keeps everything.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Keep only idle tasks parked at least this long.
    pub min_idle: Option<Duration>,
    /// Keep only tasks whose stack, name or spawn location contains this.
    pub pattern: Option<String>,
    /// Keep the tasks tokio's runtime spawned for itself (`--full`).
    pub runtime_tasks: bool,
}

impl Filter {
    /// True when some filter is set (the report then says how many tasks it shows).
    pub fn is_active(&self) -> bool {
        self.min_idle.is_some() || self.pattern.is_some()
    }

    /// The flags as typed, for the report's "showing N of M" line.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(d) = self.min_idle {
            parts.push(format!("--min-idle {}", humantime::format_duration(d)));
        }
        if let Some(p) = &self.pattern {
            parts.push(format!("--match {p:?}"));
        }
        parts.join(", ")
    }

    /// Whether `task` (with its stack, if captured) passes every filter.
    pub fn keep(&self, task: &DumpedTask, stack: Option<&Stack>, now_ns: u64) -> bool {
        let Some(record) = &task.task else { return false };
        if record.runtime_internal && !self.runtime_tasks {
            return false;
        }
        if let Some(min) = self.min_idle {
            let min_ns = u64::try_from(min.as_nanos()).unwrap_or(u64::MAX);
            match dump::parked_ns(record, now_ns) {
                Some(parked) if parked >= min_ns => {}
                _ => return false,
            }
        }
        if let Some(pattern) = &self.pattern {
            if !mentions(task, stack, pattern) {
                return false;
            }
        }
        true
    }
}

/// Whether `task`'s stack (any frame's function or file), name or spawn
/// location contains `pattern`, ignoring case: `stack --match`, and
/// `check`'s `--match` and `--allow`.
pub fn mentions(task: &DumpedTask, stack: Option<&Stack>, pattern: &str) -> bool {
    let Some(record) = &task.task else { return false };
    let needle = pattern.to_lowercase();
    let has = |text: &str| contains_ignoring_case(text, &needle);
    let in_stack =
        stack.is_some_and(|s| s.backtraces.iter().flat_map(|b| &b.frames).any(|f| has(&f.function) || has(&f.file)));
    in_stack || has(&record.name) || dump::location(record).is_some_and(|l| has(&l))
}

/// Whether `text` contains `needle_lower` (already lower-case), ignoring case.
pub fn contains_ignoring_case(text: &str, needle_lower: &str) -> bool {
    needle_lower.is_empty()
        || if text.is_ascii() && needle_lower.is_ascii() {
            text.as_bytes().windows(needle_lower.len()).any(|w| w.eq_ignore_ascii_case(needle_lower.as_bytes()))
        } else {
            text.to_lowercase().contains(needle_lower)
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskscope_proto::{Backtrace, Frame, Location, Task, TaskState};

    fn task(state: TaskState, last_poll_ended_ns: u64, name: &str, file: &str) -> DumpedTask {
        DumpedTask {
            task: Some(Task {
                state: state as i32,
                last_poll_ended_ns,
                spawned_at_ns: 1,
                name: name.into(),
                location: Some(Location { file: file.into(), line: 3, column: 9 }),
                ..Task::default()
            }),
            stack_id: 1,
            ..DumpedTask::default()
        }
    }

    fn stack(function: &str) -> Stack {
        Stack {
            id: 1,
            backtraces: vec![Backtrace {
                frames: vec![Frame { function: function.into(), file: "src/lib.rs".into(), ..Frame::default() }],
            }],
        }
    }

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn default_keeps_everything() {
        let f = Filter::default();
        assert!(!f.is_active());
        assert!(f.keep(&task(TaskState::Running, 0, "", "a.rs"), None, 10 * SEC));
        assert!(!f.keep(&DumpedTask::default(), None, 0), "a task without record is dropped");
    }

    #[test]
    fn runtime_tasks_only_when_asked() {
        let mut worker = task(TaskState::Running, 0, "", "tokio-1.54.1/src/runtime/scheduler/multi_thread/worker.rs");
        if let Some(t) = worker.task.as_mut() {
            t.runtime_internal = true;
        }
        assert!(!Filter::default().keep(&worker, None, 10 * SEC));
        assert!(Filter { runtime_tasks: true, ..Filter::default() }.keep(&worker, None, 10 * SEC));
    }

    #[test]
    fn min_idle_keeps_long_parked_idle_tasks_only() {
        let f = Filter { min_idle: Some(Duration::from_secs(5)), ..Filter::default() };
        let now = 100 * SEC;
        assert!(f.keep(&task(TaskState::Idle, now - 5 * SEC, "", "a.rs"), None, now));
        assert!(!f.keep(&task(TaskState::Idle, now - 4 * SEC, "", "a.rs"), None, now));
        assert!(!f.keep(&task(TaskState::Scheduled, 1, "", "a.rs"), None, now));
        assert_eq!(f.describe(), "--min-idle 5s");
    }

    #[test]
    fn match_looks_at_frames_name_and_location() {
        let f = |p: &str| Filter { pattern: Some(p.into()), ..Filter::default() };
        let t = task(TaskState::Idle, 1, "worker-3", "src/pool.rs");
        let s = stack("app::Server::logs_container::{{closure}}");
        assert!(f("logs_container").keep(&t, Some(&s), 2));
        assert!(f("src/lib.rs").keep(&t, Some(&s), 2), "frame file");
        assert!(f("worker").keep(&t, None, 2), "name");
        assert!(f("pool.rs:3:9").keep(&t, None, 2), "spawn location");
        assert!(!f("logs_container").keep(&t, None, 2), "no stack captured");
        assert!(f("Worker").keep(&t, Some(&s), 2), "case-insensitive");
        assert!(f("LOGS_container").keep(&t, Some(&s), 2), "case-insensitive in frames");
        assert!(!f("wörker").keep(&t, Some(&s), 2));
        assert!(contains_ignoring_case("Straße", "straße"));
    }
}
