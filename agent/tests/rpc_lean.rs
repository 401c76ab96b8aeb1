//! The lean mode as a program embeds it: `build_runtime` (runtime hooks, no
//! subscriber), then `GetInfo` and `Dump` over the real per-process socket.
//! Runs with and without the agent's `tracing` feature.
//!
//! One test function: the agent is process-wide.

mod common;

use std::time::Duration;

use common::{connect, dump, dump_of, functions_of, main_status, socket_dir, socket_in, task_in};
use taskscope_proto as proto;

async fn parked_in_rpc_lean_test(rx: tokio::sync::oneshot::Receiver<()>) {
    let _ = rx.await;
}

#[test]
fn hooks_mode_serves_lifecycles_and_stacks() {
    let dir = socket_dir("rpc-lean");
    // One worker: multi-thread runtimes with one worker are dumped by default.
    let program = taskscope_agent::Builder::from_env()
        .socket_dir(&*dir)
        .build_runtime(tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all())
        .expect("runtime");
    let tool = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (tx, rx) = tokio::sync::oneshot::channel();
    let parked = program.spawn(parked_in_rpc_lean_test(rx));
    let parked_id: u64 = parked.id().to_string().parse().expect("numeric id");
    let finished = program.spawn(async {});
    let finished_id: u64 = finished.id().to_string().parse().expect("numeric id");

    tool.block_on(async {
        let mut client = connect(socket_in(&dir)).await;
        let info = client.get_info(proto::InfoRequest {}).await.expect("GetInfo answers").into_inner();
        assert_eq!(info.mode, "hooks");
        assert!(info.runtimes.iter().any(|r| r.name == "main" && r.workers == 1), "{:?}", info.runtimes);
        assert!(info.dumps_supported, "{}", info.dumps_unsupported_reason);
        tokio::time::sleep(Duration::from_millis(200)).await;

        let chunks = dump(&mut client, 10_000).await;
        assert_eq!(main_status(&chunks).status, proto::DumpStatus::Ok as i32, "{:?}", main_status(&chunks));
        let task = task_in(&chunks, parked_id).expect("the parked task is in the dump");
        let record = task.task.as_ref().expect("lifecycle record");
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

        // The dump polled the task in tracing mode and woke it again; neither
        // poll counts, so its parked time goes on from its own last poll.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let again = dump(&mut client, 10_000).await;
        let record2 = task_in(&again, parked_id).and_then(|t| t.task.as_ref()).expect("still there");
        assert_eq!(record2.polls, 1, "a dump's polls are not the program's: {record2:?}");
        assert_eq!(record2.last_poll_ended_ns, record.last_poll_ended_ns);

        // A real wake is a real poll.
        tx.send(()).expect("the task waits");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after = dump_of(&mut client, vec![parked_id], 10_000).await;
        let record3 = task_in(&after, parked_id).and_then(|t| t.task.as_ref()).expect("kept while retained");
        assert_eq!(record3.state, proto::TaskState::Done as i32, "{record3:?}");
        assert_eq!(record3.polls, 2, "{record3:?}");
    });
    program.shutdown_background();
}
