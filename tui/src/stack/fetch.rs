//! Fetching a whole dump from an agent: one `Dump` call, its stream of
//! chunks collected within the dump timeout plus the transfer allowance, and
//! the failures a user can cause (a dead process, a hung-up agent) said in
//! one line each.

use std::time::Duration;

use anyhow::Context as _;
use taskscope_proto::DumpRequest;
use taskscope_report::dump::Dump;

use crate::client::Connected;

/// Asks `conn` for a dump, giving the runtimes `timeout` to answer.
///
/// The whole exchange is bounded by `timeout` plus the connection's request
/// limit, so a wedged agent is reported instead of waited on.
pub async fn fetch(conn: &mut Connected, timeout: Duration) -> anyhow::Result<Dump> {
    let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX).max(1);
    let limit = timeout.saturating_add(conn.timeouts.request);
    let who = conn.describe();
    let mut client = conn.client.clone();
    let exchange = async move {
        let mut stream = client.dump(DumpRequest { task_ids: Vec::new(), timeout_ms }).await?.into_inner();
        let mut chunks = Vec::new();
        while let Some(chunk) = stream.message().await? {
            chunks.push(chunk);
        }
        Ok::<_, tonic::Status>(chunks)
    };
    let pid = conn.target.pid();
    let chunks = match tokio::time::timeout(limit, exchange).await {
        Err(_) => anyhow::bail!(
            "no answer from {who} within {} (dump timeout {} plus {} for the transfer){}",
            crate::duration::format(limit),
            crate::duration::format(timeout),
            crate::duration::format(conn.timeouts.request),
            crate::client::stopped_hint(pid),
        ),
        Ok(Err(status)) => match status.code() {
            tonic::Code::Unknown | tonic::Code::Unavailable | tonic::Code::Cancelled => {
                if pid.is_some_and(|pid| crate::process::liveness(pid) == crate::process::Liveness::Dead) {
                    anyhow::bail!("{who} exited during the dump")
                }
                anyhow::bail!("{who}: the connection closed during the dump ({})", status.message())
            }
            code => anyhow::bail!("{who}: dump failed: {code:?}: {}", status.message()),
        },
        Ok(Ok(chunks)) => chunks,
    };
    Dump::from_chunks(chunks).map_err(anyhow::Error::msg).with_context(|| format!("{who}: bad dump"))
}
