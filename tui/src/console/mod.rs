//! Programs that run console-subscriber (tokio-console's agent) instead of
//! taskscope's, inspected with no change to them.
//!
//! Many tokio services already embed `console-subscriber`. Its gRPC service
//! (`rs.tokio.console.instrument.Instrument`, from the `console-api` crate)
//! streams every task's spawn location, name, kind, polls, busy time, wakes
//! and waker counts: enough for taskscope's groups by spawn location, their
//! growth, parked times and the leaked verdict, though not for stacks.
//!
//! How: [`connect`] opens console's `WatchUpdates` stream, and answers
//! taskscope's own `Inspector` service from it, in process
//! (`service::Adapter`, reached through `bridge`), so the rest of the CLI
//! gets an ordinary [`Connected`] and needs no branch of its own:
//! `stack`, `--json`, `check`, `diff` and `attach` read `taskscope.v1`
//! records whatever the program runs. [`crate::client::connect`] comes here
//! when the target answers gRPC but not taskscope's service, or when it was
//! named `console://ADDR`.
//!
//! The records' `ProcessInfo.mode` is [`MODE`], and what console cannot
//! give is said once, in the dump's header ([`NO_STACKS`]): no async stacks,
//! so no wait reasons read from them and no check of a blocked runtime. The
//! PID is known only when the address is on this machine (`owner`).

mod bridge;
mod owner;
mod record;
mod service;
mod table;

use std::sync::Arc;

use console_api::instrument::instrument_client::InstrumentClient;
use console_api::instrument::InstrumentRequest;
use taskscope_proto::inspector_client::InspectorClient;
use tonic::transport::Channel;

use crate::client::{diagnose, probe, ConnectError, Connected, Timeouts};
use crate::target::Target;

/// `ProcessInfo.mode` of a console-subscriber target: the protocol spoken
/// (the report says `via console-api` for it).
pub const MODE: &str = taskscope_report::render::CONSOLE_MODE;

/// Why a console-subscriber target has no stacks, once per report.
pub const NO_STACKS: &str = "console-subscriber serves task records only: no async stacks, so no wait reasons \
                             and no check of a blocked runtime";

/// Said with [`NO_STACKS`] when a spawn span lacked `size.bytes` (see
/// `record::Spawned::sized`).
pub const OLD_TOKIO: &str = "this program's tokio is older than 1.41, and before 1.35 a task that spawned \
                             others stays listed until they end (tokio-rs/console#345, #380): a finished \
                             parent can then look parked, or leaked";

/// Largest message accepted from console-subscriber (its first, full
/// state is at most 4 MiB; the same margin as for agents).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// Connects to a console-subscriber over `channel` (already open to
/// `target`): subscribes to its updates, waits for the first (its full
/// state), and serves taskscope's protocol from them.
pub async fn connect(channel: Channel, target: &Target, timeouts: Timeouts) -> Result<Connected, ConnectError> {
    let who = diagnose::who(target);
    let mut client = InstrumentClient::new(channel).max_decoding_message_size(MAX_MESSAGE);
    let first = async {
        let mut stream = client.watch_updates(InstrumentRequest {}).await?.into_inner();
        let first = stream.message().await?;
        Ok::<_, tonic::Status>((stream, first))
    };
    let (stream, first) = match tokio::time::timeout(timeouts.request, first).await {
        Err(_) => return Err(diagnose::timed_out(target, crate::duration::format(timeouts.request))),
        Ok(Err(status)) if diagnose::other_grpc_service(&status) => {
            return Err(ConnectError::OtherProtocol { who, ours: taskscope_proto::PROTOCOL_VERSION });
        }
        Ok(Err(status)) => {
            let err = match diagnose::get_info_failed(target, &status) {
                ConnectError::Status { who, code, message } => ConnectError::Io {
                    who,
                    detail: format!("console-subscriber's WatchUpdates failed: {code:?}: {message}"),
                },
                other => other,
            };
            return Err(probe::explain(target, err).await);
        }
        Ok(Ok((_, None))) => {
            return Err(ConnectError::Closed { who, detail: "console-subscriber ended its stream at once".into() })
        }
        Ok(Ok((stream, Some(first)))) => (stream, first),
    };
    let feed = Arc::new(service::Feed::new(first, owner::find(target).await));
    tokio::spawn(service::follow(Arc::downgrade(&feed), stream));
    let info = feed.info();
    let channel = bridge::channel(feed)
        .await
        .map_err(|e| ConnectError::Io { who, detail: format!("cannot set up the console-subscriber adapter: {e}") })?;
    let client = InspectorClient::new(channel).max_decoding_message_size(MAX_MESSAGE);
    Ok(Connected { client, info, target: target.clone(), timeouts })
}

/// A status's message, or its code when it has none.
fn status_text(status: &tonic::Status) -> String {
    if status.message().is_empty() {
        format!("{:?}", status.code())
    } else {
        status.message().to_string()
    }
}
