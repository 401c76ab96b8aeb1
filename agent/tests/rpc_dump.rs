//! The whole agent, as a program embeds it: `init` on a real runtime, then
//! `GetInfo` and `Dump` over the real per-process socket, including a dump
//! of a runtime whose worker is blocked.
//!
//! One test function: `init` installs a process-wide subscriber and agent.

mod common;

use std::time::{Duration, Instant};

use common::{client_in, dump, info, main_status, socket_dir, tool_runtime};
use taskscope_proto as proto;

async fn waits_for_a_message() {
    std::future::pending::<()>().await;
}

async fn sleeps_in_rpc_dump_test() {
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

#[test]
fn info_and_dumps_over_the_socket() {
    // The program's runtime, and a separate one for the client, so that
    // blocking the program's worker cannot hold up the client's connection.
    let program = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let tool = tool_runtime();
    let dir = socket_dir("rpc-dump");
    let sleeper_id: u64 = program.block_on(async {
        // tokio's own dump (its mechanics are what this tests) is opt-in on tokio 1.54.
        taskscope_agent::Builder::from_env().socket_dir(&*dir).tokio_dumps(true).init();
        tokio::spawn(waits_for_a_message());
        let sleeper = tokio::spawn(sleeps_in_rpc_dump_test());
        sleeper.id().to_string().parse().expect("numeric id")
    });

    tool.block_on(async {
        let mut client = client_in(&dir).await;

        let info = info(&mut client).await;
        assert_eq!(info.protocol_version, proto::PROTOCOL_VERSION);
        assert_eq!(info.pid, std::process::id());
        assert!(!info.process_name.is_empty() && !info.cmdline.is_empty());
        assert!(info.tokio_version.starts_with("1."), "{}", info.tokio_version);
        assert!(info.runtimes.iter().any(|r| r.name == "main" && r.flavor == "multi_thread" && r.workers == 2));
        assert!(info.dumps_supported, "{}", info.dumps_unsupported_reason);
        assert!(info.uptime_ns > 0);

        // A normal dump: our parked task, its lifecycle record and its stack.
        let chunks = dump(&mut client, 10_000).await;
        assert_eq!(main_status(&chunks).status, proto::DumpStatus::Ok as i32, "{:?}", main_status(&chunks));
        let stacks: Vec<&proto::Stack> = chunks.iter().flat_map(|c| &c.stacks).collect();
        let sleeper = chunks
            .iter()
            .flat_map(|c| &c.tasks)
            .find(|t| t.task.as_ref().is_some_and(|t| t.id == sleeper_id))
            .expect("the sleeping task is in the dump");
        let stack = stacks.iter().find(|s| s.id == sleeper.stack_id).expect("its stack was sent");
        let frames: Vec<&proto::Frame> = stack.backtraces.iter().flat_map(|b| &b.frames).collect();
        assert!(frames.iter().any(|f| f.function.contains("sleeps_in_rpc_dump_test")), "{frames:#?}");
        assert!(frames.iter().any(|f| f.internal), "tokio's frames are internal: {frames:#?}");
        // Nothing of the agent's own shows up as the program's.
        let all_frames = stacks.iter().flat_map(|s| &s.backtraces).flat_map(|b| &b.frames);
        assert!(!all_frames.clone().any(|f| f.function.starts_with("taskscope_agent::")), "{stacks:#?}");

        // Block one worker: the dump times out, the lifecycle records still come.
        let (started, blocked) = tokio::sync::oneshot::channel();
        program.spawn(async move {
            let _ = started.send(());
            std::thread::sleep(Duration::from_secs(2));
        });
        blocked.await.expect("the blocking task started");
        let asked = Instant::now();
        let chunks = dump(&mut client, 300).await;
        assert!(asked.elapsed() < Duration::from_millis(1500), "took {:?}", asked.elapsed());
        let status = main_status(&chunks);
        assert_eq!(status.status, proto::DumpStatus::TimedOut as i32, "{status:?}");
        assert!(status.detail.contains("did not answer within 300ms"), "{}", status.detail);
        assert!(chunks.iter().flat_map(|c| &c.tasks).any(|t| t.task.as_ref().is_some_and(|t| t.id == sleeper_id)));
        assert!(chunks.iter().all(|c| c.stacks.is_empty()));
        // The records are read after the wait, so the blocking task's time in
        // its poll covers the timeout the dump waited out.
        let now_ns = common::header(&chunks).now_ns;
        let blocker = chunks
            .iter()
            .flat_map(|c| &c.tasks)
            .filter_map(|t| t.task.as_ref())
            .find(|t| {
                t.state == proto::TaskState::Running as i32
                    && t.location.as_ref().is_some_and(|l| l.file.ends_with("rpc_dump.rs"))
            })
            .expect("the blocking task is running");
        let polling = now_ns.saturating_sub(blocker.last_poll_started_ns);
        assert!(polling >= 300_000_000, "in its poll for {polling} ns as of the answer: {blocker:?}");
        // GetInfo does not touch the program's runtime, so it still answers.
        client.get_info(proto::InfoRequest {}).await.expect("GetInfo answers while blocked");

        // Once the worker is free, dumps work again.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let chunks = dump(&mut client, 10_000).await;
        assert_eq!(main_status(&chunks).status, proto::DumpStatus::Ok as i32, "{:?}", main_status(&chunks));
    });
    program.shutdown_background();
}
