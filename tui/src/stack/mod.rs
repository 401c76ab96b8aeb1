//! `taskscope stack <pid|addr>`: a one-shot dump of every task's async stack.
//!
//! The model and the reports are [`taskscope_report`]'s (shared with the
//! agent's test guard); [`fetch`] gets the dump over gRPC. This file only
//! wires the command line to them.

pub mod fetch;

use std::time::Duration;

use anyhow::Context as _;

use crate::client;
use crate::target::Target;
use taskscope_report::dump::Dump;
use taskscope_report::filter::Filter;
use taskscope_report::suspect::{Rules, Sort};
use taskscope_report::{json, render};

/// Options of `taskscope stack`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Stacks come from the agent's safe capture of the futures it wraps \
(`taskscope_agent::spawn`, its task Builder, `#[taskscope_agent::main]`), always \
taken, and from tokio's own task dump where the agent allows it; the `stacks:` \
line says which, each stack names its source, and a task without one says why.

Exit status: 0 when the agent answered, even if no stacks came (a \
`warning: no stacks: ...` line says why, and the tasks are still listed by \
spawn location: their lifecycle records are valid without stacks); 1 when the \
agent could not be reached or the dump failed.")]
pub struct Args {
    /// PID, Unix socket path, or host:port of the agent, or the address of
    /// a program's console-subscriber (tokio-console's agent; `console://ADDR`
    /// to speak only its protocol).
    #[arg(value_name = "PID|ADDR")]
    target: String,

    /// Print every task with its own stack instead of groups (like pprof debug=2).
    #[arg(long)]
    all: bool,

    /// Print JSON for scripts (all frames included, times in nanoseconds).
    #[arg(long)]
    json: bool,

    /// Show runtime-internal frames instead of collapsing them, and the
    /// tasks tokio's runtime spawned for itself (its worker threads).
    #[arg(long)]
    full: bool,

    /// Keep only idle tasks parked at least this long (e.g. `5s`, `2m`).
    #[arg(long, value_name = "DUR", value_parser = crate::duration::parse_age)]
    min_idle: Option<Duration>,

    /// Keep only tasks whose stack (any frame's function or file), name or
    /// spawn location contains TEXT (ignoring case).
    #[arg(long = "match", value_name = "TEXT")]
    pattern: Option<String>,

    /// Write the stacks as a gzipped pprof profile (like Go's goroutine
    /// profile: `go tool pprof`, Pyroscope, Grafana read it) instead of
    /// printing the report; the filters apply.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["json", "all"])]
    pprof: Option<std::path::PathBuf>,

    /// Group order: `suspects` (leaked, then growing or long waits on
    /// another task, then the rest by count) or `count` (pprof's order).
    #[arg(long, value_name = "ORDER", default_value = "suspects", value_parser = parse_sort)]
    sort: Sort,

    /// A group parked this long on another task (a channel, a lock, a
    /// notification, with no timer or I/O branch) is a leak suspect.
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = crate::duration::parse_age)]
    suspect_after: Duration,

    /// How long the program's runtimes may take to produce their stacks.
    #[arg(long, value_name = "DUR", default_value = "5s", value_parser = crate::duration::parse_wait)]
    timeout: Duration,
}

/// Runs `taskscope stack`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let target = Target::parse(&args.target)?;
    let mut conn = client::connect(&target).await?;
    let dump = fetch::fetch(&mut conn, args.timeout).await?;
    let filter = Filter { min_idle: args.min_idle, pattern: args.pattern, runtime_tasks: args.full };
    if let Some(path) = &args.pprof {
        for warning in render::warnings(&conn.info, &dump, args.timeout) {
            eprintln!("taskscope: {warning}");
        }
        return write_profile(&conn, dump, &filter, path, args.timeout);
    }
    let text = if args.json {
        // The JSON carries the runtime statuses; still tell a human on stderr.
        for warning in render::warnings(&conn.info, &dump, args.timeout) {
            eprintln!("taskscope: {warning}");
        }
        let rules = Rules { long_after: args.suspect_after };
        json::report_with(&conn.info, &dump, &filter, args.all, args.sort, &rules)
            .context("cannot encode the dump as JSON")?
    } else {
        let view = render::View {
            all: args.all,
            full: args.full,
            timeout: args.timeout,
            sort: args.sort,
            rules: Rules { long_after: args.suspect_after },
        };
        render::report(&conn.info, &dump, &filter, view)
    };
    crate::output::print(&text)
}

/// `--sort`'s values (`stack` and `attach`).
pub fn parse_sort(text: &str) -> Result<Sort, String> {
    match text {
        "suspects" => Ok(Sort::Suspects),
        "count" => Ok(Sort::Count),
        other => Err(format!("`{other}` is not an order: use `suspects` or `count`")),
    }
}

/// `--pprof FILE`: the profile of the tasks the filters keep.
fn write_profile(
    conn: &client::Connected,
    mut dump: Dump,
    filter: &Filter,
    path: &std::path::Path,
    timeout: Duration,
) -> anyhow::Result<()> {
    let kept: std::collections::HashSet<u64> =
        taskscope_report::group::select(&dump, filter).iter().filter_map(|t| t.task.as_ref().map(|r| r.id)).collect();
    dump.tasks.retain(|t| t.task.as_ref().is_some_and(|r| kept.contains(&r.id)));
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    let program = conn.info.cmdline.first().cloned().unwrap_or_else(|| conn.info.process_name.clone());
    // The same profile, comments included, as the agent's profile endpoint.
    let notes = taskscope_report::pprof::notes(&dump, timeout);
    let (bytes, written) = taskscope_report::pprof::profile_noted(&dump, &program, wall, &notes);
    std::fs::write(path, &bytes).with_context(|| format!("cannot write {}", path.display()))?;
    crate::output::print(&format!(
        "wrote {}: {} tasks in {} samples, {} bytes (read it with `go tool pprof -traces {}`)\n",
        path.display(),
        written.tasks,
        written.samples,
        bytes.len(),
        path.display()
    ))
}
