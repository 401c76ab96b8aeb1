//! `taskscope diff BASELINE <pid|addr|after.json>`: what grew since a
//! baseline, pprof's `-diff_base` for task dumps.
//!
//! Take the baseline with `taskscope stack <pid> --json > before.json`,
//! exercise the service, then diff against the live process (or a second
//! report). Groups (spawn location and stack, as `stack` groups them) are
//! compared by count and, within one process, by task id: tasks spawned
//! after the baseline and still alive are counted apart.
//!
//! Exit status as `check`: 0 when nothing grew by `--min-growth` or more, 1
//! when something did (with the report), 2 when it could not compare (a
//! malformed baseline, one of another program or protocol, an unreachable
//! target).

mod compare;
mod json;
mod side;

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use taskscope_report::filter::Filter;

use crate::client;
use crate::target::Target;
use side::Side;

/// Options of `taskscope diff`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Exit status: 0 when no group grew by --min-growth or more; 1 when one did \
(the report lists them); 2 when the comparison could not be made.")]
pub struct Args {
    /// The baseline: a `taskscope stack --json` report (grouped or `--all`).
    #[arg(value_name = "BASELINE")]
    baseline: String,

    /// What to compare with it: the live process (PID, socket path, host:port)
    /// or a second report file.
    #[arg(value_name = "PID|ADDR|FILE")]
    after: String,

    /// Fail when a group grew by at least N tasks.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    min_growth: u64,

    /// How long the live program's runtimes may take to produce their stacks.
    #[arg(long, value_name = "DUR", default_value = "5s", value_parser = crate::duration::parse_wait)]
    timeout: Duration,

    /// Print JSON (`taskscope.diff.v1`): the verdict, and each group that
    /// grew or shrank with its counts, new tasks and stack.
    #[arg(long)]
    json: bool,
}

/// Runs `taskscope diff`: `Ok(true)` when something grew, `Err` when it
/// could not compare.
pub async fn run(args: Args) -> anyhow::Result<bool> {
    let before = read(Path::new(&args.baseline))?;
    let after_path = Path::new(&args.after);
    let after = if after_path.is_file() {
        read(after_path)?
    } else {
        let target = Target::parse(&args.after)?;
        let mut conn = client::connect(&target).await?;
        let dump = crate::stack::fetch::fetch(&mut conn, args.timeout).await?;
        let json = taskscope_report::json::report(&conn.info, &dump, &Filter::default(), false)
            .context("cannot encode the dump")?;
        Side::parse(&json).map_err(anyhow::Error::msg).context("the live report")?
    };
    let compared = compare::compare(&before, &after).map_err(anyhow::Error::msg)?;
    let failed = compare::failed(&compared, args.min_growth);
    let text = if args.json {
        json::render(&before, &after, &compared, &args.baseline, args.min_growth, failed)
            .context("cannot encode the diff")?
    } else {
        compare::render(&before, &after, &compared, &args.baseline)
    };
    crate::output::print(&text)?;
    Ok(failed)
}

/// Reads a report file.
fn read(path: &Path) -> anyhow::Result<Side> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            " (a baseline is a file: save one with `taskscope stack <pid> --json > before.json`)"
        } else {
            ""
        };
        anyhow::anyhow!("cannot read {}: {e}{hint}", path.display())
    })?;
    Side::parse(&text).map_err(anyhow::Error::msg).with_context(|| format!("{}", path.display()))
}
