//! Two runtimes built through the agent in the lean mode, over the real
//! socket: `Dump` and `Watch` give each task the index of its own runtime in
//! `ProcessInfo.runtimes` (`Task.runtime`): the spawn hook is the owning
//! runtime's, so it holds for a task spawned through another runtime's
//! `Handle` too. A hooked runtime nobody registered gets an index out of
//! range. Runs with and without the agent's `tracing` feature.
//!
//! One test function: the agent is process-wide.

mod common;

use std::collections::HashMap;

use common::{client_in, dump_when_idle, info, socket_dir, task_in, tool_runtime};
use taskscope_proto as proto;
use tokio::runtime::Builder;
use tokio::sync::oneshot;

fn id_of<T>(handle: &tokio::task::JoinHandle<T>) -> u64 {
    handle.id().to_string().parse().expect("numeric id")
}

async fn parked_on_its_lean_runtime(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

#[test]
fn lean_tasks_carry_their_runtimes_index() {
    let dir = socket_dir("rpc-runtimes-lean");
    let agent = || taskscope_agent::Builder::from_env().socket_dir(&*dir);
    let main = agent().build_runtime(Builder::new_multi_thread().worker_threads(2).enable_all()).expect("runtime");
    let second = agent().build_runtime(Builder::new_multi_thread().worker_threads(1).enable_all()).expect("runtime");
    // Hooked, never registered.
    let mut builder = Builder::new_multi_thread();
    builder.worker_threads(1).enable_all();
    let stray = taskscope_agent::hooks(&mut builder).build().expect("runtime");

    let mut keep = Vec::new();
    let mut parked = || {
        let (tx, rx) = oneshot::channel::<()>();
        keep.push(tx);
        parked_on_its_lean_runtime(rx)
    };
    let mut expected: HashMap<u64, Option<&str>> = HashMap::new();
    expected.insert(id_of(&main.spawn(parked())), Some("main"));
    expected.insert(id_of(&second.spawn(parked())), Some("runtime-2"));
    expected.insert(id_of(&stray.spawn(parked())), None);
    // From a task of main, through second's handle, and by `tokio::spawn`.
    let (there, here) = (parked(), parked());
    let second_handle = second.handle().clone();
    let ids = main
        .block_on(main.spawn(async move { (id_of(&second_handle.spawn(there)), id_of(&tokio::spawn(here))) }))
        .expect("main's spawner");
    expected.insert(ids.0, Some("runtime-2"));
    expected.insert(ids.1, Some("main"));

    let tool = tool_runtime();
    tool.block_on(async {
        let mut client = client_in(&dir).await;
        let info = info(&mut client).await;
        assert_eq!(info.mode, "hooks");
        let names: Vec<&str> = info.runtimes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["main", "runtime-2"], "{:?}", info.runtimes);
        let index = |name: Option<&str>| name.and_then(|n| names.iter().position(|&r| r == n));
        let known = |runtime: u32| usize::try_from(runtime).ok().filter(|&i| i < names.len());

        let chunks = dump_when_idle(&mut client, expected.keys().copied()).await;
        for (id, runtime) in &expected {
            let task =
                task_in(&chunks, *id).and_then(|t| t.task.as_ref()).unwrap_or_else(|| panic!("task {id} in the dump"));
            assert_eq!(task.state, proto::TaskState::Idle as i32, "{task:?}");
            assert_eq!(index(*runtime), known(task.runtime), "task {id} is on {runtime:?}: {task:?}");
        }

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
            assert_eq!(index(*runtime), known(*got), "task {id}");
        }
    });
    drop(keep);
    for rt in [main, second, stray] {
        rt.shutdown_background();
    }
}
