//! Splitting a dump answer into stream messages.
//!
//! A program may have 100k tasks, so the answer is streamed: the header
//! first, alone, so a client can show the per-runtime status at once; then
//! chunks of at most [`CHUNK_TASKS`] tasks and about [`CHUNK_BYTES`] bytes.
//! Thousands of tasks parked at the same place share one stack, so each
//! distinct stack is sent once, in the first chunk that refers to it.
//! Chunks are built lazily as the stream is polled, so a slow client holds
//! back the work rather than a pile of encoded messages.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use prost::Message;
use taskscope_proto as proto;

use crate::dump::{source_of, Capture, Stack};
use crate::state::Snapshot;

/// Most tasks per chunk.
pub(super) const CHUNK_TASKS: usize = 2000;

/// Size a chunk stops growing at (a default client accepts 4 MiB).
pub(super) const CHUNK_BYTES: usize = 2 << 20;

/// The messages of one `Dump` answer, in order.
pub(crate) struct DumpChunks {
    header: Option<proto::DumpHeader>,
    tasks: std::iter::Peekable<std::vec::IntoIter<proto::Task>>,
    traces: HashMap<u64, Stack>,
    /// Where stacks came from (see [`source_of`]).
    sources: HashMap<u64, proto::StackSource>,
    tokio_dumped: bool,
    /// Stacks already sent, by the address of their shared allocation.
    sent: HashMap<usize, u32>,
}

impl DumpChunks {
    /// `task_ids` empty means every live task; otherwise exactly those tasks
    /// the snapshot knows, completed ones included.
    pub(crate) fn new(snapshot: Snapshot, capture: Capture, task_ids: &[u64]) -> Self {
        let tokio_dumped = capture.tokio_dumped();
        let header = proto::DumpHeader {
            now_ns: snapshot.now_ns,
            runtimes: capture.runtimes,
            counts: Some(snapshot.counts),
            dropped_events: snapshot.dropped_events,
            safe_capture: Some(capture.safe.clone()),
        };
        let wanted: HashSet<u64> = task_ids.iter().copied().collect();
        let tasks: Vec<proto::Task> = snapshot
            .tasks
            .into_iter()
            .filter(|task| {
                if wanted.is_empty() {
                    task.state != proto::TaskState::Done as i32
                } else {
                    wanted.contains(&task.id)
                }
            })
            .collect();
        DumpChunks {
            header: Some(header),
            tasks: tasks.into_iter().peekable(),
            traces: capture.traces,
            sources: capture.sources,
            tokio_dumped,
            sent: HashMap::new(),
        }
    }
}

fn key(stack: &Stack) -> usize {
    Arc::as_ptr(stack) as usize
}

fn to_message(id: u32, stack: &Stack) -> proto::Stack {
    proto::Stack { id, backtraces: stack.iter().map(|frames| proto::Backtrace { frames: frames.clone() }).collect() }
}

impl Iterator for DumpChunks {
    type Item = proto::DumpChunk;

