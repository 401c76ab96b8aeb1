//! tokio's own dump, asked for over the real socket, of three multi-thread
//! runtimes and a current-thread one (opted into, as
//! `TASKSCOPE_TOKIO_DUMPS=1` does): the agent's own work for a dump is no
//! program task. tokio 1.54 runs each multi-thread dump on a thread of its
//! own under a `block_on`, which the full mode used to record: every dump
//! added one to `spawned_total` and listed a finished `block_on` task
//! located in tokio's `handle.rs`. A current-thread dump needs a task spawned
//! on the dumped runtime (from the agent's thread, so not recorded).
//!
//! tokio 1.54.1 without the fixes of `patches/tokio` may wedge a worker on a
//! dump that follows another (see `dump::policy`): the first request, one
//! dump of each runtime, must succeed; the later ones may find a runtime
//! harmed or wedged, and must add nothing to the counts all the same. Every
//! runtime is shut down in the background, since a wedged worker never lets
//! a runtime's drop return.
//!
//! The client runs on a thread whose tracing dispatcher is none, so that its
//! own connection tasks are not recorded. One test function: `init`
//! installs a process-wide subscriber.

mod common;

use std::time::{Duration, Instant};

use common::{client_in, counts, dump, header, socket_dir, tool_runtime};
use taskscope_proto as proto;
use tokio::runtime::{Builder, Runtime};

async fn parked_for_the_counts(rx: tokio::sync::oneshot::Receiver<()>) {
    let _ = rx.await;
}

/// A runtime shut down in the background when dropped, also by a panic.
struct Background(Option<Runtime>);

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl std::ops::Deref for Background {
    type Target = Runtime;
    fn deref(&self) -> &Runtime {
        self.0.as_ref().expect("a runtime until dropped")
    }
}

fn multi_thread() -> Background {
    Background(Some(Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")))
}

#[test]
fn dumps_add_nothing_to_the_programs_counts() {
    let dir = socket_dir("rpc-dump-counts");
    let (main, second, third) = (multi_thread(), multi_thread(), multi_thread());
    let current = Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut keep = Vec::new();
    let mut parked = || {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        keep.push(tx);
        parked_for_the_counts(rx)
    };
    main.block_on(async {
        taskscope_agent::Builder::from_env().socket_dir(&*dir).tokio_dumps(true).init();
        taskscope_agent::register_runtime("second", second.handle());
        taskscope_agent::register_runtime("third", third.handle());
        taskscope_agent::register_runtime("current", current.handle());
    });
    for rt in [&main, &second, &third] {
        rt.spawn(parked());
    }
    let parked_current = parked();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let driver = std::thread::spawn(move || {
        current.block_on(async {
            tokio::spawn(parked_current);
            let _ = stopped.await;
        })
    });

    let none = tracing_core::Dispatch::none();
    let tool = tool_runtime();
    tracing_core::dispatcher::with_default(&none, || {
        tool.block_on(async {
            let mut client = client_in(&dir).await;
            // The four parked tasks and the current runtime's `block_on` future.
            let deadline = Instant::now() + Duration::from_secs(20);
            let before = loop {
                let counts = counts(&mut client).await;
                if counts.idle == 5 || Instant::now() > deadline {
                    break counts;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            assert_eq!((before.spawned_total, before.idle, before.completed_total), (5, 5, 0), "{before:?}");

            let mut dumped = 0;
            for round in 0..3 {
                let chunks = dump(&mut client, 3_000).await;
                for runtime in &header(&chunks).runtimes {
                    if round == 0 {
                        assert_eq!(runtime.status, proto::DumpStatus::Ok as i32, "{runtime:?}");
                    }
                    dumped += usize::from(runtime.status == proto::DumpStatus::Ok as i32);
                }
                let tokios = chunks.iter().flat_map(|c| &c.tasks).filter_map(|t| t.task.as_ref()).find(|t| {
                    t.kind == "block_on" && t.location.as_ref().is_some_and(|l| l.file.contains("/src/runtime/"))
                });
                assert!(tokios.is_none(), "round {round}: tokio's own block_on is listed: {tokios:?}");
                let now = counts(&mut client).await;
                assert_eq!(
                    (now.spawned_total, now.completed_total, now.done),
                    (before.spawned_total, before.completed_total, before.done),
                    "round {round}: before {before:?}, after {now:?}"
                );
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            assert!(dumped >= 4, "{dumped} dumps taken");
        })
    });
    let _ = stop.send(());
    driver.join().expect("the current runtime's driver");
    drop(keep);
}
