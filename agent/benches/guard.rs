//! What the test guard adds to a test: a test that spawns 100 tasks and
//! joins them, run as `#[tokio::test]` runs it (a fresh current-thread
//! runtime per test) and as `#[taskscope_agent::test]` runs it, interleaved,
//! in the full mode in this process and in the lean mode in a child
//! process (a process has one mode). Not a test: run it with
//!
//! ```text
//! cargo bench -p taskscope-agent --bench guard            # 300 tests of each kind per mode
//! cargo bench -p taskscope-agent --bench guard -- 1000    # or as many as given
//! ```
//!
//! Prints the median time per test of each, the difference (the target is
//! under 5 ms added) and the first guarded test's time, which starts the
//! agent once per test binary.

use std::time::{Duration, Instant};

use taskscope_agent::guard::Options;

async fn spawn_and_join() {
    let tasks: Vec<_> = (0..100u64).map(|i| tokio::spawn(async move { i * 2 })).collect();
    for task in tasks {
        let _ = task.await;
    }
}

fn builder() -> tokio::runtime::Builder {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_all();
    builder
}

fn plain() -> Duration {
    let start = Instant::now();
    let runtime = builder().build().expect("runtime");
    runtime.block_on(spawn_and_join());
    drop(runtime);
    start.elapsed()
}

fn guarded() -> Duration {
    let start = Instant::now();
    taskscope_agent::__private::test(builder(), Options::default(), spawn_and_join());
    start.elapsed()
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let lean = args.iter().any(|a| a == "--lean");
    let count: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(300);
    if lean {
        // The process's mode: hooks, as a build without `tracing` has.
        let first = taskscope_agent::build_runtime(&mut builder()).expect("lean runtime");
        drop(first);
    }
    let first = guarded();
    let (mut plains, mut guardeds) = (Vec::new(), Vec::new());
    for _ in 0..count {
        plains.push(plain());
        guardeds.push(guarded());
    }
    let (p, g) = (median(plains), median(guardeds));
    let mode = if lean { "lean" } else { "full" };
    println!(
        "{mode}: test spawning and joining 100 tasks, median of {count}: #[tokio::test]-like {}, guarded {}, \
         added {} (x{:.2}); first guarded test {}",
        ms(p),
        ms(g),
        ms(g.saturating_sub(p)),
        g.as_secs_f64() / p.as_secs_f64(),
        ms(first)
    );
    if !lean {
        let exe = std::env::current_exe().expect("this bench's executable");
        let status =
            std::process::Command::new(exe).arg("--lean").arg(count.to_string()).status().expect("the lean run");
        assert!(status.success(), "the lean run failed: {status}");
    }
}
