//! [`Traced`]: the wrapper that lets a future be traced inside its own poll.
//!
//! The fast path, taken by every poll while no capture is asked for, is one
//! relaxed load of a global and, once the future has parked, a comparison
//! with the epoch in its board entry; a `Pending` checks that the future is
//! on the board with the same waker (two comparisons). Everything
//! else (the first park, a capture, a name to write, a future that records
//! itself) is out of line.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};

use super::board::{Registration, BOARD};
use super::own::Own;
use super::{Request, EPOCH};

pin_project_lite::pin_project! {
    /// A future whose async stack the agent captures safely: when a
    /// `taskscope stack` asks, the agent wakes it and it traces itself inside
    /// its own next poll (tokio's public `trace_with`), with no runtime pause
    /// and no scheduler lock, so the capture cannot wedge, lose or kill
    /// anything. Made by [`crate::spawn`], [`crate::task::Builder`] and
    /// [`crate::main`].
    ///
    /// Two pointers beside the future, since every wrapped task carries them
    /// in its cell, parked or not: what a parked future needs (the request
    /// epoch it has seen, its waker's identity) is in its board entry.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct Traced<F> {
        #[pin]
        future: F,
        // Its place on the board, once it has parked.
        registration: Option<Registration>,
        // What few futures need (boxed: every wrapped task carries this field).
        extra: Option<Box<Extra>>,
    }
}

/// What only some wrapped futures need.
struct Extra {
    /// A name to write into its slot at its first poll (the lean mode's
    /// hooks are told no names).
    name: Option<Box<str>>,
    /// Set for a future the agent records itself (a `block_on` future).
    own: Option<Own>,
}

impl<F> Traced<F> {
    /// Wraps the future of a tokio task.
    #[inline(always)]
    pub(crate) fn task(future: F, name: Option<Box<str>>) -> Self {
        let extra = name.map(|name| Box::new(Extra { name: Some(name), own: None }));
        Traced { future, registration: None, extra }
    }

    /// Wraps a future that a runtime blocks on, recorded by the agent itself
    /// as a `block_on` task spawned at `location`.
    pub(crate) fn block_on(future: F, location: &'static std::panic::Location<'static>) -> Self {
        let extra = Own::start(location).map(|own| Box::new(Extra { name: None, own: Some(own) }));
        Traced { future, registration: None, extra }
    }
}

impl<F: Future> Future for Traced<F> {
    type Output = F::Output;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        // Read before the poll: a request collects the board before it moves
        // the epoch on, so a future that parks in this poll and is asked
        // sees the new epoch at its next one (see `park`).
        let epoch = EPOCH.load(Relaxed);
        if this.extra.is_some() || this.registration.as_ref().is_some_and(|r| r.seen() != epoch) {
            return poll_slow(this.future, this.registration, this.extra, cx);
        }
        let poll = this.future.as_mut().poll(cx);
        if poll.is_pending() && !this.registration.as_ref().is_some_and(|r| r.holds(cx.waker())) {
            park(this.registration, epoch, None, cx);
        }
        poll
    }
}

/// Every poll but the plain one: see the module docs.
#[cold]
#[inline(never)]
fn poll_slow<F: Future>(
    mut future: Pin<&mut F>,
    registration: &mut Option<Registration>,
    extra: &mut Option<Box<Extra>>,
    cx: &mut Context<'_>,
) -> Poll<F::Output> {
    if let Some(name) = extra.as_mut().and_then(|extra| extra.name.take()) {
        crate::recorder::name_current_task(&name);
    }
    if extra.as_ref().is_some_and(|extra| extra.own.is_none()) {
        // Named, and now it has its name: nothing else to carry.
        *extra = None;
    }
    let mut own = extra.as_mut().and_then(|extra| extra.own.as_mut());
    let epoch = EPOCH.load(Acquire);
    // Inside tokio's own dump the leaves are its to trace, not ours.
    let request = match registration.as_ref() {
        Some(r) if r.seen() != epoch && !super::trace::tokio_is_tracing() => {
            r.see(epoch);
            r.entry.polled.store(epoch, Relaxed);
            wanted(r, epoch)
        }
        _ => None,
    };
    let recorded = own.as_mut().is_some_and(|own| own.before_poll(request.is_some()));
    let (poll, traced_a_leaf) = match (request, registration.as_ref()) {
        (Some(request), Some(registration)) => {
            let wake_self = own.as_deref().is_some_and(Own::wakes_itself);
            super::trace::traced_poll(future.as_mut(), cx, &request, registration, wake_self)
        }
        _ => (future.as_mut().poll(cx), false),
    };
    if let Some(own) = own.as_mut() {
        own.after_poll(recorded, traced_a_leaf);
    }
    if poll.is_pending() && !registration.as_ref().is_some_and(|r| r.holds(cx.waker())) {
        park(registration, epoch, own.as_deref(), cx);
    }
    poll
}

/// The request waiting for this future's stack, if it is `epoch`'s.
fn wanted(registration: &Registration, epoch: u64) -> Option<Arc<Request>> {
    registration.entry.shared().wanted.as_ref().filter(|request| request.epoch == epoch).cloned()
}

/// The future returned `Pending`: puts it on the board, or updates the waker
/// the board holds for it. `epoch` is the request epoch read before the poll:
/// a request that collects the board after this registration moves the epoch
/// on only after that, so the future, asked, takes the slow path next time.
#[cold]
#[inline(never)]
fn park(registration: &mut Option<Registration>, epoch: u64, own: Option<&Own>, cx: &Context<'_>) {
    match registration {
        Some(registration) => {
            // Polled with another waker than before. The clone of the new
            // one and the drop of the old one leave the live-waker balance
            // as it was.
            drop(registration.replace_waker(cx.waker()));
        }
        None => {
            let (task_id, key) = match own {
                Some(own) => (own.task_id(), None),
                None => match tokio::task::try_id() {
                    Some(id) => (crate::hooks::id_u64(id), crate::recorder::current_key()),
                    // Not polled as a tokio task: nothing to attach it to.
                    None => return,
                },
            };
            let placed = BOARD.register(task_id, key, cx.waker(), epoch);
            if let Some(key) = key {
                crate::recorder::agent_waker(key, true);
            }
            *registration = Some(placed);
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every wrapped task carries these fields, parked or not.
    #[test]
    fn the_wrapper_adds_little_to_a_task() {
        let added = std::mem::size_of::<super::Traced<std::future::Pending<()>>>();
        assert!(added <= 16, "{added}");
    }
}
