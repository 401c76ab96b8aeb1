//! The safe capture as a program embeds it: `init` on a default multi-thread
//! runtime (two workers, whose tokio dumps are off on tokio 1.54), tasks
//! spawned with `taskscope_agent::spawn` and its `Builder`, then `Dump` over
//! the real per-process socket. Wrapped tasks get their stacks, unwrapped
//! ones say why they have none, and a capture changes nothing the agent
//! reports of the tasks: parked times, polls, wakes, live wakers, the leak
//! verdict. Afterwards every task still works.
//!
//! One test function: `init` installs a process-wide subscriber and agent.

mod common;

use std::time::Duration;

use common::{client_in, dump, functions_of, header, info, main_status, socket_dir, task_in, tool_runtime};
use taskscope_proto as proto;

async fn wrapped_waits_for_its_sender(rx: tokio::sync::oneshot::Receiver<u32>) -> u32 {
    rx.await.unwrap_or(0)
}

async fn wrapped_waits_forever() {
    std::future::pending::<()>().await;
}

async fn wrapped_named_ticker() {
    loop {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn plain_waits_for_its_sender(rx: tokio::sync::oneshot::Receiver<u32>) -> u32 {
    rx.await.unwrap_or(0)
}

fn id_of<T>(handle: &tokio::task::JoinHandle<T>) -> u64 {
    handle.id().to_string().parse().expect("numeric id")
}

fn record(chunks: &[proto::DumpChunk], id: u64) -> (proto::Task, proto::StackSource, Vec<String>) {
    let task = task_in(chunks, id).unwrap_or_else(|| panic!("task {id} is in the dump"));
    (task.task.clone().expect("record"), task.stack_source(), functions_of(chunks, task))
}

#[test]
fn wrapped_tasks_are_captured_safely_and_nothing_else_changes() {
    let program = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let tool = tool_runtime();
    let dir = socket_dir("rpc-capture");
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (plain_tx, plain_rx) = tokio::sync::oneshot::channel();
    let (waiting, forever, ticker, plain) = program.block_on(async {
        taskscope_agent::Builder::from_env().socket_dir(&*dir).init();
        let waiting = taskscope_agent::spawn(wrapped_waits_for_its_sender(rx));
        let forever = taskscope_agent::spawn(wrapped_waits_forever());
        let ticker = taskscope_agent::task::Builder::new()
            .name("ticker in rpc_capture")
            .spawn(wrapped_named_ticker())
            .expect("spawn");
        let plain = tokio::spawn(plain_waits_for_its_sender(plain_rx));
        (waiting, forever, ticker, plain)
    });
    let ids = [id_of(&waiting), id_of(&forever), id_of(&ticker), id_of(&plain)];

    tool.block_on(async {
        let mut client = client_in(&dir).await;
        // The tasks park first (their first polls put them on the board).
        tokio::time::sleep(Duration::from_millis(300)).await;
        let info = info(&mut client).await;
        let main = info.runtimes.iter().find(|r| r.name == "main").expect("runtime main");
        assert!(info.wrapped_tasks >= 2, "{info:?}");

        let first = dump(&mut client, 10_000).await;
        if info.tokio_fixes.is_empty() {
            // tokio 1.54 without the fixes: its dump of a 2-worker runtime is off.
            assert!(!main.tokio_dumps, "{main:?}");
            assert!(main.tokio_dumps_reason.contains("TASKSCOPE_TOKIO_DUMPS=1"), "{main:?}");
            let status = main_status(&first);
            assert_eq!(status.status, proto::DumpStatus::Disabled as i32, "{status:?}");
            let (_, source, functions) = record(&first, ids[3]);
            assert_eq!(source, proto::StackSource::NotWrapped);
            assert!(functions.is_empty(), "{functions:?}");
        }
        let safe = header(&first).safe_capture.clone().expect("the header says how the safe capture went");
        assert!(safe.wanted >= 3 && safe.answered == safe.wanted, "{safe:?}");

        let (waiting_rec, source, functions) = record(&first, ids[0]);
        assert_eq!(source, proto::StackSource::Captured);
        assert!(functions.iter().any(|f| f.contains("wrapped_waits_for_its_sender")), "{functions:#?}");
        assert!(functions.iter().any(|f| f.contains("oneshot")), "the leaf is the oneshot: {functions:#?}");
        assert!(!functions.iter().any(|f| f.contains("taskscope_agent") || f.contains("trace_leaf")), "{functions:#?}");
        assert_eq!(waiting_rec.state, proto::TaskState::Idle as i32, "{waiting_rec:?}");
        assert!(!waiting_rec.leaked, "its sender is alive: {waiting_rec:?}");
        assert_eq!(waiting_rec.live_wakers, 1, "the oneshot's waker, not the agent's: {waiting_rec:?}");

        let (forever_rec, source, functions) = record(&first, ids[1]);
        assert_eq!(source, proto::StackSource::Captured, "traced, nothing tokio can trace");
        assert!(functions.is_empty(), "{functions:?}");
        assert!(forever_rec.leaked, "nothing can wake it, the agent's waker aside: {forever_rec:?}");

        let (ticker_rec, source, functions) = record(&first, ids[2]);
        assert_eq!(ticker_rec.name, "ticker in rpc_capture");
        assert_eq!(source, proto::StackSource::Captured);
        assert!(functions.iter().any(|f| f.contains("wrapped_named_ticker")), "{functions:#?}");

        // More captures: what the agent says of the parked tasks stays as it was.
        for _ in 0..5 {
            let again = dump(&mut client, 10_000).await;
            for id in [ids[0], ids[1]] {
                let (before, _) = (record(&first, id).0, ());
                let (after, source, _) = record(&again, id);
                assert_eq!(source, proto::StackSource::Captured);
                assert_eq!(after.polls, before.polls, "a capture's polls are not the program's: {after:?}");
                assert_eq!(after.last_poll_ended_ns, before.last_poll_ended_ns, "parked time goes on: {after:?}");
                assert_eq!(after.wakes, before.wakes, "a capture's wakes are not the program's: {after:?}");
                assert_eq!(after.live_wakers, before.live_wakers, "before {before:?}\nafter {after:?}");
                assert_eq!(after.leaked, before.leaked);
                assert_eq!(after.state, proto::TaskState::Idle as i32, "{after:?}");
            }
        }
    });

    // Every task still works after the captures.
    tx.send(7).expect("the wrapped task still waits");
    plain_tx.send(8).expect("the plain task still waits");
    let (a, b) = program.block_on(async { (waiting.await, plain.await) });
    assert_eq!((a.ok(), b.ok()), (Some(7), Some(8)));
    assert!(!forever.is_finished() && !ticker.is_finished());
    program.shutdown_timeout(Duration::from_secs(5));
}
