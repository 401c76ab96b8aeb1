//! The inspected program's load: every task spawned through
//! `taskscope_agent::task::Builder` (wrapped for the safe capture, named by
//! its kind), each counting its progress in an atomic that the child's main
//! thread reads without going through the runtime.
//!
//! Why these tasks: each one stands for a way a capture could harm a program.
//! Busy tasks keep every worker polling, so the capture's wakes queue behind
//! real work; bursts of wakes race the capture's own wakes; a worker blocked
//! inside a poll cannot answer in time; parked tasks are most of what a real
//! service holds and must all come back; short tasks end while a capture may
//! be asking them. A capture that swallowed a wake, left a task unpolled or
//! slowed the runtime for good shows up as a counter that stops rising or a
//! task that never joins.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// CPU time a busy task spends per slice before it yields.
pub const BUSY_SLICE: Duration = Duration::from_micros(200);
/// Tasks the burst driver wakes each round.
pub const BURST_TASKS: usize = 300;
/// Time between two bursts.
pub const BURST_EVERY: Duration = Duration::from_millis(50);
/// How long the blocker holds its worker, and how often.
pub const BLOCK_FOR: Duration = Duration::from_millis(400);
pub const BLOCK_EVERY: Duration = Duration::from_secs(2);
/// Time between two heartbeats.
pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(10);
/// Short tasks the churner spawns (and awaits) each round, and how often.
pub const CHURN_TASKS: usize = 10;
pub const CHURN_EVERY: Duration = Duration::from_millis(50);

/// What a task of the load is. Its name is the task's name in the agent;
/// its function is the `async fn` the task runs, which every stack captured
/// of it must show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Parked,
    Burst,
    Busy,
    Heartbeat,
    Blocker,
    Driver,
    Churner,
    /// The churner's short tasks: they may end while asked, so a capture
    /// owes them nothing.
    Churn,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Parked,
        Kind::Burst,
        Kind::Busy,
        Kind::Heartbeat,
        Kind::Blocker,
        Kind::Driver,
        Kind::Churner,
        Kind::Churn,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Parked => "soak:parked",
            Kind::Burst => "soak:burst",
            Kind::Busy => "soak:busy",
            Kind::Heartbeat => "soak:heartbeat",
            Kind::Blocker => "soak:blocker",
            Kind::Driver => "soak:driver",
            Kind::Churner => "soak:churner",
            Kind::Churn => "soak:churn",
        }
    }

    /// The frame every captured stack of this kind contains.
    pub fn function(self) -> &'static str {
        match self {
            Kind::Parked => "soak_parked",
            Kind::Burst => "soak_burst",
            Kind::Busy => "soak_busy",
            Kind::Heartbeat => "soak_heartbeat",
            Kind::Blocker => "soak_blocker",
            Kind::Driver => "soak_driver",
            Kind::Churner => "soak_churner",
            Kind::Churn => "soak_churn",
        }
    }

    pub fn of_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// The load's size. `Shape::idle` is the scale mode's: parked tasks only.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub parked: usize,
    pub busy: usize,
    /// Burst driver and its tasks, blocker, heartbeat and churner.
    pub active: bool,
}

impl Shape {
    pub fn loaded(workers: usize, parked: usize) -> Shape {
        Shape { parked, busy: workers, active: true }
    }

    pub fn idle(parked: usize) -> Shape {
        Shape { parked, busy: 0, active: false }
    }
}

/// Progress counters, written by the tasks, read by the main thread.
#[derive(Default)]
struct Counters {
    heartbeat: AtomicU64,
    busy: Vec<AtomicU64>,
    rounds: AtomicU64,
    burst: Vec<AtomicU64>,
    churned: AtomicU64,
    blocks: AtomicU64,
    /// Tasks that have been polled once (so are parked or running).
    started: AtomicUsize,
}

/// A reading of the counters.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub heartbeat: u64,
    pub busy: Vec<u64>,
    pub rounds: u64,
    pub burst: Vec<u64>,
    pub churned: u64,
    pub blocks: u64,
}

impl Snapshot {
    /// What did not progress since `before`: empty when the program is
    /// healthy. Only for the loaded shape (the idle one has nothing to rise).
    pub fn stalled_since(&self, before: &Snapshot) -> Vec<String> {
        let mut stalled = Vec::new();
        if self.heartbeat <= before.heartbeat {
            stalled.push("heartbeat".to_string());
        }
        for (i, (now, then)) in self.busy.iter().zip(&before.busy).enumerate() {
            if now <= then {
                stalled.push(format!("busy#{i}"));
            }
        }
        if !self.burst.is_empty() {
            if self.rounds <= before.rounds {
                stalled.push("driver".to_string());
            }
            let behind = self.burst.iter().zip(&before.burst).filter(|(now, then)| now <= then).count();
            if behind > 0 {
                stalled.push(format!("burst({behind}/{})", self.burst.len()));
            }
            if self.churned <= before.churned {
                stalled.push("churner".to_string());
            }
        }
        stalled
    }
}

