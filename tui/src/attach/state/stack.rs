//! Async stacks fetched on demand with the `Dump` call, for the detail view.

use std::collections::HashMap;

use taskscope_proto as proto;

/// Where a requested stack capture stands.
#[derive(Debug, Clone)]
pub enum Capture {
    /// Asked; the answer has not arrived.
    Capturing,
    /// The agent answered (which may still mean "no stacks, because …").
    Ready(DumpOutcome),
    /// The call itself failed (disconnected, RPC error).
    Failed(String),
}

/// A `Dump` answer, reassembled from its chunks.
#[derive(Debug, Clone, Default)]
pub struct DumpOutcome {
    /// Per-runtime status; empty if the agent sent no header.
    pub runtimes: Vec<proto::RuntimeDump>,
    /// Distinct stacks by id.
    pub stacks: HashMap<u32, proto::Stack>,
    /// Each dumped task's stack id (0: none).
    pub stack_of: HashMap<u64, u32>,
    /// The lifecycle records that came with the dump, in the agent's order.
    pub tasks: Vec<proto::Task>,
}

/// The stack of one task, or why there is none.
#[derive(Debug)]
pub enum TaskStack<'a> {
    Found(&'a proto::Stack),
    Missing(String),
}

/// One distinct stack and how many of the dumped tasks share it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shared {
    /// `Stack.id`; 0 for tasks without a stack.
    pub stack_id: u32,
    pub tasks: usize,
}

impl DumpOutcome {
    /// Reassembles the streamed chunks of one `Dump` answer.
    pub fn from_chunks(chunks: impl IntoIterator<Item = proto::DumpChunk>) -> Self {
        let mut out = Self::default();
        for chunk in chunks {
            if let Some(header) = chunk.header {
                out.runtimes = header.runtimes;
            }
            out.stacks.extend(chunk.stacks.into_iter().map(|s| (s.id, s)));
            for dumped in chunk.tasks {
                if let Some(task) = dumped.task {
                    out.stack_of.insert(task.id, dumped.stack_id);
                    out.tasks.push(task);
                }
            }
        }
        out
    }

    /// Why no stacks could be captured, when no runtime produced any.
    pub fn failure(&self) -> Option<String> {
        if self.runtimes.is_empty() {
            return Some("the agent sent no dump status".to_string());
        }
        if self.runtimes.iter().any(|r| r.status() == proto::DumpStatus::Ok) {
            return None;
        }
        let reasons: Vec<String> = self
            .runtimes
            .iter()
            .map(|r| {
                let (what, hint) = match r.status() {
                    proto::DumpStatus::Unsupported => ("dumps unsupported", ""),
                    proto::DumpStatus::Disabled => ("dumps off", ""),
                    proto::DumpStatus::TimedOut => ("dump timed out", " (is a task blocking a worker thread?)"),
                    proto::DumpStatus::Failed => ("dump failed", ""),
                    proto::DumpStatus::Harmed => ("dumps refused after harm", ""),
                    proto::DumpStatus::Ok | proto::DumpStatus::Unspecified => ("no dump", ""),
                };
                // The agent's own detail says more than our hint.
                if r.detail.is_empty() {
                    format!("runtime {}: {what}{hint}", r.runtime)
                } else {
                    format!("runtime {}: {what}: {}", r.runtime, r.detail)
                }
            })
            .collect();
        Some(reasons.join("; "))
    }

    /// The stack of task `id`.
    pub fn stack_for(&self, id: u64) -> TaskStack<'_> {
        if let Some(why) = self.failure() {
            return TaskStack::Missing(why);
        }
        match self.stack_of.get(&id) {
            None => TaskStack::Missing("the task was not in the dump (it has finished)".to_string()),
            Some(0) => TaskStack::Missing(
                "no stack captured: the task is not parked on a tokio resource, or it has just finished".to_string(),
            ),
            Some(sid) => match self.stacks.get(sid) {
                Some(stack) => TaskStack::Found(stack),
                None => TaskStack::Missing(format!("the dump referred to a missing stack {sid}")),
            },
        }
    }

    /// The distinct stacks of the dumped tasks, most shared first (tasks
    /// without a stack last).
    pub fn shared(&self) -> Vec<Shared> {
        let mut counts: HashMap<u32, usize> = HashMap::new();
        for sid in self.stack_of.values() {
            *counts.entry(*sid).or_default() += 1;
        }
        let mut out: Vec<Shared> = counts
            .into_iter()
            .map(|(stack_id, tasks)| Shared { stack_id, tasks })
            .collect();
        out.sort_by_key(|s| (s.stack_id == 0, std::cmp::Reverse(s.tasks), s.stack_id));
        out
    }
}

/// The innermost frame of the program's own code in a backtrace: the line a
/// reader wants to see first.
pub fn first_own_frame(backtrace: &proto::Backtrace) -> Option<&proto::Frame> {
    backtrace.frames.iter().rev().find(|f| !f.internal)
}
