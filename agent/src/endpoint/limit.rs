//! A cap on the connections the agent holds open at once.
//!
//! Every connection costs the inspected program a file descriptor and some
//! buffers. Tools need a handful (`ps` probes each agent once, `attach` holds
//! one stream, a script may run a few `stack`s at a time), but nothing else
//! stops a client, or anyone on the loopback when `TASKSCOPE_TCP` is on, from
//! opening hundreds and leaving the program itself without descriptors for
//! its own sockets and files. Past the cap a connection is accepted and
//! closed at once, so the client gets an immediate error rather than a hang,
//! and the program's descriptors stay bounded.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::transport::server::Connected;

/// Connections open at once, Unix socket and TCP together.
pub(crate) const MAX_CONNECTIONS: usize = 32;

/// The permits of one agent's servers.
#[derive(Clone)]
pub(crate) struct Limit {
    permits: Arc<Semaphore>,
    max: usize,
}

impl Limit {
    pub(crate) fn new(max: usize) -> Self {
        Limit { permits: Arc::new(Semaphore::new(max)), max }
    }

    /// `io` counted until it closes, or `None` (and `io` closed) when the
    /// cap is reached. The first refusal is logged, not each one.
    pub(crate) fn admit<S>(&self, io: S) -> Option<Counted<S>> {
        static LOGGED: AtomicBool = AtomicBool::new(false);
        match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => Some(Counted { io, _permit: permit }),
            Err(_) => {
                if !LOGGED.swap(true, Ordering::Relaxed) {
                    super::log(&format!(
                        "closed a connection: {} are open already (the most the agent holds)",
                        self.max
                    ));
                }
                None
            }
        }
    }
}

/// A connection that holds one permit of its [`Limit`] while it is open.
pub(crate) struct Counted<S> {
    io: S,
    _permit: OwnedSemaphorePermit,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<S: Connected> Connected for Counted<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}
