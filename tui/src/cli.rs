//! The command line: one clap enum, [`Command`]. Each subcommand is a
//! module with an `Args` struct and an `async fn run(Args)`, so adding one is
//! one variant plus one match arm. Every failure reaches [`main`] as an
//! `anyhow::Error` and is printed as a single `taskscope: <message>` line with
//! exit status 1 (2 for `check` and `diff`, whose 1 is a failed verdict).
//! Usage errors are one line too (clap's message and the usage it names),
//! with exit status 2; `--help` and `--version` print as usual.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::{attach, check, diff, ps, stack};

/// Inspect the tasks of running tokio programs (gops + goroutine dumps for tokio).
///
/// A program becomes inspectable by calling `taskscope_agent::init()` at the
/// start of its tokio main. Commands that take `<TARGET>` accept a PID, a Unix
/// socket path (containing `/` or starting with `unix:`), or a TCP address
/// (`host:port`) of an agent started with TASKSCOPE_TCP. A program that runs
/// console-subscriber (tokio-console's agent) instead is inspected at its
/// address as it is (`127.0.0.1:6669`, or `console://ADDR`), without stacks.
#[derive(Debug, Parser)]
#[command(name = "taskscope", version, propagate_version = true)]
pub struct Cli {
    /// What to do; without one, `ps`.
    #[command(subcommand)]
    command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List local processes that run a taskscope agent, with their task counts.
    Ps(ps::Args),
    /// Print the async stacks of a process's tasks, grouped like pprof's goroutine dump.
    Stack(stack::Args),
    /// Watch a process's tasks live: stuck and leaked tasks, groups by spawn location, stacks on demand.
    Attach(attach::Args),
    /// Pass or fail a process's tasks, for CI: leaked, parked too long, matching, growing.
    Check(check::Args),
    /// What grew since a baseline `stack --json` report: groups by growth, new tasks by id.
    Diff(diff::Args),
}

impl Command {
    /// Runs the command: `Ok` with its exit status, `Err` for a failure.
    async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Command::Ps(args) => ps::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Stack(args) => stack::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Attach(args) => attach::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Check(args) => check::run(args).await.map(|verdict| match verdict {
                check::Verdict::Clean => ExitCode::SUCCESS,
                check::Verdict::Failed => ExitCode::from(1),
            }),
            Command::Diff(args) => diff::run(args).await.map(|grew| ExitCode::from(u8::from(grew))),
        }
    }

    /// The exit status of a failure: `check` keeps 1 for "the check
    /// failed", so "could not check" is 2.
    fn failure_status(&self) -> ExitCode {
        match self {
            Command::Check(_) | Command::Diff(_) => ExitCode::from(2),
            _ => ExitCode::FAILURE,
        }
    }
}

/// Parses the arguments, runs the command on a current-thread runtime and
/// turns its result into the exit status, printing any failure as one line.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(&err),
    };
    let command = cli.command.unwrap_or(Command::Ps(ps::Args::default()));
    let failure = command.failure_status();
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))
        .and_then(|runtime| runtime.block_on(command.run()));
    match result {
        Ok(status) => status,
        Err(err) => {
            // `{:#}` joins any context into the same line.
            eprintln!("taskscope: {err:#}");
            failure
        }
    }
}

/// Prints a clap error: help and version as clap does, anything else as one
/// `taskscope: ` line.
fn usage_error(err: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = err.print();
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("taskscope: {}", one_line(&err.render().to_string()));
            ExitCode::from(2)
        }
    }
}

/// clap's multi-line error text as one line: its message (without the
/// `error: ` prefix; a list under it joined on), any tip, then the usage.
fn one_line(text: &str) -> String {
    let paragraphs: Vec<String> = text
        .split("\n\n")
        .map(|p| p.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty())
        .collect();
    let mut line = match paragraphs.first() {
        Some(first) => first.strip_prefix("error: ").unwrap_or(first).trim_end_matches(':').to_string(),
        None => "invalid arguments".to_string(),
    };
    for p in paragraphs.iter().skip(1) {
        if let Some(tip) = p.strip_prefix("tip: ") {
            line = format!("{line}; {tip}");
        } else if let Some(usage) = p.strip_prefix("Usage: ") {
            line = format!("{line} (usage: {usage})");
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn usage_errors_are_one_line() {
        for args in [
            &["taskscope", "stack"][..],
            &["taskscope", "stack", "1", "--bogus"],
            &["taskscope", "stack", "-1"],
            &["taskscope", "bogus"],
            &["taskscope", "stack", "1", "--timeout", "0s"],
            &["taskscope", "attach", "1", "--interval", "7000000000000000000s"],
        ] {
            let err = Cli::try_parse_from(args).expect_err("bad arguments");
            let line = one_line(&err.render().to_string());
            assert!(!line.contains('\n') && !line.starts_with("error"), "{args:?}: {line}");
            assert!(line.contains("(usage: taskscope") || line.contains("invalid value"), "{args:?}: {line}");
        }
        let err = Cli::try_parse_from(["taskscope", "stack"]).expect_err("no target");
        assert_eq!(
            one_line(&err.render().to_string()),
            "the following required arguments were not provided: <PID|ADDR> (usage: taskscope stack <PID|ADDR>)"
        );
        let err = Cli::try_parse_from(["taskscope", "stack", "1", "--timeout", "0s"]).expect_err("zero");
        assert!(one_line(&err.render().to_string()).contains("must be more than 0"));
    }
}
