//! `diff --json`: the comparison for a CI step to read, in the same terms as
//! the text (groups that grew, with their counts on both sides, their new
//! tasks and stack; groups that shrank or vanished), plus the verdict the
//! exit status gives.

use serde::Serialize;

use super::compare::{since_baseline, Change, Compared};
use super::side::{Frame, Side};

/// `format` of the report, versioned like `stack --json`'s.
pub const FORMAT: &str = "taskscope.diff.v1";

#[derive(Serialize)]
struct Report<'a> {
    format: &'static str,
    /// Whether a group grew by `--min-growth` or more (exit status 1).
    failed: bool,
    min_growth: u64,
    process: Program<'a>,
    baseline: Baseline<'a>,
    grew: Vec<Group<'a>>,
    shrank: Vec<Group<'a>>,
}

#[derive(Serialize)]
struct Program<'a> {
    name: &'a str,
    pid: u32,
}

#[derive(Serialize)]
struct Baseline<'a> {
    /// The baseline file, as given.
    file: &'a str,
    pid: u32,
    /// Both sides are of one process, so task ids are comparable and
    /// `new_tasks` is counted.
    same_process: bool,
    /// How long after the baseline the other side was taken (same process only).
    after_ns: Option<u64>,
}

#[derive(Serialize)]
struct Group<'a> {
    /// After's count minus the baseline's.
    growth: i64,
    before: usize,
    after: usize,
    /// Tasks of the group that the baseline did not have (same process only).
    new_tasks: Option<usize>,
    location: Option<&'a str>,
    names: Vec<&'a str>,
    states: &'a std::collections::BTreeMap<String, usize>,
    leaked: usize,
    parked_max_ns: Option<u64>,
    /// Backtraces, leaf first; absent when the tasks had no stack.
    stack: Option<&'a [Vec<Frame>]>,
}

fn group<'a>(change: &Change<'a>) -> Group<'a> {
    let shown = change.shown();
    Group {
        growth: change.growth,
        before: change.before.map_or(0, |b| b.count),
        after: change.after.map_or(0, |a| a.count),
        new_tasks: change.new_tasks,
        location: shown.location.as_deref(),
        names: shown.names.iter().map(String::as_str).collect(),
        states: &shown.states,
        leaked: shown.leaked,
        parked_max_ns: shown.parked_max_ns,
        stack: shown.stack.as_deref(),
    }
}

/// The JSON answer, one document and a newline; `failed` is the verdict
/// for `min_growth`.
pub fn render(
    before: &Side,
    after: &Side,
    compared: &Compared<'_>,
    baseline: &str,
    min_growth: u64,
    failed: bool,
) -> serde_json::Result<String> {
    let report = Report {
        format: FORMAT,
        failed,
        min_growth,
        process: Program { name: &after.process.name, pid: after.process.pid },
        baseline: Baseline {
            file: baseline,
            pid: before.process.pid,
            same_process: compared.same_process,
            after_ns: since_baseline(before, after, compared),
        },
        grew: compared.grew.iter().map(group).collect(),
        shrank: compared.shrank.iter().map(group).collect(),
    };
    let mut text = serde_json::to_string_pretty(&report)?;
    text.push('\n');
    Ok(text)
}
