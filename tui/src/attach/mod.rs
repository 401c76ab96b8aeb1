//! `taskscope attach <pid|addr>`: the live view of a program's tasks.
//!
//! Layout: [`state`] is the model (no terminal types), fed by the agent's
//! `Watch` stream; [`view`] draws it, one file per screen; [`keys`] is the
//! one table of key bindings behind the key handling, the footer and the
//! help; [`app`] ties them together and runs the loop (moving through lists
//! and texts with `cursor`); `conn` keeps the
//! link to the agent (with reconnects), and `follow` finds the next process
//! of a program whose process exited; `term` owns the terminal.
//!
//! The first connection is made before the screen is taken over, so a wrong
//! target fails like every other command: one `taskscope: ...` line, exit 1.
//! Only `--follow NAME` with no process of NAME running yet opens the screen
//! without one, and waits there for the first to start.

pub mod app;
mod conn;
mod cursor;
pub mod event;
mod follow;
pub mod keys;
pub mod state;
pub mod surveying;
mod term;
pub mod view;

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use crossterm::event::EventStream;
use tokio::sync::mpsc;

use crate::target::Target;
use app::App;
use state::{State, Thresholds};

/// Arguments of `taskscope attach`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The program to watch: a PID, a Unix socket path, or host:port. A
    /// socket or TCP address is reconnected to whatever agent answers there
    /// next; a PID whose process exits is followed to the next process of
    /// the same program (see --no-follow).
    #[arg(value_name = "PID|ADDR", required_unless_present = "follow")]
    pub target: Option<String>,

    /// Watch the program NAME (the executable's name, as `taskscope ps`
    /// lists it) rather than one process: its newest process with an agent,
    /// or the first to start; when that one exits, the next one.
    #[arg(long, value_name = "NAME", conflicts_with = "target")]
    pub follow: Option<String>,

    /// When a PID target's process exits, say so and stay, rather than
    /// follow the next process of the same program.
    #[arg(long, conflicts_with = "follow")]
    pub no_follow: bool,

    /// Show tasks parked at least this long in the warning colour; a group
    /// waiting this long on another task (no timer or I/O branch) is a leak
    /// suspect, as with `stack --suspect-after`.
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = crate::duration::parse_age)]
    pub warn_after: Duration,

    /// Show tasks parked at least this long in the leak colour (tasks the
    /// agent proves leaked are marked whatever their age).
    #[arg(long, value_name = "DUR", default_value = "60s", value_parser = crate::duration::parse_age)]
    pub leak_after: Duration,

    /// How often to dump every task to learn its await point and what it
    /// waits on (the groups of `taskscope stack`); `0s` turns it off. The
    /// dump is the agent's safe capture; a slow one is asked for less often.
    #[arg(long, value_name = "DUR", default_value = "5s", value_parser = crate::duration::parse_age)]
    pub survey_every: Duration,

    /// Group order: `suspects` (leaked, then growing or long waits on
    /// another task, then by count, as `stack`) or `count`.
    #[arg(long, value_name = "ORDER", default_value = "suspects", value_parser = crate::stack::parse_sort)]
    pub sort: taskscope_report::suspect::Sort,

    /// How often the agent sends changes.
    #[arg(long, value_name = "DUR", default_value = "1s", value_parser = crate::duration::parse_wait)]
    pub interval: Duration,

    /// Keep finished tasks after the agent drops them (at most 10,000; `d` toggles).
    #[arg(long)]
    pub keep_done: bool,
}

/// Runs the live view until the user quits.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let target = args.target.as_deref().map(Target::parse).transpose()?;
    if args.warn_after > args.leak_after {
        bail!(
            "--warn-after ({}) must not be longer than --leak-after ({})",
            crate::duration::format(args.warn_after),
            crate::duration::format(args.leak_after)
        );
    }
    // Connect first: a wrong target is the likelier mistake, and its message
    // says more than the terminal check's.
    let (first, plan) = match (target, &args.follow) {
        (Some(target), _) => {
            let first = crate::client::connect(&target).await?;
            // A PID's program is followed by the name its agent gives.
            let follow = match &target {
                Target::Pid { .. } if !args.no_follow && !first.info.process_name.is_empty() => {
                    Some(first.info.process_name.clone())
                }
                _ => None,
            };
            (Some(first), conn::Plan { target: Some(target), follow })
        }
        (None, Some(name)) => {
            let first = follow::find(name, None).await;
            let target = first.as_ref().map(|c| c.target.clone());
            (first, conn::Plan { target, follow: Some(name.clone()) })
        }
        (None, None) => bail!("attach needs a <PID|ADDR> to watch, or --follow NAME"),
    };
    if !std::io::stdout().is_terminal() {
        bail!("attach draws a live screen and needs a terminal; for a one-shot text dump use `taskscope stack`");
    }

    let thresholds = Thresholds { warn_after: args.warn_after, leak_after: args.leak_after };
    let mut app = App::new(State::new(thresholds, args.keep_done), Instant::now());
    app.surveys = surveying::Schedule::new(args.survey_every);
    app.state.set_group_sort(args.sort);
    app.state.set_connection(state::Connection::Connecting { attempt: 1 });
    app.state.follow = plan.follow.clone();

    let (data_tx, data_rx) = mpsc::channel(1024);
    let (cmd_tx, cmd_rx) = mpsc::channel(16);
    let link = tokio::spawn(conn::run(plan, args.interval, first, data_tx, cmd_rx));

    let mut guard = term::TerminalGuard::enter().context("cannot set up the terminal")?;
    // A SIGTERM or SIGHUP (terminal closed) ends the UI like `q` does, so the
    // guard below restores the terminal.
    let result = tokio::select! {
        result = app.run(guard.terminal(), EventStream::new(), data_rx, cmd_tx) => result,
        () = terminated() => Ok(()),
    };
    drop(guard);
    link.abort();
    result
}

/// Resolves on SIGTERM or SIGHUP (never, if they cannot be watched).
async fn terminated() {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::terminate()), signal(SignalKind::hangup())) {
        (Ok(mut term), Ok(mut hup)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = hup.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}
