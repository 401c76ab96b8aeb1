//! A whole `Dump` answer, reassembled from its stream of chunks, and the few
//! facts derived from one task record that every view needs (state word,
//! parked time, spawn location).
//!
//! The agent interns stacks (thousands of tasks parked at the same await
//! share one) and streams tasks in chunks; here they are put back together so
//! grouping and rendering are pure functions over one value.

use std::collections::HashMap;
use std::time::Duration;

use taskscope_proto::{DumpChunk, DumpHeader, DumpedTask, Frame, Stack, Task, TaskState};

use crate::provenance::{self, Standing};

/// A complete dump.
#[derive(Debug, Clone, Default)]
pub struct Dump {
    /// The header (first chunk).
    pub header: DumpHeader,
    /// Stacks by `Stack.id`.
    pub stacks: HashMap<u32, Stack>,
    /// Every task, in the order received.
    pub tasks: Vec<DumpedTask>,
}

impl Dump {
    /// Joins chunks; the first one must carry the header.
    pub fn from_chunks(chunks: impl IntoIterator<Item = DumpChunk>) -> Result<Dump, String> {
        let mut chunks = chunks.into_iter();
        let first = chunks.next().ok_or("the agent sent an empty dump")?;
        let mut dump = Dump {
            header: first.header.clone().ok_or("the agent's dump did not start with a header")?,
            ..Dump::default()
        };
        for chunk in std::iter::once(first).chain(chunks) {
            dump.stacks.extend(chunk.stacks.into_iter().map(|s| (s.id, s)));
            dump.tasks.extend(chunk.tasks);
        }
        dump.canonicalize();
        Ok(dump)
    }

    /// Puts every stack's backtraces in one canonical order and makes tasks
    /// whose stacks then read the same share one stack id. A `select!`
    /// polls its branches in random order, so tasks parked at the same
    /// await point arrive with the same leaves in different orders; without
    /// this they would split into several groups.
    pub fn canonicalize(&mut self) {
        for stack in self.stacks.values_mut() {
            stack.backtraces.sort_by(|a, b| frames_key(&a.frames).cmp(&frames_key(&b.frames)));
            stack.backtraces.dedup();
        }
        // The lowest id of each distinct stack stands for all its copies.
        let mut ids: Vec<u32> = self.stacks.keys().copied().collect();
        ids.sort_unstable();
        type StackKey<'a> = Vec<Vec<(&'a str, &'a str, u32, u32)>>;
        let mut first: HashMap<StackKey<'_>, u32> = HashMap::new();
        let mut alias: HashMap<u32, u32> = HashMap::new();
        for id in ids {
            let Some(stack) = self.stacks.get(&id) else { continue };
            let key: StackKey<'_> = stack.backtraces.iter().map(|b| frames_key(&b.frames)).collect();
            match first.get(&key) {
                Some(&kept) => {
                    alias.insert(id, kept);
                }
                None => {
                    first.insert(key, id);
                }
            }
        }
        if alias.is_empty() {
            return;
        }
        for task in &mut self.tasks {
            if let Some(&kept) = alias.get(&task.stack_id) {
                task.stack_id = kept;
            }
        }
        self.stacks.retain(|id, _| !alias.contains_key(id));
    }

    /// Agent clock when the records were read.
    pub fn now_ns(&self) -> u64 {
        self.header.now_ns
    }

    /// How many of its tasks tokio's runtime spawned for itself.
    pub fn runtime_tasks(&self) -> usize {
        self.tasks.iter().filter(|t| t.task.as_ref().is_some_and(|r| r.runtime_internal)).count()
    }

    /// The stack of a task, if one was captured (a stack without
    /// backtraces counts as none).
    pub fn stack_of(&self, task: &DumpedTask) -> Option<&Stack> {
        self.stacks.get(&task.stack_id).filter(|s| task.stack_id != 0 && !s.backtraces.is_empty())
    }

    /// Where a task's stack came from, or why it has none.
    pub fn standing(&self, task: &DumpedTask) -> Standing {
        let parked = task.task.as_ref().is_some_and(|t| state(t) == TaskState::Idle);
        let all_dumped = provenance::all_dumped(&self.header.runtimes);
        provenance::standing(provenance::source(task.stack_source), self.stack_of(task).is_some(), parked, all_dumped)
    }

    /// The line saying where the stacks came from (see [`provenance::summary`]).
    pub fn summary(&self, timeout: Duration) -> Option<provenance::Summary> {
        let any_stack = self.tasks.iter().any(|t| self.stack_of(t).is_some());
        provenance::summary(&self.header.runtimes, self.header.safe_capture.as_ref(), any_stack, timeout)
    }
}

/// What backtraces are ordered by: their frames' functions and positions.
fn frames_key(frames: &[Frame]) -> Vec<(&str, &str, u32, u32)> {
    frames.iter().map(|f| (f.function.as_str(), f.file.as_str(), f.line, f.column)).collect()
}

