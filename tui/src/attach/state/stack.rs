//! Async stacks fetched on demand with the `Dump` call, for the detail view.
//!
//! Stacks come from two sources (see [`taskscope_report::provenance`]): the agent's
//! safe capture of the futures it wraps, always taken, and tokio's dump,
//! which the agent may decline (`DUMP_STATUS_DISABLED`). So a runtime whose
//! tokio dump was not taken still has stacks for its wrapped tasks: each
//! task's own source says what it has, and only a dump with no stack from
//! either source is a failure.

use std::collections::HashMap;
use std::time::Duration;

use taskscope_proto as proto;

use taskscope_report::dump::Dump;
use taskscope_report::provenance::{self, Origin, Standing, Summary};
use taskscope_report::wait::{self, Wait};

/// The dump timeout `attach` asks for; the reasons it shows name it.
pub const DUMP_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a requested stack capture stands.
#[derive(Debug, Clone)]
// One per open detail view; boxing its answer would save nothing.
#[allow(clippy::large_enum_variant)]
pub enum Capture {
    /// Asked; the answer has not arrived.
    Capturing,
    /// The agent answered (which may still mean "no stacks, because …").
    Ready(DumpOutcome),
    /// The call itself failed (disconnected, RPC error).
    Failed(String),
}

/// A `Dump` answer, reassembled from its chunks into the report model
/// that `taskscope stack` uses ([`Dump`]: canonical stacks, one standing and
/// one wait per task), so both commands read a dump the same way.
#[derive(Debug, Clone, Default)]
pub struct DumpOutcome {
    /// Per-runtime status of tokio's dump; empty if the agent sent no header.
    pub runtimes: Vec<proto::RuntimeDump>,
    /// How the safe capture went; `None` from an agent older than it.
    pub safe: Option<proto::SafeCapture>,
    /// The whole dump.
    pub dump: Dump,
    /// Index of each task in `dump.tasks`.
    index: HashMap<u64, usize>,
}

/// The stack of one task, or why there is none.
#[derive(Debug)]
pub enum TaskStack<'a> {
    /// A stack, and where it came from.
    Found(&'a proto::Stack, Origin),
    /// Why there is none, as a sentence.
    Missing(String),
}

/// One distinct stack, or one reason for having none, and how many of the
/// dumped tasks share it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shared {
    /// `Stack.id`; 0 for tasks without a stack.
    pub stack_id: u32,
    /// The stack's source, or why these tasks have none.
    pub standing: Standing,
    pub tasks: usize,
}

impl DumpOutcome {
    /// Reassembles the streamed chunks of one `Dump` answer (an answer
    /// without a header, from a broken agent, still gives its tasks).
    pub fn from_chunks(chunks: impl IntoIterator<Item = proto::DumpChunk>) -> Self {
        let mut dump = Dump::default();
        for chunk in chunks {
            if let Some(header) = chunk.header {
                dump.header = header;
            }
            dump.stacks.extend(chunk.stacks.into_iter().map(|s| (s.id, s)));
            dump.tasks.extend(chunk.tasks.into_iter().filter(|t| t.task.is_some()));
        }
        dump.canonicalize();
        let index = dump.tasks.iter().enumerate().filter_map(|(i, t)| Some((t.task.as_ref()?.id, i))).collect();
        DumpOutcome { runtimes: dump.header.runtimes.clone(), safe: dump.header.safe_capture.clone(), dump, index }
    }

    /// The dumped record of task `id`.
    fn dumped(&self, id: u64) -> Option<&proto::DumpedTask> {
        self.index.get(&id).and_then(|&i| self.dump.tasks.get(i))
    }

    /// What task `id` waited on when it was dumped.
    pub fn wait_of(&self, id: u64) -> Option<Wait> {
        let dumped = self.dumped(id)?;
        wait::of_task(dumped.task.as_ref()?, self.dump.standing(dumped), self.dump.stack_of(dumped))
    }

    /// Where the stacks came from (see [`provenance::summary`]); `None` from
    /// an older agent whose runtimes were all dumped.
    pub fn summary(&self) -> Option<Summary> {
        self.dump.summary(DUMP_TIMEOUT)
    }

    /// Why there is no stack at all, when neither source produced any (no
    /// task has one, no runtime was dumped, no wrapped task answered); a
    /// runtime whose tokio dump is off is no failure while wrapped tasks
    /// answered.
    pub fn failure(&self) -> Option<String> {
        if self.runtimes.is_empty() && self.safe.is_none() {
            return Some("the agent sent no dump status".to_string());
        }
        self.summary().filter(|s| s.none).map(|s| s.short())
    }

    /// The stack of task `id`.
    pub fn stack_for(&self, id: u64) -> TaskStack<'_> {
        let Some(d) = self.dumped(id) else {
            return TaskStack::Missing("the task was not in the dump (it has finished)".to_string());
        };
        match (self.dump.standing(d), self.dump.stack_of(d)) {
            (Standing::Stack(origin), Some(stack)) => TaskStack::Found(stack, origin),
            (Standing::Missing(missing), _) => TaskStack::Missing(missing.text(Some(DUMP_TIMEOUT))),
            (Standing::Stack(_), None) => TaskStack::Missing(provenance::Missing::NotDumped.text(None)),
        }
    }

    /// The distinct stacks of the dumped tasks, most shared first, then the
    /// tasks without a stack, one entry per reason.
    pub fn shared(&self) -> Vec<Shared> {
        let mut counts: HashMap<(u32, Standing), usize> = HashMap::new();
        for d in &self.dump.tasks {
            let standing = self.dump.standing(d);
            let stack_id = if matches!(standing, Standing::Stack(_)) { d.stack_id } else { 0 };
            *counts.entry((stack_id, standing)).or_default() += 1;
        }
        let mut out: Vec<Shared> =
            counts.into_iter().map(|((stack_id, standing), tasks)| Shared { stack_id, standing, tasks }).collect();
        out.sort_by_key(|s| (s.stack_id == 0, std::cmp::Reverse(s.tasks), s.stack_id, s.standing));
        out
    }
}

/// The innermost frame of the program's own code in a backtrace: the line a
/// reader wants to see first.
pub fn first_own_frame(backtrace: &proto::Backtrace) -> Option<&proto::Frame> {
    backtrace.frames.iter().rev().find(|f| !f.internal)
}
