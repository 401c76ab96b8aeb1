//! Reaching one agent: open the transport, ask `GetInfo`, check the protocol.
//!
//! Every command that talks to an agent (`stack`, `ps`, the live `attach`
//! view) goes through [`connect`], so they all fail the same precise way.
//! An address where a console-subscriber answers instead of an agent (or a
//! `console://` target) is served through [`crate::console`], which gives the
//! same [`Connected`].
//! Nothing here can hang: connecting and the first request have their own
//! limits, and callers bound their later requests with [`Timeouts::request`].
//!
//! ```ignore
//! let target = crate::target::Target::parse("1234")?;
//! let mut conn = crate::client::connect(&target).await?; // prints well as `taskscope: {err}`
//! println!("{} runs tokio {}", conn.describe(), conn.info.tokio_version);
//! let updates = conn.client.watch(taskscope_proto::WatchRequest { interval_ms: 500 }).await?;
//! ```

// Shared with `crate::console`, which fails the same ways.
pub(crate) mod diagnose;
mod error;
pub(crate) mod probe;
pub use diagnose::stopped_hint;

use std::path::PathBuf;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use taskscope_proto::inspector_client::InspectorClient;
use taskscope_proto::{InfoRequest, ProcessInfo, PROTOCOL_VERSION};
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

pub use error::ConnectError;

use crate::target::Target;

/// Largest message accepted from an agent. Agents keep chunks far below
/// tonic's 4 MiB default; the margin only matters for a huge single stack.
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// How long connecting and the first request may take.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Opening the socket or TCP connection.
    pub connect: Duration,
    /// Any single unary request, `GetInfo` included.
    pub request: Duration,
}

impl Default for Timeouts {
    /// 5 seconds each: long enough for a loaded machine, short enough that a
    /// wedged agent is reported before the user gives up.
    fn default() -> Self {
        Timeouts { connect: Duration::from_secs(5), request: Duration::from_secs(5) }
    }
}

/// A live connection to an agent that speaks our protocol.
#[derive(Debug, Clone)]
pub struct Connected {
    /// The gRPC client; cheap to clone (clones share the connection).
    pub client: InspectorClient<Channel>,
    /// The agent's answer to `GetInfo`.
    pub info: ProcessInfo,
    /// What was connected to.
    pub target: Target,
    /// The limits used to connect; reuse `timeouts.request` for later calls.
    pub timeouts: Timeouts,
}

impl Connected {
    /// `process 1234 (name)`, from the agent's own answer (its address if
    /// the agent sent no PID).
    pub fn describe(&self) -> String {
        match self.info.pid {
            0 => self.target.address(),
            pid => crate::process::describe(pid, Some(&crate::output::shown(&self.info.process_name))),
        }
    }
}

/// How long a process that has just started gets for its socket to appear.
const STARTUP_WAIT: Duration = Duration::from_secs(2);

/// Whether `target` is a PID of a live process that started moments ago.
fn starting(target: &Target) -> bool {
    match target {
        Target::Pid { pid, .. } => crate::process::age(*pid).is_some_and(|age| age < STARTUP_WAIT * 2),
        _ => false,
    }
}

/// Connects to `target` with the default [`Timeouts`].
pub async fn connect(target: &Target) -> Result<Connected, ConnectError> {
    connect_with(target, Timeouts::default()).await
}

/// Connects to `target`, asks `GetInfo` and checks the protocol version.
///
/// A PID whose process is gone but whose socket remains gets its socket
/// removed ([`ConnectError::StaleSocket`]).
pub async fn connect_with(target: &Target, timeouts: Timeouts) -> Result<Connected, ConnectError> {
    if let Some(socket) = target.socket() {
        let missing = || std::fs::symlink_metadata(socket).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound);
        if missing() && starting(target) {
            // Its agent may still be starting: it listens a moment after
            // `init()` returns.
            let deadline = tokio::time::Instant::now() + STARTUP_WAIT.min(timeouts.connect);
            while missing() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        if missing() {
            return Err(diagnose::missing_socket(target, socket));
        }
    }
    let timeout = |limit: Duration| diagnose::timed_out(target, crate::duration::format(limit));

    // The outer limit covers name resolution and the HTTP/2 handshake too.
    // tonic's own connect timeout is a backstop set a little later, so that
    // the outer one fires first and the message names the limit.
    let backstop = timeouts.connect.saturating_add(Duration::from_secs(1));
    let channel = match tokio::time::timeout(timeouts.connect, open_channel(target, backstop)).await {
        Err(_) => return Err(timeout(timeouts.connect)),
        Ok(Err(e)) => return Err(probe::explain(target, diagnose::connect_failed(target, &e)).await),
        Ok(Ok(channel)) => channel,
    };
    if target.is_console() {
        return crate::console::connect(channel, target, timeouts).await;
    }
    let mut client = InspectorClient::new(channel.clone()).max_decoding_message_size(MAX_MESSAGE);

    let info = match tokio::time::timeout(timeouts.request, client.get_info(InfoRequest {})).await {
        Err(_) => return Err(timeout(timeouts.request)),
        // A gRPC server without taskscope's service: perhaps a
        // console-subscriber (tokio-console's agent), which has its own.
        Ok(Err(status)) if diagnose::other_grpc_service(&status) => {
            return crate::console::connect(channel, target, timeouts).await;
        }
        Ok(Err(status)) => return Err(probe::explain(target, diagnose::get_info_failed(target, &status)).await),
        Ok(Ok(response)) => response.into_inner(),
    };
    if info.protocol_version != PROTOCOL_VERSION {
        return Err(ConnectError::VersionMismatch {
            who: diagnose::who(target),
            theirs: info.protocol_version,
            ours: PROTOCOL_VERSION,
        });
    }
    Ok(Connected { client, info, target: target.clone(), timeouts })
}

/// Opens the HTTP/2 channel over the target's transport.
async fn open_channel(target: &Target, connect_timeout: Duration) -> Result<Channel, tonic::transport::Error> {
    match target {
        Target::Tcp { .. } => {
            Endpoint::from_shared(format!("http://{}", target.address()))?
                .connect_timeout(connect_timeout)
                .tcp_nodelay(true)
                .connect()
                .await
        }
        Target::Pid { socket: path, .. } | Target::Unix { path } => {
            let path: PathBuf = path.clone();
            // The URI is required by tonic but unused: the connector ignores it.
            Endpoint::from_static("http://localhost")
                .connect_timeout(connect_timeout)
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move { UnixStream::connect(path).await.map(TokioIo::new) }
                }))
                .await
        }
        Target::Console { at } => Box::pin(open_channel(at, connect_timeout)).await,
    }
}
