//! The `taskscope.v1.Inspector` gRPC service.
//!
//! The service holds no task data of its own: it asks the state owner
//! ([`crate::state`]) for snapshots and watches, and [`crate::dump`] for
//! stacks. `GetInfo` and `Watch` never touch the program's runtimes, so they
//! keep answering while a runtime is blocked; `Dump` returns the lifecycle
//! records even when the stacks cannot be had, with the reason in its header.

pub(crate) mod chunks;
mod process;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use taskscope_proto as proto;
use taskscope_proto::inspector_server::{Inspector, InspectorServer};
use tonic::{Request, Response, Status};

use crate::dump;
use crate::state::{StateGone, StateHandle, Summary};
use crate::Config;

/// Largest message the server sends. Dump chunks aim well under the 4 MiB a
/// default client accepts (see `chunks`), but one task with a huge stack is
/// still sent whole rather than failing the stream.
pub(crate) const MAX_ENCODED_MESSAGE: usize = 64 << 20;

/// Largest request accepted: a `DumpRequest` naming 100k task ids is ~1 MiB.
pub(crate) const MAX_DECODED_MESSAGE: usize = 16 << 20;

/// Default `Watch` interval when the request names none.
const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_millis(1000);

/// Shortest `Watch` interval; smaller requests are raised to it.
const MIN_WATCH_INTERVAL: Duration = Duration::from_millis(50);

/// Longest dump timeout honoured: a client asking for hours is not served
/// better by holding its stream open that long.
const MAX_DUMP_TIMEOUT: Duration = Duration::from_secs(300);

/// A boxed response stream, as tonic wants one type per RPC.
type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The service, ready to be added to a tonic server.
pub(crate) fn service(config: Arc<Config>, state: StateHandle) -> InspectorServer<InspectorService> {
    InspectorServer::new(InspectorService { config, state })
        .max_encoding_message_size(MAX_ENCODED_MESSAGE)
        .max_decoding_message_size(MAX_DECODED_MESSAGE)
}

/// Implementation of `taskscope.v1.Inspector`.
pub(crate) struct InspectorService {
    config: Arc<Config>,
    state: StateHandle,
}

fn gone(e: StateGone) -> Status {
    Status::unavailable(e.to_string())
}

#[tonic::async_trait]
impl Inspector for InspectorService {
    async fn get_info(&self, _request: Request<proto::InfoRequest>) -> Result<Response<proto::ProcessInfo>, Status> {
        let summary = self.state.summary().await.map_err(gone)?;
        Ok(Response::new(process_info(&summary)))
    }

    type WatchStream = BoxStream<proto::WatchUpdate>;

    async fn watch(&self, request: Request<proto::WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let interval = watch_interval(request.get_ref().interval_ms);
        let updates = self.state.watch(interval).await.map_err(gone)?;
        let stream = tokio_stream::wrappers::ReceiverStream::new(updates).map(Ok);
        Ok(Response::new(Box::pin(stream)))
    }

    type DumpStream = BoxStream<proto::DumpChunk>;

    async fn dump(&self, request: Request<proto::DumpRequest>) -> Result<Response<Self::DumpStream>, Status> {
        let request = request.into_inner();
        let timeout = dump_timeout(request.timeout_ms, self.config.dump_timeout);
        // The snapshot is read just before the stacks are taken, so the two
        // describe (nearly) the same instant, and lifecycle records come
        // back even when the dump times out; before, not during, so that no
        // record shows a capture half done (the waker clone a capture's
        // re-poll holds for a moment would count as a live waker). A dump
        // that timed out waited up to `timeout` on a blocked worker: the
        // records are read again, so that running and parked times are as
        // of the answer, like the time the timeout's detail gives for the
        // blocked worker.
        let snapshot = self.state.snapshot().await;
        let capture = crate::http::stats::timed(dump::capture(timeout)).await;
        let timed_out = capture.runtimes.iter().any(|rt| rt.status == proto::DumpStatus::TimedOut as i32);
        let snapshot = if timed_out { self.state.snapshot().await } else { snapshot }.map_err(gone)?;
        let chunks = chunks::DumpChunks::new(snapshot, capture, &request.task_ids);
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks.map(Ok)))))
    }
}

/// What `GetInfo` answers, from the state owner's `summary`.
pub(crate) fn process_info(summary: &Summary) -> proto::ProcessInfo {
    let process = process::facts();
    let (dumps_supported, dumps_unsupported_reason) = match dump::dumps_supported() {
        Ok(()) => (true, String::new()),
        Err(why) => (false, why),
    };
    proto::ProcessInfo {
        protocol_version: proto::PROTOCOL_VERSION,
        pid: std::process::id(),
        process_name: process.name.clone(),
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        tokio_version: process::TOKIO_VERSION.to_owned(),
        mode: crate::recorder::mode().to_owned(),
        runtimes: dump::runtimes(),
        dumps_supported,
        dumps_unsupported_reason,
        now_ns: summary.now_ns,
        // The agent starts with the program, so its clock is a fair
        // lower bound when the OS cannot tell, and within the OS's
        // 10 ms ticks of process start, when it says 0.
        uptime_ns: process::uptime_ns().map_or(summary.now_ns, |ns| ns.max(summary.now_ns)),
        counts: Some(summary.counts),
        dropped_events: summary.dropped_events,
        cmdline: process.cmdline.clone(),
        pid_namespace: process.pid_namespace,
        wrapped_tasks: crate::capture::wrapped() as u64,
        tokio_fixes: dump::policy::TOKIO_FIXES.to_owned(),
        time_resolution_ns: u64::try_from(crate::clock::coarse::resolution().as_nanos()).unwrap_or(u64::MAX),
    }
}

fn watch_interval(interval_ms: u32) -> Duration {
    match interval_ms {
        0 => DEFAULT_WATCH_INTERVAL,
        ms => Duration::from_millis(u64::from(ms)).max(MIN_WATCH_INTERVAL),
    }
}

fn dump_timeout(timeout_ms: u32, default: Duration) -> Duration {
    match timeout_ms {
        0 => default,
        ms => Duration::from_millis(u64::from(ms)),
    }
    .min(MAX_DUMP_TIMEOUT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_interval_defaults_and_floor() {
        assert_eq!(watch_interval(0), Duration::from_secs(1));
        assert_eq!(watch_interval(10), Duration::from_millis(50));
        assert_eq!(watch_interval(250), Duration::from_millis(250));
    }

    #[test]
    fn dump_timeout_defaults_and_ceiling() {
        let default = Duration::from_secs(5);
        assert_eq!(dump_timeout(0, default), default);
        assert_eq!(dump_timeout(1500, default), Duration::from_millis(1500));
        assert_eq!(dump_timeout(u32::MAX, default), MAX_DUMP_TIMEOUT);
    }
}
