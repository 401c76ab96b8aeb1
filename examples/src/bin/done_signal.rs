//! # done_signal: one task per call, waiting for a signal that never comes
//!
//! The tokio version of the Go `ToDoneInterface` leak ("The Case of a Leaky
//! Goroutine"). A helper turns a cancellation signal into a channel, for code
//! that selects on channels: it spawns a task that waits for the signal and then
//! closes the channel. Callers hand it the *root* token, which is cancelled only
//! when the whole service shuts down, so never. Each call's helper task outlives
//! the call that wanted it: one task parked per call, for good.
//!
//! `taskscope stack <pid>` shows them as one group of N idle tasks spawned at the
//! same line of `to_done_channel`, their stack (`captured safely`) running from
//! the helper's closure in `done_signal::to_done_channel` down to
//! `token.cancelled()`, their parked time growing. They are reported *parked*,
//! not leaked: the root token holds their wakers and cancelling it would still
//! wake them. Only the count and the ages give them away, as `runtime.gopark`
//! did in the Go profile.
//!
//! The helpers and the task making the calls are spawned with
//! `taskscope_agent::spawn`, which is `tokio::spawn` with the future wrapped so
//! that it traces its own stack when asked: that is what makes their stacks
//! show on this default multi-thread runtime, with no variable to set.
//!
//! The fix (`--fixed`) is the report's conclusion, "derive from the one passed
//! in": each call derives a child token and cancels it with a drop guard when the
//! call's work ends, so the helper task ends together with its call.
//!
//! ```text
//! cargo run -p taskscope-examples --bin done_signal               # 1000 tasks stay parked
//! cargo run -p taskscope-examples --bin done_signal -- --fixed    # none stay
//! taskscope stack <pid>
//! ```
//!
//! Flags: `--calls N` (default 1000; 0 keeps calling forever), `--interval DUR`
//! (pause between calls, default 10ms), `--fixed`, `--exit-after DUR`, and
//! `--lean`: embed the agent in its lean mode (runtime hooks,
//! `#[taskscope_agent::main]`) instead of `#[tokio::main]` and `init()`. After
//! the last call the program stays up, idle, until it is stopped.
//!
//! This is the one example that shows both ways of embedding the agent, one
//! line each, on the same default multi-thread runtime: `main` parses the flags
//! and runs one of two `async fn`s, one under `#[tokio::main]` that calls
//! `init()`, one under `#[taskscope_agent::main]`. The others are plain
//! `#[tokio::main]` programs with `init()`.

use std::time::Duration;

use clap::Parser;
use taskscope_examples::{parse_duration, run_until_stopped, Common};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// A service that converts its shutdown token into a channel on every call.
#[derive(Debug, Parser)]
#[command(name = "done_signal")]
struct Args {
    /// How many calls to make; 0 keeps calling forever.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    calls: u64,

    /// Pause between two calls.
    #[arg(long, value_name = "DUR", default_value = "10ms", value_parser = parse_duration)]
    interval: Duration,

    /// Embed the agent in its lean mode (runtime hooks) instead of `init()`.
    #[arg(long)]
    lean: bool,

    #[command(flatten)]
    common: Common,
}

fn main() {
    let args = Args::parse();
    if args.lean {
        lean(args);
    } else {
        full(args);
    }
}

/// The full mode: `#[tokio::main]` and one line, `init()`.
#[tokio::main]
async fn full(args: Args) {
    taskscope_agent::init();
    run(args).await
}

/// The lean mode: `#[taskscope_agent::main]` in place of `#[tokio::main]`,
/// no `init()`.
#[taskscope_agent::main]
async fn lean(args: Args) {
    run(args).await
}

async fn run(args: Args) {
    let pid = std::process::id();
    if args.common.fixed {
        println!("done_signal: pid {pid}, fixed: each call cancels its own child token, so its task ends with it");
    } else {
        println!("done_signal: pid {pid}, leaking one task per call (run with --fixed for the fix)");
    }

    // Cancelled when the service shuts down: in a long-running service, never.
    let root = CancellationToken::new();
    taskscope_agent::spawn(serve(root.clone(), args.calls, args.interval, args.common.fixed));
    run_until_stopped(args.common.exit_after).await;
    root.cancel();
}

/// Makes `calls` calls (forever if 0), then reports how many tasks are left.
async fn serve(root: CancellationToken, calls: u64, interval: Duration, fixed: bool) {
    let mut made = 0;
    while calls == 0 || made < calls {
        if fixed {
            handle_call_fixed(&root, made).await;
        } else {
            handle_call(&root, made).await;
        }
        made += 1;
        tokio::time::sleep(interval).await;
    }
    // Give the fixed version's helpers up to a second to see their tokens
    // cancelled; the leaking version's helpers never will.
    let metrics = tokio::runtime::Handle::current().metrics();
    let others = || metrics.num_alive_tasks().saturating_sub(1); // all but this task
    for _ in 0..100 {
        if others() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let others = others();
    println!("done_signal: {made} calls made; {others} helper tasks still alive; idle now");
}

/// One call of the service: look a record up, unless the service shuts down first.
async fn handle_call(root: &CancellationToken, id: u64) -> Option<u64> {
    let done = to_done_channel(root);
    tokio::select! {
        _ = done => None,
        record = lookup(id) => Some(record),
    }
}

/// The fixed call: the helper waits on a token that dies with the call.
async fn handle_call_fixed(root: &CancellationToken, id: u64) -> Option<u64> {
    let call = root.child_token();
    let _cancel_on_return = call.clone().drop_guard();
    let done = to_done_channel(&call);
    tokio::select! {
        _ = done => None,
        record = lookup(id) => Some(record),
    }
}

/// Turns a cancellation token into a channel that closes once the token is
/// cancelled (the Go helper's `ToDoneInterface`).
///
/// The helper itself looks innocent: the spawned task lives exactly as long as
/// `token`, however early the caller stops listening. Passed a token that is
/// never cancelled, it never ends.
fn to_done_channel(token: &CancellationToken) -> oneshot::Receiver<()> {
    let (closed, done) = oneshot::channel::<()>();
    let token = token.clone();
    taskscope_agent::spawn(async move {
        token.cancelled().await;
        drop(closed);
    });
    done
}

/// The call's real work: a short lookup.
async fn lookup(id: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(1)).await;
    id * 2
}

/// The leak caught in a unit test: one call of the leaking version leaves
/// its helper behind (the guard's report names `to_done_channel`), one of
/// the fixed version leaves nothing.
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use taskscope_agent::guard::Guard;
    use tokio_util::sync::CancellationToken;

    #[tokio::test]
    async fn the_guard_catches_the_helper_a_call_leaves() {
        let guard = Guard::new().retry_for(Duration::from_millis(200));
        let root = CancellationToken::new();
        assert_eq!(super::handle_call(&root, 21).await, Some(42));
        let report = guard.check().await.expect_err("the helper is left").to_string();
        assert!(report.starts_with("taskscope: 1 task spawned since the guard"), "{report}");
        assert!(report.contains("1 task [idle, CancellationToken] parked"), "{report}");
        assert!(report.contains("spawned at examples/src/bin/done_signal.rs:"), "{report}");
        assert!(report.contains("done_signal::to_done_channel::{{closure}}"), "the helper's stack: {report}");
        assert!(report.contains("tokio_util::sync::cancellation_token"), "it waits on the token: {report}");
    }

    #[taskscope_agent::test]
    async fn the_fixed_call_leaves_nothing() {
        let root = CancellationToken::new();
        assert_eq!(super::handle_call_fixed(&root, 21).await, Some(42));
    }
}
