//! `taskscope`: inspect the tasks of a running tokio program that embeds
//! `taskscope_agent::init()`.
//!
//! The command line is one clap enum, [`Command`]: each subcommand is a
//! module with an `Args` struct and an `async fn run(Args)`, so adding one is
//! one variant plus one match arm. Every failure reaches [`main`] as an
//! `anyhow::Error` and is printed as a single `taskscope: <message>` line with
//! exit status 1 (clap's own usage errors exit with 2).

mod attach;
mod client;
mod duration;
mod output;
mod process;
mod ps;
mod stack;
mod target;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Inspect the tasks of running tokio programs (gops + goroutine dumps for tokio).
///
/// A program becomes inspectable by calling `taskscope_agent::init()` at the
/// start of its tokio main. Commands that take `<TARGET>` accept a PID, a Unix
/// socket path (containing `/` or starting with `unix:`), or a TCP address
/// (`host:port`) of an agent started with TASKSCOPE_TCP.
#[derive(Debug, Parser)]
#[command(name = "taskscope", version, propagate_version = true)]
struct Cli {
    /// What to do; without one, `ps`.
    #[command(subcommand)]
    command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// List local processes that run a taskscope agent, with their task counts.
    Ps(ps::Args),
    /// Print the async stacks of a process's tasks, grouped like pprof's goroutine dump.
    Stack(stack::Args),
    /// Watch a process's tasks live: stuck and leaked tasks, groups by spawn location, stacks on demand.
    Attach(attach::Args),
}

impl Command {
    async fn run(self) -> anyhow::Result<()> {
        match self {
            Command::Ps(args) => ps::run(args).await,
            Command::Stack(args) => stack::run(args).await,
            Command::Attach(args) => attach::run(args).await,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Ps(ps::Args::default()));
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))
        .and_then(|runtime| runtime.block_on(command.run()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` joins any context into the same line.
            eprintln!("taskscope: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