    fn next(&mut self) -> Option<proto::DumpChunk> {
        if let Some(header) = self.header.take() {
            return Some(proto::DumpChunk { header: Some(header), ..Default::default() });
        }
        let mut chunk = proto::DumpChunk::default();
        let mut bytes = 0;
        while chunk.tasks.len() < CHUNK_TASKS {
            let Some(task) = self.tasks.peek() else { break };
            let (stack_id, new_stack) = match self.traces.get(&task.id) {
                None => (0, None),
                Some(stack) => match self.sent.get(&key(stack)) {
                    Some(&id) => (id, None),
                    None => {
                        let id = u32::try_from(self.sent.len() + 1).unwrap_or(u32::MAX);
                        (id, Some(to_message(id, stack)))
                    }
                },
            };
            let size = task.encoded_len() + new_stack.as_ref().map_or(0, Message::encoded_len) + 16;
            if !chunk.tasks.is_empty() && bytes + size > CHUNK_BYTES {
                break;
            }
            let Some(task) = self.tasks.next() else { break };
            if let Some(stack) = new_stack {
                if let Some(shared) = self.traces.get(&task.id) {
                    self.sent.insert(key(shared), stack.id);
                }
                chunk.stacks.push(stack);
            }
            bytes += size;
            let stack_source = source_of(&self.sources, self.tokio_dumped, task.id) as i32;
            chunk.tasks.push(proto::DumpedTask { task: Some(task), stack_id, stack_source });
        }
        (!chunk.tasks.is_empty()).then_some(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: u64, state: proto::TaskState) -> proto::Task {
        proto::Task { id, state: state as i32, ..Default::default() }
    }

    fn stack(function: &str, padding: usize) -> Stack {
        let frame = proto::Frame { function: format!("{function}{}", "x".repeat(padding)), ..Default::default() };
        Arc::new(vec![vec![frame]])
    }

    fn snapshot(tasks: Vec<proto::Task>) -> Snapshot {
        Snapshot { now_ns: 7, tasks, counts: Default::default(), dropped_events: 3 }
    }

    #[test]
    fn header_first_then_tasks_with_stacks_interned() {
        let parked = stack("app::wait", 0);
        let mut traces = HashMap::new();
        for id in 1..=4500 {
            traces.insert(id, Arc::clone(&parked));
        }
        traces.insert(4501, stack("app::other", 0));
        let mut tasks: Vec<_> = (1..=4501).map(|id| task(id, proto::TaskState::Idle)).collect();
        tasks.push(task(9999, proto::TaskState::Idle)); // no stack captured
        tasks.push(task(10_000, proto::TaskState::Done)); // not live
        let capture = Capture { runtimes: vec![proto::RuntimeDump::default()], traces, ..Default::default() };
        let chunks: Vec<_> = DumpChunks::new(snapshot(tasks), capture, &[]).collect();

        assert!(chunks[0].header.as_ref().is_some_and(|h| h.now_ns == 7 && h.dropped_events == 3));
        assert!(chunks[0].tasks.is_empty() && chunks[0].stacks.is_empty());
        assert_eq!(chunks.len(), 4);
        assert!(chunks[1..].iter().all(|c| c.header.is_none() && c.tasks.len() <= CHUNK_TASKS));
        let all: Vec<_> = chunks.iter().flat_map(|c| &c.tasks).collect();
        assert_eq!(all.len(), 4502);
        let stacks: Vec<_> = chunks.iter().flat_map(|c| &c.stacks).collect();
        assert_eq!(stacks.iter().map(|s| s.id).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(chunks[1].stacks.len(), 1);
        assert!(all[..4500].iter().all(|t| t.stack_id == 1));
        assert_eq!(all[4500].stack_id, 2);
        assert_eq!(all[4501].stack_id, 0);
    }

    #[test]
    fn chunks_stay_under_the_byte_budget() {
        let traces: HashMap<u64, Stack> = (1..=40).map(|id| (id, stack("app::big", 200_000))).collect();
        let tasks = (1..=40).map(|id| task(id, proto::TaskState::Idle)).collect();
        let capture = Capture { runtimes: vec![], traces, ..Default::default() };
        let chunks: Vec<_> = DumpChunks::new(snapshot(tasks), capture, &[]).collect();
        assert!(chunks.len() > 3);
        for chunk in &chunks {
            assert!(chunk.encoded_len() <= CHUNK_BYTES + 1024, "{}", chunk.encoded_len());
            for dumped in &chunk.tasks {
                assert!(chunk.stacks.iter().any(|s| s.id == dumped.stack_id), "a stack travels with its first task");
            }
        }
    }

    #[test]
    fn selected_tasks_include_completed_ones() {
        let tasks =
            vec![task(1, proto::TaskState::Idle), task(2, proto::TaskState::Done), task(3, proto::TaskState::Idle)];
        let capture = Capture::default();
        let chunks: Vec<_> = DumpChunks::new(snapshot(tasks), capture, &[2, 3, 99]).collect();
        let ids: Vec<u64> =
            chunks.iter().flat_map(|c| &c.tasks).filter_map(|t| t.task.as_ref()).map(|t| t.id).collect();
        assert_eq!(ids, [2, 3]);
        assert!(chunks[0].header.is_some());
    }
}