/// The running load: what the end of the soak needs to stop it, wake every
/// parked task and join them all.
pub struct Load {
    counters: Arc<Counters>,
    stop: watch::Sender<bool>,
    parked: Vec<oneshot::Sender<u64>>,
    tasks: Vec<(Kind, JoinHandle<u64>)>,
}

/// How the end went: every task must join, with the value it was sent.
#[derive(Debug, Default)]
pub struct Joined {
    pub tasks: usize,
    pub joined: usize,
    /// Still running after the deadline: lost.
    pub not_joined: usize,
    /// Panicked or cancelled.
    pub join_errors: usize,
    /// A parked task that returned another value than it was sent, or whose
    /// receiver was gone before the send.
    pub wrong_values: usize,
    /// Burst tasks that received fewer messages than the driver sent.
    pub burst_short: usize,
    pub elapsed: Duration,
}

fn spawn<F>(kind: Kind, future: F) -> JoinHandle<u64>
where
    F: std::future::Future<Output = u64> + Send + 'static,
{
    taskscope_agent::task::Builder::new().name(kind.name()).spawn(future).expect("spawn a task of the load")
}

impl Load {
    /// Spawns the load on the current runtime and returns once every task
    /// has been polled once (so that each capture asks the same tasks).
    pub async fn start(shape: Shape) -> Load {
        let burst = if shape.active { BURST_TASKS } else { 0 };
        let counters = Arc::new(Counters {
            busy: (0..shape.busy).map(|_| AtomicU64::new(0)).collect(),
            burst: (0..burst).map(|_| AtomicU64::new(0)).collect(),
            ..Counters::default()
        });
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut parked = Vec::with_capacity(shape.parked);
        for _ in 0..shape.parked {
            let (tx, rx) = oneshot::channel();
            parked.push(tx);
            tasks.push((Kind::Parked, spawn(Kind::Parked, soak_parked(rx, counters.clone()))));
        }
        for i in 0..shape.busy {
            tasks.push((Kind::Busy, spawn(Kind::Busy, soak_busy(i, counters.clone(), stop_rx.clone()))));
        }
        if shape.active {
            let mut senders = Vec::with_capacity(burst);
            for i in 0..burst {
                let (tx, rx) = mpsc::unbounded_channel();
                senders.push(tx);
                tasks.push((Kind::Burst, spawn(Kind::Burst, soak_burst(i, rx, counters.clone()))));
            }
            let c = &counters;
            tasks.push((Kind::Driver, spawn(Kind::Driver, soak_driver(senders, c.clone(), stop_rx.clone()))));
            tasks.push((Kind::Heartbeat, spawn(Kind::Heartbeat, soak_heartbeat(c.clone(), stop_rx.clone()))));
            tasks.push((Kind::Blocker, spawn(Kind::Blocker, soak_blocker(c.clone(), stop_rx.clone()))));
            tasks.push((Kind::Churner, spawn(Kind::Churner, soak_churner(c.clone(), stop_rx.clone()))));
        }
        let all = tasks.len();
        while counters.started.load(Relaxed) < all {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Load { counters, stop, parked, tasks }
    }

    /// Tasks of the load (the churner's short ones aside).
    pub fn tasks(&self) -> usize {
        self.tasks.len()
    }

    pub fn snapshot(&self) -> Snapshot {
        let c = &self.counters;
        let read = |v: &[AtomicU64]| v.iter().map(|a| a.load(Relaxed)).collect();
        Snapshot {
            heartbeat: c.heartbeat.load(Relaxed),
            busy: read(&c.busy),
            rounds: c.rounds.load(Relaxed),
            burst: read(&c.burst),
            churned: c.churned.load(Relaxed),
            blocks: c.blocks.load(Relaxed),
        }
    }

    /// Stops the active tasks, sends every parked task its value, and joins
    /// every task by `within` from now, on `runtime` (from outside it).
    pub fn finish(self, runtime: &tokio::runtime::Runtime, within: Duration) -> Joined {
        let started = Instant::now();
        let Load { stop, parked, tasks, .. } = self;
        let _ = stop.send(true);
        let mut joined = Joined { tasks: tasks.len(), ..Joined::default() };
        for (i, tx) in parked.into_iter().enumerate() {
            if tx.send(value_of(i)).is_err() {
                joined.wrong_values += 1;
            }
        }
        let deadline = tokio::time::Instant::from_std(started + within);
        let mut parked_index = 0;
        let mut burst_counts = Vec::new();
        let mut rounds = None;
        runtime.block_on(async {
            for (kind, handle) in tasks {
                match tokio::time::timeout_at(deadline, handle).await {
                    Err(_) => joined.not_joined += 1,
                    Ok(Err(_)) => joined.join_errors += 1,
                    Ok(Ok(value)) => {
                        joined.joined += 1;
                        match kind {
                            Kind::Parked if value != value_of(parked_index) => joined.wrong_values += 1,
                            Kind::Burst => burst_counts.push(value),
                            Kind::Driver => rounds = Some(value),
                            _ => {}
                        }
                    }
                }
                if kind == Kind::Parked {
                    parked_index += 1;
                }
            }
        });
        if let Some(rounds) = rounds {
            joined.burst_short = burst_counts.iter().filter(|&&n| n != rounds).count();
        }
        joined.elapsed = started.elapsed();
        joined
    }
}

/// What parked task `i` is sent at the end (never 0, which means "no value").
fn value_of(i: usize) -> u64 {
    i as u64 + 1
}

async fn soak_parked(rx: oneshot::Receiver<u64>, c: Arc<Counters>) -> u64 {
    c.started.fetch_add(1, Relaxed);
    rx.await.unwrap_or(0)
}

async fn soak_busy(i: usize, c: Arc<Counters>, stop: watch::Receiver<bool>) -> u64 {
    c.started.fetch_add(1, Relaxed);
    let mut slices = 0;
    while !*stop.borrow() {
        spin(BUSY_SLICE);
        slices += 1;
        c.busy[i].fetch_add(1, Relaxed);
        tokio::task::yield_now().await;
    }
    slices
}

/// Burst task `i`: parks on its channel, counts each message, re-parks.
async fn soak_burst(i: usize, mut rx: mpsc::UnboundedReceiver<()>, c: Arc<Counters>) -> u64 {
    c.started.fetch_add(1, Relaxed);
    let mut received = 0;
    while rx.recv().await.is_some() {
        received += 1;
        c.burst[i].fetch_add(1, Relaxed);
    }
    received
}

/// Every [`BURST_EVERY`], wakes every burst task at once; returns the rounds
/// sent, which each burst task must have received.
async fn soak_driver(
    senders: Vec<mpsc::UnboundedSender<()>>,
    c: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) -> u64 {
    c.started.fetch_add(1, Relaxed);
    let mut rounds = 0;
    while stopped_after(&mut stop, BURST_EVERY).await.is_none() {
        for tx in &senders {
            let _ = tx.send(());
        }
        rounds += 1;
        c.rounds.fetch_add(1, Relaxed);
    }
    rounds
}

async fn soak_heartbeat(c: Arc<Counters>, mut stop: watch::Receiver<bool>) -> u64 {
    c.started.fetch_add(1, Relaxed);
    let mut beats = 0;
    while stopped_after(&mut stop, HEARTBEAT_EVERY).await.is_none() {
        beats += 1;
        c.heartbeat.fetch_add(1, Relaxed);
    }
    beats
}

/// Every [`BLOCK_EVERY`], holds its worker for [`BLOCK_FOR`] inside a poll:
/// the program bug a capture must survive without waiting for it.
async fn soak_blocker(c: Arc<Counters>, mut stop: watch::Receiver<bool>) -> u64 {
    c.started.fetch_add(1, Relaxed);
    let mut blocks = 0;
    while stopped_after(&mut stop, BLOCK_EVERY).await.is_none() {
        std::thread::sleep(BLOCK_FOR);
        blocks += 1;
        c.blocks.fetch_add(1, Relaxed);
    }
    blocks
}

/// Every [`CHURN_EVERY`], spawns [`CHURN_TASKS`] short wrapped tasks and
/// awaits them: tasks that come and go while captures ask.
async fn soak_churner(c: Arc<Counters>, mut stop: watch::Receiver<bool>) -> u64 {
    c.started.fetch_add(1, Relaxed);
    let mut done = 0;
    while stopped_after(&mut stop, CHURN_EVERY).await.is_none() {
        let batch: Vec<_> = (0..CHURN_TASKS as u64).map(|i| spawn(Kind::Churn, soak_churn(1 + i % 5))).collect();
        for task in batch {
            if task.await.is_ok() {
                done += 1;
                c.churned.fetch_add(1, Relaxed);
            }
        }
    }
    done
}

async fn soak_churn(ms: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    ms
}

/// Sleeps `period`, or returns `Some` as soon as the load is told to stop.
async fn stopped_after(stop: &mut watch::Receiver<bool>, period: Duration) -> Option<()> {
    if *stop.borrow() {
        return Some(());
    }
    tokio::select! {
        _ = tokio::time::sleep(period) => None,
        _ = stop.changed() => Some(()),
    }
}

/// Spends `slice` of CPU time on arithmetic the optimiser cannot drop.
fn spin(slice: Duration) {
    let start = Instant::now();
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    while start.elapsed() < slice {
        for _ in 0..64 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        }
        std::hint::black_box(x);
    }
}
