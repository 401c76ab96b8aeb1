//! The traced poll itself: one poll of the future under tokio's public
//! `trace_with`, rooted by `Trace::root`, with a backtrace taken at each
//! tokio leaf it reaches. Only built where tokio offers task dumps (Linux on
//! x86_64 or aarch64); elsewhere nothing is ever asked for, and a poll is a
//! poll.

#[cfg(all(tokio_unstable, target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
mod imp {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::runtime::dump::{trace_with, Trace, TraceMeta};

    use crate::capture::board::Registration;
    use crate::capture::Request;

    /// Backtraces kept per future at most (a `join!` of a thousand futures
    /// reaches a thousand leaves).
    const MAX_LEAVES: usize = 256;
    /// Frames kept per backtrace at most.
    const MAX_FRAMES: usize = 256;

    /// Whether this poll runs inside tokio's own task dump.
    pub(crate) fn tokio_is_tracing() -> bool {
        tokio::runtime::Handle::is_tracing()
    }

    /// Polls `future` once in tracing mode and hands its leaves' backtraces
    /// to `request`; also says whether the poll reached a tokio leaf.
    ///
    /// In tracing mode each tokio leaf the poll reaches records where it is
    /// and returns `Pending` without doing its work; on a tokio scheduler it
    /// also defers a wake of the task, so the task is polled again for real
    /// right after. Where no scheduler defers it (a future that a
    /// multi-thread runtime blocks on, polled off its workers), `wake_self`
    /// asks for that wake here, so no leaf is left without a wake-up.
    pub(crate) fn traced_poll<F: Future>(
        mut future: Pin<&mut F>,
        cx: &mut Context<'_>,
        request: &Request,
        registration: &Registration,
        wake_self: bool,
    ) -> (Poll<F::Output>, bool) {
        let mut leaves: Vec<Vec<usize>> = Vec::new();
        let poll = {
            let mut root = std::pin::pin!(Trace::root(std::future::poll_fn(|cx| future.as_mut().poll(cx))));
            trace_with(
                || root.as_mut().poll(cx),
                |meta| {
                    if leaves.len() < MAX_LEAVES {
                        leaves.push(leaf_ips(meta));
                    }
                },
            )
        };
        let reached_leaf = !leaves.is_empty();
        if !reached_leaf {
            // No tokio leaf, so no wake was deferred and no re-poll follows.
            if let Some(key) = registration.entry.key() {
                crate::recorder::no_repoll(key);
            }
        }
        request.answer(&registration.entry, leaves);
        if reached_leaf && wake_self && poll.is_pending() {
            cx.waker().wake_by_ref();
        }
        (poll, reached_leaf)
    }

    /// The instruction pointers from the leaf's caller up to (not including)
    /// the root: frames below `trace_leaf` are the capture's own, frames
    /// above the root are whatever polls the wrapper.
    fn leaf_ips(meta: &TraceMeta) -> Vec<usize> {
        let mut ips = Vec::new();
        let Some(root) = meta.root_addr else { return ips };
        let mut past_leaf = false;
        backtrace::trace(|frame| {
            let function = frame.symbol_address() as *const std::ffi::c_void;
            if function == root {
                return false;
            }
            if past_leaf {
                ips.push(frame.ip() as usize);
            } else if function == meta.trace_leaf_addr {
                past_leaf = true;
            }
            ips.len() < MAX_FRAMES
        });
        ips
    }
}

#[cfg(not(all(tokio_unstable, target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
mod imp {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use crate::capture::board::Registration;
    use crate::capture::Request;

    pub(crate) fn tokio_is_tracing() -> bool {
        false
    }

    /// Never reached: a capture is never asked for where tokio cannot trace.
    pub(crate) fn traced_poll<F: Future>(
        future: Pin<&mut F>,
        cx: &mut Context<'_>,
        request: &Request,
        registration: &Registration,
        _wake_self: bool,
    ) -> (Poll<F::Output>, bool) {
        request.answer(&registration.entry, Vec::new());
        (future.poll(cx), false)
    }
}

pub(crate) use imp::{tokio_is_tracing, traced_poll};

/// Whether this build can trace futures at all.
pub(crate) const SUPPORTED: bool =
    cfg!(all(tokio_unstable, target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")));
