//! `taskscope check <pid|addr>`: a pass/fail look at a running program's
//! tasks, for integration tests and deploy pipelines.
//!
//! Exit status 0 when clean; 1 with a report (the grouped `stack` format of
//! the offending tasks, or `--json`) when a condition fails; 2 when it could
//! not check (no agent, a dead process, a bad address, a `--match` that the
//! missing stacks make undecidable, and still do when `--retry` runs out):
//! what a CI step needs to tell "the
//! service leaks" from "the check is broken".
//!
//! The conditions are [`conditions`]'s pure functions; this file fetches
//! what they read, re-checks for `--retry`, and prints.

pub mod conditions;
mod sample;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use taskscope_report::dump::Dump;
use taskscope_report::filter::Filter;
use taskscope_report::{json, render};

use crate::client::{self, Connected};
use crate::target::Target;
use conditions::{Conditions, Violation};

/// A `--match` or `--allow` pattern. An empty one would mention every task:
/// `--allow "$UNSET"` in a CI script would pass any program, and `--match ""`
/// fail every one, so it is refused instead.
fn non_empty(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("an empty pattern would match every task: give a function, file, name or location".to_string());
    }
    Ok(text.to_string())
}

/// Options of `taskscope check`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
With no condition, `--leaked` is checked. Conditions combine: the check fails \
when any of them does. Tasks matching an `--allow` pattern (the stack's \
functions and files, the name, the spawn location: like `stack --match`) count \
for none.

Exit status: 0 clean; 1 a condition failed (the report says which and lists \
the tasks); 2 the check could not be made (the message says why).")]
pub struct Args {
    /// PID, Unix socket path, or host:port of the agent, or the address of
    /// a program's console-subscriber (tokio-console's agent).
    #[arg(value_name = "PID|ADDR")]
    target: String,

    /// Fail on any task the agent calls leaked (idle, no live waker; full mode only).
    #[arg(long)]
    leaked: bool,

    /// Fail on tasks parked longer than DUR (e.g. `30s`).
    #[arg(long, value_name = "DUR", value_parser = crate::duration::parse_age)]
    max_parked: Option<Duration>,

    /// Fail when more than `--max-matching` tasks (default 0) mention TEXT in
    /// their stack, name or spawn location.
    #[arg(long = "match", value_name = "TEXT", value_parser = non_empty)]
    pattern: Option<String>,

    /// How many tasks may match `--match`.
    #[arg(long, value_name = "N", default_value_t = 0, requires = "pattern")]
    max_matching: usize,

    /// Fail when the live tasks of one spawn location grow by more than N over
    /// `--over` (the program keeps running meanwhile, e.g. under a load test).
    #[arg(long, value_name = "N", requires = "over")]
    max_growth: Option<usize>,

    /// The window of `--max-growth`.
    #[arg(long, value_name = "DUR", requires = "max_growth", value_parser = crate::duration::parse_wait)]
    over: Option<Duration>,

    /// Tasks that no condition counts (repeatable): accept loops, signal handlers, tickers.
    #[arg(long, value_name = "PATTERN", value_parser = non_empty)]
    allow: Vec<String>,

    /// Before failing, look again for up to DUR (tasks that are finishing).
    #[arg(long, value_name = "DUR", value_parser = crate::duration::parse_wait)]
    retry: Option<Duration>,

    /// Print JSON: the verdict, each failed condition with its task ids, and
    /// the offending tasks as `stack --json` gives them.
    #[arg(long)]
    json: bool,

    /// How long the program's runtimes may take to produce their stacks.
    #[arg(long, value_name = "DUR", default_value = "5s", value_parser = crate::duration::parse_wait)]
    timeout: Duration,
}

/// How a check ended.
pub enum Verdict {
    Clean,
    Failed,
}

/// Longest pause between two looks of `--retry`.
const MAX_PAUSE: Duration = Duration::from_millis(500);

/// Runs `taskscope check`. An `Err` is "could not check" (exit status 2).
pub async fn run(args: Args) -> anyhow::Result<Verdict> {
    let target = Target::parse(&args.target)?;
    let mut conn = client::connect(&target).await?;
    let conditions = Conditions {
        leaked: args.leaked || (args.max_parked.is_none() && args.pattern.is_none() && args.max_growth.is_none()),
        max_parked: args.max_parked,
        matching: args.pattern.clone().map(|p| (p, args.max_matching)),
        max_growth: args.max_growth,
        allow: args.allow.clone(),
    };
    let mut grown = Vec::new();
    if let (Some(_), Some(over)) = (args.max_growth, args.over) {
        let before = conditions::live_by_location(&sample::live_tasks(&conn).await?);
        tokio::time::sleep(over).await;
        let after = conditions::live_by_location(&sample::live_tasks(&conn).await?);
        grown = conditions.growth(&before, &after, over);
    }
    let started = Instant::now();
    let mut pause = Duration::from_millis(50);
    let retry = args.retry.unwrap_or_default();
    let (dump, violations) = loop {
        let dump = crate::stack::fetch::fetch(&mut conn, args.timeout).await?;
        // An undecidable look is retried like a failed one: what made it so
        // (a task inside a long poll, a runtime whose dump did not complete)
        // passes.
        let looked = conditions.check(&dump);
        let out_of_time = started.elapsed() >= retry;
        match looked {
            Ok(violations) if violations.is_empty() || out_of_time => break (dump, violations),
            Err(why) if out_of_time => {
                if retry.is_zero() {
                    anyhow::bail!("{}", why.0);
                }
                anyhow::bail!("{} (still so after {} of --retry)", why.0, taskscope_proto::duration::format(retry));
            }
            _ => {}
        }
        tokio::time::sleep(pause.min(retry.saturating_sub(started.elapsed()))).await;
        pause = (pause * 2).min(MAX_PAUSE);
    };
    let violations: Vec<Violation> = violations.into_iter().chain(grown).collect();
    let verdict = if violations.is_empty() { Verdict::Clean } else { Verdict::Failed };
    let text = if args.json {
        json_report(&conn, &dump, &violations)?
    } else {
        text_report(&conn, &dump, &violations, args.timeout)
    };
    crate::output::print(&text)?;
    Ok(verdict)
}

/// The offending tasks alone: those of every violation, and every task of a
/// location that grew.
fn offenders(dump: &Dump, violations: &[Violation]) -> Dump {
    let ids: BTreeSet<u64> = violations.iter().flat_map(|v| v.tasks.iter().copied()).collect();
    let locations: BTreeSet<&str> = violations.iter().filter_map(|v| v.location.as_deref()).collect();
    let mut kept = dump.clone();
    kept.tasks.retain(|t| {
        t.task.as_ref().is_some_and(|r| {
            ids.contains(&r.id) || taskscope_report::dump::location(r).is_some_and(|l| locations.contains(l.as_str()))
        })
    });
    kept
}

fn text_report(conn: &Connected, dump: &Dump, violations: &[Violation], timeout: Duration) -> String {
    let who = conn.describe();
    if violations.is_empty() {
        return format!("taskscope check: {who}: clean\n");
    }
    let failed = if violations.len() == 1 {
        "1 condition failed".to_string()
    } else {
        format!("{} conditions failed", violations.len())
    };
    let mut out = format!("taskscope check: {who}: {failed}\n");
    for v in violations {
        out.push_str(&format!("  {} ({})\n", v.what, v.condition));
    }
    out.push_str(&render::chosen(&conn.info, &offenders(dump, violations), timeout));
    out
}

#[derive(Serialize)]
struct JsonCheck<'a> {
    clean: bool,
    violations: Vec<JsonViolation<'a>>,
    /// The offending tasks, as `stack --json` reports them.
    report: serde_json::Value,
}

#[derive(Serialize)]
struct JsonViolation<'a> {
    condition: &'a str,
    what: &'a str,
    task_ids: Vec<u64>,
    location: Option<&'a str>,
}

fn json_report(conn: &Connected, dump: &Dump, violations: &[Violation]) -> anyhow::Result<String> {
    let shown = offenders(dump, violations);
    let report = json::report(&conn.info, &shown, &Filter::default(), false).context("cannot encode the report")?;
    let check = JsonCheck {
        clean: violations.is_empty(),
        violations: violations
            .iter()
            .map(|v| JsonViolation {
                condition: &v.condition,
                what: &v.what,
                task_ids: v.tasks.iter().copied().collect(),
                location: v.location.as_deref(),
            })
            .collect(),
        report: serde_json::from_str(&report).context("cannot encode the report")?,
    };
    let mut text = serde_json::to_string_pretty(&check).context("cannot encode the report")?;
    text.push('\n');
    Ok(text)
}
