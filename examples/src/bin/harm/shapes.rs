//! The shapes' tasks: each counts its progress and ends when `stop` is
//! cancelled, or says what broke. Their names (`harm_..._task`) are what
//! `taskscope stack` shows in their stacks.

use std::future::{poll_fn, Future as _};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt as _};
use futures::SinkExt as _;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{stoppable, Ended};

/// Wakes itself in every poll and never completes: always scheduled.
pub(crate) async fn harm_self_wake_task(stop: CancellationToken, count: Arc<AtomicU64>) -> Ended {
    let spin = poll_fn(|cx| {
        count.fetch_add(1, Relaxed);
        cx.waker().wake_by_ref();
        Poll::Pending
    });
    stoppable(&stop, spin).await
}

/// Parked on tokio's timer, 2 ms at a time.
pub(crate) async fn harm_self_wake_parked_task(stop: CancellationToken, count: Arc<AtomicU64>) -> Ended {
    stoppable(&stop, async {
        loop {
            tokio::time::sleep(Duration::from_millis(2)).await;
            count.fetch_add(1, Relaxed);
        }
    })
    .await
}

/// Notifies both waiters in every one of its polls, before it parks on
/// tokio's timer for 1 ms: idle between ticks, like most tasks that wake
/// others.
pub(crate) async fn harm_notify_other_task(
    stop: CancellationToken,
    count: Arc<AtomicU64>,
    targets: [Arc<Notify>; 2],
) -> Ended {
    stoppable(&stop, async {
        loop {
            let mut tick = pin!(tokio::time::sleep(Duration::from_millis(1)));
            poll_fn(|cx| {
                for target in &targets {
                    target.notify_one();
                }
                tick.as_mut().poll(cx)
            })
            .await;
            count.fetch_add(1, Relaxed);
        }
    })
    .await
}

/// Counts the notifications it gets.
pub(crate) async fn harm_notify_other_waiter_task(
    stop: CancellationToken,
    count: Arc<AtomicU64>,
    notified: Arc<Notify>,
) -> Ended {
    stoppable(&stop, async {
        loop {
            notified.notified().await;
            count.fetch_add(1, Relaxed);
        }
    })
    .await
}

/// Sends a ball and waits for it to come back, on `futures` channels.
pub(crate) async fn harm_futures_pingpong_ping_task(
    stop: CancellationToken,
    count: Arc<AtomicU64>,
    mut out: futures::channel::mpsc::Sender<u64>,
    mut back: futures::channel::mpsc::Receiver<u64>,
) -> Ended {
    stoppable(&stop, async {
        let mut ball = 0;
        loop {
            if out.send(ball).await.is_err() {
                return Ended::Broke("pong-gone");
            }
            match back.next().await {
                Some(returned) => ball = returned,
                None => return Ended::Broke("pong-gone"),
            }
            count.fetch_add(1, Relaxed);
        }
    })
    .await
}

/// Returns every ball, on `futures` channels.
pub(crate) async fn harm_futures_pingpong_pong_task(
    stop: CancellationToken,
    count: Arc<AtomicU64>,
    mut balls: futures::channel::mpsc::Receiver<u64>,
    mut back: futures::channel::mpsc::Sender<u64>,
) -> Ended {
    stoppable(&stop, async {
        while let Some(ball) = balls.next().await {
            if back.send(ball + 1).await.is_err() {
                break;
            }
            count.fetch_add(1, Relaxed);
        }
        Ended::Broke("ping-gone")
    })
    .await
}

pub(crate) async fn harm_flume_pipeline_producer_task(
    stop: CancellationToken,
    count: Arc<AtomicU64>,
    out: flume::Sender<u64>,
) -> Ended {
    stoppable(&stop, async {
        for item in 0.. {
            if out.send_async(item).await.is_err() {
                break;
            }
            count.fetch_add(1, Relaxed);
        }
        Ended::Broke("stage-gone")
    })
    .await
}

