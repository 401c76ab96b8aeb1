//! A big program to measure taskscope's one-shot commands on: `--tasks N`
//! wrapped tasks (default 10,000) parked in `--groups G` groups (default 50,
//! at most 50), each group at its own spawn site and await point, so that a
//! dump has G distinct stacks. Runs until SIGINT/SIGTERM or killed; prints
//! `parked_groups: pid N, T tasks in G groups` once they are all parked.
//!
//! ```text
//! cargo run --release -p taskscope-soak --example parked_groups &
//! time target/release/taskscope check <pid> --max-parked 1h
//! target/release/taskscope stack <pid> --pprof /tmp/tasks.pb.gz
//! ```

use tokio::sync::oneshot;

// Fifty functions and fifty spawn sites, each on lines of its own (a macro
// would give them all one location).
async fn g00(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g01(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g02(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g03(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g04(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g05(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g06(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g07(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g08(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g09(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g10(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g11(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g12(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g13(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g14(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g15(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g16(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g17(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g18(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g19(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g20(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g21(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g22(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g23(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g24(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g25(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g26(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g27(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g28(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g29(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g30(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g31(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g32(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g33(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g34(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g35(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g36(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g37(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g38(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g39(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g40(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g41(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g42(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g43(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g44(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g45(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g46(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g47(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g48(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

async fn g49(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

const MAX_GROUPS: usize = 50;

/// Spawns a task in `group` (its own function and spawn site).
fn spawn_in(group: usize, rx: oneshot::Receiver<()>) {
    // The join handles are dropped: the tasks run on, detached.
    drop(match group {
        0 => taskscope_agent::spawn(g00(rx)),
        1 => taskscope_agent::spawn(g01(rx)),
        2 => taskscope_agent::spawn(g02(rx)),
        3 => taskscope_agent::spawn(g03(rx)),
        4 => taskscope_agent::spawn(g04(rx)),
        5 => taskscope_agent::spawn(g05(rx)),
        6 => taskscope_agent::spawn(g06(rx)),
        7 => taskscope_agent::spawn(g07(rx)),
        8 => taskscope_agent::spawn(g08(rx)),
        9 => taskscope_agent::spawn(g09(rx)),
        10 => taskscope_agent::spawn(g10(rx)),
        11 => taskscope_agent::spawn(g11(rx)),
        12 => taskscope_agent::spawn(g12(rx)),
        13 => taskscope_agent::spawn(g13(rx)),
        14 => taskscope_agent::spawn(g14(rx)),
        15 => taskscope_agent::spawn(g15(rx)),
        16 => taskscope_agent::spawn(g16(rx)),
        17 => taskscope_agent::spawn(g17(rx)),
        18 => taskscope_agent::spawn(g18(rx)),
        19 => taskscope_agent::spawn(g19(rx)),
        20 => taskscope_agent::spawn(g20(rx)),
        21 => taskscope_agent::spawn(g21(rx)),
        22 => taskscope_agent::spawn(g22(rx)),
        23 => taskscope_agent::spawn(g23(rx)),
        24 => taskscope_agent::spawn(g24(rx)),
        25 => taskscope_agent::spawn(g25(rx)),
        26 => taskscope_agent::spawn(g26(rx)),
        27 => taskscope_agent::spawn(g27(rx)),
        28 => taskscope_agent::spawn(g28(rx)),
        29 => taskscope_agent::spawn(g29(rx)),
        30 => taskscope_agent::spawn(g30(rx)),
        31 => taskscope_agent::spawn(g31(rx)),
        32 => taskscope_agent::spawn(g32(rx)),
        33 => taskscope_agent::spawn(g33(rx)),
        34 => taskscope_agent::spawn(g34(rx)),
        35 => taskscope_agent::spawn(g35(rx)),
        36 => taskscope_agent::spawn(g36(rx)),
        37 => taskscope_agent::spawn(g37(rx)),
        38 => taskscope_agent::spawn(g38(rx)),
        39 => taskscope_agent::spawn(g39(rx)),
        40 => taskscope_agent::spawn(g40(rx)),
        41 => taskscope_agent::spawn(g41(rx)),
        42 => taskscope_agent::spawn(g42(rx)),
        43 => taskscope_agent::spawn(g43(rx)),
        44 => taskscope_agent::spawn(g44(rx)),
        45 => taskscope_agent::spawn(g45(rx)),
        46 => taskscope_agent::spawn(g46(rx)),
        47 => taskscope_agent::spawn(g47(rx)),
        48 => taskscope_agent::spawn(g48(rx)),
        49 => taskscope_agent::spawn(g49(rx)),
        _ => taskscope_agent::spawn(g49(rx)),
    });
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} takes a number, not {v:?}")))
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    taskscope_agent::init();
    let tasks = arg("--tasks", 10_000);
    let groups = arg("--groups", 50).clamp(1, MAX_GROUPS);
    let mut senders = Vec::with_capacity(tasks);
    for i in 0..tasks {
        let (tx, rx) = oneshot::channel();
        senders.push(tx);
        spawn_in(i % groups, rx);
    }
    tokio::task::yield_now().await;
    println!("parked_groups: pid {}, {tasks} tasks in {groups} groups", std::process::id());
    let _ = tokio::signal::ctrl_c().await;
    drop(senders);
}