/// The task's state, `Unspecified` for values this build does not know.
pub fn state(task: &Task) -> TaskState {
    TaskState::try_from(task.state).unwrap_or(TaskState::Unspecified)
}

/// The word used in every output for a state.
pub fn state_word(state: TaskState) -> &'static str {
    match state {
        TaskState::Running => "running",
        TaskState::Scheduled => "scheduled",
        TaskState::Idle => "idle",
        TaskState::Done => "done",
        TaskState::Unspecified => "unknown",
    }
}

/// How long a running task has been inside its current poll (a task that
/// blocks its worker shows here). `None` unless running.
pub fn polling_ns(task: &Task, now_ns: u64) -> Option<u64> {
    if state(task) != TaskState::Running || task.last_poll_started_ns == 0 {
        return None;
    }
    Some(now_ns.saturating_sub(task.last_poll_started_ns))
}

/// How long an idle task has been parked: since its last poll ended, or
/// since it was spawned if it was never polled. `None` unless idle.
pub fn parked_ns(task: &Task, now_ns: u64) -> Option<u64> {
    if state(task) != TaskState::Idle {
        return None;
    }
    let since = if task.last_poll_ended_ns != 0 { task.last_poll_ended_ns } else { task.spawned_at_ns };
    Some(now_ns.saturating_sub(since))
}

/// `file:line:column` of the spawn site, `None` when unknown.
pub fn location(task: &Task) -> Option<String> {
    let loc = task.location.as_ref().filter(|l| !l.file.is_empty())?;
    Some(format!("{}:{}:{}", loc.file, loc.line, loc.column))
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskscope_proto::{Backtrace, DumpStatus, Location, RuntimeDump};

    fn idle(last_poll_ended_ns: u64, spawned_at_ns: u64) -> Task {
        Task { state: TaskState::Idle as i32, last_poll_ended_ns, spawned_at_ns, ..Task::default() }
    }

    #[test]
    fn parked_time_counts_from_last_poll_or_spawn() {
        assert_eq!(parked_ns(&idle(400, 100), 1000), Some(600));
        assert_eq!(parked_ns(&idle(0, 100), 1000), Some(900));
        assert_eq!(parked_ns(&idle(2000, 100), 1000), Some(0));
        let running = Task { state: TaskState::Running as i32, ..Task::default() };
        assert_eq!(parked_ns(&running, 1000), None);
    }

    #[test]
    fn location_text() {
        let t =
            Task { location: Some(Location { file: "src/main.rs".into(), line: 10, column: 5 }), ..Task::default() };
        assert_eq!(location(&t).as_deref(), Some("src/main.rs:10:5"));
        assert_eq!(location(&Task::default()), None);
    }

    #[test]
    fn chunks_are_joined_and_need_a_header() {
        let header = DumpHeader {
            now_ns: 5,
            runtimes: vec![RuntimeDump { runtime: "main".into(), status: DumpStatus::Ok as i32, ..Default::default() }],
            ..Default::default()
        };
        let chunks = vec![
            DumpChunk { header: Some(header), ..Default::default() },
            DumpChunk {
                stacks: vec![Stack { id: 1, backtraces: vec![Backtrace::default()] }],
                tasks: vec![DumpedTask { task: Some(Task::default()), stack_id: 1, ..Default::default() }],
                ..Default::default()
            },
            DumpChunk {
                tasks: vec![DumpedTask { task: Some(Task::default()), stack_id: 0, ..Default::default() }],
                ..Default::default()
            },
        ];
        let dump = Dump::from_chunks(chunks).unwrap();
        assert_eq!(dump.now_ns(), 5);
        assert_eq!(dump.tasks.len(), 2);
        assert!(dump.stack_of(&dump.tasks[0]).is_some());
        assert!(dump.stack_of(&dump.tasks[1]).is_none());
        assert!(Dump::from_chunks(vec![DumpChunk::default()]).is_err());
        assert!(Dump::from_chunks(vec![]).is_err());
    }

    #[test]
    fn the_same_leaves_in_another_order_are_one_stack() {
        let bt = |f: &str| Backtrace { frames: vec![Frame { function: f.into(), ..Frame::default() }] };
        let task =
            |id, stack_id| DumpedTask { task: Some(Task { id, ..Task::default() }), stack_id, ..Default::default() };
        let chunks = vec![DumpChunk {
            header: Some(DumpHeader::default()),
            stacks: vec![
                Stack { id: 1, backtraces: vec![bt("b"), bt("a")] },
                Stack { id: 2, backtraces: vec![bt("a"), bt("b")] },
                Stack { id: 3, backtraces: vec![bt("a")] },
            ],
            tasks: vec![task(10, 1), task(11, 2), task(12, 3)],
        }];
        let dump = Dump::from_chunks(chunks).unwrap();
        let ids: Vec<u32> = dump.tasks.iter().map(|t| t.stack_id).collect();
        assert_eq!(ids, vec![1, 1, 3]);
        assert_eq!(dump.stacks.len(), 2);
        assert_eq!(dump.stacks[&1].backtraces, vec![bt("a"), bt("b")]);
    }
}
