//! # inlined: the stacks of an optimised build
//!
//! Built with optimisations in every profile (the workspace's
//! `[profile.dev.package.taskscope-example-inlined]`), so that, as in a
//! release build, its async functions are inlined into the task's poll.
//! Line-tables-only debuginfo then names each only `{async_fn#0}`; the agent
//! names them from this file. `tests/stack.rs` runs `taskscope stack` on it
//! and checks the names.
//!
//! Its one task waits, two async functions deep, for a reply that `main`
//! never sends; `main` says `ready` and sleeps until it is killed (or a
//! minute has passed).

use std::time::Duration;

use tokio::sync::oneshot;

#[taskscope_agent::main]
async fn main() {
    let (keep, reply) = oneshot::channel::<u32>();
    let _task = taskscope_agent::spawn(handle_request(reply));
    println!("ready");
    tokio::time::sleep(Duration::from_secs(60)).await;
    drop(keep);
}

async fn handle_request(reply: oneshot::Receiver<u32>) {
    let answer = wait_for_reply(reply).await;
    println!("answer {answer}");
}

async fn wait_for_reply(reply: oneshot::Receiver<u32>) -> u32 {
    reply.await.unwrap_or(0)
}
