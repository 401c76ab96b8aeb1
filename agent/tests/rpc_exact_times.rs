//! `exact_times(true)` (`TASKSCOPE_EXACT_TIMES=1`): every recorded time is
//! the counter's own, so a single 2 ms poll shows 2 ms of busy time, where
//! the 10 ms clock would show 0 (nine times in ten) or 10 ms. Its own test
//! binary: the clock is process-wide and the first agent decides.

mod common;

use std::time::Duration;

use common::{client_in, dump, info, socket_dir, task_in, tool_runtime};
use taskscope_proto as proto;

const POLL: Duration = Duration::from_millis(2);

/// Busy for [`POLL`] in its one poll, then parked.
async fn busy_once_then_parked(rx: tokio::sync::oneshot::Receiver<()>) {
    std::thread::sleep(POLL);
    let _ = rx.await;
}

#[test]
fn exact_times_record_a_short_poll_as_it_was() {
    let dir = socket_dir("rpc-exact");
    let program = taskscope_agent::Builder::from_env()
        .socket_dir(&*dir)
        .exact_times(true)
        .build_runtime(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all())
        .expect("runtime");
    let tool = tool_runtime();
    // Three tasks: the 10 ms clock would show all three at 2 ms or more one
    // time in a thousand, so this test cannot pass on it by luck.
    let mut senders = Vec::new();
    let ids: Vec<u64> = (0..3)
        .map(|_| {
            let (tx, rx) = tokio::sync::oneshot::channel();
            senders.push(tx);
            let task = program.spawn(busy_once_then_parked(rx));
            task.id().to_string().parse().expect("numeric id")
        })
        .collect();

    tool.block_on(async {
        let mut client = client_in(&dir).await;
        let info = info(&mut client).await;
        assert_eq!(info.time_resolution_ns, 0, "exact times say so");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let chunks = dump(&mut client, 10_000).await;
            let records: Vec<_> = ids.iter().filter_map(|&id| task_in(&chunks, id)?.task.clone()).collect();
            let parked = records.len() == ids.len()
                && records.iter().all(|r| r.polls == 1 && r.state == proto::TaskState::Idle as i32);
            if parked {
                for record in &records {
                    assert!(
                        record.busy_ns >= POLL.as_nanos() as u64,
                        "a {POLL:?} poll shows as {} ns: {record:?}",
                        record.busy_ns
                    );
                    assert!(record.last_poll_ended_ns > record.last_poll_started_ns, "{record:?}");
                }
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "the tasks never all parked after one poll: {records:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    drop(senders);
}
