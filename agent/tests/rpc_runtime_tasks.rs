//! A program that calls `init()` before it builds a multi-thread runtime (or
//! builds a second one later): the runtime's worker threads are blocking
//! tasks that tokio spawns for itself. Over the real socket they come back
//! marked `runtime_internal`, outside the state counts, and the future the
//! program blocks on is idle but never called leaked (tokio reports nothing
//! of the waker a blocking thread polls it with).
//!
//! One test function: `init` installs a process-wide subscriber and agent.

mod common;

use std::time::{Duration, Instant};

use common::{client_in, dump, header, socket_dir, tool_runtime};
use taskscope_proto as proto;

#[test]
fn runtime_workers_are_marked_and_block_on_is_not_leaked() {
    let dir = socket_dir("rpc-runtime-tasks");
    taskscope_agent::Builder::from_env().socket_dir(&*dir).init();
    let program = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    taskscope_agent::register_runtime("second", program.handle());
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let blocker = std::thread::spawn({
        let handle = program.handle().clone();
        move || {
            handle.block_on(async {
                tokio::spawn(std::future::pending::<()>());
                let _ = released.await;
            })
        }
    });

    let tool = tool_runtime();
    tool.block_on(async {
        let mut client = client_in(&dir).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        let chunks = loop {
            let chunks = dump(&mut client, 2_000).await;
            // Both parked: the future blocked on, and the task it spawned
            // (which a worker may pick up after the future parks).
            let idle: Vec<&proto::Task> = chunks
                .iter()
                .flat_map(|c| &c.tasks)
                .filter_map(|t| t.task.as_ref())
                .filter(|t| t.state == proto::TaskState::Idle as i32)
                .collect();
            let parked = idle.iter().any(|t| t.kind == "block_on")
                && idle.iter().any(|t| {
                    t.kind == "task" && t.location.as_ref().is_some_and(|l| l.file.ends_with("rpc_runtime_tasks.rs"))
                });
            if parked || Instant::now() > deadline {
                break chunks;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let tasks: Vec<&proto::Task> = chunks.iter().flat_map(|c| &c.tasks).filter_map(|t| t.task.as_ref()).collect();
        let block_on = tasks.iter().find(|t| t.kind == "block_on").expect("the block_on future is recorded");
        assert_eq!(block_on.state, proto::TaskState::Idle as i32, "{block_on:?}");
        assert!(!block_on.leaked, "{block_on:?}");
        let ours = |t: &&&proto::Task| t.location.as_ref().is_some_and(|l| l.file.ends_with("rpc_runtime_tasks.rs"));
        let pending = tasks.iter().filter(ours).find(|t| t.kind == "task").expect("the task on pending()");
        assert!(pending.leaked, "a task on pending() is still leaked: {pending:?}");

        let workers: Vec<_> = tasks.iter().filter(|t| t.runtime_internal).collect();
        assert_eq!(workers.len(), 2, "one per worker thread: {tasks:?}");
        assert!(workers.iter().all(|w| w.kind == "blocking"), "{workers:?}");
        // No opt-in, tokio without the fixes: the agent declines tokio's
        // dump and says why and how to turn it on.
        let second = header(&chunks).runtimes.iter().find(|r| r.runtime == "second").expect("runtime second");
        assert_eq!(second.status, proto::DumpStatus::Disabled as i32, "{second:?}");
        assert!(
            second.detail.contains("tokio-rs/tokio#8370") && second.detail.contains("TASKSCOPE_TOKIO_DUMPS=1"),
            "{second:?}"
        );
        let counts = header(&chunks).counts.expect("counts");
        assert_eq!(counts.runtime_internal, 2, "{counts:?}");
        // The client's own connection tasks are in this process too.
        let live = tasks.iter().filter(|t| !t.runtime_internal && t.state != proto::TaskState::Done as i32).count();
        assert_eq!((counts.running + counts.scheduled + counts.idle) as usize, live, "{counts:?}");
        assert_eq!(counts.leaked as usize, tasks.iter().filter(|t| t.leaked).count(), "{counts:?}");
    });
    let _ = release.send(());
    blocker.join().expect("block_on returns");
}
