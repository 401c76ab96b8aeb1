//! The lean mode as a program embeds it: `build_runtime` (runtime hooks, no
//! subscriber), then `GetInfo` and `Dump` over the real per-process socket.
//! Runs with and without the agent's `tracing` feature.
//!
//! One test function: the agent is process-wide.

mod common;

use std::time::Duration;

use common::{client_in, dump, dump_of, functions_of, info, main_status, socket_dir, task_in, tool_runtime};
use taskscope_proto as proto;

async fn parked_in_rpc_lean_test(rx: tokio::sync::oneshot::Receiver<()>) {
    let _ = rx.await;
}

#[test]
fn hooks_mode_serves_lifecycles_and_stacks() {
    let dir = socket_dir("rpc-lean");
    // Two workers, as `#[tokio::main]` builds on this machine: tokio 1.54's
    // own dump of it is off, and the wrapped task's stack is captured safely.
    let program = taskscope_agent::Builder::from_env()
        .socket_dir(&*dir)
        .build_runtime(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all())
        .expect("runtime");
    let tool = tool_runtime();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let parked = {
        let _inside = program.enter();
        taskscope_agent::task::Builder::new().name("lean parked").spawn(parked_in_rpc_lean_test(rx)).expect("spawn")
    };
    let parked_id: u64 = parked.id().to_string().parse().expect("numeric id");
    let (_plain_tx, plain_rx) = tokio::sync::oneshot::channel();
    let plain = program.spawn(parked_in_rpc_lean_test(plain_rx));
    let plain_id: u64 = plain.id().to_string().parse().expect("numeric id");
    let finished = program.spawn(async {});
    let finished_id: u64 = finished.id().to_string().parse().expect("numeric id");

    tool.block_on(async {
        let mut client = client_in(&dir).await;
        let info = info(&mut client).await;
        assert_eq!(info.mode, "hooks");
        assert_eq!(info.time_resolution_ns, 10_000_000, "times come from the 10 ms clock by default");
        assert!(info.runtimes.iter().any(|r| r.name == "main" && r.workers == 2), "{:?}", info.runtimes);
        assert!(info.dumps_supported, "{}", info.dumps_unsupported_reason);
        tokio::time::sleep(Duration::from_millis(200)).await;

        let chunks = dump(&mut client, 10_000).await;
        if info.tokio_fixes.is_empty() {
            assert_eq!(main_status(&chunks).status, proto::DumpStatus::Disabled as i32, "{:?}", main_status(&chunks));
            let plain = task_in(&chunks, plain_id).expect("the plain task is in the dump");
            assert_eq!(plain.stack_source(), proto::StackSource::NotWrapped, "{plain:?}");
        }
        let task = task_in(&chunks, parked_id).expect("the parked task is in the dump");
        assert_eq!(task.stack_source(), proto::StackSource::Captured, "{task:?}");
        let record = task.task.as_ref().expect("lifecycle record");
        assert_eq!(record.name, "lean parked", "the lean mode shows the names the agent's builder gives");
        assert_eq!(record.state, proto::TaskState::Idle as i32, "{record:?}");
        assert!(!record.leaked, "hooks never call a task leaked");
        assert_eq!(record.polls, 1, "{record:?}");
        let location = record.location.as_ref().expect("spawn location");
        assert!(location.file.ends_with("rpc_lean.rs") && location.line > 0, "{location:?}");
        let functions = functions_of(&chunks, task);
        assert!(functions.iter().any(|f| f.contains("parked_in_rpc_lean_test")), "{functions:#?}");
        // Completed tasks are kept (for a while) and sent when asked for by id.
        let chunks = dump_of(&mut client, vec![finished_id], 10_000).await;
        let done = task_in(&chunks, finished_id).and_then(|t| t.task.as_ref()).expect("the finished task is kept");
        assert_eq!(done.state, proto::TaskState::Done as i32);

        // The capture woke the task, polled it traced, and it was polled once
        // more for real; none of those polls counts, so its parked time goes
        // on from its own last poll.
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let again = dump(&mut client, 10_000).await;
            let record2 = task_in(&again, parked_id).and_then(|t| t.task.as_ref()).expect("still there");
            assert_eq!(record2.polls, 1, "a capture's polls are not the program's: {record2:?}");
            assert_eq!(record2.last_poll_ended_ns, record.last_poll_ended_ns);
            assert_eq!(record2.state, proto::TaskState::Idle as i32, "{record2:?}");
        }

        // A real wake is a real poll. Not straight after a capture, though:
        // the capture's re-poll (woken by the wake tokio deferred in the
        // traced poll) is not counted, and a real wake that comes before it
        // has run is served by that same poll (tokio runs a task woken twice
        // once), so it would not count either. The re-poll follows the
        // traced poll at the worker's next turn; this leaves it ample time.
        tokio::time::sleep(Duration::from_millis(200)).await;
        tx.send(()).expect("the task waits");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after = dump_of(&mut client, vec![parked_id], 10_000).await;
        let record3 = task_in(&after, parked_id).and_then(|t| t.task.as_ref()).expect("kept while retained");
        assert_eq!(record3.state, proto::TaskState::Done as i32, "{record3:?}");
        assert_eq!(record3.polls, 2, "{record3:?}");
    });
    program.shutdown_background();
}
