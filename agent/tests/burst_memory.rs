//! During a burst of spawns, the lean mode takes nothing from the program's
//! heap: what it keeps per task lives in memory it maps itself.
//!
//! Why: a block the agent takes from a worker's heap in the middle of a
//! burst sits among the task cells and can keep that heap from shrinking
//! once the burst is over. Measured after the bench's 300k-task burst, the
//! lean mode held 131.8 MiB resident against plain tokio's 68.3 (a block
//! taken at the very end, at the top of the heap), and in a debug build the
//! free slots handed between threads in `Vec`s (one per 128 tasks), their
//! queue's blocks and the id map's table headers pinned tens of MiB more.
//!
//! How: a counting allocator counts what the runtime's worker threads take
//! during a burst of spawns, on a plain runtime and on the same runtime
//! built by `taskscope_agent::build_runtime`, each warmed up by a first
//! burst (threads set up, tables grown). Both allocate one task cell per
//! spawn; the lean runtime may take a few blocks more (a thread that sets
//! up late), never a number that grows with the burst.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

struct Counting;

static TAKEN: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set on the worker threads of the runtimes under test.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: defers to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTED.try_with(Cell::get).unwrap_or(false) {
            TAKEN.fetch_add(1, Relaxed);
        }
        // SAFETY: the caller's layout, as `GlobalAlloc::alloc` requires.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above, with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTED.try_with(Cell::get).unwrap_or(false) {
            TAKEN.fetch_add(1, Relaxed);
        }
        // SAFETY: as `GlobalAlloc::realloc` requires of its caller.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Tasks in the measured burst.
const BURST: u64 = 50_000;

/// Blocks the worker threads take during a burst of `BURST` spawns, made
/// from a task on `runtime` after a first, warming burst.
fn taken_in_burst(runtime: &tokio::runtime::Runtime) -> u64 {
    runtime.block_on(async {
        tokio::spawn(async {
            let burst = |n: u64| async move {
                let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(async move { std::hint::black_box(i) })).collect();
                for task in tasks {
                    task.await.expect("short task");
                }
            };
            burst(BURST).await;
            let before = TAKEN.load(Relaxed);
            burst(BURST).await;
            TAKEN.load(Relaxed) - before
        })
        .await
        .expect("the bursts")
    })
}

fn builder() -> tokio::runtime::Builder {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2).enable_all().on_thread_start(|| COUNTED.set(true));
    builder
}

#[test]
fn a_burst_of_spawns_takes_nothing_of_the_heap_per_task_in_the_lean_mode() {
    let plain = taken_in_burst(&builder().build().expect("plain runtime"));
    let dir = std::env::temp_dir().join(format!("taskscope-burst-{}", std::process::id()));
    let lean = taskscope_agent::Builder::from_env().socket_dir(&dir).build_runtime(&mut builder()).expect("runtime");
    let hooked = taken_in_burst(&lean);
    let _ = std::fs::remove_dir_all(dir);
    // One block a task (its cell) and one vector of join handles, in both.
    assert!(plain >= BURST, "plain tokio took {plain} blocks for {BURST} spawns: the counting is off");
    assert!(
        hooked <= plain + 16,
        "the lean mode took {} blocks more than plain tokio ({hooked} against {plain}) in a burst of {BURST} spawns",
        hooked.saturating_sub(plain)
    );
}
