//! Two registered runtimes in the full mode, over the real socket: `Dump`
//! and `Watch` give each task the index of its own runtime in
//! `ProcessInfo.runtimes` (`Task.runtime`), whichever way it was spawned
//! there (through the other runtime's `Handle`, from one of its own tasks,
//! under `Handle::enter`), and an index out of range for a task of a runtime
//! nobody registered. Dumps by the safe capture (the default on tokio
//! 1.54.1) add nothing to the program's counts.
//!
//! The client runs on a thread whose tracing dispatcher is none, so that its
//! own connection tasks are not recorded: the counts are the program's
//! alone. One test function: `init` installs a process-wide subscriber.

mod common;

use std::collections::HashMap;

use common::{client_in, counts, dump, dump_when_idle, info, socket_dir, task_in, tool_runtime};
use taskscope_proto as proto;
use tokio::runtime::{Builder, Runtime};
use tokio::sync::oneshot;

fn multi_thread() -> Runtime {
    Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

fn id_of<T>(handle: &tokio::task::JoinHandle<T>) -> u64 {
    handle.id().to_string().parse().expect("numeric id")
}

async fn parked_on_its_runtime(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

#[test]
fn tasks_carry_their_runtimes_index() {
    let dir = socket_dir("rpc-runtimes");
    let main = multi_thread();
    let io = multi_thread();
    let stray = multi_thread();
    // Kept alive to the end: every task stays parked.
    let mut keep = Vec::new();
    let mut parked = || {
        let (tx, rx) = oneshot::channel::<()>();
        keep.push(tx);
        parked_on_its_runtime(rx)
    };
    // Task id -> the name of the runtime it is on (None: not registered).
    let mut expected: HashMap<u64, Option<&str>> = HashMap::new();
    main.block_on(async {
        taskscope_agent::Builder::from_env().socket_dir(&*dir).init();
        taskscope_agent::register_runtime("io", io.handle());
        expected.insert(id_of(&tokio::spawn(parked())), Some("main"));
        // Through io's handle, from a task of main: io's.
        expected.insert(id_of(&io.spawn(parked())), Some("io"));
        // From a task of io, by plain `tokio::spawn`.
        let (child, grandchild) = (parked(), parked());
        let main_handle = tokio::runtime::Handle::current();
        let ids = io
            .spawn(async move {
                let child = tokio::spawn(child);
                // And back onto main through its handle, from io.
                let back = main_handle.spawn(grandchild);
                (id_of(&child), id_of(&back))
            })
            .await
            .expect("io's spawner");
        expected.insert(ids.0, Some("io"));
        expected.insert(ids.1, Some("main"));
        {
            let _inside = io.enter();
            expected.insert(id_of(&tokio::spawn(parked())), Some("io"));
        }
        expected.insert(id_of(&stray.spawn(parked())), None);
        expected.insert(id_of(&taskscope_agent::spawn(parked())), Some("main"));
    });

    let none = tracing_core::Dispatch::none();
    let tool = tool_runtime();
    tracing_core::dispatcher::with_default(&none, || {
        tool.block_on(async {
            let mut client = client_in(&dir).await;
            let info = info(&mut client).await;
            let names: Vec<&str> = info.runtimes.iter().map(|r| r.name.as_str()).collect();
            assert_eq!(names, ["main", "io"], "{:?}", info.runtimes);
            let index = |name: Option<&str>| name.and_then(|n| names.iter().position(|&r| r == n));

            // Every task parked: each has had its first poll.
            let chunks = dump_when_idle(&mut client, expected.keys().copied()).await;
            for (id, runtime) in &expected {
                let task = task_in(&chunks, *id)
                    .and_then(|t| t.task.as_ref())
                    .unwrap_or_else(|| panic!("task {id} in the dump"));
                assert_eq!(task.state, proto::TaskState::Idle as i32, "{task:?}");
                assert_eq!(
                    index(*runtime),
                    usize::try_from(task.runtime).ok().filter(|&i| i < names.len()),
                    "task {id} is on {runtime:?}: {task:?}"
                );
            }

            // The same from Watch's first snapshot.
            let mut updates =
                client.watch(proto::WatchRequest { interval_ms: 100 }).await.expect("Watch answers").into_inner();
            let mut watched = HashMap::new();
            while let Some(update) = updates.message().await.expect("a well-formed stream") {
                watched.extend(update.tasks.into_iter().map(|t| (t.id, t.runtime)));
                if update.complete {
                    break;
                }
            }
            for (id, runtime) in &expected {
                let got = watched.get(id).unwrap_or_else(|| panic!("task {id} in the snapshot"));
                assert_eq!(index(*runtime), usize::try_from(*got).ok().filter(|&i| i < names.len()), "task {id}");
            }
            drop(updates);

            // Dumps (the safe capture here) spawn no program task.
            let before = counts(&mut client).await;
            assert_eq!(before.spawned_total, expected.len() as u64 + 1, "the tasks, and io's spawner: {before:?}");
            for _ in 0..4 {
                let chunks = dump(&mut client, 10_000).await;
                assert!(common::header(&chunks)
                    .runtimes
                    .iter()
                    .all(|r| r.status != proto::DumpStatus::TimedOut as i32));
            }
            let after = counts(&mut client).await;
            assert_eq!(
                (after.spawned_total, after.completed_total, after.idle),
                (before.spawned_total, before.completed_total, before.idle),
                "before {before:?}, after {after:?}"
            );
        })
    });
    drop(keep);
    for rt in [main, io, stray] {
        rt.shutdown_background();
    }
}
