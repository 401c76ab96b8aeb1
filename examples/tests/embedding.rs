//! The README's second way of embedding the agent, run for real: a program
//! with its own tracing subscriber adds `taskscope_agent::layer()` next to its
//! other layers, and its tasks are recorded and served as with `init()`.
//!
//! One test per file: the subscriber is global to the test process.

use std::time::{Duration, Instant};

use tracing_subscriber::prelude::*;

#[allow(dead_code)] // only its `taskscope_cli`
#[path = "common/process.rs"]
mod process;

#[test]
fn layer_next_to_a_fmt_layer_records_tasks() {
    let dir = std::env::temp_dir().join(format!("taskscope-embedding-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Built when only this package's tests were (nothing is skipped), and
    // before the runtime, which must not wait on a build.
    let cli = process::taskscope_cli();
    // Before the agent starts: it reads the environment once.
    std::env::set_var("TASKSCOPE_DIR", &dir);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        // As in the README.
        tracing_subscriber::registry()
            .with(taskscope_agent::layer())
            .with(tracing_subscriber::fmt::layer().with_filter(tracing_subscriber::filter::LevelFilter::INFO))
            .init();

        let (_keep, never) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = never.await;
        });

        let socket = dir.join(format!("{}.sock", std::process::id()));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "the agent never created {}", socket.display());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        let pid = std::process::id().to_string();
        // Off the runtime: the agent dumps this runtime while the CLI waits.
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(cli).args(["stack", &pid, "--match", "embedding.rs"]).output()
        })
        .await
        .expect("join")
        .expect("run taskscope stack");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "taskscope stack failed: {}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("1 task [idle]"), "the parked task is listed:\n{stdout}");
        assert!(stdout.contains("examples/tests/embedding.rs:"), "with its spawn location:\n{stdout}");
    });
    drop(runtime);
    let _ = std::fs::remove_dir_all(&dir);
}
