//! What the example programs share: the flags every one of them takes, and how
//! they wait to be stopped.
//!
//! The programs themselves are in `src/bin/`; each one's module docs tell the
//! story of its leak and its fix. They are default multi-thread
//! `#[tokio::main]` programs that embed the agent with one line,
//! `taskscope_agent::init();`, first in `main` (`done_signal --lean` shows the
//! other line, `#[taskscope_agent::main]`), and spawn their tasks with
//! `taskscope_agent::spawn` or `taskscope_agent::task::Builder` so that
//! `taskscope stack` captures their stacks safely, with no variable to set.

use std::time::Duration;

/// Flags every example takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// Run the fixed program instead of the leaking one.
    #[arg(long)]
    pub fixed: bool,

    /// Exit after this long (`500ms`, `10s`, `2m`). By default the program runs
    /// until it is killed or gets SIGINT/SIGTERM.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub exit_after: Option<Duration>,
}

/// Parses a human duration such as `10ms`, `1s` or `2m`, for flags.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 10ms, 1s, 2m)"))
}

/// Returns when the program should end: once `exit_after` has elapsed, or on
/// SIGINT or SIGTERM.
///
/// Returning from `main` (instead of dying of the signal) lets the agent remove
/// its socket. Tests that `kill -9` an example leave a stale socket behind on
/// purpose; `taskscope ps` cleans it.
pub async fn run_until_stopped(exit_after: Option<Duration>) {
    let deadline = async {
        match exit_after {
            Some(after) => tokio::time::sleep(after).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = deadline => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = terminated() => {}
    }
}

/// Completes on SIGTERM; never, if the handler cannot be installed.
async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            term.recv().await;
            return;
        }
    }
    std::future::pending::<()>().await
}
