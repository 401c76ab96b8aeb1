//! One sample of the live tasks, for `--max-growth`: the first batch of a
//! `Watch` stream (a full snapshot of the records, no stacks), so sampling
//! wakes nothing in the program, unlike a dump.

use anyhow::Context as _;
use taskscope_proto::{Task, WatchRequest};

use crate::client::Connected;

/// Every task the agent keeps now (live and recently done).
pub async fn live_tasks(conn: &Connected) -> anyhow::Result<Vec<Task>> {
    let who = conn.describe();
    let mut client = conn.client.clone();
    let sample = async move {
        let mut stream = client.watch(WatchRequest { interval_ms: 1000 }).await?.into_inner();
        let mut tasks = Vec::new();
        while let Some(update) = stream.message().await? {
            tasks.extend(update.tasks);
            if update.complete {
                return Ok(Some(tasks));
            }
        }
        Ok::<_, tonic::Status>(None)
    };
    match tokio::time::timeout(conn.timeouts.request, sample).await {
        Err(_) => anyhow::bail!(
            "no task list from {who} within {}{}",
            crate::duration::format(conn.timeouts.request),
            crate::client::stopped_hint(conn.target.pid())
        ),
        Ok(Err(status)) => Err(anyhow::anyhow!("{}", status.message()))
            .with_context(|| format!("{who}: the task list failed ({:?})", status.code())),
        Ok(Ok(None)) => anyhow::bail!("{who} ended the task list before it was complete (exiting?)"),
        Ok(Ok(Some(tasks))) => Ok(tasks),
    }
}
