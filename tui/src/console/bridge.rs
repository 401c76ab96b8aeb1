//! An in-process gRPC channel to the [`Adapter`]: the CLI's client code
//! (`stack`, `check`, `diff`, `attach`) talks to it exactly as it talks to an
//! agent, over an in-memory pipe instead of a socket.
//!
//! Each connection the channel makes gets a pipe and a server of its own,
//! spawned on the CLI's runtime; it ends when the channel drops its end, and
//! with it the last hold on the feed.

use std::sync::Arc;

use hyper_util::rt::TokioIo;
use taskscope_proto::inspector_server::InspectorServer;
use tonic::transport::{Channel, Endpoint, Server, Uri};

use super::service::{Adapter, Feed};

/// Bytes buffered each way in the pipe.
const PIPE: usize = 1 << 20;

/// A channel whose calls `feed` answers.
pub async fn channel(feed: Arc<Feed>) -> Result<Channel, tonic::transport::Error> {
    // The URI is required by tonic but unused: the connector ignores it.
    Endpoint::from_static("http://console-subscriber.adapter")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let adapter = Adapter { feed: feed.clone() };
            async move {
                let (ours, theirs) = tokio::io::duplex(PIPE);
                let server = Server::builder()
                    .add_service(InspectorServer::new(adapter))
                    .serve_with_incoming(futures::stream::iter([Ok::<_, std::io::Error>(theirs)]));
                // It returns once its one connection is accepted; the
                // connection is served by a task of its own until it closes.
                tokio::spawn(server);
                Ok::<_, std::io::Error>(TokioIo::new(ours))
            }
        }))
        .await
}