pub(crate) async fn harm_flume_pipeline_stage_task(
    stop: CancellationToken,
    count: Arc<AtomicU64>,
    input: flume::Receiver<u64>,
    out: flume::Sender<u64>,
) -> Ended {
    stoppable(&stop, async {
        while let Ok(item) = input.recv_async().await {
            if out.send_async(item.wrapping_mul(3)).await.is_err() {
                return Ended::Broke("consumer-gone");
            }
            count.fetch_add(1, Relaxed);
        }
        Ended::Broke("producer-gone")
    })
    .await
}

pub(crate) async fn harm_flume_pipeline_consumer_task(
    stop: CancellationToken,
    count: Arc<AtomicU64>,
    input: flume::Receiver<u64>,
) -> Ended {
    stoppable(&stop, async {
        while input.recv_async().await.is_ok() {
            count.fetch_add(1, Relaxed);
        }
        Ended::Broke("stage-gone")
    })
    .await
}

pub(crate) async fn harm_async_channel_pipeline_producer_task(
    stop: CancellationToken,
    count: Arc<AtomicU64>,
    out: async_channel::Sender<u64>,
) -> Ended {
    stoppable(&stop, async {
        for item in 0.. {
            if out.send(item).await.is_err() {
                break;
            }
            count.fetch_add(1, Relaxed);
        }
        Ended::Broke("stage-gone")
    })
    .await
}

pub(crate) async fn harm_async_channel_pipeline_stage_task(
    stop: CancellationToken,
    count: Arc<AtomicU64>,
    input: async_channel::Receiver<u64>,
    out: async_channel::Sender<u64>,
) -> Ended {
    stoppable(&stop, async {
        while let Ok(item) = input.recv().await {
            if out.send(item.wrapping_mul(3)).await.is_err() {
                return Ended::Broke("consumer-gone");
            }
            count.fetch_add(1, Relaxed);
        }
        Ended::Broke("producer-gone")
    })
    .await
}

pub(crate) async fn harm_async_channel_pipeline_consumer_task(
    stop: CancellationToken,
    count: Arc<AtomicU64>,
    input: async_channel::Receiver<u64>,
) -> Ended {
    stoppable(&stop, async {
        while input.recv().await.is_ok() {
            count.fetch_add(1, Relaxed);
        }
        Ended::Broke("stage-gone")
    })
    .await
}

/// Sends a ball and waits for it to come back, on tokio channels.
pub(crate) async fn harm_mpsc_pingpong_ping_task(
    stop: CancellationToken,
    count: Arc<AtomicU64>,
    out: tokio::sync::mpsc::Sender<u64>,
    mut back: tokio::sync::mpsc::Receiver<u64>,
) -> Ended {
    stoppable(&stop, async {
        let mut ball = 0;
        loop {
            if out.send(ball).await.is_err() {
                return Ended::Broke("pong-gone");
            }
            match back.recv().await {
                Some(returned) => ball = returned,
                None => return Ended::Broke("pong-gone"),
            }
            count.fetch_add(1, Relaxed);
        }
    })
    .await
}

/// Returns every ball, on tokio channels.
pub(crate) async fn harm_mpsc_pingpong_pong_task(
    stop: CancellationToken,
    count: Arc<AtomicU64>,
    mut balls: tokio::sync::mpsc::Receiver<u64>,
    back: tokio::sync::mpsc::Sender<u64>,
) -> Ended {
    stoppable(&stop, async {
        while let Some(ball) = balls.recv().await {
            if back.send(ball + 1).await.is_err() {
                break;
            }
            count.fetch_add(1, Relaxed);
        }
        Ended::Broke("ping-gone")
    })
    .await
}

/// Keeps 16 sleeps of 1 to 4 ms in flight, replacing each as it ends.
pub(crate) async fn harm_unordered_sleeps_task(stop: CancellationToken, count: Arc<AtomicU64>) -> Ended {
    stoppable(&stop, async {
        let sleep = |n: u64| tokio::time::sleep(Duration::from_millis(1 + n % 4));
        let mut sleeps: FuturesUnordered<_> = (0..16).map(sleep).collect();
        let mut next = 16;
        while sleeps.next().await.is_some() {
            count.fetch_add(1, Relaxed);
            sleeps.push(sleep(next));
            next += 1;
        }
        Ended::Broke("no-sleeps")
    })
    .await
}
